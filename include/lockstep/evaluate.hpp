// Evaluation of a model on a dataset across ranks: each rank takes a contiguous share of the
// rows (sizes differ by at most one), and the loss and correct-count sums are allreduced, so
// every sample is counted exactly once and every rank gets the same result.
#pragma once
#include <cstdint>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/batch_stager.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/model.hpp"

namespace lockstep {

struct EvalResult {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction correct
  int64_t count = 0;      // samples evaluated (over all ranks)
};

class Evaluator {
 public:
  Evaluator(const Mlp& model, int64_t batch_rows);
  EvalResult run(const DataSource& data, Comm& comm);

 private:
  const Mlp* model_;
  int64_t batch_;
  Workspace ws_;
  std::vector<int64_t> rows_;  // (batch) row indices of the chunk being staged
  BatchStager stager_;
};

}  // namespace lockstep
