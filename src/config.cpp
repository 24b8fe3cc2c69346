// Loading, overriding, printing and cross-checking the configuration (keys: config_keys.cpp).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "config_table.hpp"
#include "lockstep/check.hpp"
#include "lockstep/h5.hpp"

namespace lockstep {
namespace {

using detail::key_table;
using detail::KeyDef;

const KeyDef* find_key(const std::string& key) {
  for (const auto& k : key_table()) if (k.key == key) return &k;
  return nullptr;
}

std::vector<std::string> sections() {
  std::vector<std::string> out;
  for (const auto& k : key_table()) {
    const std::string s = k.key.substr(0, k.key.find('.'));
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

std::string keys_of_section(const std::string& section) {
  std::vector<std::string> names;
  for (const auto& k : key_table())
    if (k.key.rfind(section + ".", 0) == 0) names.push_back(k.key.substr(section.size() + 1));
  return join(names);
}

void set_key(Config& c, const KeyDef& def, const toml::node& value, const std::string& origin) {
  try {
    def.set(c, value);
  } catch (const UserError& e) {
    throw UserError(fmt(origin, ": key ", def.key, ": ", e.what()));
  }
}

void apply_table(Config& c, const toml::table& root, const std::string& origin) {
  const auto known_sections = sections();
  for (const auto& [skey, snode] : root) {
    const std::string section(skey.str());
    LOCKSTEP_REQUIRE(snode.is_table() || std::find(known_sections.begin(), known_sections.end(), section) != known_sections.end(),
                     origin, ": '", section, "' is set outside any section; every key belongs to a section (",
                     join(known_sections), "), e.g. [run] seed = 3");
    LOCKSTEP_REQUIRE(std::find(known_sections.begin(), known_sections.end(), section) != known_sections.end(),
                     origin, ": unknown section [", section, "] (known sections: ", join(known_sections), ")");
    const auto* tbl = snode.as_table();
    LOCKSTEP_REQUIRE(tbl, origin, ": '", section, "' must be a section [", section, "], not a value");
    for (const auto& [kkey, knode] : *tbl) {
      const std::string key = section + "." + std::string(kkey.str());
      const KeyDef* def = find_key(key);
      LOCKSTEP_REQUIRE(def, origin, ": unknown key '", key, "' (keys of [", section, "]: ", keys_of_section(section), ")");
      set_key(c, *def, knode, origin);
    }
  }
}

toml::table parse_toml(const std::string& text, const std::string& origin) {
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw UserError(fmt(origin, ":", where.line, ":", where.column, ": TOML syntax error: ", e.description()));
  }
}

// Without the spaces and tabs at both ends.
std::string trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

void apply_override(Config& c, const std::string& text) {
  const auto eq = text.find('=');
  // Spaces around '=' are allowed, as in the file ("train.epochs = 2"); a value with spaces at
  // its ends must be quoted.
  const std::string key = eq == std::string::npos ? text : trimmed(text.substr(0, eq));
  LOCKSTEP_REQUIRE(eq != std::string::npos && !key.empty(), "--set ", text, ": expected section.key=value");
  const std::string value = trimmed(text.substr(eq + 1));
  const KeyDef* def = find_key(key);
  LOCKSTEP_REQUIRE(def, "--set ", text, ": unknown key '", key, "'");
  // The value is read as TOML; a bare word that is not TOML (sgd, runs/x) is taken as a string.
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};
  }
  // For a string key the text is the string, even when it reads as another TOML type (run.name=123).
  if (def->type == "string" && !parsed.get("v")->is_string()) parsed = toml::table{{"v", value}};
  set_key(c, *def, *parsed.get("v"), "--set " + key);
}

}  // namespace

std::vector<KeyDoc> config_key_docs() {
  const Config defaults;
  std::vector<KeyDoc> out;
  for (const auto& k : key_table()) out.push_back({k.key, k.type, k.show(defaults), k.doc});
  return out;
}

Config parse_config_text(const std::string& text, const std::string& origin) {
  Config c;
  apply_table(c, parse_toml(text, origin), origin);
  return c;
}

