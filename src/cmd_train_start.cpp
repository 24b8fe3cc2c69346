// A run directory's start-up decisions (see cmd_train_start.hpp): the stored config of a resume without
// --config, the resume point or the refusal, and the finished-run check.
#include "cmd_train_start.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/checkpointer.hpp"

namespace fs = std::filesystem;

namespace lockstep {

StoredConfig stored_config_for(Comm& comm, const TrainArgs& a) {
  StoredConfig s;
  s.wanted = a.config.empty() && !a.resume.empty();
  collectively(
      comm,
      [&] {
        if (comm.rank() != 0 || !s.wanted) return;
        // Where the run is, from the command line alone (the defaults, --set and --run-dir).
        Config pre = load_config("", a.sets);
        if (!a.run_dir.empty()) pre.run.dir = a.run_dir;
        const ResumePoint p = resolve_checkpoint_arg(a.resume, checkpoint_dir_of(pre), "--resume");
        if (!p.path.empty()) {
          s.ck = read_checkpoint_or_offer_previous(p.path, "resume from it with --resume ");
          s.text = s.ck.config_toml;
          s.origin = s.checkpoint = p.path;
          s.note = p.note;
          return;
        }
        // No checkpoint yet: the config the run was started with.
        const std::string file = run_dir_of(pre) + "/config.toml";
        if (fs::is_regular_file(file)) {
          std::ifstream f(file);
          std::stringstream ss;
          ss << f.rdbuf();
          LOCKSTEP_REQUIRE(f.good() || f.eof(), file, ": cannot be read");
          s.text = ss.str();
          s.origin = file;
        }
      },
      std::cerr);
  comm.broadcast_string(s.text, 0);
  comm.broadcast_string(s.origin, 0);
  return s;
}

ResumePlan plan_resume(const TrainArgs& a, const std::string& run_dir, const std::string& checkpoint_dir,
                       const StoredConfig& stored) {
  ResumePlan plan;
  if (a.resume.empty()) {
    // A plain start must not write over a run: not only its metrics (written at the first epoch's
    // end) but its checkpoints too (a run stopped during its first epoch has only those).
    const std::vector<std::string> found = existing_run_files(run_dir, checkpoint_dir);
    std::string list;
    for (const std::string& f : found) list += (list.empty() ? "" : ", ") + f;
    LOCKSTEP_REQUIRE(found.empty(), "run directory ", run_dir, " already holds a run (", list,
                     "); continue it with --resume auto, or choose another run.dir (--run-dir)");
    return plan;
  }
  if (!stored.checkpoint.empty()) {  // found (and read) while looking for the stored config
    plan.path = stored.checkpoint;
    plan.note = stored.note;
    return plan;
  }
  const ResumePoint p = resolve_checkpoint_arg(a.resume, checkpoint_dir, "--resume");
  plan.path = p.path;
  plan.note = p.note;
  if (!plan.path.empty()) return plan;
  // --resume auto and nothing to continue from.
  const std::string best = checkpoint_dir + "/best.h5";
  LOCKSTEP_REQUIRE(!fs::exists(best), "--resume auto: ", checkpoint_dir,
                   " holds best.h5 but no checkpoint to continue from (no `latest`, no step-*.h5: the run saved "
                   "neither checkpoint.every_epochs nor checkpoint.at_end); a fresh start would replace it. Resume "
                   "from it explicitly with --resume ", best, ", or choose another run.dir (--run-dir)");
  plan.abandon_metrics = fs::exists(run_dir + "/metrics.jsonl");
  return plan;
}

std::string nothing_left_to_do(const Config& cfg, const TrainerState& state, int64_t total_steps) {
  std::string why;
  if (cfg.train.max_steps > 0 && state.global_step >= cfg.train.max_steps)
    why = fmt("train.max_steps = ", cfg.train.max_steps, " is reached");
  else if (state.epoch >= cfg.train.epochs)
    why = fmt("all ", cfg.train.epochs, " epoch", cfg.train.epochs == 1 ? "" : "s", " (train.epochs) are done");
  else if (cfg.early_stopping.enabled && state.early.bad_epochs >= cfg.early_stopping.patience)
    why = fmt("early stopping ended it after ", state.early.bad_epochs, " epochs without improvement "
              "(early_stopping.patience = ", cfg.early_stopping.patience, ")");
  if (why.empty()) return "";
  return fmt("nothing left to do: the run is at step ", state.global_step, " of ", total_steps, " (", why,
             "); raise train.epochs or train.max_steps to train further");
}

}  // namespace lockstep
