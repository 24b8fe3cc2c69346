// Learning-rate schedules against the formulas of schedule.hpp, written out here independently,
// plus exact values at the points that define each schedule (boundaries, ends, midpoints, warmup).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "lockstep/config.hpp"
#include "lockstep/schedule.hpp"

namespace lockstep {
namespace {

constexpr double kPi = 3.14159265358979323846;

// schedule.hpp: warmup scales by (t+1)/W for t < W; the decay runs on t' = max(0, t - W).
double reference(const ScheduleConfig& s, double base, int64_t t, int64_t total) {
  const int64_t W = s.warmup_steps;
  const double warm = t < W ? double(t + 1) / double(W) : 1.0;
  const int64_t tp = t > W ? t - W : 0;
  double decayed = base;
  if (s.kind == ScheduleKind::step) {
    int64_t drops = 0;
    for (int64_t k = s.step_size; k <= tp; k += s.step_size) ++drops;  // floor(t'/step_size), by counting
    decayed = base * std::pow(s.gamma, double(drops));
  } else if (s.kind == ScheduleKind::exponential) {
    decayed = base * std::exp(std::log(s.gamma) * double(tp) / double(s.decay_steps));
  } else if (s.kind == ScheduleKind::cosine) {
    // Cosine from base at t' = 0 down to min_lr at t = total_steps, flat afterwards.
    const double span = double(total - W);
    const double frac = std::min(1.0, double(tp) / span);
    decayed = s.min_lr + (base - s.min_lr) * (1.0 + std::cos(kPi * frac)) / 2.0;
  }
  return warm * decayed;
}

ScheduleConfig make(ScheduleKind kind, int64_t warmup = 0) {
  ScheduleConfig s;
  s.kind = kind;
  s.warmup_steps = warmup;
  s.step_size = 25;
  s.gamma = 0.5;
  s.decay_steps = 40;
  s.min_lr = 0.002;
  return s;
}

void expect_matches_reference(const ScheduleConfig& s, double base, int64_t total) {
  for (int64_t t = 0; t < total + 50; ++t) {
    const double want = reference(s, base, t, total);
    ASSERT_NEAR(learning_rate(s, base, t, total), want, 1e-12 * want) << "step " << t;
  }
}

TEST(Schedule, EveryKindMatchesTheFormulaWithAndWithoutWarmup) {
  for (auto kind : {ScheduleKind::constant, ScheduleKind::step, ScheduleKind::exponential, ScheduleKind::cosine}) {
    for (int64_t warmup : {0, 1, 7, 30}) {
      SCOPED_TRACE(::testing::Message() << to_string(kind) << " warmup " << warmup);
      expect_matches_reference(make(kind, warmup), 0.1, 300);
    }
  }
}

TEST(Schedule, ConstantIsTheBaseRate) {
  const ScheduleConfig s = make(ScheduleKind::constant);
  for (int64_t t : {0, 1, 99, 100000}) EXPECT_EQ(learning_rate(s, 0.03, t, 100), 0.03);
}

TEST(Schedule, StepDropsExactlyAtMultiplesOfStepSize) {
  ScheduleConfig s = make(ScheduleKind::step);
  s.step_size = 10;
  s.gamma = 0.5;
  const double base = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 9, 100), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 10, 100), 0.05);
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 19, 100), 0.05);
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 20, 100), 0.025);
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 35, 100), 0.0125);
  s.step_size = 1;
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 3, 100), 0.0125);
}

TEST(Schedule, ExponentialDecaysByGammaEveryDecaySteps) {
  ScheduleConfig s = make(ScheduleKind::exponential);
  s.gamma = 0.1;
  s.decay_steps = 100;
  const double base = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 0, 1000), 0.5);
  EXPECT_NEAR(learning_rate(s, base, 100, 1000), 0.05, 1e-15);
  EXPECT_NEAR(learning_rate(s, base, 200, 1000), 0.005, 1e-15);
  EXPECT_NEAR(learning_rate(s, base, 50, 1000), 0.5 * std::sqrt(0.1), 1e-15);  // smooth, not stepped
  for (int64_t t = 1; t < 400; ++t) EXPECT_LT(learning_rate(s, base, t, 1000), learning_rate(s, base, t - 1, 1000));
}

