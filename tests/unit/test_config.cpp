// Configuration: defaults, TOML files, --set overrides, the errors that name the key, the
// config_to_toml round trip, validate_config's cross-key checks and the key documentation.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "lockstep/check.hpp"
#include "lockstep/config.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

using test::TempDir;
using test::throws_user_error;

Config from_text(const std::string& text) { return parse_config_text(text, "test.toml"); }

// Every key of every section, with a value different from its default.
const char* kEveryKey = R"(
[run]
name = "exp-7"
dir = "/tmp/exp7"
seed = 9
device = "auto"

[data]
train_images = "a.idx"
train_labels = "b.idx"
test_images = "c.idx"
test_labels = "d.idx"
classes = 5
val_size = 100
normalize = "standardize"
eval_batch = 33

[model]
layers = [20, 8, 5]
activation = "gelu"
init = "xavier"

[train]
epochs = 3
batch_size = 48
grad_accum = 2
drop_last = true
max_steps = 77
progress = false

[optimizer]
name = "rmsprop"
lr = 0.25
momentum = 0.5
nesterov = true
beta1 = 0.8
beta2 = 0.95
eps = 1e-6
alpha = 0.9
weight_decay = 0.01
clip_norm = 2.5

[schedule]
kind = "cosine"
warmup_steps = 10
step_size = 50
gamma = 0.5
decay_steps = 200
min_lr = 0.001

[early_stopping]
enabled = true
metric = "val_accuracy"
patience = 4
min_delta = 0.002
)";

const std::vector<std::string> kAllKeys{
    "run.name", "run.dir", "run.seed", "run.device", "run.tf32", "run.allow_shared_gpu", "run.shared_memory_allreduce",
    "data.train_images", "data.train_labels", "data.test_images",
    "data.test_labels", "data.classes", "data.val_size", "data.normalize", "data.eval_batch", "model.layers",
    "model.activation", "model.init", "train.epochs", "train.batch_size", "train.grad_accum", "train.drop_last",
    "train.max_steps", "train.progress", "train.non_finite", "train.check_replicas_every", "optimizer.name", "optimizer.lr", "optimizer.momentum",
    "optimizer.nesterov", "optimizer.beta1", "optimizer.beta2", "optimizer.eps", "optimizer.alpha",
    "optimizer.weight_decay", "optimizer.clip_norm", "schedule.kind", "schedule.warmup_steps", "schedule.step_size",
    "schedule.gamma", "schedule.decay_steps", "schedule.min_lr", "early_stopping.enabled", "early_stopping.metric",
    "early_stopping.patience", "early_stopping.min_delta", "checkpoint.dir", "checkpoint.every_epochs",
    "checkpoint.every_steps", "checkpoint.keep", "checkpoint.at_end", "data.class_subset", "data.train_limit",
    "distill.teacher", "distill.temperature", "distill.alpha", "distill.cache", "init.from", "init.freeze",
    "init.reset_head"};

