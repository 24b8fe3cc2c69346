// data.class_subset and data.train_limit: only the chosen classes reach training, validation
// and test, relabelled 0..k-1 in the order given; file_rows maps back to the file's rows; the
// limit keeps exactly that many training samples, chosen by the seed; and the config checks
// name the key. Data are small IDX files written here, with labels known row by row.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "lockstep/config.hpp"
#include "lockstep/dataset.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

constexpr int kDim = 4;

// An IDX pair of n images whose pixel 0 is the row number (mod 256) and whose label is row % 10.
void write_pair(const test::TempDir& dir, const std::string& stem, uint32_t n) {
  std::vector<uint8_t> pixels(n * kDim), labels(n);
  for (uint32_t i = 0; i < n; ++i) {
    pixels[i * kDim] = static_cast<uint8_t>(i);
    labels[i] = static_cast<uint8_t>(i % 10);
  }
  test::write_bytes(dir.file(stem + "-images"), test::idx_bytes(0x08, {n, 2, 2}, pixels));
  test::write_bytes(dir.file(stem + "-labels"), test::idx_bytes(0x08, {n}, labels));
}

struct Fixture {
  test::TempDir dir;
  DataConfig cfg;
  Fixture() {
    write_pair(dir, "train", 200);
    write_pair(dir, "test", 50);
    cfg.train_images = dir.file("train-images");
    cfg.train_labels = dir.file("train-labels");
    cfg.test_images = dir.file("test-images");
    cfg.test_labels = dir.file("test-labels");
    cfg.classes = 10;
    cfg.val_size = 0;
  }
};

struct Rows {
  std::vector<int64_t> file_rows;
  std::vector<int32_t> labels;
};
Rows all_rows(const DataSource& d) {
  Rows r;
  std::vector<int64_t> idx(static_cast<size_t>(d.size()));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  r.file_rows.resize(idx.size());
  d.file_rows(idx.data(), d.size(), r.file_rows.data());
  std::vector<float> x(idx.size() * kDim);
  r.labels.resize(idx.size());
  d.gather(idx.data(), d.size(), x.data(), r.labels.data());
  return r;
}

TEST(ClassSubset, KeepsOnlyTheClassesRelabelledInOrder) {
  Fixture f;
  f.cfg.class_subset = {7, 5, 9};  // -> 0, 1, 2
  f.cfg.val_size = 6;
  const Datasets d = load_datasets(f.cfg, kDim, 11);
  // 200 rows, labels row % 10: 20 rows of each class, 60 in the subset; 6 go to validation.
  ASSERT_TRUE(d.train && d.val && d.test);
  EXPECT_EQ(d.train->size(), 54);
  EXPECT_EQ(d.val->size(), 6);
  EXPECT_EQ(d.test->size(), 15);  // 50 test rows, 5 of each class
  EXPECT_EQ(d.train->classes(), 3);
  const int32_t expect_of[10] = {-1, -1, -1, -1, -1, 1, -1, 0, -1, 2};
  std::set<int64_t> seen;
  for (const auto* src : {d.train.get(), d.val.get()}) {
    const Rows r = all_rows(*src);
    for (size_t i = 0; i < r.labels.size(); ++i) {
      const int64_t file_row = r.file_rows[i];
      EXPECT_EQ(r.labels[i], expect_of[file_row % 10]) << "file row " << file_row;
      EXPECT_TRUE(seen.insert(file_row).second) << "file row " << file_row << " in both training and validation";
    }
  }
  EXPECT_EQ(seen.size(), 60u);  // every subset row once
  const Rows t = all_rows(*d.test);
  for (size_t i = 0; i < t.labels.size(); ++i) EXPECT_EQ(t.labels[i], expect_of[t.file_rows[i] % 10]);
  // The whole training file stays available (the teacher-logits cache is keyed by its rows).
  ASSERT_TRUE(d.train_file);
  EXPECT_EQ(d.train_file->size(), 200);
}

TEST(ClassSubset, NoSubsetLeavesTheDataAsBefore) {
  Fixture f;
  const Datasets d = load_datasets(f.cfg, kDim, 11);
  EXPECT_EQ(d.train.get(), d.train_file.get());  // no split, no subset: the file itself
  EXPECT_EQ(d.train->size(), 200);
  EXPECT_EQ(d.test->size(), 50);
}

// The test set alone (eval with data.val_size = 0): the same rows and labels as load_datasets
// gives, without the training file, which may be missing; standardize needs it and is refused.
TEST(LoadTestSet, SameTestSetWithoutTheTrainingFile) {
  Fixture f;
  f.cfg.class_subset = {7, 2};
  const Datasets full = load_datasets(f.cfg, kDim, 42);
  f.cfg.train_images = f.dir.file("missing-images");
  f.cfg.train_labels = f.dir.file("missing-labels");
  const Datasets alone = load_test_set(f.cfg, kDim);
  ASSERT_TRUE(alone.test);
  EXPECT_FALSE(alone.train);
  EXPECT_FALSE(alone.val);
  const Rows a = all_rows(*full.test), b = all_rows(*alone.test);
  EXPECT_EQ(a.file_rows, b.file_rows);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(alone.test->classes(), 2);
  f.cfg.normalize = Normalize::standardize;
  EXPECT_TRUE(test::throws_user_error([&] { load_test_set(f.cfg, kDim); }, {"data.normalize = standardize"}));
}

