// Checkpoints: the complete state of a training run as one HDF5 file (schema in
// docs/checkpoint-format.md). CheckpointData is the host-side image of that file; the trainer
// produces it (Trainer::snapshot) and restores from it (Trainer::restore). Files are written
// whole to a temporary name, flushed, fsynced and renamed, so a checkpoint is complete or absent.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lockstep/comm.hpp"
#include "lockstep/data_fingerprint.hpp"
#include "lockstep/trainer.hpp"

namespace lockstep {

inline constexpr int64_t kCheckpointFormatVersion = 1;

// Provenance keys (CheckpointData::notes, the /provenance group): the teacher a student was
// distilled from, and the checkpoint a fine-tune was initialised from.
inline constexpr const char* kTeacherNote = "distill_teacher";                  // its path
inline constexpr const char* kTeacherChecksumNote = "distill_teacher_checksum";  // of its parameters
inline constexpr const char* kTeacherModelNote = "distill_teacher_model";        // "784-1024-10 relu"
inline constexpr const char* kInitFromNote = "init_from";
inline constexpr const char* kInitFromChecksumNote = "init_from_checksum";

struct CheckpointData {
  // Provenance.
  int64_t format_version = kCheckpointFormatVersion;
  std::string lockstep_version, created;
  int64_t world_size = 1, global_batch = 0;
  std::string config_toml;                        // the resolved config of the run that saved it
  std::map<std::string, std::string> notes;       // provenance: a distillation teacher, an init.from
                                                  // checkpoint (docs/checkpoint-format.md)
  // Model.
  std::vector<int64_t> layers;
  Activation activation = Activation::relu;
  std::vector<float> params;                      // flat [W0 b0 W1 b1 ...], W (out, in)
  // Optimizer.
  OptimizerConfig optimizer;
  int64_t optimizer_step = 0;
  std::vector<std::vector<float>> optimizer_state;  // optimizer_state_count buffers: the trainable
                                                    // layers of params, back to back
  std::vector<int64_t> frozen_layers;             // init.freeze (sorted): layers without optimizer state
  // Trainer.
  TrainerState trainer;
  uint64_t seed = 0;
  double lr = 0.0;                                // learning rate of the last step taken
  std::string last_metrics_json;                  // the last epoch's metrics line ("" before any)
  DataFingerprint data;                           // the data it trained on (unknown in older files)
  // Filled by read_checkpoint, not stored: how many datasets and state groups carried a checksum
  // that was verified, and how many carried none (a file written before checksums existed).
  int64_t checksums_verified = 0, checksums_missing = 0;
};

// Names of the optimizer's state buffers in the file ("exp_avg", "exp_avg_sq", ...).
std::vector<std::string> optimizer_state_names(OptimizerKind k);

// Writes path atomically (temporary file in the same directory, fsync, rename, fsync of the
// directory). Throws on failure after removing the temporary; an existing file at path is
// untouched until the rename.
void write_checkpoint(const std::string& path, const CheckpointData& ck);

// Reads and checks a checkpoint. Throws UserError naming the file (and the dataset or attribute)
// when it is missing, not HDF5, truncated, not a lockstep checkpoint of a known format, when a
// dataset or state group does not match its stored checksum, when weights or optimizer state are
// not finite, or when the trainer position is impossible (negative, inconsistent).
CheckpointData read_checkpoint(const std::string& path);
// The global step a checkpoint file was saved at (its /trainer attribute alone, nothing checked);
// -1 when the file cannot tell.
int64_t checkpoint_global_step(const std::string& path);

// Rank `root` holds ck; afterwards every rank does.
void broadcast_checkpoint(Comm& comm, CheckpointData& ck, int root);

// What a resume compares beyond the config: the data now loaded and the steps per epoch they give.
struct ResumeFacts {
  DataFingerprint data;
  int64_t steps_per_epoch = 0;  // 0: unknown, not checked
};

// The settings that define a run and must match for a resume (resume_compat.cpp lists them and
// docs/checkpoint-format.md documents the split), and a readable list of what differs between
// the checkpoint and cfg (and `now`, when given) ("" when compatible).
std::string resume_incompatibilities(const CheckpointData& ck, const Config& cfg, const ResumeFacts* now = nullptr);

// What `lockstep eval` refuses: the settings that define the checkpoint's data (run.seed,
// data.classes, val_size, normalize, class_subset, train_limit: the validation split and the input
// transform) differing from those it was trained with, and, when train_now is given (eval opened the
// training file), other training data. data.val_size = 0 is allowed: it skips the validation set.
// The same list and wording as resume_incompatibilities ("" when compatible).
std::string eval_incompatibilities(const CheckpointData& ck, const Config& cfg,
                                   const DataFingerprint* train_now = nullptr);

// The settings eval takes from the checkpoint (model.layers, model.activation) or does not use
// (the rest of model.*, train.*, optimizer.*, schedule.*, early_stopping.*, checkpoint.*,
// distill.*, init.*) that cfg sets to other values than the checkpoint's, one
// "\n  key: checkpoint has A, config has B" line each ("" when none).
std::string eval_unused_settings(const CheckpointData& ck, const Config& cfg);

}  // namespace lockstep
