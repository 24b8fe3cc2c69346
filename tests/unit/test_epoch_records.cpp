// What a run reports per epoch: the metrics.jsonl record (a partial epoch marked, with its step
// range) and rank 0's console line (skipped steps and a partial epoch shown).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lockstep/progress.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/trainer.hpp"

namespace lockstep {
namespace {

EpochRecord record(bool partial, int64_t skipped) {
  EpochRecord r;
  r.epoch = 0;
  r.global_step = 50;
  r.first_step = 1;
  r.partial = partial;
  r.skipped_steps = skipped;
  r.train_loss = 0.5;
  r.lr = 1e-3;
  return r;
}

TEST(EpochRecords, MetricsMarkAPartialEpochWithItsSteps) {
  const auto j = nlohmann::json::parse(epoch_json(record(true, 0)));
  EXPECT_EQ(j["epoch"], 1);
  EXPECT_EQ(j["partial"], true);
  EXPECT_EQ(j["first_step"], 1);
  EXPECT_EQ(j["step"], 50);
  EXPECT_EQ(nlohmann::json::parse(epoch_json(record(false, 0)))["partial"], false);
}

TEST(EpochRecords, TheEpochLineShowsSkippedStepsAndAPartialEpoch) {
  std::ostringstream os;
  Progress p(&os, false, 3);
  p.end_epoch(record(true, 49));
  p.end_epoch(record(false, 1));
  p.end_epoch(record(false, 0));
  std::istringstream lines(os.str());
  std::string a, b, c;
  std::getline(lines, a);
  std::getline(lines, b);
  std::getline(lines, c);
  EXPECT_NE(a.find("  skipped 49 steps  (partial: steps 1-50 of the epoch so far)"), std::string::npos) << a;
  EXPECT_NE(b.find("  skipped 1 step"), std::string::npos) << b;
  EXPECT_EQ(b.find("partial"), std::string::npos) << b;
  EXPECT_EQ(c.find("skipped"), std::string::npos) << c;
}

TEST(EpochRecords, ANegativeNanLossReadsNanNotMinusNan) {
  EpochRecord r = record(false, 1);
  r.train_loss = -std::numeric_limits<double>::quiet_NaN();  // 0/0 on x86 has the sign bit set
  ASSERT_TRUE(std::signbit(r.train_loss));
  std::ostringstream os;
  Progress(&os, false, 1).end_epoch(r);
  EXPECT_NE(os.str().find("  loss nan  "), std::string::npos) << os.str();
  EXPECT_EQ(os.str().find("-nan"), std::string::npos) << os.str();
  EXPECT_EQ(shown(-2.5), -2.5);
}

}  // namespace
}  // namespace lockstep
