// Benchmark data sources (see bench_data.hpp).
#include "bench/common/bench_data.hpp"

#include <random>
#include <vector>

#include "lockstep/check.hpp"

namespace lockstep::bench {
namespace {

// Row i of this source is row (i mod base.size()) of the base: any epoch length from any set.
class CyclicData final : public DataSource {
 public:
  CyclicData(std::shared_ptr<const DataSource> base, int64_t rows) : base_(std::move(base)), rows_(rows) {}
  int64_t size() const override { return rows_; }
  int64_t dim() const override { return base_->dim(); }
  int classes() const override { return base_->classes(); }
  std::string name() const override { return base_->name() + " (cycled)"; }
  void reserve(int64_t max_rows) const override {
    if (static_cast<int64_t>(mapped_.size()) < max_rows) mapped_.resize(static_cast<size_t>(max_rows));
    base_->reserve(max_rows);
  }
  void gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const override {
    reserve(n);
    const int64_t m = base_->size();
    for (int64_t i = 0; i < n; ++i) mapped_[static_cast<size_t>(i)] = rows[i] % m;
    base_->gather(mapped_.data(), n, X, y);
  }

 private:
  std::shared_ptr<const DataSource> base_;
  int64_t rows_;
  mutable std::vector<int64_t> mapped_;
};

std::shared_ptr<const DataSource> synthetic(int64_t dim, int classes, int64_t rows, uint64_t seed) {
  const int64_t n = std::min<int64_t>(rows, 16384);
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> feature(0.0f, 1.0f);
  std::uniform_int_distribution<int32_t> label(0, classes - 1);
  std::vector<float> x(static_cast<size_t>(n * dim));
  for (float& v : x) v = feature(gen);
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int32_t& v : y) v = label(gen);
  return std::make_shared<MemoryData>("synthetic", dim, classes, std::move(x), std::move(y));
}

}  // namespace

std::shared_ptr<const DataSource> make_bench_data(const std::string& kind, const std::string& fmnist_dir,
                                                  int64_t dim, int classes, int64_t rows, uint64_t seed) {
  std::shared_ptr<const DataSource> base;
  if (kind == "fmnist") {
    LOCKSTEP_REQUIRE(dim == 784 && classes == 10, "--data fmnist needs --layers 784,...,10");
    base = load_idx_pair(fmnist_dir + "/train-images-idx3-ubyte.gz", fmnist_dir + "/train-labels-idx1-ubyte.gz",
                         classes);
  } else {
    LOCKSTEP_REQUIRE(kind == "synthetic", "--data must be fmnist or synthetic, not ", kind);
    base = synthetic(dim, classes, rows, seed);
  }
  return std::make_shared<CyclicData>(base, rows);
}

}  // namespace lockstep::bench
