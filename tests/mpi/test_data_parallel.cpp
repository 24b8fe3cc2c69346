// Multi-rank properties of training, run under mpirun -np 1, 2 and 3: replicas stay bitwise
// identical; the result does not depend on how a global batch is split across ranks (nor on
// gradient accumulation); the clipping norm is the same everywhere and equals the single-rank
// one; ranks with empty slices keep in step; evaluation counts every sample once; setup errors
// on one rank end all ranks alike.
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/trainer.hpp"
#include "mpi/mpi_support.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

struct RunOutput {
  std::vector<float> params;
  std::vector<StepRecord> steps;
  TrainResult result;
};

RunOutput train(Comm& comm, const Config& cfg, std::shared_ptr<const DataSource> data) {
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = std::move(data);
  RunOutput run;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) { run.steps.push_back(s); };
  Trainer t(cfg, comm, *be, ds, opts);
  run.result = t.run();
  run.params = t.model().get_params();
  return run;
}

// Every rank holds bitwise the same vector as rank 0.

// Training on p ranks sums the same per-sample gradients as one rank, in another order: each
// weight differs by rounding only. After a few steps of SGD that is a few ulps of the update
// sizes; 1e-5 relative (with a floor of 1e-6 of the largest weight) is far above it.
constexpr double kSplitRtol = 1e-5;

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST(DataParallel, ReplicasStayBitwiseIdentical) {
  auto comm = make_mpi_comm();
  auto data = test::synthetic_data(300, 12, 4, 1);
  Config cfg = test::small_config({12, 16, 8, 4}, 40, 3);
  cfg.optimizer.name = OptimizerKind::adam;
  cfg.optimizer.clip_norm = 0.5;
  const RunOutput r = train(*comm, cfg, data);
  ASSERT_EQ(r.result.steps, 3 * 8);  // ceil(300 / 40) = 8 steps per epoch on every rank
  EXPECT_EQ(static_cast<int64_t>(r.steps.size()), r.result.steps);
  test::expect_same_on_all_ranks(*comm, r.params);
  for (float v : r.params) ASSERT_TRUE(std::isfinite(v));
}

class SplitInvariance : public ::testing::TestWithParam<OptimizerKind> {};

TEST_P(SplitInvariance, RanksTimesSliceEqualsOneRankWholeBatch) {
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  auto data = test::synthetic_data(64 * 5, 10, 3, 2);
  Config cfg = test::small_config({10, 12, 3}, 64, 1);
  cfg.optimizer.name = GetParam();
  cfg.optimizer.lr = GetParam() == OptimizerKind::sgd || GetParam() == OptimizerKind::momentum ? 0.1 : 0.01;
  const RunOutput parallel = train(*comm, cfg, data);  // e.g. 2 ranks x 32 samples
  const RunOutput single = train(*self, cfg, data);    // 1 rank x 64 samples, same batches
  ASSERT_EQ(parallel.steps.size(), single.steps.size());
  EXPECT_TRUE(test::all_close(parallel.params, as_double(single.params), kSplitRtol, 1e-6));
  for (size_t i = 0; i < single.steps.size(); ++i)
    EXPECT_NEAR(parallel.steps[i].loss, single.steps[i].loss, 1e-6 * single.steps[i].loss) << "step " << i;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, SplitInvariance,
                         ::testing::Values(OptimizerKind::sgd, OptimizerKind::momentum, OptimizerKind::adam,
                                           OptimizerKind::adamw, OptimizerKind::adagrad, OptimizerKind::rmsprop));

TEST(DataParallel, ClipNormIsIdenticalOnEveryRankAndEqualsSingleRank) {
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  auto data = test::synthetic_data(96, 8, 3, 3);
  Config cfg = test::small_config({8, 10, 3}, 32, 1);
  cfg.optimizer.name = OptimizerKind::sgd;
  cfg.optimizer.lr = 0.5;
  cfg.optimizer.clip_norm = 0.05;  // well below the gradient norm: every step clips
  const RunOutput parallel = train(*comm, cfg, data);
  const RunOutput single = train(*self, cfg, data);
  ASSERT_EQ(parallel.steps.size(), 3u);
  for (size_t i = 0; i < parallel.steps.size(); ++i) {
    double norm = parallel.steps[i].grad_norm;
    double root = norm;
    comm->broadcast(&root, sizeof root, 0);
    EXPECT_EQ(std::memcmp(&root, &norm, sizeof norm), 0) << "grad norm differs across ranks at step " << i;
    EXPECT_GT(norm, cfg.optimizer.clip_norm);
    EXPECT_NEAR(norm, single.steps[i].grad_norm, 1e-6 * single.steps[i].grad_norm) << "step " << i;
  }
}

