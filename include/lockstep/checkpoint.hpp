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
};

// Names of the optimizer's state buffers in the file ("exp_avg", "exp_avg_sq", ...).
std::vector<std::string> optimizer_state_names(OptimizerKind k);

// Writes path atomically (temporary file in the same directory, fsync, rename, fsync of the
// directory). Throws on failure after removing the temporary; an existing file at path is
// untouched until the rename.
void write_checkpoint(const std::string& path, const CheckpointData& ck);

// Reads and checks a checkpoint. Throws UserError naming the file when it is missing, not HDF5,
// truncated, or not a lockstep checkpoint of a known format.
CheckpointData read_checkpoint(const std::string& path);

// Rank `root` holds ck; afterwards every rank does.
void broadcast_checkpoint(Comm& comm, CheckpointData& ck, int root);

// The keys that must match for a resume to be exact, and a readable list of what differs
// between the checkpoint and cfg ("" when compatible).
std::string resume_incompatibilities(const CheckpointData& ck, const Config& cfg);

}  // namespace lockstep
