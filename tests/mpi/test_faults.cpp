// Faults during training, on every rank count: a non-finite loss on one rank (one NaN sample)
// is seen by all ranks alike, which either skip the step (weights stay finite and identical) or
// all stop with exit code 5; weights that drift apart on one rank are caught by the periodic
// checksum comparison, which stops every rank naming the odd one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "lockstep/comm.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/trainer.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// A dataset whose first sample of epoch 0 (so: rank 0's slice of the first batch) is NaN.
std::shared_ptr<MemoryData> data_with_nan(const Config& cfg, int64_t n) {
  auto data = test::synthetic_data(n, cfg.model.layers.front(), static_cast<int>(cfg.model.layers.back()), 3);
  Sharder sharder(n, cfg.train.batch_size, false, cfg.run.seed);
  std::vector<int64_t> order;
  sharder.epoch_order(0, order);
  data->features()[static_cast<size_t>(order[0] * data->dim() + 2)] = std::numeric_limits<float>::quiet_NaN();
  return data;
}

TEST(NonFinite, SkipKeepsWeightsFiniteAndIdentical) {
  auto comm = make_mpi_comm();
  Config cfg = test::small_config({6, 8, 3}, 20, 2);
  cfg.train.non_finite = NonFinitePolicy::skip;
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = data_with_nan(cfg, 100);
  std::vector<StepRecord> steps;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) { steps.push_back(s); };
  Trainer t(cfg, *comm, *be, ds, opts);
  const TrainResult r = t.run();
  ASSERT_EQ(steps.size(), 10u);
  EXPECT_TRUE(steps[0].skipped) << "the batch holding the NaN sample must be skipped";
  int64_t skipped = 0;
  for (const auto& s : steps) skipped += s.skipped ? 1 : 0;
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_EQ(r.epochs[0].skipped_steps + r.epochs[1].skipped_steps, skipped);
  EXPECT_GE(skipped, 2);  // once per epoch: the NaN sample is in some batch of every epoch
  EXPECT_EQ(t.optimizer().step_count(), 10 - skipped);  // skipped steps do not advance Adam's count
  const std::vector<float> p = t.model().get_params();
  for (float v : p) ASSERT_TRUE(std::isfinite(v));
  std::vector<float> root = p;
  comm->broadcast(root.data(), root.size() * sizeof(float), 0);
  EXPECT_EQ(std::memcmp(root.data(), p.data(), p.size() * sizeof(float)), 0);
  EXPECT_TRUE(std::isfinite(r.epochs[1].train_loss));
}

TEST(NonFinite, StopEndsEveryRankWithTheSameCode) {
  auto comm = make_mpi_comm();
  Config cfg = test::small_config({6, 8, 3}, 20, 2);
  cfg.train.non_finite = NonFinitePolicy::stop;
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = data_with_nan(cfg, 100);
  int64_t steps = 0;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord&) { ++steps; };
  Trainer t(cfg, *comm, *be, ds, opts);
  const std::vector<float> before = t.model().get_params();
  int code = -1;
  try {
    t.run();
  } catch (const AgreedFailure& f) {
    code = f.exit_code;
  }
  EXPECT_EQ(code, exit_code::non_finite);
  EXPECT_EQ(steps, 0);  // stopped inside the first step, before it completed
  EXPECT_EQ(t.model().get_params(), before) << "the bad update must not be applied";
}

TEST(ReplicaDrift, ChecksumMismatchStopsEveryRank) {
  auto comm = make_mpi_comm();
  Config cfg = test::small_config({5, 6, 2}, 16, 3);
  cfg.train.check_replicas_every = 2;
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = test::synthetic_data(64, 5, 2, 4);
  Trainer* trainer = nullptr;
  const bool inject = comm->size() > 1;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) {
    // Step 3 on the last rank: a single weight changes behind the trainer's back.
    if (inject && s.global_step == 3 && comm->rank() == comm->size() - 1) trainer->model().params()[7] += 0.5f;
  };
  Trainer t(cfg, *comm, *be, ds, opts);
  trainer = &t;
  int code = -1;
  int64_t reached = 0;
  try {
    t.run();
  } catch (const AgreedFailure& f) {
    code = f.exit_code;
  }
  reached = t.state().global_step;
  if (inject) {
    EXPECT_EQ(code, exit_code::replica_drift);
    EXPECT_EQ(reached, 4);  // the first check after the change
  } else {
    EXPECT_EQ(code, -1) << "one rank cannot drift";
    EXPECT_EQ(reached, 12);
  }
}

}  // namespace
}  // namespace lockstep