TEST(DataParallel, EmptySlicesKeepEveryRankInStep) {
  // 65 samples, batch 64: the second batch has one sample, so ranks 1 and 2 get empty slices.
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  auto data = test::synthetic_data(65, 6, 2, 4);
  Config cfg = test::small_config({6, 5, 2}, 64, 2);
  cfg.optimizer.name = OptimizerKind::momentum;
  cfg.optimizer.lr = 0.05;
  const RunOutput parallel = train(*comm, cfg, data);
  EXPECT_EQ(parallel.result.steps, 4);
  ASSERT_EQ(parallel.steps.size(), 4u);
  EXPECT_EQ(parallel.steps[1].samples, 1);
  test::expect_same_on_all_ranks(*comm, parallel.params);
  const RunOutput single = train(*self, cfg, data);
  EXPECT_TRUE(test::all_close(parallel.params, as_double(single.params), kSplitRtol, 1e-6));
}

TEST(DataParallel, GradientAccumulationMatchesOneMicroBatch) {
  auto comm = make_mpi_comm();
  auto data = test::synthetic_data(240, 9, 3, 5);
  Config cfg = test::small_config({9, 11, 3}, 48, 1);
  cfg.optimizer.name = OptimizerKind::sgd;
  cfg.optimizer.lr = 0.2;
  const RunOutput plain = train(*comm, cfg, data);
  cfg.train.grad_accum = 4;
  const RunOutput accum = train(*comm, cfg, data);
  ASSERT_EQ(plain.steps.size(), accum.steps.size());
  EXPECT_TRUE(test::all_close(accum.params, as_double(plain.params), kSplitRtol, 1e-6));
  test::expect_same_on_all_ranks(*comm, accum.params);
  // 5 steps x 4 micro-batches on every rank (slices of 48, 24 or 16 rows); each but the epoch's
  // first was gathered during the previous micro-batch's backward pass.
  ASSERT_EQ(accum.result.epochs.size(), 1u);
  EXPECT_EQ(accum.result.epochs[0].staged_batches, 20);
  EXPECT_EQ(accum.result.epochs[0].prefetched_batches, 19);
  EXPECT_EQ(plain.result.epochs[0].staged_batches, 5);
  EXPECT_EQ(plain.result.epochs[0].prefetched_batches, 4);
}

TEST(DataParallel, EvaluationCountsEverySampleOnce) {
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  auto data = test::synthetic_data(101, 7, 3, 6);  // 101 does not divide among 2 or 3 ranks
  Config cfg = test::small_config({7, 9, 3}, 16, 1);
  cfg.train.max_steps = 3;
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = data;
  Trainer t(cfg, *comm, *be, ds);
  t.run();
  const EvalResult all = t.evaluate(*data);
  EXPECT_EQ(all.count, 101);
  // The same weights evaluated by one process alone.
  Evaluator local(t.model(), 1000);
  const EvalResult one = local.run(*data, *self);
  EXPECT_NEAR(all.loss, one.loss, 1e-6 * one.loss);
  EXPECT_NEAR(all.accuracy, one.accuracy, 1.0 / 101 + 1e-12);
}

TEST(DataParallel, SetupFailureOnOneRankEndsAllRanksAlike) {
  auto comm = make_mpi_comm();
  const int failing = comm->size() - 1;
  std::ostringstream err;
  int code = -1;
  try {
    collectively(*comm, [&] { LOCKSTEP_REQUIRE(comm->rank() != failing, "data file x.idx: bad row 7"); }, err);
  } catch (const AgreedFailure& f) {
    code = f.exit_code;
  }
  EXPECT_EQ(code, exit_code::bad_input);
  if (comm->rank() == failing) {
    EXPECT_NE(err.str().find("data file x.idx: bad row 7"), std::string::npos) << err.str();
  } else {
    EXPECT_TRUE(err.str().empty()) << "only the failing rank prints: " << err.str();
  }
  // And a success passes on every rank.
  EXPECT_NO_THROW(collectively(*comm, [] {}, err));
}

}  // namespace
}  // namespace lockstep
