// Internal: the decisions `lockstep train` (and distill) makes about a run directory before it
// trains: which config a resume without --config continues with, what --resume continues from
// (or why it must refuse), and whether a resumed run has anything left to do. Rank 0 makes the
// file-system decisions; cmd_train.cpp runs them inside collectively() and broadcasts the outcome.
#pragma once
#include <cstdint>
#include <string>

#include "commands.hpp"
#include "lockstep/checkpoint.hpp"
#include "lockstep/comm.hpp"

namespace lockstep {

// The config a run continues with when --resume is given without --config: the resumed
// checkpoint's own (resume auto/FILE/DIR), else the run directory's config.toml (a run that has
// no checkpoint yet), else none (the built-in defaults). Collective.
struct StoredConfig {
  bool wanted = false;     // this rank was given --resume and no --config
  std::string text;        // every rank: the stored config text ("" : none found)
  std::string origin;      // every rank: where it came from (a checkpoint or a config.toml path)
  // Rank 0 only: the checkpoint found and read on the way, resumed from without a second read.
  std::string checkpoint, note;
  CheckpointData ck;
};
StoredConfig stored_config_for(Comm& comm, const TrainArgs& a);

// What a run starts from (rank 0). Refuses (UserError) a plain start on a run directory that holds
// a run, and a --resume auto that would start afresh over checkpoints it cannot use.
struct ResumePlan {
  std::string path;              // the checkpoint to resume from; "": a fresh start
  std::string note;              // a line for the log (e.g. `latest` was damaged and a step file is used)
  bool abandon_metrics = false;  // --resume auto, no checkpoint but metrics.jsonl: start afresh, keep them aside
};
ResumePlan plan_resume(const TrainArgs& a, const std::string& run_dir, const std::string& checkpoint_dir,
                       const StoredConfig& stored);

// Refuses (UserError) a checkpoint found for a resume that belongs to another course: one this
// run set aside (abandoned-*/ of its checkpoint directory), or, found by --resume auto or DIR in
// a checkpoint.dir two runs share, one the other run saved. Rank 0.
void refuse_checkpoint_of_another_course(const TrainArgs& a, const std::string& run_dir,
                                         const std::string& checkpoint_dir, const std::string& path,
                                         const CheckpointData& ck);

// stem + ext, or stem-2 + ext, stem-3 + ext, ... : the first that names nothing yet (two set-asides
// within one second of the clock must not meet).
std::string unused_path(const std::string& stem, const std::string& ext);

// A resume from step `step` while the run went further (a checkpoint older than the newest, or
// epoch lines written after the checkpoint): its later course is set aside, not mixed into the
// continuation. Step files after `step` in checkpoint_dir move to checkpoint_dir/abandoned-STAMP/
// (the continuation would overwrite them one by one, and a damaged `latest` would fall back on
// them); metrics.jsonl lines after `step` move to run_dir/metrics-abandoned-STAMP.jsonl. Returns
// the line for the log, "" when there was nothing after `step`. Rank 0, before the first save.
std::string set_aside_later_course(const std::string& run_dir, const std::string& checkpoint_dir,
                                   const std::string& metrics, int64_t step, const std::string& stamp);

// "" when a run restored to `state` still has steps to take under cfg; otherwise the line that
// says there is nothing left to do (step N of N, and what ended the run).
std::string nothing_left_to_do(const Config& cfg, const TrainerState& state, int64_t total_steps);

}  // namespace lockstep
