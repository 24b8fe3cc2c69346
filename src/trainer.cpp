// The training loop (see trainer.hpp). One step: stage this rank's slice, forward, loss and
// backward per micro-batch (gradients accumulate in the flat buffer), allreduce the sums,
// reduce the loss, then one fused optimizer pass with the scheduled learning rate.
#include "lockstep/trainer.hpp"

#include <chrono>
#include <cmath>

#include "lockstep/check.hpp"
#include "lockstep/progress.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/schedule.hpp"

namespace lockstep {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

Trainer::Trainer(const Config& cfg, Comm& comm, Backend& backend, Datasets data, TrainerOptions opts)
    : cfg_(cfg), comm_(&comm), backend_(&backend), data_(std::move(data)), opts_(std::move(opts)),
      early_(cfg.early_stopping) {
  validate_config(cfg_, comm.size());
  LOCKSTEP_CHECK(data_.train, "no training data");
  const int64_t n = data_.train->size();
  LOCKSTEP_REQUIRE(n >= comm.size(), data_.train->name(), ": ", n, " training samples are fewer than the ",
                   comm.size(), " ranks");
  model_ = std::make_unique<Mlp>(backend, cfg_.model.layers, cfg_.model.activation);
  LOCKSTEP_REQUIRE(data_.train->dim() == model_->input_dim(), data_.train->name(), ": samples have ",
                   data_.train->dim(), " features but model.layers[0] is ", model_->input_dim());
  // Rank 0's initial weights are the weights (invariant 2), whatever the other ranks computed.
  std::vector<float> init = initial_params(*model_, cfg_.run.seed, cfg_.model.init);
  comm.broadcast(init.data(), init.size() * sizeof(float), 0);
  model_->set_params(init);
  optimizer_ = std::make_unique<Optimizer>(backend, cfg_.optimizer, model_->num_params());
  sharder_ = std::make_unique<Sharder>(n, cfg_.train.batch_size, cfg_.train.drop_last, cfg_.run.seed);
  evaluator_ = std::make_unique<Evaluator>(*model_, cfg_.data.eval_batch);

  max_local_rows_ = ceil_div(ceil_div(cfg_.train.batch_size, comm.size()), cfg_.train.grad_accum);
  ws_ = std::make_unique<Workspace>(*model_, max_local_rows_);
  const auto rows = static_cast<size_t>(max_local_rows_);
  const auto dim = static_cast<size_t>(model_->input_dim());
  if (backend.kind() != DeviceKind::cpu) {
    x_host_.resize(rows * dim);
    y_host_.resize(rows);
  }
  x_ = Buffer<float>(backend, rows * dim);
  y_ = Buffer<int32_t>(backend, rows);
  order_.reserve(static_cast<size_t>(n));
  data_.train->reserve(max_local_rows_);
}

Trainer::~Trainer() = default;

int64_t Trainer::total_steps() const {
  const int64_t all = cfg_.train.epochs * sharder_->steps_per_epoch();
  return cfg_.train.max_steps > 0 ? std::min(all, cfg_.train.max_steps) : all;
}

EvalResult Trainer::evaluate(const DataSource& data) { return evaluator_->run(data, *comm_); }

StepRecord Trainer::train_step(int64_t b, const std::vector<int64_t>& order, EpochRecord& acc, double& epoch_loss,
                               int64_t& epoch_correct) {
  Backend& be = *backend_;
  const Range slice = sharder_->slice(b, comm_->rank(), comm_->size());
  const int64_t global_rows = sharder_->batch(b).size();
  const int classes = static_cast<int>(model_->output_dim());

  // Per-phase timing reads the clock a few times per step; the backend is synchronised only
  // where the trainer needs its results anyway (a device backend runs the phases asynchronously,
  // so its forward/backward split is approximate).
  double data_s = 0.0, forward_s = 0.0, backward_s = 0.0;
  double loss = 0.0;
  int64_t correct = 0;
  bool have_grads = false;
  for (int64_t j = 0; j < cfg_.train.grad_accum; ++j) {
    const Range mb = split_evenly(slice.size(), static_cast<int>(j), static_cast<int>(cfg_.train.grad_accum));
    if (mb.size() == 0) continue;
    const auto td = Clock::now();
    stage_batch(be, *data_.train, order.data() + slice.begin + mb.begin, mb.size(), x_host_, y_host_, x_.data(),
                y_.data());
    const auto tf = Clock::now();
    const float* logits = forward(*model_, *ws_, x_.data(), mb.size());
    const LossSums s = be.softmax_xent(static_cast<int>(mb.size()), classes, logits, y_.data(), ws_->dlogits());
    const auto tb = Clock::now();
    loss += s.loss;
    correct += s.correct;
    backward(*model_, *ws_, x_.data(), mb.size(), have_grads);
    have_grads = true;
    be.synchronize();
    const auto te = Clock::now();
    data_s += seconds_between(td, tf);
    forward_s += seconds_between(tf, tb);
    backward_s += seconds_between(tb, te);
  }
  // A rank with an empty slice still takes part in the allreduce, with zeros (invariant 1).
  if (!have_grads) be.fill(model_->grads(), model_->num_params(), 0.0f);
  const auto t1 = Clock::now();

  Comm& grad_comm = opts_.gradient_comm ? *opts_.gradient_comm : *comm_;
  grad_comm.allreduce_sum(model_->grads(), model_->num_params());
  double sums[2] = {loss, static_cast<double>(correct)};
  comm_->allreduce_sum(sums, 2);
  const auto t2 = Clock::now();

  StepRecord rec;
  rec.epoch = state_.epoch;
  rec.step_in_epoch = b;
  rec.samples = global_rows;
  rec.lr = learning_rate(cfg_.schedule, cfg_.optimizer.lr, state_.global_step, total_steps());
  const StepStats st = optimizer_->step(model_->params(), model_->grads(), rec.lr, global_rows);
  be.synchronize();
  const auto t3 = Clock::now();

  rec.global_step = ++state_.global_step;
  rec.loss = sums[0] / static_cast<double>(global_rows);
  rec.grad_norm = st.grad_norm;
  epoch_loss += sums[0];
  epoch_correct += static_cast<int64_t>(sums[1]);
  acc.data_seconds += data_s;
  acc.forward_seconds += forward_s;
  acc.backward_seconds += backward_s;
  acc.optimizer_seconds += seconds_between(t2, t3);
  acc.compute_seconds += forward_s + backward_s + seconds_between(t2, t3);
  acc.allreduce_seconds += seconds_between(t1, t2);
  acc.lr = rec.lr;
  return rec;
}

void Trainer::finish_epoch(EpochRecord& rec, TrainResult& result) {
  if (data_.val) rec.val = evaluate(*data_.val);
  if (data_.test) rec.test = evaluate(*data_.test);
  if (rec.val) {
    const bool stop = early_.update(rec.val->loss, rec.val->accuracy);
    // The metrics are reduced values, identical everywhere; agreeing once more costs nothing
    // and keeps the decision collective by construction (invariant 1).
    rec.stopped_early = comm_->all_true(stop);
    state_.early = early_.state();
  }
  result.epochs.push_back(rec);
  if (comm_->rank() == 0 && !opts_.metrics_path.empty()) append_line(opts_.metrics_path, epoch_json(rec));
}

TrainResult Trainer::run() {
  TrainResult result;
  early_.set_state(state_.early);
  Progress progress(comm_->rank() == 0 ? opts_.log : nullptr, cfg_.train.progress && stdout_is_terminal(),
                    cfg_.train.epochs);
  const int64_t steps = sharder_->steps_per_epoch();
  bool finished = false;
  while (!finished && state_.epoch < cfg_.train.epochs) {
    sharder_->epoch_order(state_.epoch, order_);
    EpochRecord rec;
    rec.epoch = state_.epoch;
    double epoch_loss = 0.0;
    int64_t epoch_correct = 0, epoch_samples = 0;
    progress.begin_epoch(state_.epoch, steps);
    const auto start = Clock::now();
    while (state_.step_in_epoch < steps) {
      const StepRecord s = train_step(state_.step_in_epoch, order_, rec, epoch_loss, epoch_correct);
      ++state_.step_in_epoch;
      epoch_samples += s.samples;
      if (opts_.on_step) opts_.on_step(s);
      progress.step(state_.step_in_epoch, s.loss);
      // max_steps depends only on counters that are identical on every rank.
      if (cfg_.train.max_steps > 0 && state_.global_step >= cfg_.train.max_steps) {
        finished = true;
        break;
      }
    }
    rec.seconds = seconds_between(start, Clock::now());
    rec.global_step = state_.global_step;
    rec.train_loss = epoch_samples ? epoch_loss / static_cast<double>(epoch_samples) : 0.0;
    rec.train_accuracy = epoch_samples ? static_cast<double>(epoch_correct) / static_cast<double>(epoch_samples) : 0.0;
    rec.samples_per_second = rec.seconds > 0 ? static_cast<double>(epoch_samples) / rec.seconds : 0.0;
    finish_epoch(rec, result);
    progress.end_epoch(rec);
    if (state_.step_in_epoch >= steps) {
      ++state_.epoch;
      state_.step_in_epoch = 0;
    }
    if (rec.stopped_early) {
      result.stopped_early = true;
      finished = true;
    }
  }
  result.steps = state_.global_step;
  return result;
}

}  // namespace lockstep
