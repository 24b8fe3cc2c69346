// The texts ranks compare at start-up (config_agree.hpp): one "key = value" line per argument and
// per config key, and the key-by-key difference that the mismatch message lists.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace lockstep
