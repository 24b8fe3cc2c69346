// A run directory's start-up decisions (see cmd_train_start.hpp): the stored config of a resume without
// --config, the resume point or the refusal, and the finished-run check.
#include "cmd_train_start.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/run_dir.hpp"

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

namespace {

bool same_directory(const std::string& a, const std::string& b) {
  std::error_code ec;
  const fs::path x = fs::weakly_canonical(a, ec);
  if (ec) return a == b;
  const fs::path y = fs::weakly_canonical(b, ec);
  return ec ? a == b : x == y;
}

// Where else this run's checkpoints may be: <run dir>/checkpoints, and the checkpoint.dir of the
// config the run was started with (its config.toml), when either is not checkpoint_dir and
// holds checkpoints. A start that looks only in checkpoint_dir would miss them.
std::vector<std::string> checkpoints_elsewhere(const std::string& run_dir, const std::string& checkpoint_dir) {
  std::vector<std::string> candidates{run_dir + "/checkpoints"};
  const std::string stored = run_dir + "/config.toml";
  if (fs::is_regular_file(stored)) {
    try {
      candidates.push_back(checkpoint_dir_of(load_config(stored, {})));
    } catch (const UserError&) {
      // A stored config this version cannot read says nothing about where checkpoints are.
    }
  }
  std::error_code ec;
  auto holds_checkpoints = [&](const std::string& d) {
    return fs::exists(fs::symlink_status(d + "/latest", ec)) || fs::exists(d + "/best.h5", ec) ||
           !list_checkpoints(d).empty();
  };
  std::vector<std::string> out;
  for (const std::string& c : candidates) {
    if (same_directory(c, checkpoint_dir) || std::find(out.begin(), out.end(), c) != out.end()) continue;
    if (holds_checkpoints(c)) out.push_back(c);
  }
  return out;
}

}  // namespace

