// The ranges of the numeric keys come from the formulas they enter (kernels/optimizer_update.hpp,
// kernels/distill_loss.hpp) and from single precision, in which those formulas run: a decay of 1
// divides by zero in Adam's bias correction, 0.99999999 rounds to 1.0f, 1e-40 flushes to zero.
// Also the cross-key ranges of validate_config and the 32-bit matrix sides.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/config.hpp"
#include "lockstep/optimizer.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

using test::throws_user_error;

Config with(const std::vector<std::string>& sets) { return load_config("", sets); }

std::string type_of(const std::string& key) {
  for (const KeyDoc& d : config_key_docs())
    if (d.key == key) return d.type;
  return "";
}

TEST(ConfigRanges, DecayFactorsMustStayBelowOne) {
  for (const char* key : {"optimizer.beta1", "optimizer.beta2", "optimizer.momentum", "optimizer.alpha"}) {
    SCOPED_TRACE(key);
    const std::string k(key);
    EXPECT_TRUE(throws_user_error([&] { with({k + "=1"}); }, {k, "must be < 1, got 1.0"}));
    EXPECT_TRUE(throws_user_error([&] { with({k + "=1.0"}); }, {k, "must be < 1, got 1.0"}));
    // Below 1 in double, 1.0f in single precision: the update would see exactly 1.
    EXPECT_TRUE(throws_user_error([&] { with({k + "=0.99999999"}); },
                                  {k, "must be < 1, got 0.99999999", "which rounds to 1.0 in single precision"}));
    EXPECT_TRUE(throws_user_error([&] { with({k + "=-0.1"}); }, {k, "must be >= 0, got -0.1"}));
    // The largest float below 1 (1 - 2^-24) and 0 are accepted.
    EXPECT_NO_THROW(with({k + "=0.99999994039535522"}));
    EXPECT_NO_THROW(with({k + "=0"}));
    // `lockstep config-keys` shows the range.
    EXPECT_EQ(type_of(k), "float >= 0, < 1 (single precision)");
  }
}

TEST(ConfigRanges, SinglePrecisionScalarsMustNeitherOverflowNorFlushToZero) {
  EXPECT_TRUE(throws_user_error([] { with({"optimizer.lr=1e39"}); },
                                {"optimizer.lr", "must be <= 3.40282e+38", "got 1e+39"}));
  EXPECT_TRUE(throws_user_error([] { with({"optimizer.lr=1e-40"}); }, {"optimizer.lr", "flushes to zero"}));
  EXPECT_TRUE(throws_user_error([] { with({"optimizer.eps=1e-300"}); }, {"optimizer.eps", "flushes to zero"}));
  EXPECT_TRUE(throws_user_error([] { with({"optimizer.weight_decay=1e39"}); }, {"optimizer.weight_decay", "3.40282e+38"}));
  EXPECT_TRUE(throws_user_error([] { with({"distill.temperature=1e20"}); },
                                {"distill.temperature", "must be <= 1e+19"}));
  EXPECT_EQ(with({"optimizer.lr=1e-30"}).optimizer.lr, 1e-30);
  EXPECT_EQ(with({"optimizer.weight_decay=0"}).optimizer.weight_decay, 0.0);  // 0 is exact in any precision
  EXPECT_EQ(type_of("optimizer.lr"), "float > 0, <= 3.40282e+38 (single precision)");
  // Keys used in double precision keep their plain ranges.
  EXPECT_EQ(with({"early_stopping.min_delta=1e-300"}).early_stopping.min_delta, 1e-300);
  EXPECT_EQ(type_of("optimizer.clip_norm"), "float >= 0");
}

