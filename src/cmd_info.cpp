// `lockstep info` (build and library versions) and `lockstep config-keys` (every config key).
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/runtime.hpp"

namespace lockstep {

void add_info_commands(CLI::App& app, CommandTable& table) {
  auto* info = app.add_subcommand("info", "print the backends and library versions of this build");
  table.add(info, [](Comm& comm) {
    if (comm.rank() == 0) std::cout << build_info();
    return exit_code::ok;
  });
  auto* keys = app.add_subcommand("config-keys", "list every config key with its type, default and meaning");
  table.add(keys, [](Comm& comm) {
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
  });
}

}  // namespace lockstep
