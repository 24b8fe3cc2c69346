// The command line: the top-level parser and the list of subcommands (each in a cmd_*.cpp).
#include "cli.hpp"

#include <exception>
#include <sstream>

#include "commands.hpp"
#include "lockstep/agree.hpp"
#include "lockstep/config_agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/launch.hpp"
#include "lockstep/version.hpp"

namespace lockstep {

void add_config_options(CLI::App* cmd, ConfigArgs& a, bool with_run_dir) {
  cmd->add_option("-c,--config", a.config, "TOML config file (keys: `lockstep config-keys`)");
  cmd->add_option("-s,--set", a.sets, "override one key: section.key=value (repeatable)")->take_all();
  if (with_run_dir) cmd->add_option("-o,--run-dir", a.run_dir, "run directory (overrides run.dir)");
}

Config load_config_collectively(Comm& comm, const ConfigArgs& a) {
  Config cfg;
  collectively(
      comm,
      [&] {
        check_launch(comm.size());
        cfg = load_config(a.config, a.sets);
        if (!a.run_dir.empty()) cfg.run.dir = a.run_dir;
        validate_config(cfg, comm.size());
      },
      std::cerr);
  return cfg;
}

std::string model_summary(const Config& cfg, size_t params) {
  std::ostringstream os;
  for (size_t i = 0; i < cfg.model.layers.size(); ++i) os << (i ? "-" : "") << cfg.model.layers[i];
  os << " " << to_string(cfg.model.activation) << " MLP (" << params << " parameters)";
  return os.str();
}

int run_cli(int argc, char** argv, Comm& comm) {
  CLI::App app{"lockstep: data-parallel MLP training over MPI ranks (CPU) or GPUs.\n"
               "Launch several ranks with mpirun -np N or srun --mpi=pmix."};
  app.set_version_flag("--version", std::string("lockstep ") + LOCKSTEP_VERSION_STRING);
  app.require_subcommand(1);
  CommandTable table;
  add_train_command(app, table);
  add_distill_command(app, table);
  add_eval_commands(app, table);
  add_info_commands(app, table);
  add_convert_command(app, table);

  // Kept as thrown: app.exit() tells help and version requests from errors by their type.
  std::exception_ptr parse_error;
  std::string parse_message;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    parse_error = std::current_exception();
    parse_message = e.what();
  }
  const CommandRunner* runner = nullptr;
  std::string command;
  for (auto& [sub, run] : table.entries)
    if (!parse_error && sub->parsed()) {
      runner = &run;
      command = sub->get_name();
    }
  // The first collective of every command: the ranks agree that they run the same one (an MPMD
  // launch can give them different command lines), before any of them starts its collectives.
  agree_on_command(comm, command, parse_message, std::cerr);
  if (parse_error) {
    // Every rank failed to parse the same arguments; rank 0 speaks for all of them.
    try {
      std::rethrow_exception(parse_error);
    } catch (const CLI::ParseError& e) {
      // "A subcommand is required" for `lockstep trian`: name the word and the commands there are.
      std::string names;
      bool known = false;
      for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        names += (names.empty() ? "" : ", ") + sub->get_name();
        known = known || (argc > 1 && sub->get_name() == argv[1]);
      }
      if (argc > 1 && argv[1][0] != '-' && !known) {
        if (comm.rank() == 0)
          std::cerr << "lockstep: error: unknown command '" << argv[1] << "'; the commands are " << names
                    << " (lockstep --help)" << std::endl;
        return exit_code::bad_input;
      }
      // `lockstep` alone, or options and no command: which commands there are.
      bool any_command = false;
      for (int i = 1; i < argc; ++i) any_command = any_command || argv[i][0] != '-';
      if (!any_command && dynamic_cast<const CLI::RequiredError*>(&e)) {
        if (comm.rank() == 0)
          std::cerr << "lockstep: error: " << (argc > 1 ? fmt("unknown option '", argv[1], "' and no command")
                                                         : std::string("no command given"))
                    << "; the commands are " << names << " (lockstep --help, lockstep COMMAND --help)" << std::endl;
        return exit_code::bad_input;
      }
      if (comm.rank() == 0) app.exit(e);
      return e.get_exit_code() == 0 ? exit_code::ok : exit_code::bad_input;
    }
  }
  return runner ? (*runner)(comm) : exit_code::bad_input;
}

}  // namespace lockstep