void expect_every_key(const Config& c) {
  EXPECT_EQ(c.run.name, "exp-7");
  EXPECT_EQ(c.run.dir, "/tmp/exp7");
  EXPECT_EQ(c.run.seed, 9u);
  EXPECT_EQ(c.run.device, DeviceChoice::auto_);
  EXPECT_EQ(c.data.train_images, "a.idx");
  EXPECT_EQ(c.data.train_labels, "b.idx");
  EXPECT_EQ(c.data.test_images, "c.idx");
  EXPECT_EQ(c.data.test_labels, "d.idx");
  EXPECT_EQ(c.data.classes, 5);
  EXPECT_EQ(c.data.val_size, 100);
  EXPECT_EQ(c.data.normalize, Normalize::standardize);
  EXPECT_EQ(c.data.eval_batch, 33);
  EXPECT_EQ(c.model.layers, (std::vector<int64_t>{20, 8, 5}));
  EXPECT_EQ(c.model.activation, Activation::gelu);
  EXPECT_EQ(c.model.init, InitKind::xavier);
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.train.batch_size, 48);
  EXPECT_EQ(c.train.grad_accum, 2);
  EXPECT_TRUE(c.train.drop_last);
  EXPECT_EQ(c.train.max_steps, 77);
  EXPECT_FALSE(c.train.progress);
  EXPECT_EQ(c.optimizer.name, OptimizerKind::rmsprop);
  EXPECT_EQ(c.optimizer.lr, 0.25);
  EXPECT_EQ(c.optimizer.momentum, 0.5);
  EXPECT_TRUE(c.optimizer.nesterov);
  EXPECT_EQ(c.optimizer.beta1, 0.8);
  EXPECT_EQ(c.optimizer.beta2, 0.95);
  EXPECT_EQ(c.optimizer.eps, 1e-6);
  EXPECT_EQ(c.optimizer.alpha, 0.9);
  EXPECT_EQ(c.optimizer.weight_decay, 0.01);
  EXPECT_EQ(c.optimizer.clip_norm, 2.5);
  EXPECT_EQ(c.schedule.kind, ScheduleKind::cosine);
  EXPECT_EQ(c.schedule.warmup_steps, 10);
  EXPECT_EQ(c.schedule.step_size, 50);
  EXPECT_EQ(c.schedule.gamma, 0.5);
  EXPECT_EQ(c.schedule.decay_steps, 200);
  EXPECT_EQ(c.schedule.min_lr, 0.001);
  EXPECT_TRUE(c.early_stopping.enabled);
  EXPECT_EQ(c.early_stopping.metric, StopMetric::val_accuracy);
  EXPECT_EQ(c.early_stopping.patience, 4);
  EXPECT_EQ(c.early_stopping.min_delta, 0.002);
}

TEST(Config, DefaultsWithEmptyPath) {
  const Config c = load_config("", {});
  EXPECT_EQ(config_to_toml(c), config_to_toml(Config{}));
  EXPECT_EQ(c.model.layers, (std::vector<int64_t>{784, 256, 128, 10}));
  EXPECT_EQ(c.train.batch_size, 128);
  EXPECT_EQ(c.optimizer.name, OptimizerKind::adam);
  EXPECT_EQ(c.optimizer.lr, 1e-3);
  EXPECT_EQ(c.data.train_images, std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz");
  EXPECT_NO_THROW(validate_config(c, 1));
  EXPECT_NO_THROW(validate_config(c, 3));
}

TEST(Config, FileWithEverySectionLoads) {
  TempDir dir;
  const std::string path = dir.file("every.toml");
  std::ofstream(path) << kEveryKey;
  expect_every_key(load_config(path, {}));
  expect_every_key(from_text(kEveryKey));
}

TEST(Config, IntegerIsAcceptedForAFloatKey) {
  EXPECT_EQ(from_text("[optimizer]\nlr = 1\n").optimizer.lr, 1.0);
}

TEST(Config, SetOverridesFileAndEarlierSets) {
  TempDir dir;
  const std::string path = dir.file("c.toml");
  std::ofstream(path) << "[optimizer]\nlr = 0.1\nname = \"adam\"\n";
  const Config c = load_config(path, {"optimizer.lr=0.2", "train.batch_size=256", "train.drop_last=true",
                                      "optimizer.name=sgd", "run.dir=runs/x", "run.name=\"quoted name\"",
                                      "model.layers=[784,64,10]", "model.activation=tanh", "train.epochs=3",
                                      "train.epochs=4"});
  EXPECT_EQ(c.optimizer.lr, 0.2);
  EXPECT_EQ(c.train.batch_size, 256);
  EXPECT_TRUE(c.train.drop_last);
  EXPECT_EQ(c.optimizer.name, OptimizerKind::sgd);
  EXPECT_EQ(c.run.dir, "runs/x");
  EXPECT_EQ(c.run.name, "quoted name");
  EXPECT_EQ(c.model.layers, (std::vector<int64_t>{784, 64, 10}));
  EXPECT_EQ(c.model.activation, Activation::tanh);
  EXPECT_EQ(c.train.epochs, 4);  // the last --set wins
  EXPECT_EQ(load_config("", {"train.drop_last=false", "early_stopping.min_delta=1e-3"}).early_stopping.min_delta, 1e-3);
}

TEST(Config, UnknownSectionAndKey) {
  EXPECT_TRUE(throws_user_error([] { from_text("[trainer]\nepochs = 3\n"); },
                                {"test.toml", "unknown section", "trainer", "train", "optimizer"}));
  // The message lists the section's keys so the typo is easy to fix.
  EXPECT_TRUE(throws_user_error([] { from_text("[optimizer]\nlearning_rate = 0.1\n"); },
                                {"test.toml", "unknown key", "optimizer.learning_rate", "lr", "beta1", "weight_decay"}));
  EXPECT_TRUE(throws_user_error([] { from_text("seed = 3\n"); }, {"'seed' is set outside any section", "[run] seed"}));
  EXPECT_TRUE(throws_user_error([] { from_text("train = 3\n"); }, {"'train'", "must be a section"}));
}

TEST(Config, WrongTypes) {
  EXPECT_TRUE(throws_user_error([] { from_text("[optimizer]\nlr = \"fast\"\n"); }, {"optimizer.lr", "number"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[train]\nbatch_size = 12.5\n"); }, {"train.batch_size", "integer"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[train]\ndrop_last = 1\n"); }, {"train.drop_last", "true or false"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[run]\nname = 5\n"); }, {"run.name", "string"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[model]\nlayers = 784\n"); }, {"model.layers", "list"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[model]\nlayers = [784, 1.5, 10]\n"); },
                                {"model.layers", "element 1", "not an integer"}));
}

