// Distributed evaluation (see evaluate.hpp).
#include "lockstep/evaluate.hpp"

#include <algorithm>
#include <numeric>

#include "lockstep/memory_plan.hpp"
#include "lockstep/sharder.hpp"

namespace lockstep {

Evaluator::Evaluator(const Mlp& model, int64_t batch_rows)
    : model_(&model),
      batch_(batch_rows),
      ws_(allocating(fmt("the evaluation activations for ", batch_rows, " rows (data.eval_batch)"),
                     [&] { return Workspace(model, batch_rows); })),
      rows_(allocating("the evaluation row list (data.eval_batch)",
                       [&] { return std::vector<int64_t>(static_cast<size_t>(batch_rows)); })),
      stager_(model.backend(), batch_rows, model.input_dim()) {}

EvalResult Evaluator::run(const DataSource& data, Comm& comm) {
  Backend& be = model_->backend();
  data.reserve(batch_);
  const Range mine = split_evenly(data.size(), comm.rank(), comm.size());
  double loss = 0.0;
  int64_t correct = 0;
  // The next chunk is gathered while the backend runs this chunk's forward pass (the gather
  // copies the rows at once, so one row list serves both).
  auto rows_of = [&](int64_t begin) {
    const int64_t n = std::min(batch_, mine.end - begin);
    std::iota(rows_.begin(), rows_.begin() + n, begin);
    return n;
  };
  for (int64_t begin = mine.begin, k = 0; begin < mine.end; begin += batch_, ++k) {
    const int64_t n = rows_of(begin);
    const StagedBatch in = stager_.acquire(data, BatchKey{0, k, 0}, rows_.data(), n);
    const float* logits = forward(*model_, ws_, in.x, n);
    if (begin + batch_ < mine.end) {
      const int64_t next = rows_of(begin + batch_);
      stager_.prefetch(data, BatchKey{0, k + 1, 0}, rows_.data(), next);
    }
    const LossSums s = be.softmax_xent(static_cast<int>(n), static_cast<int>(model_->output_dim()), logits,
                                       in.y, nullptr);
    loss += s.loss;
    correct += s.correct;
  }
  double dsum[1] = {loss};
  int64_t isum[1] = {correct};
  comm.allreduce_sum(dsum, 1);
  comm.allreduce_sum(isum, 1);
  EvalResult r;
  r.count = data.size();
  r.loss = dsum[0] / static_cast<double>(r.count);
  r.accuracy = static_cast<double>(isum[0]) / static_cast<double>(r.count);
  return r;
}

}  // namespace lockstep
