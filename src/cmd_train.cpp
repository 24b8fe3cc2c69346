// `lockstep train`: load and check everything collectively, then train and report.
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/trainer.hpp"
#include "lockstep/version.hpp"

namespace lockstep {
namespace {

int run_train(Comm& comm, const ConfigArgs& a) {
  const bool root = comm.rank() == 0;
  Config cfg = load_config_collectively(comm, a);
  const std::string dir = run_dir_of(cfg);
  const std::string metrics = dir + "/metrics.jsonl";
  // Only rank 0 looks at the run directory; the others learn the outcome from the agreement.
  collectively(
      comm,
      [&] {
        if (!root) return;
        ensure_directory(dir);
        LOCKSTEP_REQUIRE(!std::filesystem::exists(metrics), "run directory ", dir,
                         " already holds a run (metrics.jsonl); choose another run.dir (--run-dir) "
                         "or remove it");
        write_file_atomic(dir + "/config.toml", config_to_toml(cfg));
      },
      std::cerr);
  Datasets data;
  collectively(comm, [&] { data = load_datasets(cfg.data, cfg.model.layers.front(), cfg.run.seed); }, std::cerr);

  auto backend = make_cpu_backend();
  TrainerOptions opts;
  opts.log = &std::cout;
  opts.metrics_path = metrics;
  std::unique_ptr<Trainer> trainer;
  collectively(comm, [&] { trainer = std::make_unique<Trainer>(cfg, comm, *backend, data, opts); }, std::cerr);

  if (root) {
    const int64_t per_rank = (cfg.train.batch_size + comm.size() - 1) / comm.size();
    std::cout << "lockstep " << LOCKSTEP_VERSION_STRING << ": " << model_summary(cfg, trainer->model().num_params())
              << "\n  " << comm.size() << " rank(s) on " << backend->describe() << ", global batch "
              << cfg.train.batch_size << " (<= " << per_rank << " per rank), " << to_string(cfg.optimizer.name)
              << " lr " << cfg.optimizer.lr << ", " << cfg.train.epochs << " epochs of "
              << trainer->sharder().steps_per_epoch() << " steps\n  data: " << data.train->size() << " train, "
              << (data.val ? data.val->size() : 0) << " validation, " << (data.test ? data.test->size() : 0)
              << " test samples; run directory " << dir << std::endl;
  }
  const auto start = std::chrono::steady_clock::now();
  const TrainResult result = trainer->run();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (root && !result.epochs.empty()) {
    const EpochRecord& last = result.epochs.back();
    std::cout << std::fixed << "done: " << result.steps << " steps in " << std::setprecision(1) << secs << " s";
    if (result.stopped_early) std::cout << " (stopped early)";
    std::cout << std::setprecision(4);
    if (last.val) std::cout << "; validation accuracy " << last.val->accuracy;
    if (last.test) std::cout << "\nfinal test accuracy: " << last.test->accuracy << " (test loss " << last.test->loss << ")";
    std::cout << std::endl;
  }
  return exit_code::ok;
}

}  // namespace

void add_train_command(CLI::App& app, CommandTable& table) {
  auto args = std::make_shared<ConfigArgs>();
  auto* cmd = app.add_subcommand("train", "train a model from a config");
  add_config_options(cmd, *args);
  table.add(cmd, [args](Comm& comm) { return run_train(comm, *args); });
}

}  // namespace lockstep
