// The training loop (see trainer.hpp). One step: stage this rank's slice, forward, loss and
// backward per micro-batch (gradients accumulate in the flat buffer), allreduce the sums,
// reduce the loss together with the stop flag, then one fused optimizer pass with the
// scheduled learning rate.
#include "lockstep/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "lockstep/check.hpp"
#include "lockstep/checkpoint.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/distill.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/memory_plan.hpp"
#include "lockstep/progress.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/schedule.hpp"
#include "lockstep/signals.hpp"
#include "lockstep/transfer.hpp"

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
  model_ = allocating("the model's parameters and gradients (model.layers)",
                      [&] { return std::make_unique<Mlp>(backend, cfg_.model.layers, cfg_.model.activation); });
  // CPU gradients live where the communicator sums them without copies (node-shared memory).
  // The same decision on every rank: the config and the backend kind agree everywhere.
  if (backend.kind() == DeviceKind::cpu && !opts_.gradient_comm && cfg_.run.shared_memory_allreduce) {
    std::string why;
    reduce_buffer_ = comm.make_reduce_buffer(model_->num_params(), &why);
    if (!why.empty() && comm.rank() == 0 && opts_.log)
      *opts_.log << "gradient allreduce: MPI_Allreduce, not node shared memory (" << why << ")" << std::endl;
  }
  if (reduce_buffer_) model_->use_gradient_memory(reduce_buffer_->data());
  LOCKSTEP_REQUIRE(data_.train->dim() == model_->input_dim(), data_.train->name(), ": samples have ",
                   data_.train->dim(), " features but model.layers[0] is ", model_->input_dim());
  // Rank 0's initial weights are the weights (invariant 2), whatever the other ranks computed.
  std::vector<float> init = allocating("the initial weights (model.layers)",
                                       [&] { return initial_params(*model_, cfg_.run.seed, cfg_.model.init); });
  if (opts_.init_from) {  // a fine-tune: the checkpoint's layers, fresh optimizer, schedule and epochs
    const CheckpointData& src = *opts_.init_from;
    load_init_layers(*model_, InitSource{cfg_.init.from, src.layers, src.activation, &src.params},
                     cfg_.init.reset_head, init);
    notes_[kInitFromNote] = cfg_.init.from;
    notes_[kInitFromChecksumNote] = hex64(fnv1a64(src.params.data(), src.params.size() * sizeof(float)));
  }
  comm.broadcast(init.data(), init.size() * sizeof(float), 0);
  model_->set_params(init);
  // Frozen layers are outside the ranges that backward fills, the allreduce sums and the
  // optimizer keeps state for and updates.
  frozen_ = frozen_flags(model_->layers().size(), cfg_.init.freeze);
  trainable_ = trainable_ranges(model_->layers(), frozen_);
  optimizer_ = std::make_unique<Optimizer>(backend, cfg_.optimizer, trainable_);
  sharder_ = std::make_unique<Sharder>(n, cfg_.train.batch_size, cfg_.train.drop_last, cfg_.run.seed);
  evaluator_ = std::make_unique<Evaluator>(*model_, cfg_.data.eval_batch);
  if (!opts_.stop_requested) opts_.stop_requested = stop_signal_received;

  max_local_rows_ = ceil_div(ceil_div(cfg_.train.batch_size, comm.size()), cfg_.train.grad_accum);
  ws_ = allocating(fmt("the training activations for ", max_local_rows_, " rows per rank (train.batch_size)"),
                   [&] { return std::make_unique<Workspace>(*model_, max_local_rows_); });
  stager_ = std::make_unique<BatchStager>(backend, max_local_rows_, model_->input_dim());
  order_.reserve(static_cast<size_t>(n));
  data_.train->reserve(max_local_rows_);
  if (!cfg_.distill.teacher.empty()) {
    LOCKSTEP_CHECK(opts_.teacher, "distill.teacher is set but the trainer was given no teacher checkpoint");
    distiller_ = std::make_unique<Distiller>(backend, cfg_, *opts_.teacher, *data_.train, data_.train_file.get(),
                                             max_local_rows_);
    const TeacherInfo& t = distiller_->teacher();
    notes_[kTeacherNote] = t.path;
    notes_[kTeacherChecksumNote] = hex64(t.checksum);
    notes_[kTeacherModelNote] = t.model;
  }
}

