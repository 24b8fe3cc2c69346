// Checkpoints are verified when read: every dataset and the /trainer and /optimizer scalars carry
// a checksum that is recomputed; bytes changed on disk (bypassing HDF5), an edited attribute,
// non-finite weights or optimizer state and an impossible trainer position are bad input naming
// the file and the dataset; a file without checksums (an older lockstep) still reads, counted.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "lockstep/checkpoint.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/h5.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

// A complete checkpoint of a 4-3-2 MLP with Adam state, values chosen so every one is distinct.
CheckpointData sample_checkpoint() {
  CheckpointData ck;
  ck.lockstep_version = "test";
  ck.created = "2026-01-01T00:00:00Z";
  ck.world_size = 2;
  ck.global_batch = 8;
  ck.config_toml = "[train]\nepochs = 3\n";
  ck.layers = {4, 3, 2};
  ck.activation = Activation::relu;
  ck.params.resize(4 * 3 + 3 + 3 * 2 + 2);
  for (size_t i = 0; i < ck.params.size(); ++i) ck.params[i] = 0.01f * static_cast<float>(i) - 0.1f;
  ck.optimizer.name = OptimizerKind::adam;
  ck.optimizer_step = 7;
  ck.optimizer_state = {ck.params, ck.params};
  for (float& v : ck.optimizer_state[1]) v = v * v + 1e-6f;  // exp_avg_sq >= 0
  ck.trainer.epoch = 1;
  ck.trainer.step_in_epoch = 2;
  ck.trainer.global_step = 7;  // 5 steps per epoch
  ck.trainer.epoch_loss = 3.5;
  ck.trainer.epoch_correct = 9;
  ck.trainer.epoch_samples = 16;
  ck.seed = 42;
  ck.lr = 0.001;
  ck.last_metrics_json = "{\"epoch\":1}";
  ck.data.train_samples = 40;
  ck.data.train = "0123456789abcdef";
  ck.data.test_samples = 10;
  ck.data.test = "fedcba9876543210";
  return ck;
}

// config, metrics, widths, 2 x (weight, bias), the model's attributes, the optimizer's scalars,
// exp_avg, exp_avg_sq, the trainer's scalars.
constexpr int64_t kChecksummed = 12;

