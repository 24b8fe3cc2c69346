// Early stopping: patience and min_delta for val_loss (lower is better) and val_accuracy (higher
// is better), the improved() flag, the disabled case, non-finite metrics, and save/restore of its state.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "lockstep/config.hpp"
#include "lockstep/early_stop.hpp"

namespace lockstep {
namespace {

EarlyStopConfig make(StopMetric metric, int64_t patience, double min_delta, bool enabled = true) {
  EarlyStopConfig c;
  c.enabled = enabled;
  c.metric = metric;
  c.patience = patience;
  c.min_delta = min_delta;
  return c;
}

struct Epoch {
  double loss, accuracy;
  bool improved, stop;
};

void run(EarlyStopping& es, const std::vector<Epoch>& epochs) {
  for (size_t i = 0; i < epochs.size(); ++i) {
    const Epoch& e = epochs[i];
    EXPECT_EQ(es.update(e.loss, e.accuracy), e.stop) << "epoch " << i;
    EXPECT_EQ(es.improved(), e.improved) << "epoch " << i;
  }
}

TEST(EarlyStop, LossWithPatience) {
  EarlyStopping es(make(StopMetric::val_loss, 3, 0.0));
  // The accuracy column moves the wrong way on purpose: only the loss is watched.
  run(es, {{1.0, 0.9, true, false},
           {0.9, 0.8, true, false},
           {0.95, 0.95, false, false},
           {0.9, 0.96, false, false},   // equal to the best is not an improvement
           {0.85, 0.97, true, false},   // improvement resets the count
           {0.86, 0.99, false, false},
           {0.87, 0.99, false, false},
           {0.88, 0.99, false, true}});  // third epoch without improvement
  EXPECT_EQ(es.state().bad_epochs, 3);
  EXPECT_TRUE(es.state().has_best);
}

TEST(EarlyStop, AccuracyWithPatience) {
  EarlyStopping es(make(StopMetric::val_accuracy, 2, 0.0));
  run(es, {{5.0, 0.50, true, false},
           {6.0, 0.60, true, false},
           {7.0, 0.55, false, false},
           {8.0, 0.61, true, false},
           {9.0, 0.61, false, false},
           {9.0, 0.40, false, true}});
}

TEST(EarlyStop, MinDeltaIsMeasuredFromTheBestNotTheLastValue) {
  // Loss falls by 0.25 each epoch but min_delta is 0.375: every second epoch is an improvement
  // over the best, so with patience 2 it never stops. (Binary fractions: exact comparisons.)
  EarlyStopping es(make(StopMetric::val_loss, 2, 0.375));
  run(es, {{4.0, 0, true, false},
           {3.75, 0, false, false},
           {3.5, 0, true, false},
           {3.25, 0, false, false},
           {3.0, 0, true, false},
           {2.75, 0, false, false},
           {2.75, 0, false, true}});
  // Exactly min_delta better is not enough: it must be more.
  EarlyStopping edge(make(StopMetric::val_accuracy, 5, 0.25));
  run(edge, {{0, 0.25, true, false}, {0, 0.5, false, false}, {0, 0.5625, true, false}});
}

TEST(EarlyStop, PatienceOneStopsAtTheFirstBadEpoch) {
  EarlyStopping es(make(StopMetric::val_loss, 1, 0.0));
  run(es, {{2.0, 0, true, false}, {1.0, 0, true, false}, {1.5, 0, false, true}});
}

TEST(EarlyStop, DisabledNeverStopsButStillTracksTheBest) {
  EarlyStopping es(make(StopMetric::val_loss, 1, 0.0, /*enabled=*/false));
  EXPECT_FALSE(es.update(1.0, 0.5));
  EXPECT_TRUE(es.improved());
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(es.update(2.0 + i, 0.1)) << "epoch " << i;
    EXPECT_FALSE(es.improved());
  }
  EXPECT_EQ(es.state().bad_epochs, 50);
}

TEST(EarlyStop, NonFiniteMetricNeverBecomesTheBest) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // A NaN first epoch must not become a best that nothing can beat.
  EarlyStopping first(make(StopMetric::val_loss, 2, 0.0));
  run(first, {{nan, nan, false, false}, {1.0, 0, true, false}, {0.9, 0, true, false}, {nan, 0, false, false},
              {0.95, 0, false, true}});
  EarlyStopping acc(make(StopMetric::val_accuracy, 3, 0.0));
  run(acc, {{0, nan, false, false}, {0, 0.5, true, false}, {0, std::numeric_limits<double>::infinity(), false, false}});
}

TEST(EarlyStop, SavedStateContinuesIdentically) {
  const EarlyStopConfig cfg = make(StopMetric::val_loss, 4, 0.01);
  const std::vector<double> losses{1.0, 0.8, 0.85, 0.78, 0.795, 0.7, 0.71, 0.72, 0.705, 0.73, 0.74, 0.75};
  for (size_t cut = 0; cut <= losses.size(); ++cut) {
    SCOPED_TRACE(::testing::Message() << "saved after epoch " << cut);
    EarlyStopping whole(cfg), first(cfg);
    std::vector<bool> stops, improved;
    for (double l : losses) {
      stops.push_back(whole.update(l, 0.0));
      improved.push_back(whole.improved());
    }
    for (size_t i = 0; i < cut; ++i) first.update(losses[i], 0.0);
    const EarlyStopState saved = first.state();
    EarlyStopping resumed(cfg);
    resumed.set_state(saved);
    EXPECT_EQ(resumed.state().best, saved.best);
    EXPECT_EQ(resumed.state().has_best, saved.has_best);
    EXPECT_EQ(resumed.state().bad_epochs, saved.bad_epochs);
    for (size_t i = cut; i < losses.size(); ++i) {
      EXPECT_EQ(resumed.update(losses[i], 0.0), stops[i]) << "epoch " << i;
      EXPECT_EQ(resumed.improved(), improved[i]) << "epoch " << i;
    }
    EXPECT_EQ(resumed.state().bad_epochs, whole.state().bad_epochs);
    EXPECT_EQ(resumed.state().best, whole.state().best);
  }
  // The sequence above does trigger a stop at the end (0.7 is the best, four epochs after it fail).
  EarlyStopping check(cfg);
  bool stopped = false;
  for (double l : losses) stopped = check.update(l, 0.0);
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace lockstep