Trainer::~Trainer() = default;

int64_t Trainer::total_steps() const {
  const int64_t all = cfg_.train.epochs * sharder_->steps_per_epoch();
  return cfg_.train.max_steps > 0 ? std::min(all, cfg_.train.max_steps) : all;
}

EvalResult Trainer::evaluate(const DataSource& data) { return evaluator_->run(data, *comm_); }

Range Trainer::micro_range(Range slice, int64_t j) const {
  return split_evenly(slice.size(), static_cast<int>(j), static_cast<int>(cfg_.train.grad_accum));
}

void Trainer::prefetch_after(int64_t b, int64_t j, const std::vector<int64_t>& order) {
  // The next non-empty micro-batch of this step, else of the next step of this epoch (the next
  // epoch's order does not exist yet: its first batch is staged when it is needed).
  // Nor past max_steps: the step in progress is number global_step + 1.
  const bool last_step = cfg_.train.max_steps > 0 && state_.global_step + 1 >= cfg_.train.max_steps;
  const int64_t end = last_step ? b + 1 : sharder_->steps_per_epoch();
  for (int64_t step = b, micro = j + 1; step < end; ++step, micro = 0) {
    const Range slice = sharder_->slice(step, comm_->rank(), comm_->size());
    for (; micro < cfg_.train.grad_accum; ++micro) {
      const Range mb = micro_range(slice, micro);
      if (mb.size() == 0) continue;
      stager_->prefetch(*data_.train, BatchKey{state_.epoch, step, micro}, order.data() + slice.begin + mb.begin,
                        mb.size());
      return;
    }
  }
}