TEST(Config, OutOfRange) {
  EXPECT_TRUE(throws_user_error([] { from_text("[optimizer]\nlr = -0.1\n"); }, {"optimizer.lr", "> 0", "-0.1"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[optimizer]\nlr = 0.0\n"); }, {"optimizer.lr", "> 0"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[optimizer]\nlr = nan\n"); }, {"optimizer.lr", "finite"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[train]\nbatch_size = 0\n"); }, {"train.batch_size", ">= 1", "0"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[train]\nepochs = 0\n"); }, {"train.epochs", ">= 1"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[model]\nlayers = [784, 0, 10]\n"); },
                                {"model.layers", "element 1", "is 0"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[optimizer]\nbeta1 = 1.5\n"); }, {"optimizer.beta1", "< 1", "1.5"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[schedule]\ngamma = 0.0\n"); }, {"schedule.gamma", "> 0"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[data]\nclasses = 1\n"); }, {"data.classes", ">= 2"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[run]\nseed = -1\n"); }, {"run.seed", ">= 0"}));
  // The closed boundaries themselves are allowed.
  EXPECT_EQ(from_text("[optimizer]\nbeta1 = 0.0\nmomentum = 0.0\n").optimizer.beta1, 0.0);
  EXPECT_EQ(from_text("[schedule]\ngamma = 1.0\n").schedule.gamma, 1.0);
}

TEST(Config, UnknownEnumValues) {
  EXPECT_TRUE(throws_user_error([] { from_text("[optimizer]\nname = \"adamx\"\n"); },
                                {"optimizer.name", "adamx", "sgd", "rmsprop"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[model]\nactivation = \"swish\"\n"); },
                                {"model.activation", "swish", "relu", "gelu"}));
  EXPECT_TRUE(throws_user_error([] { from_text("[schedule]\nkind = \"linear\"\n"); },
                                {"schedule.kind", "linear", "cosine"}));
  EXPECT_TRUE(throws_user_error([] { load_config("", {"optimizer.name=nadam"}); }, {"optimizer.name", "nadam"}));
}

