// Shared helpers of the test suite: reference fixtures, tolerance checks, synthetic datasets,
// temporary directories. Tests link the library; they never include the program.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lockstep/config.hpp"
#include "lockstep/dataset.hpp"

namespace lockstep::test {

nlohmann::json load_fixture(const std::string& name);

// Every element within rtol relative to itself plus an absolute floor of atol_scale times the
// largest magnitude in `expected` (values that are small by cancellation carry the rounding
// error of the large terms they were computed from).
::testing::AssertionResult all_close(const std::vector<double>& actual, const std::vector<double>& expected,
                                     double rtol, double atol_scale = 0.0);
::testing::AssertionResult all_close(const std::vector<float>& actual, const std::vector<double>& expected,
                                     double rtol, double atol_scale = 0.0);

std::vector<double> to_doubles(const nlohmann::json& arr);
std::vector<float> to_floats(const nlohmann::json& arr);

// A synthetic classification set: n samples of dim features in [-1, 1] from (seed), labels
// from a fixed random linear rule, so a model can learn it.
std::shared_ptr<MemoryData> synthetic_data(int64_t n, int64_t dim, int classes, uint64_t seed);

// A config for small, fast runs on synthetic data.
Config small_config(std::vector<int64_t> layers, int64_t batch, int64_t epochs);

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes bytes to a file, optionally gzip-compressed.
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip = false);

// The bytes of an IDX file with the given element type byte, dims and payload.
std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload);

}  // namespace lockstep::test
