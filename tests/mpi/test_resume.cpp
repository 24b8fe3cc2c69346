// Checkpoint and resume across ranks: stopping at step k (by a stop request on one rank),
// saving, and resuming at the same world size gives bitwise the same weights, loss trace and
// learning-rate trace as the uninterrupted run, for every optimizer, mid-epoch, mid-warmup and at
// a step-schedule boundary. Resuming at another world size (same global batch) continues the same
// sample order from the same position: every sample of the interrupted epoch is seen exactly
// once, and the weights match within 1e-5.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstring>
#include <filesystem>
#include <set>

#include "lockstep/checkpoint.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/trainer.hpp"
#include "mpi/mpi_support.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// A data source that records which rows this rank gathered (test only: it allocates).
class RecordingData final : public DataSource {
 public:
  explicit RecordingData(std::shared_ptr<const DataSource> base) : base_(std::move(base)) {}
  int64_t size() const override { return base_->size(); }
  int64_t dim() const override { return base_->dim(); }
  int classes() const override { return base_->classes(); }
  std::string name() const override { return "recording"; }
  void gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const override {
    seen.insert(seen.end(), rows, rows + n);
    base_->gather(rows, n, X, y);
  }
  mutable std::vector<int64_t> seen;

 private:
  std::shared_ptr<const DataSource> base_;
};

struct Trace {
  std::vector<double> loss, lr;
  std::vector<float> params;
  TrainResult result;
};

// A shared checkpoint directory: made by rank 0, named to everyone.

// Trains cfg on comm; when stop_at > 0, asks to stop (on the LAST rank only, so the flag must be
// agreed) once stop_at steps are done, saving into ckdir. When resume_from is set, starts from it.
// With at_boundary, the request comes once stop_at steps are done (as if during the evaluation
// after an epoch's last step) instead of during step stop_at.
Trace run(Comm& comm, const Config& cfg, std::shared_ptr<const DataSource> data, int64_t stop_at,
          const std::string& ckdir, const std::string& resume_from = "", bool at_boundary = false) {
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = std::move(data);
  Trace t;
  Checkpointer ckpt(comm, ckdir, 100, nullptr);
  TrainerOptions opts;
  opts.checkpointer = &ckpt;
  Trainer* self = nullptr;
  opts.on_step = [&](const StepRecord& s) {
    t.loss.push_back(s.loss);
    t.lr.push_back(s.lr);
  };
  opts.stop_requested = [&] {
    return stop_at > 0 && comm.rank() == comm.size() - 1 &&
           self->state().global_step == (at_boundary ? stop_at : stop_at - 1);
  };
  Trainer trainer(cfg, comm, *be, ds, opts);
  self = &trainer;
  if (!resume_from.empty()) test::restore_from_file(comm, trainer, resume_from, cfg);
  t.result = trainer.run();
  t.params = trainer.model().get_params();
  return t;
}

