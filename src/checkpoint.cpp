// The checkpoint file: HDF5 schema write/read (docs/checkpoint-format.md) and its broadcast.
#include "lockstep/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "checkpoint_checks.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/transfer.hpp"
#include "lockstep/version.hpp"

namespace lockstep {
namespace {

using namespace checkpoint_checks;

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  LOCKSTEP_REQUIRE(fd >= 0, path, ": cannot open to sync (", std::strerror(errno), ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  LOCKSTEP_REQUIRE(rc == 0, path, ": fsync failed (", std::strerror(err), ")");
}

std::string parent_dir(const std::string& path) {
  const auto p = std::filesystem::path(path).parent_path();
  return p.empty() ? "." : p.string();
}

void set_checksum(hid_t parent, const std::string& name, const std::string& sum) {
  h5::Handle obj(LOCKSTEP_H5_CHECK(H5Oopen(parent, name.c_str(), H5P_DEFAULT), "cannot open ", name));
  h5::set_attr(obj.get(), "checksum", sum);
}

void write_checked(hid_t parent, const std::string& name, const float* data, const std::vector<hsize_t>& dims) {
  h5::write(parent, name, data, dims);
  size_t n = 1;
  for (hsize_t d : dims) n *= static_cast<size_t>(d);
  set_checksum(parent, name, values_checksum(data, n * sizeof(float)));
}
void write_checked(hid_t parent, const std::string& name, const std::vector<float>& v) {
  write_checked(parent, name, v.data(), {static_cast<hsize_t>(v.size())});
}
void write_checked(hid_t parent, const std::string& name, const std::vector<int64_t>& v) {
  h5::write(parent, name, v);
  set_checksum(parent, name, values_checksum(v.data(), v.size() * sizeof(int64_t)));
}
void write_checked_string(hid_t parent, const std::string& name, const std::string& text) {
  h5::write_string(parent, name, text);
  set_checksum(parent, name, values_checksum(text.data(), text.size()));
}

void write_contents(hid_t file, const CheckpointData& ck) {
  using namespace h5;
  set_attr(file, "kind", std::string("lockstep-checkpoint"));
  set_attr(file, "format_version", ck.format_version);
  set_attr(file, "lockstep_version", ck.lockstep_version);
  set_attr(file, "created", ck.created);
  set_attr(file, "world_size", ck.world_size);
  set_attr(file, "global_batch", ck.global_batch);
  write_checked_string(file, "config", ck.config_toml);
  if (!ck.notes.empty()) {
    Handle notes = create_group(file, "provenance");
    for (const auto& [k, v] : ck.notes) set_attr(notes.get(), k, v);
  }

  Handle model = create_group(file, "model");
  const size_t n_layers = ck.layers.size() - 1;
  set_attr(model.get(), "num_layers", static_cast<int64_t>(n_layers));
  set_attr(model.get(), "num_params", static_cast<int64_t>(ck.params.size()));
  set_attr(model.get(), "activation", to_string(ck.activation));
  write_checked(model.get(), "widths", ck.layers);
  size_t off = 0;
  for (size_t l = 0; l < n_layers; ++l) {
    const auto in = static_cast<hsize_t>(ck.layers[l]), out = static_cast<hsize_t>(ck.layers[l + 1]);
    Handle layer = create_group(model.get(), "layer_" + std::to_string(l));
    set_attr(layer.get(), "activation", to_string(l + 1 == n_layers ? Activation::none : ck.activation));
    write_checked(layer.get(), "weight", ck.params.data() + off, {out, in});
    off += static_cast<size_t>(in * out);
    write_checked(layer.get(), "bias", ck.params.data() + off, {out});
    off += static_cast<size_t>(out);
  }
  set_attr(model.get(), "checksum", model_checksum(ck));

  Handle opt = create_group(file, "optimizer");
  const OptimizerConfig& o = ck.optimizer;
  set_attr(opt.get(), "name", to_string(o.name));
  set_attr(opt.get(), "step", ck.optimizer_step);
  set_attr(opt.get(), "lr", o.lr);
  set_attr(opt.get(), "momentum", o.momentum);
  set_attr(opt.get(), "nesterov", static_cast<int64_t>(o.nesterov));
  set_attr(opt.get(), "beta1", o.beta1);
  set_attr(opt.get(), "beta2", o.beta2);
  set_attr(opt.get(), "eps", o.eps);
  set_attr(opt.get(), "alpha", o.alpha);
  set_attr(opt.get(), "weight_decay", o.weight_decay);
  set_attr(opt.get(), "clip_norm", o.clip_norm);
  // Frozen layers (init.freeze) have no optimizer state: the buffers skip them.
  if (!ck.frozen_layers.empty()) write_checked(opt.get(), "frozen_layers", ck.frozen_layers);
  const auto names = optimizer_state_names(o.name);
  for (size_t i = 0; i < names.size(); ++i) write_checked(opt.get(), names[i], ck.optimizer_state.at(i));
  set_attr(opt.get(), "checksum", optimizer_checksum(ck));

  Handle tr = create_group(file, "trainer");
  const TrainerState& s = ck.trainer;
  set_attr(tr.get(), "epoch", s.epoch);
  set_attr(tr.get(), "step_in_epoch", s.step_in_epoch);
  set_attr(tr.get(), "sample_position", s.step_in_epoch * ck.global_batch);
  set_attr(tr.get(), "global_step", s.global_step);
  set_attr(tr.get(), "lr", ck.lr);
  set_attr(tr.get(), "epoch_loss_sum", s.epoch_loss);
  set_attr(tr.get(), "epoch_correct", s.epoch_correct);
  set_attr(tr.get(), "epoch_samples", s.epoch_samples);
  set_attr(tr.get(), "early_stop_best", s.early.best);
  set_attr(tr.get(), "early_stop_has_best", static_cast<int64_t>(s.early.has_best));
  set_attr(tr.get(), "early_stop_bad_epochs", s.early.bad_epochs);
  Handle rng = create_group(tr.get(), "rng");
  // Every random stream is a pure function of (seed, stream, index): the seed is the whole state.
  set_attr(rng.get(), "algorithm", std::string("xoshiro256** seeded by splitmix64(seed, stream, index)"));
  set_attr(rng.get(), "seed", static_cast<int64_t>(ck.seed));
  set_attr(rng.get(), "epoch", s.epoch);
  set_attr(tr.get(), "checksum", trainer_checksum(ck));
  write_checked_string(file, "metrics", ck.last_metrics_json);
  if (ck.data.known()) {
    Handle data = create_group(file, "data");
    set_attr(data.get(), "train_samples", ck.data.train_samples);
    set_attr(data.get(), "train_checksum", ck.data.train);
    set_attr(data.get(), "test_samples", ck.data.test_samples);
    set_attr(data.get(), "test_checksum", ck.data.test);
  }
}

}  // namespace

std::vector<std::string> optimizer_state_names(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return {};
    case OptimizerKind::momentum: return {"momentum_buffer"};
    case OptimizerKind::adam:
    case OptimizerKind::adamw: return {"exp_avg", "exp_avg_sq"};
    case OptimizerKind::adagrad: return {"sum_sq"};
    case OptimizerKind::rmsprop: return {"square_avg"};
  }
  return {};
}

