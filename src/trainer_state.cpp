// The trainer's state going out and coming in (snapshot, restore, checkpoints), and the checks
// that stop a run on it: non-finite values, an epoch that did not train, replica drift, a failed
// metrics write. Every decision here is made on reduced values or agreed first, so every rank
// acts alike (invariant 1). See trainer.hpp.
#include <cmath>
#include <iostream>

#include "lockstep/check.hpp"
#include "lockstep/checkpoint.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/distill.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/progress.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/schedule.hpp"
#include "lockstep/trainer.hpp"
#include "lockstep/version.hpp"

namespace lockstep {

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

void Trainer::stop_if_not_training(const EpochRecord& rec) {
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

void Trainer::stop_on_metrics_failure(const EpochRecord& rec, bool best, const std::string& why) {
  const bool root = comm_->rank() == 0;
  const std::string what = fmt(why, " at the end of epoch ", rec.epoch + 1, rec.partial ? " (partial)" : "",
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
  ck.created = utc_time();
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

}  // namespace lockstep
