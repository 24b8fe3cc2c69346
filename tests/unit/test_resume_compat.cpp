// Which settings a resume may change: those that define the run (model, optimizer, batch, seed,
// the data split and normalisation, the data themselves by fingerprint, the position they give)
// are refused with each difference listed; those that do not (epochs, max_steps, checkpointing,
// progress, device, the learning rate) are allowed. The same machinery tells `eval` which data
// settings it must take from the checkpoint (the split, the transform) and which it does not use.
#include <gtest/gtest.h>

#include "lockstep/checkpoint.hpp"
#include "lockstep/data_fingerprint.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// A checkpoint as a run of cfg would save it at epoch 1, step 2 of 5-step epochs.
CheckpointData saved_by(const Config& cfg) {
  CheckpointData ck;
  ck.layers = cfg.model.layers;
  ck.activation = cfg.model.activation;
  ck.optimizer.name = cfg.optimizer.name;
  ck.global_batch = cfg.train.batch_size;
  ck.seed = cfg.run.seed;
  ck.config_toml = config_to_toml(cfg);
  ck.trainer.epoch = 1;
  ck.trainer.step_in_epoch = 2;
  ck.trainer.global_step = 7;
  ck.data.train_samples = 50;
  ck.data.train = "00000000000000aa";
  ck.data.test_samples = 0;
  return ck;
}

ResumeFacts facts_of(const CheckpointData& ck, int64_t steps_per_epoch) {
  ResumeFacts f;
  f.data = ck.data;
  f.steps_per_epoch = steps_per_epoch;
  return f;
}

TEST(ResumeCompat, SettingsThatMayChangeAreAllowed) {
  const Config cfg = test::small_config({6, 5, 2}, 10, 3);
  const CheckpointData ck = saved_by(cfg);
  Config other = cfg;
  other.train.epochs = 9;
  other.train.max_steps = 100;
  other.train.progress = true;
  other.train.check_replicas_every = 7;
  other.train.grad_accum = 2;
  other.checkpoint.every_steps = 3;
  other.checkpoint.keep = 10;
  other.checkpoint.dir = "/elsewhere";
  other.run.device = DeviceChoice::auto_;
  other.run.dir = "runs/moved";
  other.optimizer.lr = 0.5;
  other.schedule.kind = ScheduleKind::cosine;
  other.data.eval_batch = 7;
  other.data.train_images = "/moved/train.gz";  // a path may change; the contents are compared
  const ResumeFacts now = facts_of(ck, 5);
  EXPECT_EQ(resume_incompatibilities(ck, other, &now), "");
}

TEST(ResumeCompat, SettingsThatDefineTheRunAreEachListed) {
  const Config cfg = test::small_config({6, 5, 2}, 10, 3);
  const CheckpointData ck = saved_by(cfg);
  Config other = cfg;
  other.data.val_size = 4;
  other.data.normalize = Normalize::standardize;
  other.data.class_subset = {0, 1};
  other.data.train_limit = 20;
  other.train.drop_last = true;
  other.model.init = InitKind::xavier;
  other.run.seed = 7;
  other.train.batch_size = 20;
  const std::string diff = resume_incompatibilities(ck, other);
  for (const char* line : {"data.val_size: checkpoint has 0, config has 4",
                           "data.normalize: checkpoint has 'scale', config has 'standardize'",
                           "data.class_subset: checkpoint has [], config has [0, 1]",
                           "data.train_limit: checkpoint has 0, config has 20",
                           "train.drop_last: checkpoint has false, config has true",
                           "model.init: checkpoint has 'auto', config has 'xavier'",
                           "run.seed (data order): checkpoint has 42, config has 7",
                           "train.batch_size (global): checkpoint has 10, config has 20"})
    EXPECT_NE(diff.find(line), std::string::npos) << line << "\nin:" << diff;
}

TEST(ResumeCompat, OtherDataAndAPositionThatDoesNotFitAreListed) {
  const Config cfg = test::small_config({6, 5, 2}, 10, 3);
  const CheckpointData ck = saved_by(cfg);
  ResumeFacts now = facts_of(ck, 5);
  now.data.train = "00000000000000bb";
  now.data.test_samples = 20;
  now.data.test = "00000000000000cc";
  std::string diff = resume_incompatibilities(ck, cfg, &now);
  EXPECT_NE(diff.find("data.train_images: the training data differ (the checkpoint trained on 50 samples with "
                      "fingerprint 00000000000000aa, the files now hold 50 with 00000000000000bb)"),
            std::string::npos) << diff;
  EXPECT_NE(diff.find("data.test_images: the test data differ"), std::string::npos) << diff;
  // Epoch 1, step 2, global step 7 fits 5-step epochs only.
  now = facts_of(ck, 6);
  diff = resume_incompatibilities(ck, cfg, &now);
  EXPECT_NE(diff.find("position: the checkpoint is at epoch 2, step 2 of the epoch, global step 7, which does not "
                      "fit epochs of 6 steps"),
            std::string::npos) << diff;
  // A file written before fingerprints: the data are not compared, the position still is.
  CheckpointData old = ck;
  old.data = DataFingerprint{};
  now = facts_of(ck, 5);
  now.data.train = "00000000000000bb";
  EXPECT_EQ(resume_incompatibilities(old, cfg, &now), "");
}