Config load_config_text(const std::string& text, const std::string& origin, const std::vector<std::string>& overrides) {
  Config c = parse_config_text(text, origin);
  for (const auto& o : overrides) apply_override(c, o);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c;
  if (!path.empty()) {
    // A directory opens as an empty stream on Linux: without this check it read as an empty
    // config, i.e. silently all defaults.
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    LOCKSTEP_REQUIRE(std::filesystem::exists(status), "config file ", path, ": cannot be read (no such file)");
    LOCKSTEP_REQUIRE(std::filesystem::is_regular_file(status), "config file ", path, ": cannot be read: not a regular file",
                     std::filesystem::is_directory(status) ? " (it is a directory)" : "");
    std::ifstream f(path);
    LOCKSTEP_REQUIRE(f.good(), "config file ", path, ": cannot be read");
    std::stringstream ss;
    ss << f.rdbuf();
    apply_table(c, parse_toml(ss.str(), path), path);
  }
  for (const auto& o : overrides) apply_override(c, o);
  return c;
}

std::string config_to_toml(const Config& c) {
  std::ostringstream os;
  std::string current;
  for (const auto& k : key_table()) {
    const auto dot = k.key.find('.');
    const std::string section = k.key.substr(0, dot);
    if (section != current) {
      os << (current.empty() ? "" : "\n") << "[" << section << "]\n";
      current = section;
    }
    os << k.key.substr(dot + 1) << " = " << k.show(c) << "\n";
  }
  return os.str();
}