TEST(Schedule, CosineStartsAtBaseEndsAtMinAndPassesTheMean) {
  ScheduleConfig s = make(ScheduleKind::cosine);
  s.min_lr = 0.01;
  const double base = 0.2;
  const int64_t total = 1000;
  EXPECT_DOUBLE_EQ(learning_rate(s, base, 0, total), base);
  EXPECT_NEAR(learning_rate(s, base, total / 2, total), (base + s.min_lr) / 2, 1e-15);
  EXPECT_NEAR(learning_rate(s, base, total, total), s.min_lr, 1e-15);
  EXPECT_NEAR(learning_rate(s, base, total + 500, total), s.min_lr, 1e-15);  // stays at the floor
  // Symmetric about the midpoint: lr(m - k) - mid == mid - lr(m + k).
  const double mid = (base + s.min_lr) / 2;
  for (int64_t k : {1, 100, 499})
    EXPECT_NEAR(learning_rate(s, base, total / 2 - k, total) - mid, mid - learning_rate(s, base, total / 2 + k, total),
                1e-15);
  for (int64_t t = 1; t <= total; ++t) EXPECT_LT(learning_rate(s, base, t, total), learning_rate(s, base, t - 1, total));
  s.min_lr = 0.0;
  EXPECT_NEAR(learning_rate(s, base, total, total), 0.0, 1e-17);
}

TEST(Schedule, WarmupRampsLinearlyThenDecayStarts) {
  const int64_t W = 8;
  const double base = 0.4;
  const ScheduleConfig constant = make(ScheduleKind::constant, W);
  EXPECT_DOUBLE_EQ(learning_rate(constant, base, 0, 100), base / W);
  for (int64_t t = 0; t < W; ++t) EXPECT_DOUBLE_EQ(learning_rate(constant, base, t, 100), base * double(t + 1) / W);
  EXPECT_DOUBLE_EQ(learning_rate(constant, base, W - 1, 100), base);
  EXPECT_DOUBLE_EQ(learning_rate(constant, base, W, 100), base);
  EXPECT_DOUBLE_EQ(learning_rate(constant, base, 99, 100), base);

  // Step: the first drop comes step_size steps after the warmup ends, not step_size steps after 0.
  ScheduleConfig step = make(ScheduleKind::step, W);
  step.step_size = 5;
  step.gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(step, base, W - 1, 100), base);
  EXPECT_DOUBLE_EQ(learning_rate(step, base, W + 4, 100), base);
  EXPECT_DOUBLE_EQ(learning_rate(step, base, W + 5, 100), base / 2);
  EXPECT_DOUBLE_EQ(learning_rate(step, base, W + 10, 100), base / 4);

  // Cosine: base at the end of warmup, min_lr at total_steps, the mean halfway between them.
  ScheduleConfig cosine = make(ScheduleKind::cosine, W);
  cosine.min_lr = 0.004;
  const int64_t total = W + 200;
  EXPECT_DOUBLE_EQ(learning_rate(cosine, base, 0, total), base / W);
  EXPECT_DOUBLE_EQ(learning_rate(cosine, base, W - 1, total), base);
  EXPECT_DOUBLE_EQ(learning_rate(cosine, base, W, total), base);
  EXPECT_NEAR(learning_rate(cosine, base, W + 100, total), (base + cosine.min_lr) / 2, 1e-15);
  EXPECT_NEAR(learning_rate(cosine, base, total, total), cosine.min_lr, 1e-15);
  // Warmup multiplies the cosine value; during warmup the decay has not started.
  for (int64_t t = 0; t < W; ++t) EXPECT_DOUBLE_EQ(learning_rate(cosine, base, t, total), base * double(t + 1) / W);

  // Exponential: no decay at the first step after warmup, one factor gamma decay_steps later.
  ScheduleConfig expo = make(ScheduleKind::exponential, W);
  expo.gamma = 0.25;
  expo.decay_steps = 10;
  EXPECT_DOUBLE_EQ(learning_rate(expo, base, W, 100), base);
  EXPECT_NEAR(learning_rate(expo, base, W + 10, 100), base * 0.25, 1e-15);
}

TEST(Schedule, WarmupOfOneStepIsNoWarmup) {
  const ScheduleConfig s = make(ScheduleKind::constant, 1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 0.3, 0, 10), 0.3);
}

}  // namespace
}  // namespace lockstep
