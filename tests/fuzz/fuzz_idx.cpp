// libFuzzer entry point of fuzz_idx: lockstep::fuzz::idx_bytes (fuzz_bodies.hpp). A finding is
// anything that escapes the body; it aborts so that libFuzzer saves the input.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz_bodies.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lockstep::fuzz::idx_bytes(data, size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_idx: finding: %s\n", e.what());
    std::abort();
  }
  return 0;
}
