// Which settings a resume may change: those that define the run (model, optimizer, batch, seed,
// the data split and normalisation, the data themselves by fingerprint, the position they give)
// are refused with each difference listed; those that do not (epochs, max_steps, checkpointing,
// progress, device, the learning rate) are allowed.
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
