// The texts ranks compare at start-up (config_agree.hpp): one "key = value" line per argument and
// per config key, and the key-by-key difference that the mismatch message lists; the data files
// the ranks compare, and the lines that name the ranks and hosts reading other contents.
#include <gtest/gtest.h>

#include <map>

#include "lockstep/config_agree.hpp"

namespace lockstep {
namespace {

TEST(ConfigAgree, InvocationTextHasEveryKeyAndTheArguments) {
  Config c;
  c.train.epochs = 4;
  const std::string t = invocation_text(c, {{"command", "train"}, {"--resume", "auto"}});
  EXPECT_EQ(t.rfind("command = train\n--resume = auto\n", 0), 0u) << t;
  EXPECT_NE(t.find("\ntrain.epochs = 4\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nmodel.layers = [784, 256, 128, 10]\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\ncheckpoint.keep = 3\n"), std::string::npos) << t;
  EXPECT_EQ(t, invocation_text(c, {{"command", "train"}, {"--resume", "auto"}}));  // deterministic
}

TEST(ConfigAgree, DifferencesNameEachKeyWithBothValues) {
  Config a, b;
  b.train.epochs = 1;
  b.run.seed = 7;
  b.model.layers = {784, 100, 10};
  const std::string d = invocation_differences(invocation_text(a, {{"--resume", ""}}), 0,
                                               invocation_text(b, {{"--resume", "auto"}}), 2);
  EXPECT_NE(d.find("\n    --resume: rank 0 has , rank 2 has auto"), std::string::npos) << d;
  EXPECT_NE(d.find("\n    train.epochs: rank 0 has 20, rank 2 has 1"), std::string::npos) << d;
  EXPECT_NE(d.find("\n    run.seed: rank 0 has 42, rank 2 has 7"), std::string::npos) << d;
  EXPECT_NE(d.find("\n    model.layers: rank 0 has [784, 256, 128, 10], rank 2 has [784, 100, 10]"), std::string::npos) << d;
  EXPECT_EQ(d.find("optimizer.lr"), std::string::npos) << d;  // equal keys are not listed
  // Four differences, in the order of the keys.
  EXPECT_LT(d.find("--resume"), d.find("run.seed"));
  EXPECT_LT(d.find("run.seed"), d.find("model.layers"));
  EXPECT_LT(d.find("model.layers"), d.find("train.epochs"));
  EXPECT_EQ(invocation_differences(invocation_text(a, {}), 0, invocation_text(a, {}), 1), "");
  // A key one side lacks, and the limit on listed keys.
  EXPECT_NE(invocation_differences("x = 1\n", 0, "", 1).find("x: rank 0 has 1, rank 1 has (absent)"), std::string::npos);
  const std::string many = invocation_differences("a = 1\nb = 1\nc = 1\n", 0, "a = 2\nb = 2\nc = 2\n", 1, 2);
  EXPECT_NE(many.find("b: rank 0 has 1"), std::string::npos) << many;
  EXPECT_EQ(many.find("c: rank 0"), std::string::npos) << many;
  EXPECT_NE(many.find("... and 1 more key(s)"), std::string::npos) << many;
}

TEST(DataAgree, TheFilesAreNamedByTheirKeysAndPaths) {
  DataConfig c;
  c.train_images = "tr.h5";
  c.train_labels = "";
  c.test_images = "t-img";
  c.test_labels = "t-lab";
  DataFingerprint fp;
  fp.train_samples = 8;
  fp.train = "00000000000000aa";
  fp.test_samples = 4;
  fp.test = "00000000000000bb";
  const auto files = data_files_of(c, fp);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].file, "data.train_images = tr.h5");
  EXPECT_EQ(files[0].samples, 8);
  EXPECT_EQ(files[0].fingerprint, "00000000000000aa");
  EXPECT_EQ(files[1].file, "data.test_images = t-img, data.test_labels = t-lab");
  EXPECT_EQ(files[1].fingerprint, "00000000000000bb");
  c.test_images = "";  // no test set: nothing to compare
  EXPECT_EQ(data_files_of(c, fp).size(), 1u);
}

// by_rank for `ranks` ranks reading one training file: fingerprint "a" (8 samples) except where odd says.
std::vector<std::vector<DataFileFingerprint>> one_file(int ranks, const std::map<int, std::string>& odd) {
  std::vector<std::vector<DataFileFingerprint>> out;
  for (int r = 0; r < ranks; ++r)
    out.push_back({{"data.train_images = tr.h5", 8, odd.count(r) ? odd.at(r) : std::string("a")}});
  return out;
}

TEST(DataAgree, DifferencesNameTheFileTheRanksTheHostsAndTheFingerprints) {
  const std::vector<std::string> hosts{"n0", "n0", "n1", "n1"};
  EXPECT_EQ(data_differences(one_file(4, {}), hosts), "");
  // A majority: the odd rank is named against it, whichever rank it is.
  EXPECT_EQ(data_differences(one_file(4, {{2, "b"}}), hosts),
            "\n  data.train_images = tr.h5: rank 2 differs from the other 3 ranks: ranks 0, 1, 3 (hosts n0, n1) read 8 "
            "samples with fingerprint a, rank 2 (host n1) reads 8 samples with fingerprint b");
  EXPECT_EQ(data_differences(one_file(3, {{0, "b"}}), hosts),
            "\n  data.train_images = tr.h5: rank 0 differs from the other 2 ranks: ranks 1, 2 (hosts n0, n1) read 8 "
            "samples with fingerprint a, rank 0 (host n0) reads 8 samples with fingerprint b");
  // No majority (2 ranks): each group, rank 0's first.
  EXPECT_EQ(data_differences(one_file(2, {{1, "b"}}), {"wa", "wb"}),
            "\n  data.train_images = tr.h5: no majority among the 2 ranks: rank 0 (host wa) reads 8 samples with "
            "fingerprint a, rank 1 (host wb) reads 8 samples with fingerprint b");
  // Another row count is another content even where the fingerprint text were equal.
  auto rows = one_file(2, {});
  rows[1][0].samples = 7;
  EXPECT_NE(data_differences(rows, {"h", "h"}).find("rank 1 (host h) reads 7 samples with fingerprint a"),
            std::string::npos);
  // A file one rank could not read is left to the check that reads it.
  EXPECT_EQ(data_differences(one_file(3, {{1, ""}, {2, "b"}}), hosts), "");
  // Only the files that differ are listed, in order.
  auto two = one_file(3, {});
  for (int r = 0; r < 3; ++r) two[r].push_back({"data.test_images = t.h5", 4, r == 1 ? "y" : "x"});
  EXPECT_EQ(data_differences(two, hosts),
            "\n  data.test_images = t.h5: rank 1 differs from the other 2 ranks: ranks 0, 2 (hosts n0, n1) read 4 "
            "samples with fingerprint x, rank 1 (host n0) reads 4 samples with fingerprint y");
}

}  // namespace
}  // namespace lockstep