bool bitwise_equal(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

struct ResumeCase {
  OptimizerKind optimizer;
  ScheduleKind schedule;
  int64_t warmup, stop_at;
  const char* what;
};

class BitwiseResume : public ::testing::TestWithParam<ResumeCase> {};

TEST_P(BitwiseResume, ContinuesExactlyLikeTheUninterruptedRun) {
  const ResumeCase c = GetParam();
  auto comm = make_mpi_comm();
  auto data = test::synthetic_data(230, 10, 3, 7);  // 230 / 32: 8 steps per epoch, last one partial
  Config cfg = test::small_config({10, 12, 3}, 32, 3);
  cfg.optimizer.name = c.optimizer;
  cfg.optimizer.lr = (c.optimizer == OptimizerKind::sgd || c.optimizer == OptimizerKind::momentum) ? 0.1 : 0.01;
  cfg.optimizer.weight_decay = 0.001;
  cfg.optimizer.clip_norm = 1.0;
  cfg.schedule.kind = c.schedule;
  cfg.schedule.warmup_steps = c.warmup;
  cfg.schedule.step_size = 5;
  cfg.schedule.gamma = 0.5;
  cfg.checkpoint.every_epochs = 0;
  cfg.checkpoint.at_end = false;
  const std::string dir = test::shared_dir(*comm, "resume-bitwise");

  const Trace whole = run(*comm, cfg, data, 0, dir + "/whole");
  const Trace first = run(*comm, cfg, data, c.stop_at, dir + "/part");
  ASSERT_TRUE(first.result.preempted);
  ASSERT_EQ(static_cast<int64_t>(first.loss.size()), c.stop_at);
  const std::string ck = dir + "/part/" + checkpoint_file_name(c.stop_at);
  const Trace rest = run(*comm, cfg, data, 0, dir + "/rest", ck);

  std::vector<double> loss = first.loss, lr = first.lr;
  loss.insert(loss.end(), rest.loss.begin(), rest.loss.end());
  lr.insert(lr.end(), rest.lr.begin(), rest.lr.end());
  EXPECT_TRUE(bitwise_equal(loss, whole.loss)) << c.what << ": loss trace differs";
  EXPECT_TRUE(bitwise_equal(lr, whole.lr)) << c.what << ": learning-rate trace differs";
  ASSERT_EQ(rest.params.size(), whole.params.size());
  EXPECT_EQ(std::memcmp(rest.params.data(), whole.params.data(), whole.params.size() * sizeof(float)), 0)
      << c.what << ": final weights differ";
  // The epoch that was interrupted reports the same metrics as in the uninterrupted run.
  ASSERT_FALSE(rest.result.epochs.empty());
  const EpochRecord& a = rest.result.epochs.front();
  const EpochRecord& b = whole.result.epochs[static_cast<size_t>(a.epoch)];
  EXPECT_EQ(a.train_loss, b.train_loss);
  EXPECT_EQ(a.train_accuracy, b.train_accuracy);
  if (comm->rank() == 0) std::filesystem::remove_all(dir);
}

// A stop asked for after an epoch's last step (during its evaluation or checkpoint) is taken at
// the epoch boundary: no further step, the epoch's own state saved, and the resumed run continues
// bitwise like the uninterrupted one.
TEST(BitwiseResumeAtEpochBoundary, AStopDuringTheEpochsEvaluationTakesNoFurtherStep) {
  auto comm = make_mpi_comm();
  auto data = test::synthetic_data(230, 10, 3, 7);  // 8 steps per epoch
  Config cfg = test::small_config({10, 12, 3}, 32, 3);
  cfg.optimizer.name = OptimizerKind::adam;
  cfg.optimizer.lr = 0.01;
  cfg.checkpoint.every_epochs = 1;
  const std::string dir = test::shared_dir(*comm, "resume-boundary");
  const Trace whole = run(*comm, cfg, data, 0, dir + "/whole");
  const Trace first = run(*comm, cfg, data, 8, dir + "/part", "", /*at_boundary=*/true);
  ASSERT_TRUE(first.result.preempted);
  EXPECT_EQ(first.result.steps, 8);
  ASSERT_EQ(first.loss.size(), 8u);  // not a ninth step
  const Trace rest = run(*comm, cfg, data, 0, dir + "/rest", dir + "/part/" + checkpoint_file_name(8));
  std::vector<double> loss = first.loss;
  loss.insert(loss.end(), rest.loss.begin(), rest.loss.end());
  EXPECT_TRUE(bitwise_equal(loss, whole.loss));
  EXPECT_EQ(std::memcmp(rest.params.data(), whole.params.data(), whole.params.size() * sizeof(float)), 0);
  if (comm->rank() == 0) std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BitwiseResume,
    ::testing::Values(ResumeCase{OptimizerKind::sgd, ScheduleKind::constant, 0, 11, "sgd mid-epoch"},
                      ResumeCase{OptimizerKind::momentum, ScheduleKind::cosine, 0, 13, "momentum cosine mid-epoch"},
                      ResumeCase{OptimizerKind::adam, ScheduleKind::step, 6, 3, "adam mid-warmup"},
                      ResumeCase{OptimizerKind::adamw, ScheduleKind::step, 0, 5, "adamw at a step boundary"},
                      ResumeCase{OptimizerKind::adagrad, ScheduleKind::exponential, 2, 8, "adagrad at an epoch end"},
                      ResumeCase{OptimizerKind::rmsprop, ScheduleKind::step, 4, 10, "rmsprop after warmup"}));

// Rows each rank gathered during one epoch, from every rank, as a multiset on every rank.
std::multiset<int64_t> all_rows(Comm& comm, const std::vector<int64_t>& mine) {
  std::vector<int64_t> counts(static_cast<size_t>(comm.size()));
  const int64_t n = static_cast<int64_t>(mine.size());
  comm.allgather(&n, sizeof n, counts.data());
  std::multiset<int64_t> out;
  for (int r = 0; r < comm.size(); ++r) {
    std::vector<int64_t> rows = r == comm.rank() ? mine : std::vector<int64_t>(static_cast<size_t>(counts[r]));
    if (counts[r] > 0) comm.broadcast(rows.data(), rows.size() * sizeof(int64_t), r);
    out.insert(rows.begin(), rows.end());
  }
  return out;
}

TEST(ResumeAcrossWorldSizes, SameSamplesOnceAndSameWeights) {
  // Interrupted on this world size, resumed on one rank (2->1 under np 2), and interrupted on
  // one rank, resumed on this world size (1->3 under np 3).
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  auto base = test::synthetic_data(200, 8, 3, 9);  // batch 24: 9 steps per epoch
  Config cfg = test::small_config({8, 10, 3}, 24, 1);
  cfg.optimizer.name = OptimizerKind::adam;
  cfg.checkpoint.every_epochs = 0;
  cfg.checkpoint.at_end = false;
  const int64_t stop_at = 4;
  const std::string dir = test::shared_dir(*comm, "resume-worlds");

  for (bool many_first : {true, false}) {
    SCOPED_TRACE(many_first ? "world -> 1" : "1 -> world");
    Comm& before = many_first ? *comm : *self;
    Comm& after = many_first ? *self : *comm;
    const std::string part = dir + (many_first ? "/a" : "/b");
    // The one-rank half runs on rank 0 alone; the other ranks wait for its checkpoint.
    auto data1 = std::make_shared<RecordingData>(base);
    auto data2 = std::make_shared<RecordingData>(base);
    Trace first, rest;
    if (many_first || comm->rank() == 0) first = run(before, cfg, data1, stop_at, part);
    comm->barrier();
    const std::string ck = part + "/" + checkpoint_file_name(stop_at);
    if (!many_first || comm->rank() == 0) rest = run(after, cfg, data2, 0, dir + "/rest", ck);
    comm->barrier();
    const Trace whole = run(*self, cfg, base, 0, dir + "/whole");

    if (comm->rank() == 0) {
      EXPECT_EQ(static_cast<int64_t>(first.loss.size() + rest.loss.size()), static_cast<int64_t>(whole.loss.size()));
      EXPECT_TRUE(test::all_close(rest.params, std::vector<double>(whole.params.begin(), whole.params.end()), 1e-5, 1e-6));
    }
    // The interrupted half also gathered the next step's slice ahead of time (prefetch during
    // the last backward pass) and never trained on it: exactly those rows, last.
    std::vector<int64_t> mine = data1->seen;
    if (many_first || comm->rank() == 0) {
      const Sharder sharder(base->size(), cfg.train.batch_size, cfg.train.drop_last, cfg.run.seed);
      std::vector<int64_t> order;
      sharder.epoch_order(0, order);
      const Range ahead = sharder.slice(stop_at, before.rank(), before.size());
      const auto n = static_cast<size_t>(ahead.size());
      ASSERT_GE(mine.size(), n);
      EXPECT_TRUE(std::equal(mine.end() - static_cast<std::ptrdiff_t>(n), mine.end(), order.begin() + ahead.begin));
      mine.resize(mine.size() - n);
    }
    // Every training sample of the epoch trained on exactly once over both halves and all ranks.
    mine.insert(mine.end(), data2->seen.begin(), data2->seen.end());
    const auto rows = all_rows(*comm, mine);
    EXPECT_EQ(rows.size(), 200u);
    EXPECT_EQ(std::set<int64_t>(rows.begin(), rows.end()).size(), 200u);
  }
  if (comm->rank() == 0) std::filesystem::remove_all(dir);
}

TEST(ResumeRefusals, DifferentArchitectureOrOptimizerIsListed) {
  auto data = test::synthetic_data(50, 6, 2, 1);
  Config cfg = test::small_config({6, 5, 2}, 10, 1);
  CheckpointData ck;
  ck.layers = {6, 5, 2};
  ck.activation = cfg.model.activation;
  ck.optimizer.name = cfg.optimizer.name;
  ck.global_batch = 10;
  ck.seed = cfg.run.seed;
  EXPECT_EQ(resume_incompatibilities(ck, cfg), "");
  Config other = cfg;
  other.model.layers = {6, 7, 2};
  other.optimizer.name = OptimizerKind::sgd;
  const std::string diff = resume_incompatibilities(ck, other);
  EXPECT_NE(diff.find("model.layers: checkpoint has [6, 5, 2], config has [6, 7, 2]"), std::string::npos) << diff;
  EXPECT_NE(diff.find("optimizer.name: checkpoint has adam, config has sgd"), std::string::npos) << diff;
}

}  // namespace
}  // namespace lockstep