TEST(Config, MalformedTomlGivesTheLine) {
  EXPECT_TRUE(throws_user_error([] { from_text("[train]\nepochs = 3\nbatch_size = = 4\n"); },
                                {"test.toml:3:", "TOML"}));
  TempDir dir;
  const std::string path = dir.file("broken.toml");
  std::ofstream(path) << "[train\nepochs = 3\n";
  EXPECT_TRUE(throws_user_error([&] { load_config(path, {}); }, {path + ":1:", "TOML"}));
  EXPECT_TRUE(throws_user_error([&] { load_config(dir.file("absent.toml"), {}); }, {"absent.toml", "cannot be read"}));
  // A directory used to open as an empty stream, i.e. a config of all defaults.
  EXPECT_TRUE(throws_user_error([&] { load_config(dir.path(), {}); }, {dir.path(), "not a regular file", "directory"}));
}

TEST(Config, BadSetArguments) {
  EXPECT_TRUE(throws_user_error([] { load_config("", {"train.epochs"}); }, {"train.epochs", "section.key=value"}));
  EXPECT_TRUE(throws_user_error([] { load_config("", {"=3"}); }, {"section.key=value"}));
  EXPECT_TRUE(throws_user_error([] { load_config("", {"train.epoch=3"}); }, {"train.epoch", "unknown key"}));
  EXPECT_TRUE(throws_user_error([] { load_config("", {"optimizer.lr=abc"}); }, {"optimizer.lr", "number"}));
  EXPECT_TRUE(throws_user_error([] { load_config("", {"train.batch_size=-4"}); }, {"train.batch_size", ">= 1"}));
}

// Found by fuzz_config: a --set string with bytes that are not UTF-8 was written to the resolved
// config as \u00E9 escapes, which read back as other bytes (another path on resume).
TEST(Config, SetStringsMustBeUtf8AndRoundTripExactly) {
  EXPECT_TRUE(throws_user_error([] { load_config("", {"data.train_images=/data/caf\xe9.gz"}); },
                                {"--set data.train_images", "not valid UTF-8 (byte 0xe9 at offset 9)"}));
  EXPECT_TRUE(throws_user_error([] { load_config("", {"run.name=a\xc3"}); }, {"run.name", "offset 1"}));  // cut short
  EXPECT_TRUE(throws_user_error([] { load_config("", {"run.name=\xed\xa0\x80"}); }, {"run.name", "offset 0"}));  // surrogate
  EXPECT_TRUE(throws_user_error([] { load_config("", {"run.name=\xc0\xaf"}); }, {"run.name", "offset 0"}));  // overlong
  const Config c = load_config("", {"data.train_images=/data/caf\xc3\xa9 \xf0\x9f\x90\x9f\x07.gz"});
  const Config back = parse_config_text(config_to_toml(c), "round trip");
  EXPECT_EQ(back.data.train_images, c.data.train_images);
  EXPECT_EQ(config_to_toml(back), config_to_toml(c));
}

TEST(Config, TomlRoundTripReproducesEveryKey) {
  Config c = from_text(kEveryKey);
  // Values that test the printer: a string needing escapes, doubles needing 17 digits, an
  // integral double (must stay a float), a tiny double.
  c.run.name = "a \"quoted\" \\ name";
  c.optimizer.lr = 0.1 + 1e-17 * 3;
  c.optimizer.momentum = 1.0 / 3.0;
  c.optimizer.weight_decay = 2.0;
  c.early_stopping.min_delta = 1e-300;  // a double key (optimizer keys are single precision)
  c.run.seed = 12345678901234ull;
  const std::string text = config_to_toml(c);
  for (const auto& key : kAllKeys) {
    const auto dot = key.find('.');
    EXPECT_NE(text.find("[" + key.substr(0, dot) + "]"), std::string::npos) << key;
    EXPECT_NE(text.find("\n" + key.substr(dot + 1) + " = "), std::string::npos) << key;
  }
  const Config back = parse_config_text(text, "round-trip");
  EXPECT_EQ(config_to_toml(back), text);
  EXPECT_EQ(back.run.name, c.run.name);
  EXPECT_EQ(back.optimizer.lr, c.optimizer.lr);
  EXPECT_EQ(back.optimizer.momentum, c.optimizer.momentum);
  EXPECT_EQ(back.optimizer.weight_decay, 2.0);
  EXPECT_EQ(back.early_stopping.min_delta, 1e-300);
  EXPECT_EQ(back.run.seed, c.run.seed);
  // The rest of the keys came from kEveryKey and must all survive.
  Config expected_rest = back;
  expected_rest.run.name = "exp-7";
  expected_rest.optimizer.lr = 0.25;
  expected_rest.optimizer.momentum = 0.5;
  expected_rest.optimizer.weight_decay = 0.01;
  expected_rest.early_stopping.min_delta = 0.002;
  expected_rest.run.seed = 9;
  expect_every_key(expected_rest);
}