// The accepted extremes give finite updates in every optimizer (before the fix, beta1 = 1 passed
// validation and gave NaN weights at step 2: lr / (1 - beta1^t) = lr / 0).
TEST(ConfigRanges, TheExtremesAcceptedKeepEveryOptimizerFinite) {
  auto be = make_cpu_backend();
  for (const char* name : {"sgd", "momentum", "adam", "adamw", "adagrad", "rmsprop"}) {
    SCOPED_TRACE(name);
    const Config c = with({std::string("optimizer.name=") + name, "optimizer.beta1=0.99999994039535522",
                           "optimizer.beta2=0.99999994039535522", "optimizer.momentum=0.99999994039535522",
                           "optimizer.alpha=0.99999994039535522", "optimizer.eps=1.2e-38"});
    Optimizer opt(*be, c.optimizer, 3);
    std::vector<float> p{1.0f, -2.0f, 0.5f};
    const std::vector<float> g{0.25f, -0.5f, 1e-3f};
    for (int step = 0; step < 5; ++step) opt.step(p.data(), g.data(), c.optimizer.lr, 1);
    for (float v : p) EXPECT_TRUE(std::isfinite(v)) << v;
    EXPECT_NE(p[0], 1.0f);  // and they do update
  }
}

TEST(ConfigRanges, CrossKeyRangesOfTheUpdateAndTheSchedule) {
  // Decoupled decay scales the weights by 1 - lr * weight_decay every step.
  Config c = with({"optimizer.name=adamw", "optimizer.lr=0.5", "optimizer.weight_decay=2"});
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); },
                                {"optimizer.weight_decay: 2 with optimizer.lr = 0.5", "1 - lr * weight_decay = 0 ",
                                 "below 1"}));
  c.optimizer.name = OptimizerKind::sgd;
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); }, {"optimizer.weight_decay", "(sgd)"}));
  c.optimizer.name = OptimizerKind::adam;  // coupled L2 goes through the normalisation: no such bound
  EXPECT_NO_THROW(validate_config(c, 1));
  c = with({"optimizer.name=adamw", "optimizer.lr=0.5", "optimizer.weight_decay=1.99"});
  EXPECT_NO_THROW(validate_config(c, 1));

  // A cosine schedule decays from lr to min_lr.
  c = with({"schedule.kind=cosine", "optimizer.lr=0.001", "schedule.min_lr=0.01"});
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); },
                                {"schedule.min_lr: 0.01 is above optimizer.lr = 0.001"}));
  c.schedule.min_lr = 0.001;
  EXPECT_NO_THROW(validate_config(c, 1));
  c = with({"schedule.kind=step", "optimizer.lr=0.001", "schedule.min_lr=0.01"});  // min_lr unused
  EXPECT_NO_THROW(validate_config(c, 1));
}

TEST(ConfigRanges, MatrixSidesAreThirtyTwoBitIntegers) {
  EXPECT_TRUE(throws_user_error([] { with({"model.layers=[784, 2147483648, 10]"}); },
                                {"model.layers", "element 1 is 2147483648 (must be <= 2147483647)"}));
  EXPECT_TRUE(throws_user_error([] { with({"data.eval_batch=2147483648"}); },
                                {"data.eval_batch", "must be <= 2147483647"}));
  EXPECT_EQ(type_of("model.layers"), "list of integers >= 1, <= 2147483647");
  // The rows of one micro-batch on one rank, whatever the global batch.
  Config c = with({"train.batch_size=4294967296"});
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); },
                                {"train.batch_size: 4294967296 samples make micro-batches of 4294967296 rows per rank",
                                 "2147483647"}));
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 2); }, {"2147483648 rows per rank"}));
  EXPECT_NO_THROW(validate_config(c, 3));  // 1431655766 rows per rank
}

TEST(ConfigRanges, SetAllowsSpacesAroundTheEqualsSign) {
  EXPECT_EQ(with({"train.epochs = 2"}).train.epochs, 2);
  EXPECT_EQ(with({" train.epochs=3 "}).train.epochs, 3);
  EXPECT_EQ(with({"run.name = plain"}).run.name, "plain");
  EXPECT_EQ(with({"run.name=\" kept \""}).run.name, " kept ");  // quoted: the spaces are the value's
  EXPECT_EQ(with({"data.train_labels = "}).data.train_labels, "");
  EXPECT_TRUE(throws_user_error([] { with({" = 3"}); }, {"section.key=value"}));
}

}  // namespace
}  // namespace lockstep