TEST(TrainLimit, KeepsThatManySamplesChosenBySeed) {
  Fixture f;
  f.cfg.class_subset = {5, 6, 7, 8, 9};
  f.cfg.val_size = 10;
  f.cfg.train_limit = 25;
  const Datasets a = load_datasets(f.cfg, kDim, 1), b = load_datasets(f.cfg, kDim, 1), c = load_datasets(f.cfg, kDim, 2);
  EXPECT_EQ(a.train->size(), 25);
  EXPECT_EQ(a.val->size(), 10);  // the limit applies to training only
  const Rows ra = all_rows(*a.train), rb = all_rows(*b.train), rc = all_rows(*c.train);
  EXPECT_EQ(ra.file_rows, rb.file_rows);  // a function of the seed
  EXPECT_NE(ra.file_rows, rc.file_rows);
  const Rows rv = all_rows(*a.val);
  for (int64_t r : ra.file_rows) {
    EXPECT_GE(r % 10, 5) << "row of class " << r % 10;
    EXPECT_EQ(std::count(rv.file_rows.begin(), rv.file_rows.end(), r), 0) << "row " << r << " is also validation";
  }
  EXPECT_TRUE(std::is_sorted(ra.file_rows.begin(), ra.file_rows.end()));
  // Without a subset too.
  f.cfg.class_subset.clear();
  f.cfg.val_size = 0;
  EXPECT_EQ(load_datasets(f.cfg, kDim, 1).train->size(), 25);
}

TEST(TrainLimit, MoreThanThereAreIsAnError) {
  Fixture f;
  f.cfg.class_subset = {5, 6};
  f.cfg.val_size = 10;
  f.cfg.train_limit = 31;  // 40 rows of classes 5 and 6, 10 for validation: 30 remain
  EXPECT_TRUE(test::throws_user_error([&] { load_datasets(f.cfg, kDim, 1); },
                                      {"data.train_limit", "31", "30 remain", "data.class_subset"}));
}

TEST(ClassSubset, ConfigChecksNameTheKey) {
  Config c;
  c.model.layers = {784, 16, 3};
  c.data.class_subset = {5, 6, 7};
  EXPECT_NO_THROW(validate_config(c, 1));
  EXPECT_EQ(model_classes(c.data), 3);
  c.data.class_subset = {5, 6, 10};
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"data.class_subset", "class 10", "[0, 10)"}));
  c.data.class_subset = {5, 6, 5};
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"data.class_subset", "listed twice"}));
  c.data.class_subset = {5, 6};
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); },
                                      {"model.layers", "(3)", "data.class_subset (2)"}));
  c.data.class_subset = {4};
  c.model.layers = {784, 16, 1};
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"data.class_subset", "at least 2"}));
}

TEST(ClassSubset, KeysRoundTripThroughTheResolvedConfig) {
  Config c = load_config_text("[data]\nclass_subset = [5, 6, 7, 8, 9]\ntrain_limit = 1000\n"
                              "[model]\nlayers = [784, 64, 5]\n"
                              "[distill]\nteacher = \"t.h5\"\ntemperature = 2.5\nalpha = 0.25\ncache = \"c.h5\"\n"
                              "[init]\nfrom = \"base.h5\"\nfreeze = [0]\nreset_head = true\n",
                              "test.toml", {"init.freeze=[0, 1]"});
  const Config back = parse_config_text(config_to_toml(c), "resolved");
  EXPECT_EQ(back.data.class_subset, (std::vector<int64_t>{5, 6, 7, 8, 9}));
  EXPECT_EQ(back.data.train_limit, 1000);
  EXPECT_EQ(back.distill.teacher, "t.h5");
  EXPECT_EQ(back.distill.temperature, 2.5);
  EXPECT_EQ(back.distill.alpha, 0.25);
  EXPECT_EQ(back.distill.cache, "c.h5");
  EXPECT_EQ(back.init.from, "base.h5");
  EXPECT_EQ(back.init.freeze, (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(back.init.reset_head);
}

TEST(DistillAndInitKeys, RangesAndCrossChecksNameTheKey) {
  EXPECT_TRUE(test::throws_user_error([] { load_config_text("", "x", {"distill.temperature=0"}); },
                                      {"distill.temperature", "> 0"}));
  EXPECT_TRUE(test::throws_user_error([] { load_config_text("", "x", {"distill.alpha=1.5"}); },
                                      {"distill.alpha", "<= 1"}));
  Config c;
  c.init.freeze = {0, 1, 2, 3};  // the default model has 3 layers
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"init.freeze", "layer 3 does not exist"}));
  c.init.freeze = {0, 1, 2};
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"init.freeze", "at least one must train"}));
  c.init.freeze = {2};
  c.init.from = "base.h5";
  c.init.reset_head = true;
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"init.freeze", "output layer", "reset_head"}));
  c = Config{};
  c.init.reset_head = true;
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"init.reset_head", "init.from"}));
  c = Config{};
  c.distill.cache = "c.h5";
  EXPECT_TRUE(test::throws_user_error([&] { validate_config(c, 1); }, {"distill.cache", "distill.teacher"}));
  // The table documents every new key with its default.
  std::set<std::string> keys;
  for (const KeyDoc& k : config_key_docs()) keys.insert(k.key);
  for (const char* k : {"distill.teacher", "distill.temperature", "distill.alpha", "distill.cache", "init.from",
                        "init.freeze", "init.reset_head", "data.class_subset", "data.train_limit"})
    EXPECT_EQ(keys.count(k), 1u) << k;
}

}  // namespace
}  // namespace lockstep