void write_checkpoint(const std::string& path, const CheckpointData& ck) {
  const std::string dir = parent_dir(path);
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    {
      // A failed write (disk full) is reported once, by our message: not by HDF5's own printing too.
      h5::QuietErrors quiet;
      h5::Handle file = h5::create_file(tmp);
      write_contents(file.get(), ck);
      LOCKSTEP_H5_CHECK(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), tmp, ": flush failed");
      // Closing writes HDF5's remaining metadata; a failure here (disk full) must not be missed.
      LOCKSTEP_H5_CHECK(H5Fclose(file.release()), tmp, ": close failed");
    }
    fsync_path(tmp, false);
    LOCKSTEP_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": rename failed (", std::strerror(errno), ")");
    fsync_path(dir, true);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

int64_t checkpoint_global_step(const std::string& path) {
  using namespace h5;
  if (!std::filesystem::is_regular_file(path) || !is_hdf5_file(path)) return -1;
  try {
    QuietErrors quiet;
    Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file.valid() || !exists(file.get(), "trainer")) return -1;
    Handle tr = open_group(file.get(), "trainer");
    return attr_int(tr.get(), "global_step");
  } catch (const std::exception&) {
    return -1;
  }
}

CheckpointData read_checkpoint(const std::string& path) {
  using namespace h5;
  LOCKSTEP_REQUIRE(std::filesystem::is_regular_file(path), "checkpoint ", path, ": no such file");
  LOCKSTEP_REQUIRE(is_hdf5_file(path), "checkpoint ", path, ": not an HDF5 file (or truncated before its header)");
  CheckpointData ck;
  Handle file;
  {
    QuietErrors quiet;
    file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file.valid()) {
      const std::string why = last_error();
      const std::string hint = locking_hint(why);
      throw UserError(fmt("checkpoint ", path, ": cannot be opened as HDF5", hint.empty() ? ", probably truncated or damaged" : "",
                          " (HDF5: ", why, ")", hint));
    }
  }
  try {
    const hid_t f = file.get();
    LOCKSTEP_REQUIRE(has_attr(f, "kind") && attr_string(f, "kind") == "lockstep-checkpoint",
                     "not a lockstep checkpoint (no kind = lockstep-checkpoint attribute)");
    ck.format_version = attr_int(f, "format_version");
    LOCKSTEP_REQUIRE(ck.format_version == kCheckpointFormatVersion, "format version ", ck.format_version,
                     " is not supported by this lockstep (reads version ", kCheckpointFormatVersion, ")");
    ck.lockstep_version = attr_string(f, "lockstep_version");
    ck.created = attr_string(f, "created");
    ck.world_size = attr_int(f, "world_size");
    ck.global_batch = attr_int(f, "global_batch");
    ck.config_toml = read_string(f, "config");
    ck.last_metrics_json = read_string(f, "metrics");
    if (exists(f, "provenance")) {
      Handle notes = open_group(f, "provenance");
      H5O_info_t info;
      LOCKSTEP_H5_CHECK(H5Oget_info2(notes.get(), &info, H5O_INFO_NUM_ATTRS), "provenance attributes");
      for (hsize_t i = 0; i < info.num_attrs; ++i) {
        char name[256] = {0};
        H5Aget_name_by_idx(notes.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        ck.notes[name] = attr_string(notes.get(), name);
      }
    }

    Verifier verify;
    verify.check(f, "config", "/config", values_checksum(ck.config_toml.data(), ck.config_toml.size()));
    verify.check(f, "metrics", "/metrics", values_checksum(ck.last_metrics_json.data(), ck.last_metrics_json.size()));
    Handle model = open_group(f, "model");
    ck.layers = read_int64s(model.get(), "widths");
    verify.check(model.get(), "widths", "/model/widths", values_checksum(ck.layers.data(), ck.layers.size() * sizeof(int64_t)));
    LOCKSTEP_REQUIRE(ck.layers.size() >= 2, "model/widths has ", ck.layers.size(), " entries (needs at least 2)");
    for (size_t i = 0; i < ck.layers.size(); ++i)
      LOCKSTEP_REQUIRE(ck.layers[i] >= 1 && ck.layers[i] <= (int64_t{1} << 32), "model/widths: element ", i, " is ",
                       ck.layers[i]);
    const std::string act = attr_string(model.get(), "activation");
    LOCKSTEP_REQUIRE(from_string(act, ck.activation), "model: unknown activation '", act, "'");
    verify.check(model.get(), "", "/model", model_checksum(ck), "the attributes of");
    for (size_t l = 0; l + 1 < ck.layers.size(); ++l) {
      const std::string name = "layer_" + std::to_string(l);
      if (!exists(model.get(), name)) throw UserError(fmt("missing group /model/", name));
      Handle layer = open_group(model.get(), name);
      for (const char* part : {"weight", "bias"})
        if (!exists(layer.get(), part)) throw UserError(fmt("missing dataset /model/", name, "/", part));
      const auto w = read_floats(layer.get(), "weight");
      const auto b = read_floats(layer.get(), "bias");
      LOCKSTEP_REQUIRE(w.size() == static_cast<size_t>(ck.layers[l] * ck.layers[l + 1]) &&
                           b.size() == static_cast<size_t>(ck.layers[l + 1]),
                       "layer_", l, " has shapes that disagree with model/widths");
      const std::string at = "/model/" + name + "/";
      verify.check(layer.get(), "weight", at + "weight", values_checksum(w.data(), w.size() * sizeof(float)));
      verify.check(layer.get(), "bias", at + "bias", values_checksum(b.data(), b.size() * sizeof(float)));
      require_finite(w, at + "weight", ck.layers[l]);
      require_finite(b, at + "bias", 1);
      ck.params.insert(ck.params.end(), w.begin(), w.end());
      ck.params.insert(ck.params.end(), b.begin(), b.end());
    }

    Handle opt = open_group(f, "optimizer");
    OptimizerConfig& o = ck.optimizer;
    const std::string opt_name = attr_string(opt.get(), "name");
    LOCKSTEP_REQUIRE(from_string(opt_name, o.name), "optimizer: unknown name '", opt_name, "'");
    ck.optimizer_step = attr_int(opt.get(), "step");
    o.lr = attr_double(opt.get(), "lr");
    o.momentum = attr_double(opt.get(), "momentum");
    o.nesterov = attr_int(opt.get(), "nesterov") != 0;
    o.beta1 = attr_double(opt.get(), "beta1");
    o.beta2 = attr_double(opt.get(), "beta2");
    o.eps = attr_double(opt.get(), "eps");
    o.alpha = attr_double(opt.get(), "alpha");
    o.weight_decay = attr_double(opt.get(), "weight_decay");
    o.clip_norm = attr_double(opt.get(), "clip_norm");
    verify.check(opt.get(), "", "/optimizer", optimizer_checksum(ck), "the attributes of");
    if (exists(opt.get(), "frozen_layers")) {
      ck.frozen_layers = read_int64s(opt.get(), "frozen_layers");
      verify.check(opt.get(), "frozen_layers", "/optimizer/frozen_layers",
                   values_checksum(ck.frozen_layers.data(), ck.frozen_layers.size() * sizeof(int64_t)));
    }
    for (int64_t l : ck.frozen_layers)
      LOCKSTEP_REQUIRE(l >= 0 && l + 1 < static_cast<int64_t>(ck.layers.size()), "optimizer/frozen_layers: layer ", l,
                       " does not exist");
    const size_t trainable = trainable_count(ck.layers, ck.frozen_layers);
    for (const auto& name : optimizer_state_names(o.name)) {
      const std::string at = "/optimizer/" + name;
      if (!exists(opt.get(), name)) throw UserError(fmt("missing dataset ", at, " (the ", opt_name, " optimizer's state)"));
      ck.optimizer_state.push_back(read_floats(opt.get(), name));
      const std::vector<float>& v = ck.optimizer_state.back();
      LOCKSTEP_REQUIRE(v.size() == trainable, "optimizer/", name, " has ", v.size(), " values for ", trainable,
                       " trainable parameters");
      verify.check(opt.get(), name, at, values_checksum(v.data(), v.size() * sizeof(float)));
      require_finite(v, at, 1);
      // Running sums and averages of squared gradients are never negative.
      if (name == "exp_avg_sq" || name == "sum_sq" || name == "square_avg") {
        const auto neg = std::find_if(v.begin(), v.end(), [](float x) { return x < 0.0f; });
        LOCKSTEP_REQUIRE(neg == v.end(), "dataset ", at, ": element [", neg - v.begin(), "] is negative (", *neg,
                         "), which a sum of squares cannot be: the file is damaged");
      }
    }

    Handle tr = open_group(f, "trainer");
    TrainerState& s = ck.trainer;
    s.epoch = attr_int(tr.get(), "epoch");
    s.step_in_epoch = attr_int(tr.get(), "step_in_epoch");
    s.global_step = attr_int(tr.get(), "global_step");
    s.epoch_loss = attr_double(tr.get(), "epoch_loss_sum");
    s.epoch_correct = attr_int(tr.get(), "epoch_correct");
    s.epoch_samples = attr_int(tr.get(), "epoch_samples");
    s.early.best = attr_double(tr.get(), "early_stop_best");
    s.early.has_best = attr_int(tr.get(), "early_stop_has_best") != 0;
    s.early.bad_epochs = attr_int(tr.get(), "early_stop_bad_epochs");
    ck.lr = attr_double(tr.get(), "lr");
    Handle rng = open_group(tr.get(), "rng");
    ck.seed = static_cast<uint64_t>(attr_int(rng.get(), "seed"));
    const bool has_position = has_attr(tr.get(), "sample_position");
    const int64_t position = has_position ? attr_int(tr.get(), "sample_position") : 0;
    verify.check(tr.get(), "", "/trainer", trainer_checksum(ck), "the attributes of");
    // Files without checksums (and a consistent edit of one) still meet the range checks.
    check_trainer_state(ck, has_position, position);
    if (exists(f, "data")) {
      Handle data = open_group(f, "data");
      ck.data.train_samples = attr_int(data.get(), "train_samples");
      ck.data.train = attr_string(data.get(), "train_checksum");
      ck.data.test_samples = attr_int(data.get(), "test_samples");
      ck.data.test = attr_string(data.get(), "test_checksum");
    }
    ck.checksums_verified = verify.verified;
    ck.checksums_missing = verify.missing;
  } catch (const UserError& e) {
    throw UserError(fmt("checkpoint ", path, ": ", e.what()));
  } catch (const Error& e) {
    throw UserError(fmt("checkpoint ", path, ": unreadable, probably truncated or damaged (", e.what(), ")"));
  }
  return ck;
}

