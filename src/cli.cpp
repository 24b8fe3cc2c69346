// Subcommands: train, info, config-keys. Setup runs in collectively() phases so that bad input
// ends every rank with one message before training starts (invariant 8).
#include "cli.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/runtime.hpp"
#include "lockstep/trainer.hpp"
#include "lockstep/version.hpp"

namespace lockstep {
namespace {

struct CommonArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string run_dir;
};

void add_common(CLI::App* cmd, CommonArgs& a) {
  cmd->add_option("-c,--config", a.config, "TOML config file (keys: `lockstep config-keys`)");
  cmd->add_option("-s,--set", a.sets, "override one key: section.key=value (repeatable)")->take_all();
  cmd->add_option("-o,--run-dir", a.run_dir, "run directory (overrides run.dir)");
}

std::string model_summary(const Config& cfg, size_t params) {
  std::ostringstream os;
  for (size_t i = 0; i < cfg.model.layers.size(); ++i) os << (i ? "-" : "") << cfg.model.layers[i];
  os << " " << to_string(cfg.model.activation) << " MLP (" << params << " parameters)";
  return os.str();
}

Config load_checked(Comm& comm, const CommonArgs& a) {
  Config cfg;
  collectively(
      comm,
      [&] {
        cfg = load_config(a.config, a.sets);
        if (!a.run_dir.empty()) cfg.run.dir = a.run_dir;
        validate_config(cfg, comm.size());
      },
      std::cerr);
  return cfg;
}

int cmd_train(Comm& comm, const CommonArgs& a) {
  const bool root = comm.rank() == 0;
  Config cfg = load_checked(comm, a);
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
    std::cout << std::fixed << std::setprecision(4);
    std::cout << "done: " << result.steps << " steps in " << std::setprecision(1) << secs << " s";
    if (result.stopped_early) std::cout << " (stopped early)";
    std::cout << std::setprecision(4);
    if (last.val) std::cout << "; validation accuracy " << last.val->accuracy;
    if (last.test) std::cout << "\nfinal test accuracy: " << last.test->accuracy << " (test loss " << last.test->loss << ")";
    std::cout << std::endl;
  }
  return exit_code::ok;
}

int cmd_config_keys(Comm& comm) {
  if (comm.rank() != 0) return exit_code::ok;
  std::string section;
  for (const auto& k : config_key_docs()) {
    const std::string s = k.key.substr(0, k.key.find('.'));
    if (s != section) std::cout << (section.empty() ? "" : "\n") << "[" << s << "]\n";
    section = s;
    std::cout << "  " << std::left << std::setw(24) << k.key.substr(k.key.find('.') + 1) << " " << k.doc << "\n"
              << "  " << std::setw(24) << "" << " " << k.type << "; default " << k.default_value << "\n";
  }
  return exit_code::ok;
}

}  // namespace

int run_cli(int argc, char** argv, Comm& comm) {
  CLI::App app{"lockstep: data-parallel MLP training over MPI ranks (CPU) or GPUs.\n"
               "Launch several ranks with mpirun -np N or srun --mpi=pmix."};
  app.set_version_flag("--version", std::string("lockstep ") + LOCKSTEP_VERSION_STRING);
  app.require_subcommand(1);

  CommonArgs train_args;
  auto* train = app.add_subcommand("train", "train a model from a config");
  add_common(train, train_args);
  app.add_subcommand("info", "print the backends and library versions of this build");
  app.add_subcommand("config-keys", "list every config key with its type, default and meaning");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Every rank parses the same arguments; rank 0 speaks for all of them.
    if (comm.rank() == 0) app.exit(e);
    return e.get_exit_code() == 0 ? exit_code::ok : exit_code::bad_input;
  }
  if (train->parsed()) return cmd_train(comm, train_args);
  if (app.got_subcommand("config-keys")) return cmd_config_keys(comm);
  if (app.got_subcommand("info")) {
    if (comm.rank() == 0) std::cout << build_info();
    return exit_code::ok;
  }
  return exit_code::bad_input;
}

}  // namespace lockstep
