// Checkpoint checksums and the checks of what they cannot vouch for (see checkpoint_checks.hpp).
// Every dataset carries a `checksum` attribute over its values; /trainer, /model and /optimizer
// carry one over their scalars in a fixed order. A reader recomputes and compares.
#include "checkpoint_checks.hpp"

#include <cmath>

#include "lockstep/check.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/h5.hpp"

namespace lockstep::checkpoint_checks {

std::string values_checksum(const void* data, size_t bytes) { return hex64(fnv1a64_words(data, bytes)); }

namespace {

// The bytes of a group's scalars, each 8 bytes (a string: its length, then its bytes).
struct ScalarBytes {
  std::vector<unsigned char> bytes;
  template <typename T>
  ScalarBytes& add(T v) {
    const auto* p = reinterpret_cast<const unsigned char*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof v);
    return *this;
  }
  ScalarBytes& add(const std::string& v) {
    add(static_cast<int64_t>(v.size()));
    bytes.insert(bytes.end(), v.begin(), v.end());
    return *this;
  }
  std::string checksum() const { return values_checksum(bytes.data(), bytes.size()); }
};

}  // namespace

// /trainer's attributes (and the root's world_size and global_batch, which position depends on).
std::string trainer_checksum(const CheckpointData& ck) {
  const TrainerState& s = ck.trainer;
  ScalarBytes b;
  b.add(ck.world_size).add(ck.global_batch).add(s.epoch).add(s.step_in_epoch).add(s.step_in_epoch * ck.global_batch);
  b.add(s.global_step).add(ck.lr).add(s.epoch_loss).add(s.epoch_correct).add(s.epoch_samples).add(s.early.best);
  b.add(static_cast<int64_t>(s.early.has_best)).add(s.early.bad_epochs).add(static_cast<int64_t>(ck.seed));
  return b.checksum();
}

// /model's attribute that a reader takes from the file: the activation (eval and inspect use it;
// the shapes come from /model/widths, which carries its own checksum).
std::string model_checksum(const CheckpointData& ck) {
  ScalarBytes b;
  b.add(to_string(ck.activation));
  return b.checksum();
}

std::string optimizer_checksum(const CheckpointData& ck) {
  const OptimizerConfig& o = ck.optimizer;
  ScalarBytes b;
  b.add(to_string(o.name)).add(ck.optimizer_step).add(o.lr).add(o.momentum).add(static_cast<int64_t>(o.nesterov));
  b.add(o.beta1).add(o.beta2).add(o.eps).add(o.alpha).add(o.weight_decay).add(o.clip_norm);
  return b.checksum();
}

void Verifier::check(hid_t parent, const std::string& name, const std::string& obj_path,
                   const std::string& computed, const char* kind) {
  h5::Handle obj(name.empty() ? H5I_INVALID_HID
                              : LOCKSTEP_H5_CHECK(H5Oopen(parent, name.c_str(), H5P_DEFAULT), "cannot open ", obj_path));
  const hid_t id = name.empty() ? parent : obj.get();
  if (!h5::has_attr(id, "checksum")) {
    ++missing;
    return;
  }
  const std::string stored = h5::attr_string(id, "checksum");
  LOCKSTEP_REQUIRE(stored == computed, kind, " ", obj_path, ": checksum mismatch (stored ", stored, ", computed ",
                   computed, "); the file is damaged");
  ++verified;
}

// A checkpoint holds finite weights and optimizer state; a NaN or inf there is damage (or a
// diverged run saved), reported as bad input naming the dataset, never trained on.
void require_finite(const std::vector<float>& v, const std::string& obj_path, int64_t columns) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isfinite(v[i])) continue;
    const auto c = static_cast<int64_t>(columns);
    const std::string where = c > 1 ? fmt("[", static_cast<int64_t>(i) / c, ", ", static_cast<int64_t>(i) % c, "]")
                                    : fmt("[", i, "]");
    throw UserError(fmt("dataset ", obj_path, ": element ", where, " is ", std::isnan(v[i]) ? "NaN" : "infinite",
                        "; a checkpoint holds finite weights and optimizer state, so this file is damaged (or was "
                        "saved from a diverged run)"));
  }
}

// The trainer position and counters must be possible; a damaged or edited file is refused here
// rather than reported later as a strange epoch or a training failure.
void check_trainer_state(const CheckpointData& ck, bool has_sample_position, int64_t sample_position) {
  const TrainerState& s = ck.trainer;
  auto require_nonneg = [](int64_t v, const char* name) {
    LOCKSTEP_REQUIRE(v >= 0, "trainer/", name, " is ", v, " (must be >= 0)");
  };
  LOCKSTEP_REQUIRE(ck.world_size >= 1, "world_size is ", ck.world_size, " (must be >= 1)");
  LOCKSTEP_REQUIRE(ck.global_batch >= 1, "global_batch is ", ck.global_batch, " (must be >= 1)");
  require_nonneg(s.epoch, "epoch");
  require_nonneg(s.step_in_epoch, "step_in_epoch");
  require_nonneg(s.global_step, "global_step");
  require_nonneg(s.epoch_samples, "epoch_samples");
  require_nonneg(s.epoch_correct, "epoch_correct");
  require_nonneg(s.early.bad_epochs, "early_stop_bad_epochs");
  LOCKSTEP_REQUIRE(!has_sample_position || sample_position == s.step_in_epoch * ck.global_batch,
                   "trainer/sample_position (", sample_position, ") is not step_in_epoch * global_batch (",
                   s.step_in_epoch, " * ", ck.global_batch, ")");
  LOCKSTEP_REQUIRE(s.epoch_correct <= s.epoch_samples, "trainer/epoch_correct (", s.epoch_correct,
                   ") exceeds trainer/epoch_samples (", s.epoch_samples, ")");
  LOCKSTEP_REQUIRE(s.epoch_samples <= s.step_in_epoch * ck.global_batch, "trainer/epoch_samples (", s.epoch_samples,
                   ") exceeds the ", s.step_in_epoch, " steps of ", ck.global_batch, " samples taken in the epoch");
  // Every epoch takes at least one step.
  LOCKSTEP_REQUIRE(s.global_step >= s.epoch + s.step_in_epoch, "trainer/global_step (", s.global_step,
                   ") is fewer than the steps its position implies (epoch ", s.epoch, ", step_in_epoch ",
                   s.step_in_epoch, ")");
  LOCKSTEP_REQUIRE(ck.optimizer_step >= 0 && ck.optimizer_step <= s.global_step, "optimizer/step (",
                   ck.optimizer_step, ") is outside [0, trainer/global_step = ", s.global_step, "]");
  LOCKSTEP_REQUIRE(std::isfinite(s.epoch_loss) && s.epoch_loss >= 0, "trainer/epoch_loss_sum is ", s.epoch_loss,
                   " (must be finite and >= 0)");
  LOCKSTEP_REQUIRE(std::isfinite(ck.lr) && ck.lr >= 0, "trainer/lr is ", ck.lr, " (must be finite and >= 0)");
}


}  // namespace lockstep::checkpoint_checks