namespace {
template <typename T>
void bcast_vector(Comm& comm, std::vector<T>& v, int root) {
  int64_t n = static_cast<int64_t>(v.size());
  comm.broadcast(&n, sizeof n, root);
  v.resize(static_cast<size_t>(n));
  if (n > 0) comm.broadcast(v.data(), v.size() * sizeof(T), root);
}
template <typename T>
void bcast_pod(Comm& comm, T& v, int root) {
  comm.broadcast(&v, sizeof v, root);
}
}  // namespace

void broadcast_checkpoint(Comm& comm, CheckpointData& ck, int root) {
  bcast_pod(comm, ck.format_version, root);
  comm.broadcast_string(ck.lockstep_version, root);
  comm.broadcast_string(ck.created, root);
  bcast_pod(comm, ck.world_size, root);
  bcast_pod(comm, ck.global_batch, root);
  comm.broadcast_string(ck.config_toml, root);
  int64_t n_notes = static_cast<int64_t>(ck.notes.size());
  bcast_pod(comm, n_notes, root);
  std::vector<std::pair<std::string, std::string>> notes(ck.notes.begin(), ck.notes.end());
  notes.resize(static_cast<size_t>(n_notes));
  for (auto& [k, v] : notes) {
    comm.broadcast_string(k, root);
    comm.broadcast_string(v, root);
  }
  ck.notes = std::map<std::string, std::string>(notes.begin(), notes.end());
  bcast_vector(comm, ck.layers, root);
  bcast_pod(comm, ck.activation, root);
  bcast_vector(comm, ck.params, root);
  bcast_pod(comm, ck.optimizer, root);
  bcast_pod(comm, ck.optimizer_step, root);
  int64_t n_state = static_cast<int64_t>(ck.optimizer_state.size());
  bcast_pod(comm, n_state, root);
  ck.optimizer_state.resize(static_cast<size_t>(n_state));
  for (auto& s : ck.optimizer_state) bcast_vector(comm, s, root);
  bcast_vector(comm, ck.frozen_layers, root);
  bcast_pod(comm, ck.trainer, root);
  bcast_pod(comm, ck.seed, root);
  bcast_pod(comm, ck.lr, root);
  comm.broadcast_string(ck.last_metrics_json, root);
  bcast_pod(comm, ck.data.train_samples, root);
  comm.broadcast_string(ck.data.train, root);
  bcast_pod(comm, ck.data.test_samples, root);
  comm.broadcast_string(ck.data.test, root);
  bcast_pod(comm, ck.checksums_verified, root);
  bcast_pod(comm, ck.checksums_missing, root);
}

}  // namespace lockstep