bool Trainer::train_step(int64_t b, const std::vector<int64_t>& order, EpochRecord& acc, StepRecord& rec) {
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
    const Range mb = micro_range(slice, j);
    if (mb.size() == 0) continue;
    const auto td = Clock::now();
    const int64_t* rows = order.data() + slice.begin + mb.begin;
    const StagedBatch in = stager_->acquire(*data_.train, BatchKey{state_.epoch, b, j}, rows, mb.size());
    ++acc.staged_batches;
    if (stager_->last_was_prefetched()) ++acc.prefetched_batches;
    const auto tf = Clock::now();
    const float* logits = forward(*model_, *ws_, in.x, mb.size());
    // The teacher's forward pass (or its cached logits) counts as forward time.
    const LossSums s =
        distiller_ ? distiller_->loss(rows, in.x, mb.size(), logits, in.y, ws_->dlogits())
                   : be.softmax_xent(static_cast<int>(mb.size()), classes, logits, in.y, ws_->dlogits());
    const auto tb = Clock::now();
    loss += s.loss;
    correct += s.correct;
    backward(*model_, *ws_, in.x, mb.size(), have_grads, frozen_);
    have_grads = true;
    // While a device backend still runs the backward pass, gather the next micro-batch.
    const auto tp = Clock::now();
    prefetch_after(b, j, order);
    const auto tq = Clock::now();
    be.synchronize();
    const auto te = Clock::now();
    data_s += seconds_between(td, tf) + seconds_between(tp, tq);
    forward_s += seconds_between(tf, tb);
    backward_s += seconds_between(tb, tp) + seconds_between(tq, te);
  }
  // A rank with an empty slice still takes part in the allreduce, with zeros (invariant 1).
  if (!have_grads)
    for (const ParamRange& r : trainable_) be.fill(model_->grads() + r.begin, r.size(), 0.0f);
  const auto t1 = Clock::now();

  Comm& grad_comm = opts_.gradient_comm ? *opts_.gradient_comm : *comm_;
  for (const ParamRange& r : trainable_) grad_comm.allreduce_sum(model_->grads() + r.begin, r.size());
  // The stop request and a local non-finite loss ride along with the loss sums: agreeing on
  // them costs no extra collective. (The gradient norm below comes from the allreduced buffer,
  // identical on every rank, so a NaN gradient anywhere is seen everywhere.)
  double sums[4] = {loss, static_cast<double>(correct), opts_.stop_requested() ? 1.0 : 0.0,
                    std::isfinite(loss) ? 0.0 : 1.0};
  comm_->allreduce_sum(sums, 4);
  const auto t2 = Clock::now();

  rec = StepRecord{};
  rec.epoch = state_.epoch;
  rec.step_in_epoch = b;
  rec.samples = global_rows;
  rec.lr = learning_rate(cfg_.schedule, cfg_.optimizer.lr, state_.global_step, total_steps());
  const StepStats st = optimizer_->measure(model_->grads(), global_rows);
  rec.grad_norm = st.grad_norm;
  rec.skipped = sums[3] > 0.0 || !std::isfinite(sums[0]) || !std::isfinite(st.grad_norm);
  if (!rec.skipped) optimizer_->apply(model_->params(), model_->grads(), rec.lr, global_rows, st);
  be.synchronize();
  const auto t3 = Clock::now();

  rec.global_step = ++state_.global_step;
  rec.loss = sums[0] / static_cast<double>(global_rows);
  if (rec.skipped) {
    handle_non_finite(rec, skipped_total_ == 0);
    ++skipped_total_;
    ++acc.skipped_steps;
  } else {
    state_.epoch_loss += sums[0];
    state_.epoch_correct += static_cast<int64_t>(sums[1]);
    state_.epoch_samples += global_rows;
  }
  acc.data_seconds += data_s;
  acc.forward_seconds += forward_s;
  acc.backward_seconds += backward_s;
  acc.optimizer_seconds += seconds_between(t2, t3);
  acc.compute_seconds += forward_s + backward_s + seconds_between(t2, t3);
  acc.allreduce_seconds += seconds_between(t1, t2);
  acc.lr = rec.lr;
  return sums[2] > 0.0;
}

std::optional<std::string> Trainer::finish_epoch(EpochRecord& rec, TrainResult& result) {
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
  last_metrics_json_ = epoch_json(rec);
  // Only rank 0 writes, so a failure (a full disk) is told to every rank, as a failed checkpoint
  // is: thrown on rank 0 alone it aborted the job and lost the epoch's checkpoint. Every rank
  // takes part whether or not it was given the path (only rank 0 is, in some callers).
  int failed = 0;
  std::string why;  // rank 0
  if (comm_->rank() == 0 && !opts_.metrics_path.empty()) {
    try {
      append_line(opts_.metrics_path, last_metrics_json_);
    } catch (const std::exception& e) {
      failed = 1;
      why = e.what();
    }
  }
  comm_->broadcast(&failed, sizeof failed, 0);
  if (failed == 0) return std::nullopt;
  return why;
}