TEST(Config, ValidateRejectsInconsistentKeys) {
  Config c;
  c.model.layers = {784, 64, 12};
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); }, {"model.layers", "data.classes", "12", "10"}));

  c = Config{};
  c.train.batch_size = 2;
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 3); }, {"train.batch_size", "(2)", "(3)"}));
  c.train.batch_size = 3;
  EXPECT_NO_THROW(validate_config(c, 3));

  c = Config{};
  c.train.batch_size = 8;
  c.train.grad_accum = 3;
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 3); }, {"train.grad_accum", "3", "9", "8"}));
  c.train.batch_size = 9;
  EXPECT_NO_THROW(validate_config(c, 3));

  c = Config{};
  c.early_stopping.enabled = true;
  c.data.val_size = 0;
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); }, {"early_stopping.enabled", "data.val_size"}));
  c.data.val_size = 1;
  EXPECT_NO_THROW(validate_config(c, 1));

  c = Config{};
  c.model.layers = {10};
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); }, {"model.layers"}));
  c = Config{};
  c.data.test_labels = "";
  EXPECT_TRUE(throws_user_error([&] { validate_config(c, 1); }, {"data.test_images", "data.test_labels"}));
}

TEST(Config, TrailingSlashesDoNotDoubleInPathsBuiltOnTheRunDirectory) {
  Config c;
  c.run.dir = "runs/a//";
  EXPECT_EQ(run_dir_of(c), "runs/a");
  EXPECT_EQ(checkpoint_dir_of(c), "runs/a/checkpoints");
  c.checkpoint.dir = "/scratch/ck/";
  EXPECT_EQ(checkpoint_dir_of(c), "/scratch/ck");
  c.run.dir = "/";
  EXPECT_EQ(run_dir_of(c), "/");
}

TEST(Config, KeyDocsListEveryKeyWithDocAndDefault) {
  const auto docs = config_key_docs();
  std::set<std::string> listed;
  for (const auto& d : docs) {
    SCOPED_TRACE(d.key);
    EXPECT_TRUE(listed.insert(d.key).second) << "listed twice";
    EXPECT_FALSE(d.doc.empty());
    EXPECT_FALSE(d.type.empty());
    EXPECT_FALSE(d.default_value.empty());
    // The documented default, fed back through --set, is the default.
    Config c;
    ASSERT_NO_THROW(c = load_config("", {d.key + "=" + d.default_value}));
    EXPECT_EQ(config_to_toml(c), config_to_toml(Config{}));
  }
  EXPECT_EQ(listed, std::set<std::string>(kAllKeys.begin(), kAllKeys.end()));
  const std::map<std::string, std::string> shown{{"train.batch_size", "128"},
                                                 {"model.layers", "[784, 256, 128, 10]"},
                                                 {"train.drop_last", "false"}};
  for (const auto& d : docs) {
    if (shown.count(d.key)) {
      EXPECT_EQ(d.default_value, shown.at(d.key)) << d.key;
    }
    if (d.key == "optimizer.name") {  // a TOML string: basic ("adam") or literal ('adam') quoting
      EXPECT_TRUE(d.default_value == "\"adam\"" || d.default_value == "'adam'") << d.default_value;
    }
  }
}

}  // namespace
}  // namespace lockstep
