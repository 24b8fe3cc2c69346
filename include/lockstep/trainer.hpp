// The training loop: for each epoch, for each global batch, every rank runs forward and
// backward on its slice, the gradient sums are allreduced, and the optimizer makes one fused
// pass. All buffers are sized before the first step; the step loop does not allocate.
// Decisions that change control flow (early stopping, max_steps) are agreed across ranks.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/batch_stager.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"
#include "lockstep/data_fingerprint.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/early_stop.hpp"
#include "lockstep/evaluate.hpp"
#include "lockstep/model.hpp"
#include "lockstep/optimizer.hpp"
#include "lockstep/sharder.hpp"

namespace lockstep {

// Where training stands; with the weights and optimizer state this is all a resume needs.
struct TrainerState {
  int64_t epoch = 0;          // current epoch, 0-based
  int64_t step_in_epoch = 0;  // next global batch of the epoch; its first sample is step_in_epoch * batch
  int64_t global_step = 0;    // optimizer steps taken
  // Sums over the steps of the current epoch so far, so a resumed epoch reports the same metrics.
  double epoch_loss = 0.0;
  int64_t epoch_correct = 0, epoch_samples = 0;
  EarlyStopState early;
};

// What one optimizer step did (identical on every rank).
struct StepRecord {
  int64_t epoch = 0, step_in_epoch = 0, global_step = 0;
  int64_t samples = 0;   // global batch size of this step
  double lr = 0.0;
  double loss = 0.0;     // mean over the global batch
  double grad_norm = 0.0;
  bool skipped = false;  // non-finite loss or gradient: the update was not applied
};

struct EpochRecord {
  int64_t epoch = 0, global_step = 0;
  double train_loss = 0.0, train_accuracy = 0.0;
  std::optional<EvalResult> val, test;
  double lr = 0.0;
  // Wall time of the epoch's steps, and its split by phase (summed over steps on this rank;
  // compute = forward + backward + optimizer).
  double seconds = 0.0, compute_seconds = 0.0, allreduce_seconds = 0.0, data_seconds = 0.0;
  double forward_seconds = 0.0, backward_seconds = 0.0, optimizer_seconds = 0.0;
  double samples_per_second = 0.0;
  int64_t skipped_steps = 0;   // steps skipped for a non-finite loss or gradient
  // The global step number of the epoch's first step, and whether the epoch was left unfinished
  // (max_steps reached inside it: a resumed run reports the whole epoch again when it ends).
  int64_t first_step = 0;
  bool partial = false;
  // Micro-batches this rank staged, and how many of them were gathered ahead, during the
  // previous one's backward pass (all but an epoch's first when prefetching works).
  int64_t staged_batches = 0, prefetched_batches = 0;
  bool stopped_early = false;
};

struct TrainResult {
  std::vector<EpochRecord> epochs;
  int64_t steps = 0;
  int64_t skipped_steps = 0;  // steps skipped (train.non_finite = "skip") in this run() call
  bool stopped_early = false;
  bool preempted = false;   // stopped on request (signal) after a checkpoint
};

class Checkpointer;
class Distiller;
struct CheckpointData;

// The replica-drift message for the weight checksums of every rank (index = rank): "" when all
// agree, else the ranks that differ from the checksum most ranks hold (or, with no majority,
// every group), each with its checksum.
std::string replicas_that_differ(const std::vector<uint64_t>& checksums);

struct TrainerOptions {
  std::ostream* log = nullptr;      // rank-0 progress lines; null: quiet
  std::string metrics_path;         // metrics.jsonl written by rank 0; empty: none
  std::function<void(const StepRecord&)> on_step;  // called on every rank after each step
  // Communicator for the gradient allreduce on the backend's buffers (NCCL for device memory);
  // null: the control communicator (MPI on host memory).
  Comm* gradient_comm = nullptr;
  // Saves checkpoints as configured ([checkpoint]); null: none.
  Checkpointer* checkpointer = nullptr;
  // Polled on every rank at each step boundary; if it returns true on ANY rank, all ranks save a
  // checkpoint and stop (TrainResult::preempted). Default: a stop signal arrived (signals.hpp).
  std::function<bool()> stop_requested;
  // Recorded in every checkpoint, so that a resume on other data is refused (data_fingerprint.hpp).
  DataFingerprint data_fingerprint;
  // The checkpoint cfg.distill.teacher names, on every rank (required when that key is set).
  const CheckpointData* teacher = nullptr;
  // The checkpoint cfg.init.from names, on every rank: its layers initialise the model. Null when
  // resuming, where the weights come from the resumed checkpoint instead.
  const CheckpointData* init_from = nullptr;
};

class Trainer {
 public:
  Trainer(const Config& cfg, Comm& comm, Backend& backend, Datasets data, TrainerOptions opts = {});
  ~Trainer();

