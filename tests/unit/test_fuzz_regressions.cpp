// Every input the fuzz targets ever crashed on (tests/fuzz/crashes/, named <target>_<what>) and
// every seed of their corpora goes through the same target body as under libFuzzer
// (tests/fuzz/fuzz_bodies.hpp), in the ordinary build: each must end in a clean rejection or a
// valid result, never in another exception. The specific causes have their own unit tests.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_bodies.hpp"

namespace lockstep {
namespace {

namespace fs = std::filesystem;
using Body = void (*)(const uint8_t*, size_t);

std::vector<uint8_t> slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Runs body on every file of dir whose name starts with prefix; returns how many.
int replay(const fs::path& dir, const std::string& prefix, Body body) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().filename().string().rfind(prefix, 0) != 0) continue;
    const std::vector<uint8_t> bytes = slurp(e.path());
    EXPECT_NO_THROW(body(bytes.data(), bytes.size())) << e.path();
    ++n;
  }
  return n;
}

const fs::path kFuzzDir = LOCKSTEP_FUZZ_DIR;

TEST(FuzzRegressions, CommittedCrashInputsAreRejectedCleanly) {
  const int idx = replay(kFuzzDir / "crashes", "idx_", fuzz::idx_bytes);
  const int config = replay(kFuzzDir / "crashes", "config_", fuzz::config_text);
  const int h5 = replay(kFuzzDir / "crashes", "h5_data_", fuzz::h5_data_file);
  EXPECT_GE(idx + config + h5, 1) << "no crash inputs found in " << kFuzzDir / "crashes";
}

TEST(FuzzRegressions, SeedCorporaPassTheTargetBodies) {
  EXPECT_GE(replay(kFuzzDir / "corpus" / "idx", "", fuzz::idx_bytes), 5);
  EXPECT_GE(replay(kFuzzDir / "corpus" / "config", "", fuzz::config_text), 3);
  EXPECT_GE(replay(kFuzzDir / "corpus" / "h5_data", "", fuzz::h5_data_file), 3);
}

}  // namespace
}  // namespace lockstep
