// Internal: the table of configuration keys and the helpers that declare them.
// Each key is one KeyDef: how to set it from a TOML value (with its checks) and how to print it.
#pragma once
#include <toml++/toml.h>

#include <functional>
#include <string>
#include <vector>

#include "lockstep/config.hpp"

namespace lockstep::detail {

struct KeyDef {
  std::string key;   // "section.name"
  std::string type;  // for help: "float > 0", "one of: adam, sgd", ...
  std::string doc;
  std::function<void(Config&, const toml::node&)> set;   // throws UserError (message without the key)
  std::function<std::string(const Config&)> show;        // TOML literal of the current value
};

const std::vector<KeyDef>& key_table();

}  // namespace lockstep::detail