void validate_config(const Config& c, int world_size) {
  const auto& layers = c.model.layers;
  LOCKSTEP_REQUIRE(layers.size() >= 2, "model.layers: needs at least an input and an output width, got ",
                   layers.size(), layers.size() == 1 ? " entry" : " entries");
  const auto& subset = c.data.class_subset;
  for (size_t i = 0; i < subset.size(); ++i) {
    LOCKSTEP_REQUIRE(subset[i] < c.data.classes, "data.class_subset: class ", subset[i], " (element ", i,
                     ") is outside [0, ", c.data.classes, ") (data.classes = ", c.data.classes, ")");
    for (size_t j = 0; j < i; ++j)
      LOCKSTEP_REQUIRE(subset[j] != subset[i], "data.class_subset: class ", subset[i], " is listed twice");
  }
  LOCKSTEP_REQUIRE(subset.empty() || subset.size() >= 2, "data.class_subset: needs at least 2 classes, got ",
                   subset.size());
  if (subset.empty()) {
    LOCKSTEP_REQUIRE(layers.back() == c.data.classes, "model.layers: the last width (", layers.back(),
                     ") must equal data.classes (", c.data.classes, ")");
  } else {
    LOCKSTEP_REQUIRE(layers.back() == static_cast<int64_t>(subset.size()), "model.layers: the last width (",
                     layers.back(), ") must equal the number of classes in data.class_subset (", subset.size(), ")");
  }
  const auto n_layers = static_cast<int64_t>(layers.size()) - 1;
  for (size_t i = 0; i < c.init.freeze.size(); ++i) {
    const int64_t l = c.init.freeze[i];
    LOCKSTEP_REQUIRE(l < n_layers, "init.freeze: layer ", l, " does not exist (model.layers has ", n_layers,
                     " layers, 0..", n_layers - 1, ")");
    for (size_t j = 0; j < i; ++j) LOCKSTEP_REQUIRE(c.init.freeze[j] != l, "init.freeze: layer ", l, " is listed twice");
  }
  LOCKSTEP_REQUIRE(static_cast<int64_t>(c.init.freeze.size()) < n_layers, "init.freeze: all ", n_layers,
                   " layers are frozen; at least one must train");
  LOCKSTEP_REQUIRE(!c.init.reset_head || !c.init.from.empty(),
                   "init.reset_head: re-initialises the head of the model loaded from init.from, which is empty");
  for (int64_t l : c.init.freeze)
    LOCKSTEP_REQUIRE(!c.init.reset_head || l != n_layers - 1, "init.freeze: layer ", l,
                     " is the output layer that init.reset_head re-initialises; a frozen random head cannot learn");
  LOCKSTEP_REQUIRE(c.distill.cache.empty() || !c.distill.teacher.empty(),
                   "distill.cache is set but distill.teacher is empty: the cache holds a teacher's logits, name the "
                   "teacher (--teacher or distill.teacher)");
  LOCKSTEP_REQUIRE(c.train.batch_size >= world_size, "train.batch_size: the global batch (", c.train.batch_size,
                   ") is smaller than the number of ranks (", world_size, "); every rank needs a sample");
  LOCKSTEP_REQUIRE(c.train.batch_size >= c.train.grad_accum * world_size, "train.grad_accum: ", c.train.grad_accum,
                   " micro-batches per rank need a global batch of at least ", c.train.grad_accum * world_size,
                   " (train.batch_size is ", c.train.batch_size, ")");
  // Matrix sides are 32-bit in the BLAS calls: the rows of one micro-batch on one rank too.
  const int64_t rank_rows = (c.train.batch_size + world_size - 1) / world_size;
  const int64_t micro_rows = (rank_rows + c.train.grad_accum - 1) / c.train.grad_accum;
  LOCKSTEP_REQUIRE(micro_rows <= std::numeric_limits<int32_t>::max(), "train.batch_size: ", c.train.batch_size,
                   " samples make micro-batches of ", micro_rows, " rows per rank, more than ",
                   std::numeric_limits<int32_t>::max(), " (matrix sides are 32-bit integers in BLAS)");
  const OptimizerConfig& o = c.optimizer;
  // The weights are scaled by 1 - lr * weight_decay each step (adamw's decoupled decay; sgd's and
  // momentum's L2 term on their first step): at 1 or above that wipes them or flips their sign.
  const bool scales_weights =
      o.name == OptimizerKind::sgd || o.name == OptimizerKind::momentum || o.name == OptimizerKind::adamw;
  LOCKSTEP_REQUIRE(!scales_weights || o.lr * o.weight_decay < 1.0, "optimizer.weight_decay: ", o.weight_decay,
                   " with optimizer.lr = ", o.lr, " scales the weights by 1 - lr * weight_decay = ",
                   1.0 - o.lr * o.weight_decay, " each step (", to_string(o.name),
                   "); lr * weight_decay must be below 1");
  LOCKSTEP_REQUIRE(c.schedule.kind != ScheduleKind::cosine || c.schedule.min_lr <= o.lr, "schedule.min_lr: ",
                   c.schedule.min_lr, " is above optimizer.lr = ", o.lr,
                   ": the cosine schedule decays from lr down to min_lr");
  LOCKSTEP_REQUIRE(!c.early_stopping.enabled || c.data.val_size > 0,
                   "early_stopping.enabled: needs a validation set (data.val_size > 0)");
  // A *_labels key may be empty only when *_images is an HDF5 data file, which holds the labels
  // too (told by its signature; docs/data.md). load_datasets checks the files themselves.
  LOCKSTEP_REQUIRE(!c.data.train_images.empty(), "data.train_images: the training data must be given");
  // Why an images path without labels cannot be used: it is not there at all, or not HDF5.
  auto not_hdf5 = [](const std::string& path) {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(st)) return std::string(": cannot open (no such file or directory)");
    if (std::filesystem::is_directory(st)) return std::string(": is a directory, not a data file");
    return std::string(" is not an HDF5 data file (an IDX image file needs its IDX label file)");
  };
  LOCKSTEP_REQUIRE(!c.data.train_labels.empty() || h5::is_hdf5_file(c.data.train_images),
                   "data.train_labels is empty, but data.train_images = ", c.data.train_images,
                   not_hdf5(c.data.train_images));
  LOCKSTEP_REQUIRE(c.data.test_labels.empty() || !c.data.test_images.empty(),
                   "data.test_labels is set but data.test_images is empty: give both or neither");
  LOCKSTEP_REQUIRE(c.data.test_images.empty() || !c.data.test_labels.empty() || h5::is_hdf5_file(c.data.test_images),
                   "data.test_labels is empty, but data.test_images = ", c.data.test_images,
                   not_hdf5(c.data.test_images));
}

int model_classes(const DataConfig& d) {
  return d.class_subset.empty() ? d.classes : static_cast<int>(d.class_subset.size());
}

namespace {
// "runs/a/" and "runs/a" name one directory; paths built on it read "runs/a/x", not "runs/a//x".
std::string without_trailing_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}
}  // namespace

std::string run_dir_of(const Config& c) {
  return c.run.dir.empty() ? "runs/" + c.run.name : without_trailing_slashes(c.run.dir);
}
std::string checkpoint_dir_of(const Config& c) {
  return c.checkpoint.dir.empty() ? run_dir_of(c) + "/checkpoints" : without_trailing_slashes(c.checkpoint.dir);
}

}  // namespace lockstep
