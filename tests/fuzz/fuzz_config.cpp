// libFuzzer entry point of fuzz_config: lockstep::fuzz::config_text (fuzz_bodies.hpp). A finding is
// anything that escapes the body; it aborts so that libFuzzer saves the input.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz_bodies.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lockstep::fuzz::config_text(data, size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_config: finding: %s\n", e.what());
    std::abort();
  }
  return 0;
}
