// Which settings may change when a run resumes, and which an evaluation takes from the checkpoint.
// Those that define the run (what it trains, on which data, in which order, with which optimizer
// state) must match the checkpoint, and each difference is listed; the rest (how long, how often to
// save, where it runs, the learning-rate hyperparameters) may change. `eval` compares the subset
// that defines its data (the split and the input transform) with the same code.
// docs/checkpoint-format.md ("Compatibility on resume", "Evaluating a checkpoint") documents both.
#include <algorithm>
#include <iterator>
#include <map>
#include <sstream>

#include "lockstep/check.hpp"
#include "lockstep/checkpoint.hpp"
#include "lockstep/config_agree.hpp"

namespace lockstep {
namespace {

// Config keys that define the data a checkpoint's model was trained and validated on: the label
// space, the validation split and the input transform (with run.seed, compared through the file's
// seed). A resume and an evaluation both compare them through the checkpoint's stored config.
constexpr const char* kDataKeys[] = {
    "data.classes", "data.val_size", "data.normalize", "data.class_subset", "data.train_limit",
};
// The other config keys that define a run for a resume. (The layers, activation, optimizer, global
// batch, seed and frozen layers are compared through the file's own datasets, below; the data
// files by their fingerprint, not by path.)
constexpr const char* kRunKeys[] = {"model.init", "train.drop_last", "init.reset_head"};

// Sections whose keys only training uses: eval takes the model from the checkpoint and ignores the rest.
constexpr const char* kTrainingSections[] = {"model.",          "train.",      "optimizer.", "schedule.",
                                             "early_stopping.", "checkpoint.", "distill.",   "init."};

std::map<std::string, std::string> key_values(const Config& c) {
  std::map<std::string, std::string> out;
  std::istringstream in(invocation_text(c, {}));
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find(" = ");
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return out;
}

std::string widths(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// "key = value" of the checkpoint's stored config; empty when it has none or it no longer parses
// (such a file is compared by its own datasets only).
std::map<std::string, std::string> stored_key_values(const CheckpointData& ck) {
  if (ck.config_toml.empty()) return {};
  try {
    return key_values(parse_config_text(ck.config_toml, "the checkpoint's stored config"));
  } catch (const UserError&) {
    return {};
  }
}

// Appends "\n  key: checkpoint has A, config has B" when they differ.
struct Differences {
  std::string text;
  void differ(const std::string& key, const std::string& saved, const std::string& current) {
    if (saved != current) text += fmt("\n  ", key, ": checkpoint has ", saved, ", config has ", current);
  }
};

void differ_in_keys(Differences& d, const std::map<std::string, std::string>& saved, const Config& cfg,
                    const char* const* begin, const char* const* end) {
  if (saved.empty()) return;
  const auto current = key_values(cfg);
  for (auto k = begin; k != end; ++k) d.differ(*k, saved.count(*k) ? saved.at(*k) : "(absent)", current.at(*k));
}

void differ_in_training_data(Differences& d, const DataFingerprint& a, const DataFingerprint& b) {
  if (a.known() && b.known() && (a.train_samples != b.train_samples || a.train != b.train))
    d.text += fmt("\n  data.train_images: the training data differ (the checkpoint trained on ", a.train_samples,
                  " samples with fingerprint ", a.train, ", the files now hold ", b.train_samples, " with ", b.train, ")");
}

}  // namespace

std::string resume_incompatibilities(const CheckpointData& ck, const Config& cfg, const ResumeFacts* now) {
  Differences d;
  std::string& out = d.text;
  auto differ = [&](const std::string& key, const std::string& saved, const std::string& current) {
    d.differ(key, saved, current);
  };
  differ("model.layers", widths(ck.layers), widths(cfg.model.layers));
  differ("model.activation", to_string(ck.activation), to_string(cfg.model.activation));
  differ("optimizer.name", to_string(ck.optimizer.name), to_string(cfg.optimizer.name));
  differ("train.batch_size (global)", std::to_string(ck.global_batch), std::to_string(cfg.train.batch_size));
  differ("run.seed (data order)", std::to_string(ck.seed), std::to_string(cfg.run.seed));
  // The optimizer state covers only the layers that train.
  std::vector<int64_t> freeze = cfg.init.freeze;
  std::sort(freeze.begin(), freeze.end());
  differ("init.freeze", widths(ck.frozen_layers), widths(freeze));
  // A distilled run continues only as a distillation (and the reverse).
  const bool distilled = ck.notes.count(kTeacherChecksumNote) > 0;
  if (distilled != !cfg.distill.teacher.empty())
    out += distilled ? fmt("\n  distill.teacher: the checkpoint was distilled from a teacher (checksum ",
                           ck.notes.at(kTeacherChecksumNote), "), the config names none (--teacher)")
                     : std::string("\n  distill.teacher: the checkpoint was not distilled, the config names a teacher");
  // A fine-tune continues as a fine-tune (its weights come from the checkpoint either way).
  const bool fine_tuned = ck.notes.count(kInitFromNote) > 0;
  if (fine_tuned != !cfg.init.from.empty())
    out += fine_tuned ? fmt("\n  init.from: the checkpoint is a fine-tune of ", ck.notes.at(kInitFromNote),
                            ", the config names no init.from")
                      : std::string("\n  init.from: the checkpoint was not initialised from another, the config names one");

  // The rest of the defining keys, from the checkpoint's stored config (a file whose config is
  // empty or no longer parses is compared by the checks above only).
  const auto saved = stored_key_values(ck);
  differ_in_keys(d, saved, cfg, std::begin(kRunKeys), std::end(kRunKeys));
  differ_in_keys(d, saved, cfg, std::begin(kDataKeys), std::end(kDataKeys));

  if (now) {
    const DataFingerprint& a = ck.data;
    const DataFingerprint& b = now->data;
    differ_in_training_data(d, a, b);
    if (a.known() && b.known()) {
      if (a.test_samples != b.test_samples || a.test != b.test)
        out += fmt("\n  data.test_images: the test data differ (the checkpoint's: ", a.test_samples, " samples",
                   a.test.empty() ? "" : ", fingerprint " + a.test, "; now: ", b.test_samples, " samples",
                   b.test.empty() ? "" : ", fingerprint " + b.test, ")");
    }
    // The position must fit the epochs these data give (also for files without a fingerprint).
    const int64_t spe = now->steps_per_epoch;
    const TrainerState& s = ck.trainer;
    if (spe > 0 && (s.step_in_epoch > spe || s.global_step != s.epoch * spe + s.step_in_epoch))
      out += fmt("\n  position: the checkpoint is at epoch ", s.epoch + 1, ", step ", s.step_in_epoch,
                 " of the epoch, global step ", s.global_step, ", which does not fit epochs of ", spe,
                 " steps: the training set (or train.batch_size, train.drop_last) differs from the run that saved it");
  }
  return out;
}

std::string eval_incompatibilities(const CheckpointData& ck, const Config& cfg, const DataFingerprint* train_now) {
  Differences d;
  // data.val_size = 0 asks for no validation set: the split (and with it the standardisation
  // statistics) is still the checkpoint's, only its validation part is not scored. With
  // normalize = scale nothing then depends on the split: the seed and train_limit do not matter.
  const bool split_unused = cfg.data.val_size == 0 && cfg.data.normalize == Normalize::scale;
  if (!split_unused)
    d.differ("run.seed (the validation split)", std::to_string(ck.seed), std::to_string(cfg.run.seed));
  auto saved = stored_key_values(ck);
  if (cfg.data.val_size == 0) saved.erase("data.val_size");
  if (split_unused) saved.erase("data.train_limit");
  const auto current = key_values(cfg);
  if (!saved.empty())
    for (const char* key : kDataKeys)
      if (saved.count(key)) d.differ(key, saved.at(key), current.at(key));
  if (train_now) differ_in_training_data(d, ck.data, *train_now);
  return d.text;
}

std::string eval_unused_settings(const CheckpointData& ck, const Config& cfg) {
  Differences d;
  d.differ("model.layers", widths(ck.layers), widths(cfg.model.layers));
  d.differ("model.activation", to_string(ck.activation), to_string(cfg.model.activation));
  const auto saved = stored_key_values(ck);
  if (saved.empty()) return d.text;
  for (const auto& [key, value] : key_values(cfg)) {
    if (key == "model.layers" || key == "model.activation" || !saved.count(key)) continue;
    for (const char* section : kTrainingSections)
      if (key.rfind(section, 0) == 0) d.differ(key, saved.at(key), value);
  }
  return d.text;
}

}  // namespace lockstep
