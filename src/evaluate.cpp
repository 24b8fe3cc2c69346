// Distributed evaluation (see evaluate.hpp).
#include "lockstep/evaluate.hpp"

#include <numeric>

#include "lockstep/sharder.hpp"

namespace lockstep {

void stage_batch(Backend& be, const DataSource& data, const int64_t* rows, int64_t n, std::vector<float>& x_host,
                 std::vector<int32_t>& y_host, float* x_dev, int32_t* y_dev) {
  if (be.kind() == DeviceKind::cpu) {
    data.gather(rows, n, x_dev, y_dev);
    return;
  }
  data.gather(rows, n, x_host.data(), y_host.data());
  be.to_device(x_dev, x_host.data(), sizeof(float) * static_cast<size_t>(n * data.dim()));
  be.to_device(y_dev, y_host.data(), sizeof(int32_t) * static_cast<size_t>(n));
}

Evaluator::Evaluator(const Mlp& model, int64_t batch_rows)
    : model_(&model),
      batch_(batch_rows),
      ws_(model, batch_rows),
      rows_(static_cast<size_t>(batch_rows)),
      x_host_(model.backend().kind() == DeviceKind::cpu ? 0 : static_cast<size_t>(batch_rows * model.input_dim())),
      y_host_(model.backend().kind() == DeviceKind::cpu ? 0 : static_cast<size_t>(batch_rows)),
      x_(model.backend(), static_cast<size_t>(batch_rows * model.input_dim())),
      y_(model.backend(), static_cast<size_t>(batch_rows)) {}

EvalResult Evaluator::run(const DataSource& data, Comm& comm) {
  Backend& be = model_->backend();
  data.reserve(batch_);
  const Range mine = split_evenly(data.size(), comm.rank(), comm.size());
  double loss = 0.0;
  int64_t correct = 0;
  for (int64_t begin = mine.begin; begin < mine.end; begin += batch_) {
    const int64_t n = std::min(batch_, mine.end - begin);
    std::iota(rows_.begin(), rows_.begin() + n, begin);
    stage_batch(be, data, rows_.data(), n, x_host_, y_host_, x_.data(), y_.data());
    const float* logits = forward(*model_, ws_, x_.data(), n);
    const LossSums s = be.softmax_xent(static_cast<int>(n), static_cast<int>(model_->output_dim()), logits,
                                       y_.data(), nullptr);
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