  // Trains from the current state to the end (epochs, max_steps or early stopping).
  TrainResult run();

  Mlp& model() { return *model_; }
  Optimizer& optimizer() { return *optimizer_; }
  const Distiller* distiller() const { return distiller_.get(); }  // null: plain cross-entropy
  const std::vector<bool>& frozen() const { return frozen_; }       // per layer (init.freeze)
  TrainerState& state() { return state_; }
  const Sharder& sharder() const { return *sharder_; }
  int64_t total_steps() const;
  EvalResult evaluate(const DataSource& data);

  // The full state as a checkpoint image (collective only in that device buffers are copied).
  CheckpointData snapshot() const;
  // Continues from a checkpoint: weights, optimizer state and step, position, schedule and
  // early-stopping state. The caller has checked compatibility (resume_incompatibilities).
  void restore(const CheckpointData& ck);

 private:
  // Rows of micro-batch j within this rank's slice of a step.
  Range micro_range(Range slice, int64_t j) const;
  // Prefetches the micro-batch that follows micro-batch j of step b (none after an epoch's last).
  void prefetch_after(int64_t b, int64_t j, const std::vector<int64_t>& order);
  // Runs one step; returns whether any rank asked to stop.
  bool train_step(int64_t step_in_epoch, const std::vector<int64_t>& order, EpochRecord& acc, StepRecord& rec);
  // Evaluates, decides early stopping and appends the epoch's metrics line (rank 0). A failed
  // append is agreed on, not thrown on rank 0 alone: engaged on every rank, holding why on rank 0.
  std::optional<std::string> finish_epoch(EpochRecord& rec, TrainResult& result);
  void save_checkpoint(bool best, const char* reason);
  // After a failed metrics append (why: rank 0's error): saves this state's checkpoint, then rank 0
  // prints one message (the file, the OS error, what was saved) and every rank throws
  // AgreedFailure(checkpoint_failed).
  [[noreturn]] void stop_on_metrics_failure(const EpochRecord& rec, bool best, const std::string& why);
  // After an epoch's evaluation: stops every rank (exit code non_finite) when every step of the
  // epoch was skipped, or when the weights no longer give a finite validation or test loss.
  void stop_if_not_training(const EpochRecord& rec);
  // Acts on a step whose reduced loss or gradient norm is not finite (skip or stop, per config).
  void handle_non_finite(const StepRecord& rec, bool first_skip);
  // Compares a checksum of the weights across ranks; a mismatch stops every rank.
  void check_replicas();

  Config cfg_;
  Comm* comm_;
  Backend* backend_;
  Datasets data_;
  TrainerOptions opts_;
  std::unique_ptr<ReduceBuffer> reduce_buffer_;  // the model's gradients, when the comm has one
  std::unique_ptr<Mlp> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Sharder> sharder_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<Distiller> distiller_;
  std::vector<bool> frozen_;               // per layer
  std::vector<ParamRange> trainable_;      // what backward fills, the allreduce sums and the optimizer updates
  std::map<std::string, std::string> notes_;  // provenance written into every checkpoint
  EarlyStopping early_;
  TrainerState state_;
  // Step buffers, sized once.
  int64_t max_local_rows_ = 0;  // largest micro-batch on any rank
  std::unique_ptr<BatchStager> stager_;  // double-buffered micro-batch input
  std::vector<int64_t> order_;
  std::string last_metrics_json_;
  int64_t last_saved_step_ = -1;
  int64_t skipped_total_ = 0;
};

}  // namespace lockstep