TrainResult Trainer::run() {
  TrainResult result;
  early_.set_state(state_.early);
  Progress progress(comm_->rank() == 0 ? opts_.log : nullptr, cfg_.train.progress && stdout_is_terminal(),
                    cfg_.train.epochs);
  const int64_t steps = sharder_->steps_per_epoch();
  const CheckpointConfig& ckc = cfg_.checkpoint;
  bool finished = cfg_.train.max_steps > 0 && state_.global_step >= cfg_.train.max_steps;
  while (!finished && state_.epoch < cfg_.train.epochs) {
    sharder_->epoch_order(state_.epoch, order_);
    EpochRecord rec;
    rec.epoch = state_.epoch;
    progress.begin_epoch(state_.epoch, steps);
    const auto start = Clock::now();
    const int64_t first_step = state_.step_in_epoch;
    StepRecord s;
    while (state_.step_in_epoch < steps) {
      const bool stop = train_step(state_.step_in_epoch, order_, rec, s);
      ++state_.step_in_epoch;
      if (opts_.on_step) opts_.on_step(s);
      progress.step(state_.step_in_epoch, s.loss);
      if (cfg_.train.check_replicas_every > 0 && state_.global_step % cfg_.train.check_replicas_every == 0)
        check_replicas();
      if (ckc.every_steps > 0 && state_.global_step % ckc.every_steps == 0) save_checkpoint(false, "every_steps");
      if (stop) {
        // Every rank saw the same reduced flag: all save here and leave together.
        save_checkpoint(false, "stop requested");
        result.preempted = true;
        result.steps = state_.global_step;
        result.skipped_steps = skipped_total_;
        return result;
      }
      // max_steps depends only on counters that are identical on every rank.
      if (cfg_.train.max_steps > 0 && state_.global_step >= cfg_.train.max_steps) {
        finished = true;
        break;
      }
    }
    rec.seconds = seconds_between(start, Clock::now());
    rec.global_step = state_.global_step;
    rec.first_step = state_.global_step - state_.step_in_epoch + 1;
    const auto n = static_cast<double>(state_.epoch_samples);
    rec.train_loss = n > 0 ? state_.epoch_loss / n : 0.0;
    rec.train_accuracy = n > 0 ? static_cast<double>(state_.epoch_correct) / n : 0.0;
    const auto done_here = static_cast<double>((state_.step_in_epoch - first_step) * cfg_.train.batch_size);
    rec.samples_per_second = rec.seconds > 0 ? std::min(done_here, n) / rec.seconds : 0.0;
    const bool epoch_complete = state_.step_in_epoch >= steps;
    rec.partial = !epoch_complete;
    const std::optional<std::string> metrics_failure = finish_epoch(rec, result);
    progress.end_epoch(rec);
    stop_if_not_training(rec);
    // Stopped by max_steps inside the epoch: reported as partial; the epoch continues on resume.
    if (!epoch_complete) {
      if (metrics_failure) stop_on_metrics_failure(rec, false, *metrics_failure);
      break;
    }
    ++state_.epoch;
    state_.step_in_epoch = 0;
    state_.epoch_loss = 0.0;
    state_.epoch_correct = state_.epoch_samples = 0;
    const bool best = rec.val.has_value() && early_.improved();
    // After the epoch is counted, so that its checkpoint resumes at the next one.
    if (metrics_failure) stop_on_metrics_failure(rec, best, *metrics_failure);
    if (ckc.every_epochs > 0 && state_.epoch % ckc.every_epochs == 0) save_checkpoint(best, "every_epochs");
    else if (best && opts_.checkpointer) opts_.checkpointer->save_best(snapshot());
    if (rec.stopped_early) {
      result.stopped_early = true;
      finished = true;
    }
    // A stop requested during the epoch's evaluation or checkpoint is taken here, at the epoch
    // boundary, rather than after one more step and a second checkpoint (time a preemption
    // warning may not have). The flag is reduced, so every rank decides alike.
    const bool more = !finished && state_.epoch < cfg_.train.epochs &&
                      !(cfg_.train.max_steps > 0 && state_.global_step >= cfg_.train.max_steps);
    if (more && comm_->any_true(opts_.stop_requested())) {
      save_checkpoint(false, "stop requested");  // nothing written when the epoch's save holds this state
      result.preempted = true;
      result.steps = state_.global_step;
      result.skipped_steps = skipped_total_;
      return result;
    }
  }
  if (ckc.at_end) save_checkpoint(false, "end of training");
  result.steps = state_.global_step;
  result.skipped_steps = skipped_total_;
  return result;
}

}  // namespace lockstep
