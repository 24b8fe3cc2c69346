// Training data for the benchmarks: Fashion-MNIST (the real rows, in memory) or synthetic rows,
// presented as a source of exactly `rows` samples so that one epoch is exactly the number of
// steps a benchmark wants (rows beyond the base set wrap around to its start).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "lockstep/dataset.hpp"

namespace lockstep::bench {

// kind "fmnist": the training images and labels in `fmnist_dir` (needs dim 784, 10 classes);
// kind "synthetic": uniform features in [0, 1) and uniform labels, at most 16,384 distinct rows.
std::shared_ptr<const DataSource> make_bench_data(const std::string& kind, const std::string& fmnist_dir,
                                                  int64_t dim, int classes, int64_t rows, uint64_t seed);

}  // namespace lockstep::bench
