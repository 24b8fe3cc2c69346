// Internal: the subcommands of `lockstep`. Each lives in its own cmd_*.cpp and registers its
// options (CLI11) and its runner here; cli.cpp only lists the registrations.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"

namespace lockstep {

using CommandRunner = std::function<int(Comm&)>;

struct CommandTable {
  std::vector<std::pair<CLI::App*, CommandRunner>> entries;
  void add(CLI::App* sub, CommandRunner run) { entries.emplace_back(sub, std::move(run)); }
};

// Options every config-driven command takes: --config, --set, --run-dir.
struct ConfigArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string run_dir;
};
// --config and --set; and --run-dir unless the command writes no run directory (eval).
void add_config_options(CLI::App* cmd, ConfigArgs& a, bool with_run_dir = true);

// `lockstep train` and `lockstep distill` share one runner (cmd_train.cpp): distill is train
// with a teacher required and the teacher options.
struct TrainArgs : ConfigArgs {
  std::string resume;          // "", "auto", a checkpoint file or a checkpoint directory
  std::string teacher;         // --teacher: overrides distill.teacher
  bool cache_teacher = false;  // --cache-teacher: compute (or reuse) the teacher-logits cache first
  bool distill = false;        // the distill command: a teacher must be named
};
int run_train(Comm& comm, const TrainArgs& a);

// Loads and validates the config on every rank, agreeing on failure (exit code 2 everywhere).
Config load_config_collectively(Comm& comm, const ConfigArgs& a);

// "784-256-10 relu MLP (203530 parameters)".
std::string model_summary(const Config& cfg, size_t params);

void add_train_command(CLI::App& app, CommandTable& table);
void add_distill_command(CLI::App& app, CommandTable& table);
void add_info_commands(CLI::App& app, CommandTable& table);
void add_eval_commands(CLI::App& app, CommandTable& table);
void add_convert_command(CLI::App& app, CommandTable& table);

}  // namespace lockstep