ResumePlan plan_resume(const TrainArgs& a, const std::string& run_dir, const std::string& checkpoint_dir,
                       const StoredConfig& stored) {
  ResumePlan plan;
  if (a.resume.empty()) {
    // A plain start must not write over a run: not only its metrics (written at the first epoch's
    // end) but its checkpoints too (a run stopped during its first epoch has only those).
    std::vector<std::string> found = existing_run_files(run_dir, checkpoint_dir);
    const std::vector<std::string> elsewhere = checkpoints_elsewhere(run_dir, checkpoint_dir);
    for (const std::string& other : elsewhere)
      for (const std::string& f : existing_run_files(run_dir, other))
        if (std::find(found.begin(), found.end(), f) == found.end()) found.push_back(f);
    std::string list;
    for (const std::string& f : found) list += (list.empty() ? "" : ", ") + f;
    // Checkpoints in another directory than this start's: --resume auto would look in the wrong one.
    const std::string how = elsewhere.empty() ? std::string("--resume auto") : "--resume " + elsewhere.front();
    LOCKSTEP_REQUIRE(found.empty(), "run directory ", run_dir, " already holds a run (", list, "); continue it with ",
                     how, ", or choose another run.dir (--run-dir)");
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
  // The run's checkpoints in another directory (checkpoint.dir changed, or dropped, since the
  // start): a fresh start here would abandon them.
  const std::vector<std::string> elsewhere = checkpoints_elsewhere(run_dir, checkpoint_dir);
  LOCKSTEP_REQUIRE(elsewhere.empty(), "--resume auto: checkpoint directory ", checkpoint_dir,
                   " holds no checkpoint, but this run has checkpoints in ",
                   elsewhere.empty() ? std::string() : elsewhere.front(),
                   " (another checkpoint.dir than this start's); continue from them with --resume ",
                   elsewhere.empty() ? std::string() : elsewhere.front(),
                   " or by setting checkpoint.dir to that directory; a fresh start would abandon them");
  plan.abandon_metrics = fs::exists(run_dir + "/metrics.jsonl");
  return plan;
}

void refuse_checkpoint_of_another_course(const TrainArgs& a, const std::string& run_dir,
                                         const std::string& checkpoint_dir, const std::string& path,
                                         const CheckpointData& ck) {
  // A course set aside earlier cannot come back into the directory that now holds another: the
  // two would mix (by step number nothing tells them apart). A new run directory can take it.
  const fs::path parent = fs::path(path).parent_path();
  const bool set_aside = parent.filename().string().rfind("abandoned-", 0) == 0 &&
                         same_directory(parent.parent_path().string(), checkpoint_dir);
  LOCKSTEP_REQUIRE(!set_aside, "--resume ", path, ": a course this run set aside; continuing it here would mix it "
                   "with the one in ", checkpoint_dir, ". Continue it in a run directory of its own: --run-dir NEW "
                   "--resume ", path);
  // A checkpoint directory that two runs share (checkpoint.dir set alike in both): what --resume
  // auto (or DIR) finds there may be the other run's. Named by file, it is meant; and a copied
  // run directory keeps its checkpoints inside it: those are its own.
  if (checkpoint_dir == run_dir + "/checkpoints" || fs::is_regular_file(a.resume)) return;
  std::string owner;
  try {
    owner = run_dir_of(load_config_text(ck.config_toml, path, {}));
  } catch (const UserError&) {
    return;  // a stored config this version cannot read names no owner
  }
  std::error_code ec;
  const bool owner_lives = !same_directory(owner, run_dir) &&
                           (fs::exists(owner + "/metrics.jsonl", ec) || fs::exists(owner + "/config.toml", ec));
  LOCKSTEP_REQUIRE(!owner_lives, "--resume ", a.resume, ": ", path, " was saved by the run in ", owner,
                   ", not by this one (", run_dir, "): checkpoint.dir = ", checkpoint_dir,
                   " holds the checkpoints of both. Give each run a checkpoint.dir of its own; to continue that "
                   "run, use --run-dir ", owner, "; to start this one from its state, name the file: --resume ", path);
}

std::string unused_path(const std::string& stem, const std::string& ext) {
  std::error_code ec;
  std::string path = stem + ext;
  for (int i = 2; fs::exists(fs::symlink_status(path, ec)); ++i) path = fmt(stem, "-", i, ext);
  return path;
}

std::string set_aside_later_course(const std::string& run_dir, const std::string& checkpoint_dir,
                                   const std::string& metrics, int64_t step, const std::string& stamp) {
  // Step files after `step`.
  std::vector<std::string> later;
  for (const std::string& path : list_checkpoints(checkpoint_dir))
    if (checkpoint_step_of(path) > step) later.push_back(path);
  // Epoch lines after `step`, and a torn last line a kill left.
  std::vector<std::string> keep, drop;
  if (fs::is_regular_file(metrics)) {
    std::ifstream in(metrics);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line, nullptr, false);
      const bool before = !j.is_discarded() && j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
                          j["step"].get<int64_t>() <= step;
      (before ? keep : drop).push_back(line);
    }
  }
  // best.h5 saved after `step` is the best of the course set aside: it goes with it.
  const std::string best = checkpoint_dir + "/best.h5";
  const bool best_later = checkpoint_global_step(best) > step;
  if (later.empty() && drop.empty() && !best_later) return "";
  std::string line = fmt("resuming at step ", step, " while the run had gone further: its later course is kept aside:");
  if (!later.empty() || best_later) {
    const LatestPointer pointer = read_latest(checkpoint_dir);
    const std::string aside = unused_path(checkpoint_dir + "/abandoned-" + stamp, "");
    fs::create_directory(aside);
    for (const std::string& path : later) fs::rename(path, aside + "/" + fs::path(path).filename().string());
    if (best_later) fs::rename(best, aside + "/best.h5");
    std::string what;
    if (!later.empty())
      what = fmt(later.size(), " newer checkpoint(s) (", fs::path(later.back()).filename().string(),
                 later.size() > 1 ? " to " + fs::path(later.front()).filename().string() : std::string(), ")");
    if (best_later) what += fmt(what.empty() ? "" : " and ", "its best.h5 (step ", checkpoint_global_step(aside + "/best.h5"), ")");
    line += fmt(" ", what, " moved to ", aside);
    // A pointer to a file that moved would lead nowhere: the continuation's first save renews it.
    if (pointer.state == LatestPointer::State::ok && !fs::exists(pointer.path)) fs::remove(checkpoint_dir + "/latest");
  }
  if (!drop.empty()) {
    const std::string kept = unused_path(run_dir + "/metrics-abandoned-" + stamp, ".jsonl");
    fs::copy_file(metrics, kept);
    std::string text;
    for (const std::string& l : keep) text += l + "\n";
    write_file_atomic(metrics, text);
    line += fmt(later.empty() ? " " : "; ", drop.size(), " later line(s) of metrics.jsonl (the whole file kept as ",
                kept, ")");
  }
  return line;
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
  // A run resumed with a smaller train.epochs can be past the steps the config asks for.
  const std::string where = state.global_step > total_steps
                                ? fmt(", past the ", total_steps, " steps this config asks for")
                                : fmt(" of ", total_steps);
  return fmt("nothing left to do: the run is at step ", state.global_step, where, " (", why,
             "); raise train.epochs or train.max_steps to train further");
}

}  // namespace lockstep