// eval: the data settings that define the split and the input transform are refused, each listed
// with both values; the paths, the test set, data.val_size = 0 (no validation set) are allowed.
TEST(EvalCompat, SettingsThatDefineTheDataAreEachListed) {
  Config cfg = test::small_config({6, 5, 2}, 10, 3);
  cfg.data.val_size = 10;
  const CheckpointData ck = saved_by(cfg);
  Config other = cfg;
  other.run.seed = 7;
  other.data.val_size = 4;
  other.data.normalize = Normalize::standardize;
  other.data.class_subset = {0, 1};
  other.data.train_limit = 20;
  other.data.classes = 3;
  DataFingerprint now = ck.data;
  now.train = "00000000000000bb";
  const std::string diff = eval_incompatibilities(ck, other, &now);
  for (const char* line : {"run.seed (the validation split): checkpoint has 42, config has 7",
                           "data.val_size: checkpoint has 10, config has 4",
                           "data.normalize: checkpoint has 'scale', config has 'standardize'",
                           "data.class_subset: checkpoint has [], config has [0, 1]",
                           "data.train_limit: checkpoint has 0, config has 20",
                           "data.classes: checkpoint has 2, config has 3",
                           "data.train_images: the training data differ (the checkpoint trained on 50 samples with "
                           "fingerprint 00000000000000aa, the files now hold 50 with 00000000000000bb)"})
    EXPECT_NE(diff.find(line), std::string::npos) << line << "\nin:" << diff;
  // The training settings are not eval's concern here (eval_unused_settings lists them).
  EXPECT_EQ(diff.find("train.batch_size"), std::string::npos) << diff;
}

TEST(EvalCompat, PathsTheTestSetAndNoValidationSetAreAllowed) {
  Config cfg = test::small_config({6, 5, 2}, 10, 3);
  cfg.data.val_size = 10;
  const CheckpointData ck = saved_by(cfg);
  Config other = cfg;
  other.data.train_images = "/moved/train.gz";
  other.data.test_images = "/other/test.h5";
  other.data.eval_batch = 7;
  other.run.device = DeviceChoice::auto_;
  other.train.epochs = 99;
  other.model.layers = {6, 9, 2};
  const DataFingerprint same = ck.data;
  EXPECT_EQ(eval_incompatibilities(ck, other, &same), "");
  other.data.val_size = 0;  // score the test set only
  EXPECT_EQ(eval_incompatibilities(ck, other), "");
  // With no validation set and scale, nothing depends on the split: its seed and train_limit
  // may differ. Under standardize they give the statistics, and must not.
  other.run.seed = cfg.run.seed + 5;
  other.data.train_limit = 7;
  EXPECT_EQ(eval_incompatibilities(ck, other), "");
  Config std_cfg = cfg;
  std_cfg.data.normalize = Normalize::standardize;
  const CheckpointData ck_std = saved_by(std_cfg);
  Config std_other = std_cfg;
  std_other.data.val_size = 0;
  std_other.run.seed = std_cfg.run.seed + 5;
  EXPECT_NE(eval_incompatibilities(ck_std, std_other).find("run.seed (the validation split)"), std::string::npos);
  other.run.seed = cfg.run.seed;
  other.data.train_limit = cfg.data.train_limit;
  // A checkpoint trained without a validation set has none to score: another val_size would draw
  // one from its training samples.
  Config none = cfg;
  none.data.val_size = 0;
  const CheckpointData ck0 = saved_by(none);
  other.data.val_size = 5;
  EXPECT_NE(eval_incompatibilities(ck0, other).find("data.val_size: checkpoint has 0, config has 5"),
            std::string::npos);
}

TEST(EvalCompat, UnusedTrainingSettingsAreListedOnlyWhenTheyDiffer) {
  const Config cfg = test::small_config({6, 5, 2}, 10, 3);
  const CheckpointData ck = saved_by(cfg);
  EXPECT_EQ(eval_unused_settings(ck, cfg), "");
  Config other = cfg;
  other.model.layers = {6, 9, 2};
  other.train.epochs = 99;
  other.optimizer.lr = 0.5;
  other.data.eval_batch = 7;  // eval uses it: not listed
  other.run.seed = 7;         // refused by eval_incompatibilities, not listed here
  const std::string unused = eval_unused_settings(ck, other);
  for (const char* line : {"model.layers: checkpoint has [6, 5, 2], config has [6, 9, 2]",
                           "train.epochs: checkpoint has 3, config has 99", "optimizer.lr: checkpoint has "})
    EXPECT_NE(unused.find(line), std::string::npos) << line << "\nin:" << unused;
  EXPECT_EQ(unused.find("data."), std::string::npos) << unused;
  EXPECT_EQ(unused.find("run."), std::string::npos) << unused;
}

TEST(DataFingerprint, ChangesWithAnyLabelOrASampledRowAndOnlyThen) {
  auto a = test::synthetic_data(300, 5, 3, 11);
  auto b = test::synthetic_data(300, 5, 3, 11);
  EXPECT_EQ(fingerprint_of(*a), fingerprint_of(*b));
  EXPECT_EQ(fingerprint_of(*a).size(), 16u);
  // A label anywhere.
  auto labels = b->labels();
  labels[123] = (labels[123] + 1) % 3;
  MemoryData relabeled("r", 5, 3, b->features(), labels);
  EXPECT_NE(fingerprint_of(*a), fingerprint_of(relabeled));
  // A feature of a sampled row (the last row always is).
  b->features()[299 * 5 + 1] += 0.25f;
  EXPECT_NE(fingerprint_of(*a), fingerprint_of(*b));
  // Fewer rows.
  auto c = test::synthetic_data(299, 5, 3, 11);
  EXPECT_NE(fingerprint_of(*a), fingerprint_of(*c));
  Datasets ds;
  ds.train = a;
  const DataFingerprint f = fingerprint_of(ds);
  EXPECT_EQ(f.train_samples, 300);
  EXPECT_EQ(f.train, fingerprint_of(*a));
  EXPECT_EQ(f.test_samples, 0);
  EXPECT_EQ(f.test, "");
}

}  // namespace
}  // namespace lockstep