// Overwrites `bytes` bytes in the middle of a contiguous dataset's raw data, behind HDF5's back.
void corrupt_dataset(const std::string& file, const std::string& dataset, const std::string& bytes) {
  haddr_t offset = HADDR_UNDEF;
  hsize_t size = 0;
  {
    h5::Handle f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    h5::Handle d(H5Dopen2(f.get(), dataset.c_str(), H5P_DEFAULT));
    offset = H5Dget_offset(d.get());
    size = H5Dget_storage_size(d.get());
  }
  ASSERT_NE(offset, HADDR_UNDEF);
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekp(static_cast<std::streamoff>(offset + size / 2));
  io.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void set_int_attr(const std::string& file, const std::string& object, const char* name, int64_t v) {
  h5::Handle f(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  h5::Handle obj(H5Oopen(f.get(), object.c_str(), H5P_DEFAULT));
  h5::Handle a(H5Aopen(obj.get(), name, H5P_DEFAULT));
  ASSERT_TRUE(a.valid()) << object << " " << name;
  ASSERT_GE(H5Awrite(a.get(), H5T_NATIVE_INT64, &v), 0);
}

// Removes every `checksum` attribute: the file as a lockstep without checksums wrote it.
void strip_checksums(const std::string& file) {
  h5::Handle f(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  for (const char* obj : {"/config", "/metrics", "/model", "/model/widths", "/model/layer_0/weight", "/model/layer_0/bias",
                          "/model/layer_1/weight", "/model/layer_1/bias", "/optimizer", "/optimizer/exp_avg",
                          "/optimizer/exp_avg_sq", "/trainer"})
    ASSERT_GE(H5Adelete_by_name(f.get(), obj, "checksum", H5P_DEFAULT), 0) << obj;
}

TEST(CheckpointChecks, EveryDatasetAndStateGroupIsVerifiedAndTheValuesComeBack) {
  test::TempDir dir;
  const CheckpointData ck = sample_checkpoint();
  write_checkpoint(dir.file("a.h5"), ck);
  const CheckpointData back = read_checkpoint(dir.file("a.h5"));
  EXPECT_EQ(back.checksums_verified, kChecksummed);
  EXPECT_EQ(back.checksums_missing, 0);
  EXPECT_EQ(back.params, ck.params);
  EXPECT_EQ(back.optimizer_state, ck.optimizer_state);
  EXPECT_EQ(back.trainer.global_step, 7);
  EXPECT_EQ(back.data.train_samples, 40);
  EXPECT_EQ(back.data.train, "0123456789abcdef");
  EXPECT_EQ(back.data.test_samples, 10);
  EXPECT_EQ(back.data.test, "fedcba9876543210");
  // The stored checksum is FNV-1a 64 over the values as 8-byte words, as documented.
  h5::Handle f(H5Fopen(dir.file("a.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  h5::Handle w(H5Dopen2(f.get(), "/model/layer_1/weight", H5P_DEFAULT));
  EXPECT_EQ(h5::attr_string(w.get(), "checksum"), hex64(fnv1a64_words(ck.params.data() + 15, 6 * sizeof(float))));
}

TEST(CheckpointChecks, BytesChangedOnDiskAreNamedByDataset) {
  test::TempDir dir;
  const std::string path = dir.file("a.h5");
  write_checkpoint(path, sample_checkpoint());
  corrupt_dataset(path, "/optimizer/exp_avg", std::string(16, 'A'));
  EXPECT_TRUE(test::throws_user_error([&] { read_checkpoint(path); },
                                      {"checkpoint " + path, "dataset /optimizer/exp_avg: checksum mismatch",
                                       "the file is damaged"}));
}

TEST(CheckpointChecks, AnEditedTrainerAttributeFailsItsGroupChecksum) {
  test::TempDir dir;
  const std::string path = dir.file("a.h5");
  write_checkpoint(path, sample_checkpoint());
  set_int_attr(path, "/trainer", "step_in_epoch", 3);  // a plausible value: only the checksum tells
  EXPECT_TRUE(test::throws_user_error([&] { read_checkpoint(path); },
                                      {path, "the attributes of /trainer: checksum mismatch"}));
}

TEST(CheckpointChecks, AnEditedActivationFailsTheModelChecksum) {
  test::TempDir dir;
  const std::string path = dir.file("a.h5");
  CheckpointData ck = sample_checkpoint();
  ASSERT_NE(ck.activation, Activation::tanh);
  write_checkpoint(path, ck);
  {
    h5::Handle f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    h5::Handle model(H5Gopen2(f.get(), "/model", H5P_DEFAULT));
    ASSERT_GE(H5Adelete(model.get(), "activation"), 0);
    h5::set_attr(model.get(), "activation", std::string("tanh"));  // a valid name: only the checksum tells
  }
  EXPECT_TRUE(test::throws_user_error([&] { read_checkpoint(path); },
                                      {path, "the attributes of /model: checksum mismatch"}));
}

TEST(CheckpointChecks, NonFiniteWeightsOrStateAreBadInputNamingTheElement) {
  test::TempDir dir;
  CheckpointData ck = sample_checkpoint();
  ck.params[15 + 4] = std::numeric_limits<float>::quiet_NaN();  // layer_1/weight [1, 1] (3 columns)
  write_checkpoint(dir.file("nan.h5"), ck);  // checksums are of the values as saved: they match
  EXPECT_TRUE(test::throws_user_error([&] { read_checkpoint(dir.file("nan.h5")); },
                                      {"dataset /model/layer_1/weight: element [1, 1] is NaN"}));
  ck = sample_checkpoint();
  ck.optimizer_state[0][5] = std::numeric_limits<float>::infinity();
  write_checkpoint(dir.file("inf.h5"), ck);
  EXPECT_TRUE(test::throws_user_error([&] { read_checkpoint(dir.file("inf.h5")); },
                                      {"dataset /optimizer/exp_avg: element [5] is infinite"}));
  ck = sample_checkpoint();
  ck.optimizer_state[1][2] = -0.5f;
  write_checkpoint(dir.file("neg.h5"), ck);
  EXPECT_TRUE(test::throws_user_error([&] { read_checkpoint(dir.file("neg.h5")); },
                                      {"dataset /optimizer/exp_avg_sq: element [2] is negative"}));
}

TEST(CheckpointChecks, FilesWithoutChecksumsReadWithTheCountOfUnverifiedParts) {
  test::TempDir dir;
  const std::string path = dir.file("old.h5");
  const CheckpointData ck = sample_checkpoint();
  write_checkpoint(path, ck);
  strip_checksums(path);
  const CheckpointData back = read_checkpoint(path);
  EXPECT_EQ(back.checksums_verified, 0);
  EXPECT_EQ(back.checksums_missing, kChecksummed);
  EXPECT_EQ(back.params, ck.params);
}

TEST(CheckpointChecks, ImpossiblePositionsAreRefusedEvenWithoutChecksums) {
  struct Edit {
    const char* object;
    const char* attr;
    int64_t value;
    const char* message;
  };
  const Edit edits[] = {
      {"/trainer", "epoch", -1, "trainer/epoch is -1 (must be >= 0)"},
      {"/trainer", "global_step", -5, "trainer/global_step is -5 (must be >= 0)"},
      {"/trainer", "step_in_epoch", 99999, "trainer/sample_position (16) is not step_in_epoch * global_batch (99999 * 8)"},
      {"/trainer", "sample_position", 24, "trainer/sample_position (24) is not step_in_epoch * global_batch (2 * 8)"},
      {"/trainer", "epoch", 1000000, "trainer/global_step (7) is fewer than the steps its position implies"},
      {"/trainer", "epoch_correct", 17, "trainer/epoch_correct (17) exceeds trainer/epoch_samples (16)"},
      {"/optimizer", "step", 8, "optimizer/step (8) is outside [0, trainer/global_step = 7]"},
  };
  for (const Edit& e : edits) {
    SCOPED_TRACE(std::string(e.object) + "/" + e.attr);
    test::TempDir dir;
    const std::string path = dir.file("old.h5");
    write_checkpoint(path, sample_checkpoint());
    strip_checksums(path);
    set_int_attr(path, e.object, e.attr, e.value);
    EXPECT_TRUE(test::throws_user_error([&] { read_checkpoint(path); }, {"checkpoint " + path, e.message}));
  }
}

}  // namespace
}  // namespace lockstep
