// `lockstep train` (and `lockstep distill`, which adds a teacher): load and check everything
// collectively (config, resume point, teacher, init checkpoint, data and its agreement across
// ranks, teacher-logits cache), then train and report.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <utility>

#include "cmd_train_start.hpp"
#include "commands.hpp"
#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/config_agree.hpp"
#include "lockstep/signals.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/device.hpp"
#include "lockstep/distill.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/h5_dataset.hpp"
#include "lockstep/launch.hpp"
#include "lockstep/memory_plan.hpp"
#include "lockstep/nccl_comm.hpp"
#include "lockstep/progress.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/trainer.hpp"
#include "lockstep/version.hpp"

namespace lockstep {
namespace {

// Rank 0 reads a checkpoint that a key names (distill.teacher, init.from); every rank gets it.
CheckpointData checkpoint_named_by(Comm& comm, const char* key, const std::string& path) {
  CheckpointData ck;
  collectively(
      comm,
      [&] {
        if (comm.rank() != 0) return;
        // A file, not a directory's `latest`: what the run records must not change under it.
        LOCKSTEP_REQUIRE(!std::filesystem::is_directory(path), key, " = ", path,
                         ": is a directory; name a checkpoint file in it (e.g. ", path, "/best.h5)");
        try {
          ck = read_checkpoint(path);
        } catch (const UserError& e) {
          throw UserError(fmt(key, ": ", e.what()));
        }
      },
      std::cerr);
  broadcast_checkpoint(comm, ck, 0);
  return ck;
}

}  // namespace

int run_train(Comm& comm, const TrainArgs& a) {
  // First of all: a stop request that arrives while the run is being set up (a requeued job
  // warned early, a preemption) is honoured at the first step boundary instead of killing the rank.
  install_stop_signal_handlers();
  const bool root = comm.rank() == 0;
  const std::string command = a.distill ? "distill" : "train";
  std::vector<std::string> notes;  // rank 0: lines for the log, printed with the banner
  StoredConfig stored = stored_config_for(comm, a);
  Config cfg;
  collectively(
      comm,
      [&] {
        check_launch(comm.size());
        cfg = stored.wanted && !stored.text.empty()
                  ? load_config_text(stored.text, stored.origin + " (stored config)", a.sets)
                  : load_config(a.config, a.sets);
        if (!a.run_dir.empty()) cfg.run.dir = a.run_dir;
        if (!a.teacher.empty()) cfg.distill.teacher = a.teacher;
        LOCKSTEP_REQUIRE(!a.distill || !cfg.distill.teacher.empty(),
                         "lockstep distill needs a teacher: --teacher CHECKPOINT, or distill.teacher in the config");
        LOCKSTEP_REQUIRE(!a.cache_teacher || !cfg.distill.teacher.empty(),
                         "--cache-teacher needs a teacher (--teacher or distill.teacher)");
        if (a.cache_teacher && cfg.distill.cache.empty()) cfg.distill.cache = run_dir_of(cfg) + "/teacher-logits.h5";
        validate_config(cfg, comm.size());
      },
      std::cerr);
  // Before anything collective depends on it: every rank resolved the same config and arguments.
  agree_on_config(comm, cfg, {{"command", command}, {"--resume", a.resume},
                              {"--cache-teacher", a.cache_teacher ? "true" : "false"}}, std::cerr);
  if (root && stored.wanted)
    notes.push_back(stored.text.empty()
                        ? fmt("config: no --config, and ", run_dir_of(cfg), " holds no stored config: the built-in "
                              "defaults", a.sets.empty() ? "" : " and --set", " are used")
                        : fmt("config: the one stored in ", stored.origin, " (no --config given)",
                              a.sets.empty() ? "" : ", with --set on top"));
  const std::string dir = run_dir_of(cfg);
  const std::string ckdir = checkpoint_dir_of(cfg);
  const std::string metrics = dir + "/metrics.jsonl";
  // What the run stores (config.toml, every checkpoint's config) names its directories absolutely:
  // a resume from another working directory, or another run, can then tell where they are.
  // (After the ranks agreed on the config; dir and ckdir keep the spelling the user gave.)
  {
    std::error_code ec;
    const std::filesystem::path abs_dir = std::filesystem::absolute(dir, ec);
    if (!ec) cfg.run.dir = abs_dir.lexically_normal().string();
    if (!cfg.checkpoint.dir.empty()) {
      const std::filesystem::path abs_ck = std::filesystem::absolute(ckdir, ec);
      if (!ec) cfg.checkpoint.dir = abs_ck.lexically_normal().string();
    }
  }

  // Only rank 0 looks at the file system; the others learn the outcome from the agreement and
  // the checkpoint path from a broadcast. Nothing is written until every input has been checked
  // (invariant 8): a rejected run leaves an existing run directory as it was (its lock file
  // records the last job that took it).
  RunDirLock lock;  // rank 0: held for the run's lifetime, so a second job on the directory fails at start
  ResumePlan plan;
  collectively(
      comm,
      [&] {
        if (!root) return;
        check_directory_creatable(dir, "run directory");
        check_directory_creatable(ckdir, "checkpoint directory");
        // Everything the run will write, checked now rather than found after training.
        check_file_appendable(metrics, "metrics file");
        if (!cfg.distill.cache.empty() && !std::filesystem::exists(cfg.distill.cache))
          check_file_appendable(cfg.distill.cache, "teacher-logits cache (distill.cache)");
        std::string warning;
        if (std::filesystem::is_directory(dir)) lock.acquire(dir, command, &warning);
        if (!warning.empty()) notes.push_back(warning);
        plan = plan_resume(a, dir, ckdir, stored);
        if (!plan.note.empty()) notes.push_back(plan.note);
      },
      std::cerr);
  std::string resume_path = plan.path;
  comm.broadcast_string(resume_path, 0);

  CheckpointData ck;
  const bool resuming = !resume_path.empty();
  if (resuming) {
    collectively(
        comm,
        [&] {
          if (!root) return;
          ck = stored.checkpoint == resume_path ? std::move(stored.ck)
                                                : read_checkpoint_or_offer_previous(resume_path, "resume from it with --resume ");
          refuse_checkpoint_of_another_course(a, dir, ckdir, resume_path, ck);
          if (ck.checksums_missing > 0)
            notes.push_back(fmt("note: ", resume_path, " was written without checksums (", ck.checksums_missing,
                                " datasets and groups not verified)"));
        },
        std::cerr);
    broadcast_checkpoint(comm, ck, 0);
  }

  // The teacher (every rank holds its weights) and, for a fresh fine-tune, the init checkpoint.
  CheckpointData teacher, init_from;
  if (!cfg.distill.teacher.empty()) {
    teacher = checkpoint_named_by(comm, "distill.teacher", cfg.distill.teacher);
    collectively(comm, [&] { check_teacher_fits(teacher, cfg.distill.teacher, cfg); }, std::cerr);
  }
  const bool fine_tune = !cfg.init.from.empty() && !resuming;
  if (fine_tune) init_from = checkpoint_named_by(comm, "init.from", cfg.init.from);

  Datasets data;
  DataFingerprint fingerprint;
  collectively(
      comm,
      [&] {
        data = load_datasets(cfg.data, cfg.model.layers.front(), cfg.run.seed);
        fingerprint = fingerprint_of(data);
      },
      std::cerr);
  // Ranks that read other contents behind the same paths (node-local copies, relative paths in
  // other working directories) would train one model on two data sets without a sign (the
  // gradients are summed, the replicas stay equal): refused before anything is written.
  agree_on_data(comm, data_files_of(cfg.data, fingerprint), std::cerr);
  if (root && !cfg.distill.teacher.empty() && !resuming) {
    // A teacher trained on the same file with another split has seen rows the student validates
    // on: the student's validation accuracy then reads high (and early stopping trusts it).
    try {
      const Config tc = load_config_text(teacher.config_toml, cfg.distill.teacher, {});
      const bool same_file = teacher.data.known() && teacher.data.train == fingerprint.train;
      if (same_file && cfg.data.val_size > 0 &&
          (tc.run.seed != cfg.run.seed || tc.data.val_size != cfg.data.val_size ||
           tc.data.class_subset != cfg.data.class_subset || tc.data.train_limit != cfg.data.train_limit))
        notes.push_back(fmt("note: the teacher trained on this file with another validation split (run.seed ",
                            tc.run.seed, ", data.val_size ", tc.data.val_size, "; the student has ", cfg.run.seed,
                            ", ", cfg.data.val_size, "): it has seen rows the student validates on, so the "
                            "student's validation accuracy reads high. Give the student the teacher's run.seed "
                            "and data.val_size to keep them apart"));
    } catch (const UserError&) {
      // A teacher whose stored config this version cannot read: nothing to compare.
    }
  }
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Comm> gradient_comm;  // NCCL on device buffers; null on the CPU (MPI)
  collectively(
      comm,
      [&] {
        backend = make_backend(cfg, comm, &std::cout);
        check_memory(cfg, comm, *backend, MemoryUse::train);  // before the trainer allocates any of it
      },
      std::cerr);
  if (backend->kind() == DeviceKind::cuda)
    collectively(comm, [&] { gradient_comm = make_nccl_comm(comm, *backend, &std::cout); }, std::cerr);
  if (a.cache_teacher) {
    // Computed once, then reused: an existing file is checked (by the trainer) rather than redone.
    bool exists = false;
    if (root) exists = std::filesystem::exists(cfg.distill.cache);
    exists = comm.any_true(exists);
    if (!exists) {
      // The cache is written before the run directory's other files: a new directory is made
      // and locked first, so that a second job on it cannot write a cache of its own meanwhile.
      collectively(
          comm,
          [&] {
            if (!root || lock.held()) return;
            ensure_directory(dir, "run directory");
            std::string warning;
            lock.acquire(dir, command, &warning);
            if (!warning.empty()) notes.push_back(warning);
          },
          std::cerr);
      const auto t0 = std::chrono::steady_clock::now();
      build_teacher_cache(comm, *backend, teacher, cfg.distill.teacher, *data.train_file, cfg.data.classes,
                          cfg.data.eval_batch, cfg.distill.cache, std::cerr);
      if (root)
        std::cout << "teacher logits: " << data.train_file->size() << " samples computed on " << comm.size()
                  << " rank(s) in " << std::fixed << std::setprecision(1)
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s into "
                  << cfg.distill.cache << std::defaultfloat << std::endl;
    }
  }

  if (!cfg.distill.teacher.empty() && !cfg.distill.cache.empty()) {
    // Every rank reads the teacher's logits from its own copy of the cache: the copies must agree
    // too. A cache this rank cannot open is left to the distiller, whose checks say why.
    std::vector<DataFileFingerprint> cache{{"distill.cache = " + cfg.distill.cache, -1, ""}};
    try {
      if (std::filesystem::is_regular_file(cfg.distill.cache) && h5::is_hdf5_file(cfg.distill.cache)) {
        const H5Data logits(cfg.distill.cache, cfg.data.classes);
        cache[0].samples = logits.size();
        cache[0].fingerprint = fingerprint_of(logits);
      }
    } catch (const std::exception&) {
      cache[0].fingerprint.clear();
    }
    agree_on_data(comm, cache, std::cerr);
  }

  TrainerOptions opts;
  opts.teacher = cfg.distill.teacher.empty() ? nullptr : &teacher;
  opts.init_from = fine_tune ? &init_from : nullptr;
  opts.gradient_comm = gradient_comm.get();
  opts.log = &std::cout;
  opts.metrics_path = metrics;
  opts.data_fingerprint = fingerprint;
  Checkpointer checkpointer(comm, ckdir, cfg.checkpoint.keep, root ? &std::cout : nullptr);
  opts.checkpointer = &checkpointer;
  std::unique_ptr<Trainer> trainer;
  collectively(comm, [&] { trainer = std::make_unique<Trainer>(cfg, comm, *backend, data, opts); }, std::cerr);
  const std::string resumed_line =
      resuming ? fmt("resuming from ", resume_path, ": epoch ", ck.trainer.epoch + 1, ", step ", ck.trainer.global_step,
                     ", sample ", ck.trainer.step_in_epoch * ck.global_batch, " of the epoch (saved on ",
                     ck.world_size, " rank(s))")
               : std::string();
  if (resuming) {
    // What defines the run must match the checkpoint: the config's defining keys, the data and
    // the position they give (everything is loaded, so bad input was reported first).
    collectively(
        comm,
        [&] {
          ResumeFacts now;
          now.data = fingerprint;
          now.steps_per_epoch = trainer->sharder().steps_per_epoch();
          const std::string diff = resume_incompatibilities(ck, cfg, &now);
          LOCKSTEP_REQUIRE(diff.empty(), "cannot resume from ", resume_path,
                           ": settings that define the run differ (docs/checkpoint-format.md lists those that may "
                           "change):", diff);
          trainer->restore(ck);
        },
        std::cerr);
    // A finished run resumed (a requeue after the end, --resume auto once more): say so, write nothing.
    const std::string done = nothing_left_to_do(cfg, trainer->state(), trainer->total_steps());
    if (!done.empty()) {
      if (root) {
        for (const std::string& n : notes) std::cout << n << "\n";
        std::cout << resumed_line << "\n" << done << std::endl;
      }
      return exit_code::ok;
    }
  }
  // Everything is checked: now the run directory is written.
  collectively(
      comm,
      [&] {
        if (!root) return;
        ensure_directory(dir, "run directory");
        std::string warning;
        if (!lock.held()) lock.acquire(dir, command, &warning);  // the directory did not exist before
        if (!warning.empty()) notes.push_back(warning);
        if (std::filesystem::exists(ckdir)) {
          if (const int n = remove_checkpoint_temporaries(ckdir); n > 0)
            std::cout << "removed " << n << " unfinished checkpoint file(s) in " << ckdir << std::endl;
        }
        if (resuming) {
          const std::string aside = set_aside_later_course(dir, ckdir, metrics, ck.trainer.global_step, utc_time("%Y%m%dT%H%M%SZ"));
          if (!aside.empty()) std::cout << aside << std::endl;
        }
        if (plan.abandon_metrics) {
          // Keep the earlier metrics beside the new run rather than appending to them.
          const std::string kept = unused_path(dir + "/metrics-abandoned-" + utc_time("%Y%m%dT%H%M%SZ"), ".jsonl");
          std::filesystem::rename(metrics, kept);
          std::cout << "no checkpoint to resume in " << ckdir << "; starting afresh (earlier metrics kept as "
                    << kept << ")" << std::endl;
        }
        write_file_atomic(dir + "/config.toml", config_to_toml(cfg));
      },
      std::cerr);

  if (root) {
    const int64_t per_rank = (cfg.train.batch_size + comm.size() - 1) / comm.size();
    std::cout << "lockstep " << LOCKSTEP_VERSION_STRING << ": " << model_summary(cfg, trainer->model().num_params())
              << "\n  " << comm.size() << " rank(s) on " << backend->describe() << ", global batch "
              << cfg.train.batch_size << " (<= " << per_rank << " per rank), " << to_string(cfg.optimizer.name)
              << " lr " << cfg.optimizer.lr << ", " << cfg.train.epochs << (cfg.train.epochs == 1 ? " epoch" : " epochs") << " of "
              << trainer->sharder().steps_per_epoch() << " steps\n  data: " << data.train->size() << " train, "
              << (data.val ? data.val->size() : 0) << " validation, " << (data.test ? data.test->size() : 0)
              << " test samples; run directory " << dir << std::endl;
    if (const Distiller* d = trainer->distiller())
      std::cout << "  distilling from " << d->teacher().path << " (" << d->teacher().model << ", checksum "
                << hex64(d->teacher().checksum) << "), T " << cfg.distill.temperature << ", alpha "
                << cfg.distill.alpha << ", teacher logits "
                << (d->cached() ? "from " + cfg.distill.cache : std::string("computed live")) << std::endl;
    if (!cfg.init.from.empty() || !cfg.init.freeze.empty()) {
      std::cout << "  ";
      if (!cfg.init.from.empty())
        std::cout << (resuming ? "a fine-tune of " : "initialised from ") << cfg.init.from
                  << (cfg.init.reset_head ? " (output layer re-initialised)" : "") << "; ";
      std::cout << trainer->optimizer().state_size() << " of " << trainer->model().num_params()
                << " parameters train";
      if (!cfg.init.freeze.empty()) {
        std::cout << ", frozen layers";
        for (int64_t l : cfg.init.freeze) std::cout << " " << l;
      }
      std::cout << std::endl;
    }
    for (const std::string& n : notes) std::cout << n << "\n";
    if (resuming) std::cout << resumed_line << "\n";
    std::cout << std::flush;
  }
  const int64_t first_step = trainer->state().global_step;  // > 0 when resumed
  const auto start = std::chrono::steady_clock::now();
  const TrainResult result = trainer->run();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string skipped =
      result.skipped_steps > 0 ? fmt(" (", result.skipped_steps, " skipped: non-finite loss or gradient)") : "";
  if (result.preempted) {
    // Not a completion: no "done" or "final" line. The signal may have reached another rank only
    // (the stop flag is reduced): ask them all which one it was.
    double signal = stop_signal_number();
    comm.allreduce_max(&signal, 1);
    if (root)
      std::cout << "stopped on request (signal " << static_cast<int>(signal) << ") at step " << result.steps << " of "
                << trainer->total_steps() << skipped << "; checkpoint " << ckdir << "/"
                << checkpoint_file_name(result.steps) << " saved; run the same command with --resume auto to continue"
                << std::endl;
    return exit_code::preempted;
  }
  if (root && !result.epochs.empty()) {
    const EpochRecord& last = result.epochs.back();
    std::cout << std::fixed << "done: " << result.steps << " steps" << skipped;
    // The time is this process's: after a resume, say which steps it covers.
    if (first_step > 0)
      std::cout << " (" << result.steps - first_step << " of them after resuming at step " << first_step << ")";
    std::cout << " in " << std::setprecision(1) << secs << " s";
    if (result.stopped_early) std::cout << " (stopped early)";
    std::cout << std::setprecision(4);
    if (last.val) std::cout << "; validation accuracy " << last.val->accuracy;
    if (last.test) std::cout << "\nfinal test accuracy: " << last.test->accuracy << " (test loss " << shown(last.test->loss) << ")";
    std::cout << std::endl;
  }
  return exit_code::ok;
}

void add_train_command(CLI::App& app, CommandTable& table) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "train a model from a config");
  add_config_options(cmd, *args);
  cmd->add_option("-r,--resume", args->resume,
                  "continue from a checkpoint: auto (the run's latest, or a fresh start when the run directory "
                  "holds none), a checkpoint file, or a checkpoint directory; without --config the run's stored "
                  "config is used (the checkpoint's, else the run directory's config.toml)");
  table.add(cmd, [args](Comm& comm) { return run_train(comm, *args); });
}

}  // namespace lockstep
