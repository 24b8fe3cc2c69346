// Every configuration key, once: name, type and range, default (from config.hpp's initialisers)
// and documentation. Adding a key means adding one line here and a member in config.hpp.
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include "config_table.hpp"
#include "lockstep/check.hpp"

namespace lockstep {
namespace {

template <typename E>
using NameTable = std::vector<std::pair<const char*, E>>;

const NameTable<Activation>& activation_names() {
  static const NameTable<Activation> t{{"relu", Activation::relu}, {"tanh", Activation::tanh},
                                       {"sigmoid", Activation::sigmoid}, {"gelu", Activation::gelu},
                                       {"none", Activation::none}};
  return t;
}
const NameTable<OptimizerKind>& optimizer_names() {
  static const NameTable<OptimizerKind> t{{"sgd", OptimizerKind::sgd},         {"momentum", OptimizerKind::momentum},
                                          {"adam", OptimizerKind::adam},       {"adamw", OptimizerKind::adamw},
                                          {"adagrad", OptimizerKind::adagrad}, {"rmsprop", OptimizerKind::rmsprop}};
  return t;
}
const NameTable<ScheduleKind>& schedule_names() {
  static const NameTable<ScheduleKind> t{{"constant", ScheduleKind::constant}, {"step", ScheduleKind::step},
                                         {"exponential", ScheduleKind::exponential}, {"cosine", ScheduleKind::cosine}};
  return t;
}
const NameTable<Normalize>& normalize_names() {
  static const NameTable<Normalize> t{{"scale", Normalize::scale}, {"standardize", Normalize::standardize}};
  return t;
}
const NameTable<InitKind>& init_names() {
  static const NameTable<InitKind> t{{"auto", InitKind::auto_}, {"he", InitKind::he}, {"xavier", InitKind::xavier}};
  return t;
}
const NameTable<StopMetric>& metric_names() {
  static const NameTable<StopMetric> t{{"val_loss", StopMetric::val_loss}, {"val_accuracy", StopMetric::val_accuracy}};
  return t;
}
const NameTable<NonFinitePolicy>& non_finite_names() {
  static const NameTable<NonFinitePolicy> t{{"stop", NonFinitePolicy::stop}, {"skip", NonFinitePolicy::skip}};
  return t;
}
const NameTable<DeviceChoice>& device_names() {
  static const NameTable<DeviceChoice> t{{"cpu", DeviceChoice::cpu}, {"cuda", DeviceChoice::cuda}, {"auto", DeviceChoice::auto_}};
  return t;
}

template <typename E>
std::string name_of(const NameTable<E>& t, E v) {
  for (const auto& [n, e] : t) if (e == v) return n;
  return "?";
}

template <typename E>
std::string choices(const NameTable<E>& t) {
  std::string s;
  for (const auto& [n, e] : t) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

std::string quoted(const std::string& s) {
  std::ostringstream os;
  os << toml::value<std::string>(s);
  return os.str();
}

// The shortest text that reads back as exactly v (0.9, not 0.90000000000000002).
std::string show_double(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  // TOML needs a '.' or exponent to read a float back as a float.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// Member accessors: a lambda from Config& to the member's reference.
template <typename Get>
auto& member(Get get, const Config& c) { return get(const_cast<Config&>(c)); }

using detail::KeyDef;

// The allowed values of a float key. `single` marks a value the optimizer or loss kernels use in
// single precision (kernels/*.hpp take float scalars): it must then also be a normal float, so
// that it neither overflows to inf nor flushes to zero (flush-to-zero is on), and an open upper
// bound holds after the rounding too (0.99999999 rounds to 1.0f).
struct FloatRange {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false, single = false;
};

std::string range_text(const FloatRange& r) {
  std::string type = "float";
  if (r.lo > -std::numeric_limits<double>::infinity()) type += fmt(r.lo_open ? " > " : " >= ", r.lo);
  const double hi = r.single ? std::min<double>(r.hi, std::numeric_limits<float>::max()) : r.hi;
  if (hi < std::numeric_limits<double>::infinity()) type += fmt(type == "float" ? " " : ", ", r.hi_open ? "< " : "<= ", hi);
  if (r.single) type += " (single precision)";
  return type;
}

void check_float(double v, const FloatRange& r) {
  const std::string got = show_double(v);  // all its digits: 0.99999999, not 1
  LOCKSTEP_REQUIRE(std::isfinite(v), "must be finite, got ", got);
  LOCKSTEP_REQUIRE(r.lo_open ? v > r.lo : v >= r.lo, "must be ", r.lo_open ? "> " : ">= ", r.lo, ", got ", got);
  LOCKSTEP_REQUIRE(r.hi_open ? v < r.hi : v <= r.hi, "must be ", r.hi_open ? "< " : "<= ", r.hi, ", got ", got);
  if (!r.single || v == 0.0) return;
  constexpr double kMax = std::numeric_limits<float>::max(), kMin = std::numeric_limits<float>::min();
  const double mag = std::fabs(v);
  LOCKSTEP_REQUIRE(mag <= kMax, "must be <= ", kMax, " (the largest single-precision float), got ", got);
  LOCKSTEP_REQUIRE(mag >= kMin, "must be 0 or at least ", kMin, " in magnitude: the update runs in single precision, "
                   "where ", got, " flushes to zero");
  const double f = static_cast<float>(v);
  LOCKSTEP_REQUIRE(!r.hi_open || f < r.hi, "must be < ", r.hi, ", got ", got, ", which rounds to ", show_double(f),
                   " in single precision, where the update runs");
}

template <typename Get>
KeyDef float_key(std::string key, std::string doc, Get get, FloatRange r) {
  return KeyDef{key, range_text(r), doc,
                [=](Config& c, const toml::node& n) {
                  auto v = n.value<double>();
                  LOCKSTEP_REQUIRE(v && (n.is_floating_point() || n.is_integer()), "expected a number");
                  check_float(*v, r);
                  get(c) = *v;
                },
                [=](const Config& c) { return show_double(member(get, c)); }};
}

template <typename Get>
KeyDef int_key(std::string key, std::string doc, Get get, int64_t lo, int64_t hi = std::numeric_limits<int64_t>::max()) {
  std::string type = fmt("integer >= ", lo);
  if (hi < std::numeric_limits<int64_t>::max()) type += fmt(", <= ", hi);
  return KeyDef{key, type, doc,
                [=](Config& c, const toml::node& n) {
                  LOCKSTEP_REQUIRE(n.is_integer(), "expected an integer");
                  const int64_t v = *n.value<int64_t>();
                  LOCKSTEP_REQUIRE(v >= lo && v <= hi, "must be ", v < lo ? fmt(">= ", lo) : fmt("<= ", hi), ", got ", v);
                  using T = std::remove_reference_t<decltype(get(c))>;
                  get(c) = static_cast<T>(v);
                },
                [=](const Config& c) { return fmt(member(get, c)); }};
}

template <typename Get>
KeyDef bool_key(std::string key, std::string doc, Get get) {
  return KeyDef{key, "bool", doc,
                [=](Config& c, const toml::node& n) {
                  LOCKSTEP_REQUIRE(n.is_boolean(), "expected true or false");
                  get(c) = *n.value<bool>();
                },
                [=](const Config& c) { return std::string(member(get, c) ? "true" : "false"); }};
}

// The offset of the first byte that is not part of well-formed UTF-8, or npos.
size_t invalid_utf8_at(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1Fu) : len == 3 ? (b & 0x0Fu) : (b & 0x07u);
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c >> 6) != 0x2) return i;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

template <typename Get>
KeyDef string_key(std::string key, std::string doc, Get get) {
  return KeyDef{key, "string", doc,
                [=](Config& c, const toml::node& n) {
                  LOCKSTEP_REQUIRE(n.is_string(), "expected a string");
                  const std::string v = *n.value<std::string>();
                  // A file is UTF-8 by TOML's rules; a --set value comes raw from the command line.
                  // Other bytes would come back changed from the resolved config.toml (0xE9 is
                  // written as \u00E9, read back as two bytes), e.g. a different data path on
                  // resume (found by fuzz_config).
                  const size_t bad = invalid_utf8_at(v);
                  LOCKSTEP_REQUIRE(bad == std::string::npos, "not valid UTF-8 (byte 0x", std::hex,
                                   static_cast<int>(static_cast<unsigned char>(v[bad])), std::dec, " at offset ", bad,
                                   "); config values are UTF-8 text");
                  get(c) = v;
                },
                [=](const Config& c) { return quoted(member(get, c)); }};
}

template <typename E, typename Get>
KeyDef enum_key(std::string key, std::string doc, Get get, const NameTable<E>& names) {
  return KeyDef{key, "one of: " + choices(names), doc,
                [=, &names](Config& c, const toml::node& n) {
                  LOCKSTEP_REQUIRE(n.is_string(), "expected a string, one of: ", choices(names));
                  const std::string v = *n.value<std::string>();
                  for (const auto& [name, e] : names) {
                    if (v == name) {
                      get(c) = e;
                      return;
                    }
                  }
                  throw UserError(fmt("unknown value \"", v, "\" (expected one of: ", choices(names), ")"));
                },
                [=, &names](const Config& c) { return quoted(name_of(names, member(get, c))); }};
}

template <typename Get>
KeyDef int_list_key(std::string key, std::string doc, Get get, int64_t lo,
                    int64_t hi = std::numeric_limits<int64_t>::max()) {
  std::string type = fmt("list of integers >= ", lo);
  if (hi < std::numeric_limits<int64_t>::max()) type += fmt(", <= ", hi);
  return KeyDef{key, type, doc,
                [=](Config& c, const toml::node& n) {
                  const auto* arr = n.as_array();
                  LOCKSTEP_REQUIRE(arr, "expected a list of integers, e.g. [784, 256, 10]");
                  std::vector<int64_t> out;
                  for (size_t i = 0; i < arr->size(); ++i) {
                    const auto& e = *arr->get(i);
                    LOCKSTEP_REQUIRE(e.is_integer(), "element ", i, " is not an integer");
                    const int64_t v = *e.value<int64_t>();
                    LOCKSTEP_REQUIRE(v >= lo, "element ", i, " is ", v, " (must be >= ", lo, ")");
                    LOCKSTEP_REQUIRE(v <= hi, "element ", i, " is ", v, " (must be <= ", hi, ")");
                    out.push_back(v);
                  }
                  get(c) = out;
                },
                [=](const Config& c) {
                  std::string s = "[";
                  const auto& v = member(get, c);
                  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + fmt(v[i]);
                  return s + "]";
                }};
}

constexpr double kInf = std::numeric_limits<double>::infinity();
// Matrix sides are 32-bit integers in the BLAS and cuBLAS calls: layer widths and batch rows.
constexpr int64_t kMaxMatrixSide = std::numeric_limits<int32_t>::max();
// [0, 1), in single precision: a decay or smoothing factor whose complement must not vanish.
constexpr FloatRange kUnitOpen{0.0, 1.0, false, true, true};

std::vector<KeyDef> build_table() {
  std::vector<KeyDef> t;
  // [run]
  t.push_back(string_key("run.name", "name of the run; the run directory defaults to runs/<name>",
                         [](Config& c) -> auto& { return c.run.name; }));
  t.push_back(string_key("run.dir", "run directory (metrics.jsonl, config.toml, checkpoints); empty: runs/<name>",
                         [](Config& c) -> auto& { return c.run.dir; }));
  t.push_back(int_key("run.seed", "seed of initial weights, validation split and data order",
                      [](Config& c) -> auto& { return c.run.seed; }, 0));
  t.push_back(enum_key("run.device", "compute device; auto uses a GPU when one is usable",
                       [](Config& c) -> auto& { return c.run.device; }, device_names()));
  t.push_back(bool_key("run.tf32", "GPU matrix products on TF32 tensor cores (faster, ~1e-3 relative error)",
                       [](Config& c) -> auto& { return c.run.tf32; }));
  t.push_back(bool_key("run.allow_shared_gpu", "let ranks of a node share a GPU (their allreduce then goes over MPI)",
                       [](Config& c) -> auto& { return c.run.allow_shared_gpu; }));
  t.push_back(bool_key("run.shared_memory_allreduce",
                       "CPU runs: the ranks of a node sum their gradients in shared memory, MPI only between "
                       "nodes; false: MPI_Allreduce for all of it",
                       [](Config& c) -> auto& { return c.run.shared_memory_allreduce; }));
  // [data]
  t.push_back(string_key("data.train_images",
                         "training images (IDX, raw or gzip), or an HDF5 data file with /features and /labels",
                         [](Config& c) -> auto& { return c.data.train_images; }));
  t.push_back(string_key("data.train_labels",
                         "training labels (IDX, raw or gzip); must be empty when train_images is an HDF5 file",
                         [](Config& c) -> auto& { return c.data.train_labels; }));
  t.push_back(string_key("data.test_images", "test images (IDX) or HDF5 data file; empty: no test set",
                         [](Config& c) -> auto& { return c.data.test_images; }));
  t.push_back(string_key("data.test_labels", "test labels (IDX); must be empty when test_images is an HDF5 file",
                         [](Config& c) -> auto& { return c.data.test_labels; }));
  t.push_back(int_key("data.classes", "number of classes; labels must lie in [0, classes)",
                      [](Config& c) -> auto& { return c.data.classes; }, 2, 1 << 20));
  t.push_back(int_key("data.val_size", "training samples held out for validation (chosen by run.seed); 0: none",
                      [](Config& c) -> auto& { return c.data.val_size; }, 0));
  t.push_back(enum_key("data.normalize", "pixel scaling: scale to [0,1], or standardize with the training set's mean/std",
                       [](Config& c) -> auto& { return c.data.normalize; }, normalize_names()));
  t.push_back(int_key("data.eval_batch", "rows per forward pass when evaluating",
                      [](Config& c) -> auto& { return c.data.eval_batch; }, 1, kMaxMatrixSide));
  t.push_back(int_list_key("data.class_subset",
                           "train and test on these classes only, relabelled 0..k-1 in the order given (model.layers "
                           "then ends in k); []: all data.classes",
                           [](Config& c) -> auto& { return c.data.class_subset; }, 0));
  t.push_back(int_key("data.train_limit",
                      "keep only this many training samples (chosen by run.seed, after the validation split); 0: all",
                      [](Config& c) -> auto& { return c.data.train_limit; }, 0));
  // [model]
  t.push_back(int_list_key("model.layers", "layer widths from input to classes, e.g. [784, 256, 128, 10]",
                           [](Config& c) -> auto& { return c.model.layers; }, 1, kMaxMatrixSide));
  t.push_back(enum_key("model.activation", "activation of the hidden layers (the output layer is linear)",
                       [](Config& c) -> auto& { return c.model.activation; }, activation_names()));
  t.push_back(enum_key("model.init", "weight initialisation; auto: He for relu/gelu, Xavier otherwise",
                       [](Config& c) -> auto& { return c.model.init; }, init_names()));
  // [train]
  t.push_back(int_key("train.epochs", "passes over the training set",
                      [](Config& c) -> auto& { return c.train.epochs; }, 1));
  t.push_back(int_key("train.batch_size", "global batch: samples per optimizer step, summed over all ranks",
                      [](Config& c) -> auto& { return c.train.batch_size; }, 1));
  t.push_back(int_key("train.grad_accum", "micro-batches per optimizer step on each rank (one allreduce per step)",
                      [](Config& c) -> auto& { return c.train.grad_accum; }, 1));
  t.push_back(bool_key("train.drop_last", "drop the last partial batch of each epoch",
                       [](Config& c) -> auto& { return c.train.drop_last; }));
  t.push_back(int_key("train.max_steps", "stop after this many optimizer steps in total; 0: no limit. Also the horizon of the "
                      "cosine schedule (its last step), so a capped run decays faster than an uncapped one",
                      [](Config& c) -> auto& { return c.train.max_steps; }, 0));
  t.push_back(bool_key("train.progress", "progress bar on rank 0 while an epoch runs (only on a terminal)",
                       [](Config& c) -> auto& { return c.train.progress; }));
  t.push_back(enum_key("train.non_finite",
                       "a NaN/inf loss or gradient norm on any rank: stop (exit 5, naming the step) or skip the step",
                       [](Config& c) -> auto& { return c.train.non_finite; }, non_finite_names()));
  t.push_back(int_key("train.check_replicas_every",
                      "compare a checksum of the weights across ranks every N steps (stop on a mismatch); 0: off",
                      [](Config& c) -> auto& { return c.train.check_replicas_every; }, 0));
  // [optimizer]
  t.push_back(enum_key("optimizer.name", "update rule", [](Config& c) -> auto& { return c.optimizer.name; },
                       optimizer_names()));
  // Ranges from the update formulas (kernels/optimizer_update.hpp), all in single precision.
  t.push_back(float_key("optimizer.lr", "base learning rate", [](Config& c) -> auto& { return c.optimizer.lr; },
                        {0.0, kInf, true, false, true}));
  t.push_back(float_key("optimizer.momentum",
                        "momentum coefficient mu (momentum): buf = mu buf + g; below 1, or the buffer never forgets",
                        [](Config& c) -> auto& { return c.optimizer.momentum; }, kUnitOpen));
  t.push_back(bool_key("optimizer.nesterov", "Nesterov momentum (momentum)",
                       [](Config& c) -> auto& { return c.optimizer.nesterov; }));
  t.push_back(float_key("optimizer.beta1",
                        "first-moment decay (adam, adamw); below 1: the bias correction divides by 1 - beta1^t",
                        [](Config& c) -> auto& { return c.optimizer.beta1; }, kUnitOpen));
  t.push_back(float_key("optimizer.beta2",
                        "second-moment decay (adam, adamw); below 1: the bias correction divides by 1 - beta2^t",
                        [](Config& c) -> auto& { return c.optimizer.beta2; }, kUnitOpen));
  t.push_back(float_key("optimizer.eps", "denominator epsilon (adam, adamw, adagrad, rmsprop)",
                        [](Config& c) -> auto& { return c.optimizer.eps; }, {0.0, kInf, true, false, true}));
  t.push_back(float_key("optimizer.alpha",
                        "squared-gradient smoothing (rmsprop): v = alpha v + (1 - alpha) g^2; below 1, or v stays 0",
                        [](Config& c) -> auto& { return c.optimizer.alpha; }, kUnitOpen));
  t.push_back(float_key("optimizer.weight_decay",
                        "L2 penalty (decoupled for adamw); with sgd, momentum and adamw lr * weight_decay must be "
                        "below 1 (each step scales the weights by 1 - lr * weight_decay)",
                        [](Config& c) -> auto& { return c.optimizer.weight_decay; }, {0.0, kInf, false, false, true}));
  t.push_back(float_key("optimizer.clip_norm", "clip the averaged gradient to this global L2 norm; 0: off",
                        [](Config& c) -> auto& { return c.optimizer.clip_norm; }, {0.0, kInf}));
  // [schedule]
  t.push_back(enum_key("schedule.kind", "learning-rate decay after warmup",
                       [](Config& c) -> auto& { return c.schedule.kind; }, schedule_names()));
  t.push_back(int_key("schedule.warmup_steps", "linear warmup from lr/warmup_steps to lr over this many steps",
                      [](Config& c) -> auto& { return c.schedule.warmup_steps; }, 0));
  t.push_back(int_key("schedule.step_size", "step: multiply by gamma every step_size steps",
                      [](Config& c) -> auto& { return c.schedule.step_size; }, 1));
  t.push_back(float_key("schedule.gamma", "step/exponential decay factor",
                        [](Config& c) -> auto& { return c.schedule.gamma; }, {0.0, 1.0, true}));
  t.push_back(int_key("schedule.decay_steps", "exponential: lr * gamma^(t / decay_steps)",
                      [](Config& c) -> auto& { return c.schedule.decay_steps; }, 1));
  t.push_back(float_key("schedule.min_lr", "cosine: the learning rate at the last step (at most optimizer.lr)",
                        [](Config& c) -> auto& { return c.schedule.min_lr; }, {0.0, kInf}));
  // [early_stopping]
  t.push_back(bool_key("early_stopping.enabled", "stop when the validation metric stops improving",
                       [](Config& c) -> auto& { return c.early_stopping.enabled; }));
  t.push_back(enum_key("early_stopping.metric", "metric watched",
                       [](Config& c) -> auto& { return c.early_stopping.metric; }, metric_names()));
  t.push_back(int_key("early_stopping.patience", "epochs without improvement before stopping",
                      [](Config& c) -> auto& { return c.early_stopping.patience; }, 1));
  t.push_back(float_key("early_stopping.min_delta", "smallest change that counts as an improvement",
                        [](Config& c) -> auto& { return c.early_stopping.min_delta; }, {0.0, kInf}));
  // [checkpoint]
  t.push_back(string_key("checkpoint.dir", "where checkpoints go; empty: <run dir>/checkpoints",
                         [](Config& c) -> auto& { return c.checkpoint.dir; }));
  t.push_back(int_key("checkpoint.every_epochs", "save after every N epochs; 0: off",
                      [](Config& c) -> auto& { return c.checkpoint.every_epochs; }, 0));
  t.push_back(int_key("checkpoint.every_steps", "save after every N optimizer steps; 0: off",
                      [](Config& c) -> auto& { return c.checkpoint.every_steps; }, 0));
  t.push_back(int_key("checkpoint.keep", "periodic checkpoints kept on disk (best.h5 is kept besides)",
                      [](Config& c) -> auto& { return c.checkpoint.keep; }, 1));
  t.push_back(bool_key("checkpoint.at_end", "save a checkpoint when training ends",
                       [](Config& c) -> auto& { return c.checkpoint.at_end; }));
  // [distill]
  t.push_back(string_key("distill.teacher",
                         "teacher checkpoint to distill from (lockstep distill --teacher); empty: plain training",
                         [](Config& c) -> auto& { return c.distill.teacher; }));
  t.push_back(float_key("distill.temperature",
                        "softmax temperature T of the teacher's and student's soft targets (alpha T^2 must be finite "
                        "in single precision)",
                        [](Config& c) -> auto& { return c.distill.temperature; }, {0.0, 1e19, true, false, true}));
  t.push_back(float_key("distill.alpha",
                        "weight of the soft targets: alpha T^2 KL(teacher || student) + (1 - alpha) CE(labels)",
                        [](Config& c) -> auto& { return c.distill.alpha; }, {0.0, 1.0}));
  t.push_back(string_key("distill.cache",
                         "HDF5 file of the teacher's logits per training sample (made by --cache-teacher); empty: "
                         "run the teacher live",
                         [](Config& c) -> auto& { return c.distill.cache; }));
  // [init]
  t.push_back(string_key("init.from",
                         "checkpoint whose layers initialise the model (a fine-tune: fresh optimizer, schedule and "
                         "epochs); empty: random init",
                         [](Config& c) -> auto& { return c.init.from; }));
  t.push_back(int_list_key("init.freeze",
                           "layers (0 = the input layer) whose weights and biases do not train: no gradient, no "
                           "allreduce, no optimizer state",
                           [](Config& c) -> auto& { return c.init.freeze; }, 0));
  t.push_back(bool_key("init.reset_head",
                       "re-initialise the output layer instead of loading it from init.from (e.g. a new class count)",
                       [](Config& c) -> auto& { return c.init.reset_head; }));
  return t;
}

}  // namespace

namespace detail {
const std::vector<KeyDef>& key_table() {
  static const std::vector<KeyDef> table = build_table();  // immutable after construction
  return table;
}
}  // namespace detail

template <typename E>
bool value_of(const NameTable<E>& t, const std::string& name, E& out) {
  for (const auto& [n, e] : t) {
    if (name == n) {
      out = e;
      return true;
    }
  }
  return false;
}

bool from_string(const std::string& name, Activation& out) { return value_of(activation_names(), name, out); }
bool from_string(const std::string& name, OptimizerKind& out) { return value_of(optimizer_names(), name, out); }

std::string to_string(Activation a) { return name_of(activation_names(), a); }
std::string to_string(OptimizerKind k) { return name_of(optimizer_names(), k); }
std::string to_string(ScheduleKind k) { return name_of(schedule_names(), k); }
std::string to_string(DeviceChoice d) { return name_of(device_names(), d); }

}  // namespace lockstep
