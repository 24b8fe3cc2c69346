// The training loop (see trainer.hpp). One step: stage this rank's slice, forward, loss and
// backward per micro-batch (gradients accumulate in the flat buffer), allreduce the sums,
// reduce the loss together with the stop flag, then one fused optimizer pass with the
// scheduled learning rate.
#include "lockstep/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
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
#include "lockstep/version.hpp"

namespace lockstep {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

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

void Trainer::handle_non_finite(const StepRecord& rec, bool first_skip) {
  const bool root = comm_->rank() == 0;
  if (cfg_.train.non_finite == NonFinitePolicy::stop) {
    if (root)
      std::cerr << "lockstep: error: non-finite loss or gradient at step " << rec.global_step << " (epoch "
                << rec.epoch + 1 << ", batch " << rec.step_in_epoch << "): loss " << rec.loss << ", gradient norm "
                << rec.grad_norm << "; the update was not applied. Check the data and the learning rate, "
                << "or set train.non_finite = \"skip\"" << std::endl;
    throw AgreedFailure(exit_code::non_finite);
  }
  if (root && first_skip && opts_.log)
    *opts_.log << "step " << rec.global_step << ": non-finite loss or gradient, step skipped (later skips are "
               << "counted in the epoch lines and in metrics.jsonl as skipped_steps)" << std::endl;
}

void Trainer::check_replicas() {
  const std::vector<float> p = model_->get_params();
  const uint64_t mine = fnv1a64_words(p.data(), p.size() * sizeof(float));
  std::vector<uint64_t> all(static_cast<size_t>(comm_->size()));
  comm_->allgather(&mine, sizeof mine, all.data());
  const std::string differ = replicas_that_differ(all);
  if (differ.empty()) return;
  if (comm_->rank() == 0)
    std::cerr << "lockstep: error: replica drift at step " << state_.global_step << ": " << differ
              << "; the replicas must be identical, so training stops" << std::endl;
  throw AgreedFailure(exit_code::replica_drift);
}

std::string replicas_that_differ(const std::vector<uint64_t>& checksums) {
  // The checksum most ranks hold is taken as the replicas' (the lowest rank's on a tie): the
  // ranks that differ from it are named, whichever rank they are (rank 0 included).
  size_t ref = 0, ref_count = 0;
  for (size_t i = 0; i < checksums.size(); ++i) {
    size_t n = 0;
    for (uint64_t c : checksums) n += c == checksums[i] ? 1 : 0;
    if (n > ref_count) ref = i, ref_count = n;
  }
  if (ref_count == checksums.size()) return "";
  std::string odd, same;
  for (size_t r = 0; r < checksums.size(); ++r) {
    if (checksums[r] == checksums[ref]) same += fmt(same.empty() ? "" : ", ", r);
    else odd += fmt(odd.empty() ? "" : ", ", r, " (checksum ", hex64(checksums[r]), ")");
  }
  if (2 * ref_count > checksums.size())
    return fmt("rank(s) ", odd, " hold weights that differ from those of the other ", ref_count, " ranks (checksum ",
               hex64(checksums[ref]), ")");
  return fmt("no majority among the ", checksums.size(), " ranks: rank(s) ", same, " hold checksum ",
             hex64(checksums[ref]), ", rank(s) ", odd, " differ");
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
  last_metrics_json_ = epoch_json(rec);
  // Only rank 0 writes, so a failure (a full disk) is told to every rank, as a failed checkpoint
  // is: thrown on rank 0 alone it aborted the job and lost the epoch's checkpoint. Every rank
  // takes part whether or not it was given the path (only rank 0 is, in some callers).
  int failed = 0;
  if (comm_->rank() == 0 && !opts_.metrics_path.empty()) {
    try {
      append_line(opts_.metrics_path, last_metrics_json_);
    } catch (const std::exception& e) {
      failed = 1;
      metrics_error_ = e.what();
    }
  }
  comm_->broadcast(&failed, sizeof failed, 0);
  metrics_failed_ = failed != 0;
}

void Trainer::stop_on_metrics_failure(const EpochRecord& rec, bool best) {
  const bool root = comm_->rank() == 0;
  const std::string what = fmt(metrics_error_, " at the end of epoch ", rec.epoch + 1, rec.partial ? " (partial)" : "",
                               " (step ", rec.global_step, "); the epoch's line is not in it");
  const int64_t saved_before = last_saved_step_;
  if (opts_.checkpointer) {
    try {
      // The epoch's state is what a resume needs: saved now, whatever the schedule says, as a stop
      // on a signal saves.
      save_checkpoint(best, "metrics.jsonl could not be written");
    } catch (const AgreedFailure&) {
      // The checkpoint's own failure is printed above; this says what happened first.
      if (root)
        std::cerr << "lockstep: error: " << what << ", and its checkpoint could not be saved either (above); "
                  << (saved_before >= 0 ? fmt("the last checkpoint saved is ", opts_.checkpointer->dir(), "/",
                                              checkpoint_file_name(saved_before))
                                        : std::string("no checkpoint of this run was saved"))
                  << std::endl;
      throw;
    }
  }
  if (root)
    std::cerr << "lockstep: error: " << what << "; "
              << (opts_.checkpointer
                      ? fmt("checkpoint ", opts_.checkpointer->dir(), "/", checkpoint_file_name(last_saved_step_),
                            " holds this state (and the line, as last_metrics_json): make room, then run the "
                            "same command with --resume auto to continue")
                      : std::string("no checkpoint is configured, so nothing was saved"))
              << std::endl;
  throw AgreedFailure(exit_code::checkpoint_failed);
}

CheckpointData Trainer::snapshot() const {
  CheckpointData ck;
  ck.lockstep_version = LOCKSTEP_VERSION_STRING;
  ck.created = utc_now();
  ck.world_size = comm_->size();
  ck.global_batch = cfg_.train.batch_size;
  ck.config_toml = config_to_toml(cfg_);
  ck.notes = notes_;
  ck.layers = cfg_.model.layers;
  ck.activation = cfg_.model.activation;
  ck.params = model_->get_params();
  ck.optimizer = cfg_.optimizer;
  ck.optimizer_step = optimizer_->step_count();
  ck.frozen_layers = cfg_.init.freeze;
  std::sort(ck.frozen_layers.begin(), ck.frozen_layers.end());
  for (int i = 0; i < optimizer_->state_count(); ++i) ck.optimizer_state.push_back(optimizer_->get_state(i));
  ck.trainer = state_;
  ck.seed = cfg_.run.seed;
  ck.lr = state_.global_step > 0
              ? learning_rate(cfg_.schedule, cfg_.optimizer.lr, state_.global_step - 1, total_steps())
              : 0.0;
  ck.last_metrics_json = last_metrics_json_;
  ck.data = opts_.data_fingerprint;
  return ck;
}

void Trainer::restore(const CheckpointData& ck) {
  LOCKSTEP_CHECK(ck.params.size() == model_->num_params(), "checkpoint has ", ck.params.size(),
                 " parameters, the model ", model_->num_params());
  LOCKSTEP_CHECK(ck.global_batch == cfg_.train.batch_size, "checkpoint global batch differs");
  // The teacher is outside the checkpoint (invariant 5 holds by identity): a resumed distillation
  // must see the very teacher it started with.
  if (distiller_) {
    const auto saved = ck.notes.find(kTeacherChecksumNote);
    const std::string now = hex64(distiller_->teacher().checksum);
    LOCKSTEP_REQUIRE(saved != ck.notes.end() && saved->second == now, "cannot resume: the checkpoint was ",
                     saved == ck.notes.end() ? std::string("not distilled from a teacher")
                                             : "distilled from a teacher with checksum " + saved->second,
                     ", but distill.teacher = ", cfg_.distill.teacher, " has checksum ", now);
  }
  for (const auto& [k, v] : ck.notes) notes_.try_emplace(k, v);  // e.g. init_from, kept across resumes
  model_->set_params(ck.params);
  optimizer_->set_step_count(ck.optimizer_step);
  LOCKSTEP_CHECK(static_cast<int>(ck.optimizer_state.size()) == optimizer_->state_count(), "optimizer state count");
  for (int i = 0; i < optimizer_->state_count(); ++i) optimizer_->set_state(i, ck.optimizer_state[static_cast<size_t>(i)]);
  state_ = ck.trainer;
  early_.set_state(state_.early);
  last_metrics_json_ = ck.last_metrics_json;
  last_saved_step_ = state_.global_step;  // that state is on disk already
}

void Trainer::save_checkpoint(bool best, const char* reason) {
  if (!opts_.checkpointer) return;
  if (last_saved_step_ == state_.global_step && !best) return;  // this exact state is saved already
  const CheckpointData ck = snapshot();
  opts_.checkpointer->save(ck, best, reason);
  last_saved_step_ = state_.global_step;
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
    finish_epoch(rec, result);
    progress.end_epoch(rec);
    // Every step of the epoch so far skipped (train.non_finite = "skip"): nothing trains. The
    // counters are sums of reduced values, so every rank decides alike (invariant 1).
    if (state_.epoch_samples == 0) {
      if (comm_->rank() == 0)
        std::cerr << "lockstep: error: every one of the " << state_.step_in_epoch << " steps of epoch "
                  << state_.epoch + 1 << " had a non-finite loss or gradient and was skipped (train.non_finite = "
                  << "\"skip\"): the run is making no progress. Check the data and the learning rate" << std::endl;
      throw AgreedFailure(exit_code::non_finite);
    }
    // Finite weights give finite logits and so a finite loss, however wrong the model: a non-finite
    // evaluation loss means the weights have blown up (steps that train.non_finite = "skip" let
    // through, e.g. at a huge learning rate). Evaluation is reduced, so every rank sees the same.
    for (const auto& [ev, name] : {std::pair{&rec.val, "validation"}, std::pair{&rec.test, "test"}}) {
      if (!ev->has_value() || std::isfinite((*ev)->loss)) continue;
      if (comm_->rank() == 0)
        std::cerr << "lockstep: error: the " << name << " loss after epoch "
                  << state_.epoch + 1 << " (step " << state_.global_step << ") is " << shown((*ev)->loss)
                  << ": the weights no longer give finite outputs (" << skipped_total_
                  << " step(s) of this run skipped as non-finite); nothing more is saved. Lower optimizer.lr or "
                  << "check the data; the checkpoints saved before this epoch's end are the run's last good state" << std::endl;
      throw AgreedFailure(exit_code::non_finite);
    }
    // Stopped by max_steps inside the epoch: reported as partial; the epoch continues on resume.
    if (!epoch_complete) {
      if (metrics_failed_) stop_on_metrics_failure(rec, false);
      break;
    }
    ++state_.epoch;
    state_.step_in_epoch = 0;
    state_.epoch_loss = 0.0;
    state_.epoch_correct = state_.epoch_samples = 0;
    const bool best = rec.val.has_value() && early_.improved();
    // After the epoch is counted, so that its checkpoint resumes at the next one.
    if (metrics_failed_) stop_on_metrics_failure(rec, best);
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
