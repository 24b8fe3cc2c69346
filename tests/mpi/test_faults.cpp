// Faults during training, on every rank count: a non-finite loss on one rank (one NaN or inf
// sample in the slice of the last rank only) is seen by all ranks alike, which either skip the
// step (logged once, counted in metrics.jsonl; weights stay finite and identical) or all stop
// with exit code 5 and one message naming the step; weights that drift apart on one rank are
// caught by the periodic checksum comparison, which stops every rank naming the odd one; an epoch
// whose every step is skipped stops every rank (no progress); a metrics.jsonl that cannot be
// written (a full disk) stops every rank with exit code 4 after the epoch's checkpoint is saved.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lockstep/checkpoint.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/trainer.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// Runs t to its end: the exit code of the AgreedFailure it ended with (-1 when it finished) and
// what this rank wrote to stderr meanwhile.
std::pair<int, std::string> run_to_agreed_end(Trainer& t) {
  int code = -1;
  testing::internal::CaptureStderr();
  try {
    t.run();
  } catch (const AgreedFailure& f) {
    code = f.exit_code;
  }
  return {code, testing::internal::GetCapturedStderr()};
}

// A dataset whose one bad sample lies in the slice of the last rank at step `step` (0-based) of
// epoch 0: feature 2 of that sample is `value` (NaN or inf). Every rank builds the same data.
std::shared_ptr<MemoryData> data_with_bad_sample(const Config& cfg, int64_t n, int64_t step, int world, float value) {
  auto data = test::synthetic_data(n, cfg.model.layers.front(), static_cast<int>(cfg.model.layers.back()), 3);
  Sharder sharder(n, cfg.train.batch_size, false, cfg.run.seed);
  std::vector<int64_t> order;
  sharder.epoch_order(0, order);
  const Range slice = sharder.slice(step, world - 1, world);
  data->features()[static_cast<size_t>(order[static_cast<size_t>(slice.begin)] * data->dim() + 2)] = value;
  return data;
}

// Every rank's copy equals rank 0's, bit for bit.
bool same_on_every_rank(Comm& comm, const std::vector<float>& p) {
  std::vector<float> root = p;
  comm.broadcast(root.data(), root.size() * sizeof(float), 0);
  return comm.all_true(std::memcmp(root.data(), p.data(), p.size() * sizeof(float)) == 0);
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class NonFiniteSkip : public ::testing::TestWithParam<float> {};

TEST_P(NonFiniteSkip, OneBadSampleOnTheLastRankIsSkippedEverywhereLoggedOnceAndCounted) {
  auto comm = make_mpi_comm();
  Config cfg = test::small_config({6, 8, 3}, 20, 2);
  cfg.train.non_finite = NonFinitePolicy::skip;
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = data_with_bad_sample(cfg, 100, 2, comm->size(), GetParam());
  test::TempDir dir;  // rank 0's metrics file; every rank makes its own directory
  std::ostringstream log;
  std::vector<StepRecord> steps;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) { steps.push_back(s); };
  opts.log = &log;
  opts.metrics_path = comm->rank() == 0 ? dir.file("metrics.jsonl") : "";
  Trainer t(cfg, *comm, *be, ds, opts);
  const TrainResult r = t.run();
  ASSERT_EQ(steps.size(), 10u);
  EXPECT_FALSE(steps[0].skipped);
  EXPECT_FALSE(steps[1].skipped);
  EXPECT_TRUE(steps[2].skipped) << "the batch holding the bad sample (on rank " << comm->size() - 1 << ") must be skipped";
  int64_t skipped = 0;
  for (const auto& s : steps) skipped += s.skipped ? 1 : 0;
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_EQ(r.epochs[0].skipped_steps + r.epochs[1].skipped_steps, skipped);
  EXPECT_GE(skipped, 2);  // once per epoch: the bad sample is in some batch of every epoch
  EXPECT_EQ(t.optimizer().step_count(), 10 - skipped);  // skipped steps do not advance Adam's count
  const std::vector<float> p = t.model().get_params();
  for (float v : p) ASSERT_TRUE(std::isfinite(v));
  EXPECT_TRUE(same_on_every_rank(*comm, p));
  EXPECT_TRUE(std::isfinite(r.epochs[1].train_loss));
  if (comm->rank() == 0) {
    // Logged once (the first skip, naming its step), then only counted in metrics.jsonl.
    EXPECT_EQ(count_of(log.str(), "non-finite"), 1) << log.str();
    EXPECT_EQ(count_of(log.str(), "step 3: non-finite loss or gradient, step skipped"), 1) << log.str();
    std::ifstream metrics(dir.file("metrics.jsonl"));
    int64_t counted = 0, lines = 0;
    for (std::string line; std::getline(metrics, line); ++lines) counted += nlohmann::json::parse(line)["skipped_steps"].get<int64_t>();
    EXPECT_EQ(lines, 2);
    EXPECT_EQ(counted, skipped);
  } else {
    EXPECT_EQ(log.str(), "") << "only rank 0 logs";
  }
}

INSTANTIATE_TEST_SUITE_P(NanAndInf, NonFiniteSkip,
                         ::testing::Values(std::numeric_limits<float>::quiet_NaN(),
                                           std::numeric_limits<float>::infinity()));

TEST(NonFinite, StopEndsEveryRankWithTheSameCodeAndOneMessageNamingTheStep) {
  auto comm = make_mpi_comm();
  Config cfg = test::small_config({6, 8, 3}, 20, 2);
  cfg.train.non_finite = NonFinitePolicy::stop;
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = data_with_bad_sample(cfg, 100, 2, comm->size(), std::numeric_limits<float>::quiet_NaN());
  int64_t steps = 0;
  std::vector<float> after_two;
  Trainer* trainer = nullptr;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) {
    ++steps;
    if (s.global_step == 2) after_two = trainer->model().get_params();
  };
  Trainer t(cfg, *comm, *be, ds, opts);
  trainer = &t;
  const auto [code, err] = run_to_agreed_end(t);
  EXPECT_EQ(code, exit_code::non_finite);
  EXPECT_EQ(steps, 2);  // stopped inside the third step, before it completed
  EXPECT_EQ(t.model().get_params(), after_two) << "the bad update must not be applied";
  EXPECT_TRUE(same_on_every_rank(*comm, t.model().get_params()));
  if (comm->rank() == 0) {
    EXPECT_EQ(count_of(err, "lockstep: error: non-finite loss or gradient at step 3 (epoch 1, batch 2)"), 1) << err;
  } else {
    EXPECT_EQ(err, "") << "the message is printed once, by rank 0";
  }
}

TEST(NonFinite, AnEpochWhoseEveryStepIsSkippedStopsEveryRankNamingTheEpoch) {
  // "skip" with nothing but bad samples: no step trains, so the run stops (exit code 5) at the
  // end of the first epoch, on every rank alike, instead of "succeeding" with a dead model.
  auto comm = make_mpi_comm();
  Config cfg = test::small_config({6, 8, 3}, 20, 3);
  cfg.train.non_finite = NonFinitePolicy::skip;
  auto be = make_cpu_backend();
  auto data = test::synthetic_data(100, 6, 3, 3);
  for (int64_t i = 0; i < data->size(); ++i) data->features()[static_cast<size_t>(i * 6)] = std::numeric_limits<float>::quiet_NaN();
  Datasets ds;
  ds.train = data;
  test::TempDir dir;
  std::ostringstream log;
  TrainerOptions opts;
  opts.log = &log;
  opts.metrics_path = comm->rank() == 0 ? dir.file("metrics.jsonl") : "";
  Trainer t(cfg, *comm, *be, ds, opts);
  const auto [code, err] = run_to_agreed_end(t);
  EXPECT_EQ(code, exit_code::non_finite);
  EXPECT_EQ(t.state().global_step, 5);  // the whole first epoch, then the stop
  EXPECT_EQ(t.state().epoch, 0);
  if (comm->rank() == 0) {
    EXPECT_EQ(count_of(err, "lockstep: error: every one of the 5 steps of epoch 1 had a non-finite loss or gradient "
                            "and was skipped"), 1) << err;
    EXPECT_EQ(count_of(log.str(), "skipped 5 steps"), 1) << log.str();
    std::ifstream metrics(dir.file("metrics.jsonl"));
    std::string line;
    ASSERT_TRUE(std::getline(metrics, line));
    EXPECT_EQ(nlohmann::json::parse(line)["skipped_steps"], 5);
  } else {
    EXPECT_EQ(err, "") << "the message is printed once, by rank 0";
  }
}

// Perturbs one weight of rank `odd` after step 3 (through the library API, as a stray write or
// a flipped bit would), with replica checks every 2 steps.
void run_with_drift(int odd) {
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
    if (inject && s.global_step == 3 && comm->rank() == odd) trainer->model().params()[7] += 0.5f;
  };
  Trainer t(cfg, *comm, *be, ds, opts);
  trainer = &t;
  const auto [code, err] = run_to_agreed_end(t);
  const int64_t reached = t.state().global_step;
  if (!inject) {
    EXPECT_EQ(code, -1) << "one rank cannot drift";
    EXPECT_EQ(reached, 12);
    return;
  }
  EXPECT_EQ(code, exit_code::replica_drift);
  EXPECT_EQ(reached, 4);  // the first check after the change
  if (comm->rank() != 0) {
    EXPECT_EQ(err, "") << "the message is printed once, by rank 0";
    return;
  }
  EXPECT_EQ(count_of(err, "lockstep: error: replica drift at step 4: "), 1) << err;
  if (comm->size() >= 3) {
    // A majority holds the replicas' checksum: exactly the odd rank is named.
    EXPECT_EQ(count_of(err, "rank(s) " + std::to_string(odd) + " (checksum "), 1) << err;
    EXPECT_EQ(count_of(err, "(checksum "), 2) << "the odd rank's and the majority's: " << err;
  } else {
    EXPECT_EQ(count_of(err, "no majority among the 2 ranks: rank(s) 0 hold checksum "), 1) << err;
    EXPECT_EQ(count_of(err, "rank(s) 1 (checksum "), 1) << err;
  }
}

TEST(ReplicaDrift, ChecksumMismatchStopsEveryRankNamingTheLastRank) {
  auto comm = make_mpi_comm();
  run_with_drift(comm->size() - 1);
}

TEST(ReplicaDrift, DriftOfRankZeroItselfIsNamedAsRankZero) {
  run_with_drift(0);
}

TEST(MetricsWrite, AFullDiskEndsEveryRankWithCodeFourAfterSavingTheEpochsCheckpoint) {
  // /dev/full: every write(2) fails with ENOSPC, as on a full disk. Only rank 0 writes metrics;
  // before, its exception aborted the job (exit 1) and the epoch's checkpoint was never saved.
  auto comm = make_mpi_comm();
  Config cfg = test::small_config({6, 8, 3}, 20, 3);
  cfg.checkpoint.every_epochs = 0;  // saved anyway: the state a resume needs
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = test::synthetic_data(100, 6, 3, 3);
  test::TempDir dir;  // rank 0's checkpoints
  std::ostringstream log;
  Checkpointer checkpointer(*comm, dir.file("ck"), 3, comm->rank() == 0 ? &log : nullptr);
  TrainerOptions opts;
  opts.log = &log;
  opts.checkpointer = &checkpointer;
  opts.metrics_path = comm->rank() == 0 ? "/dev/full" : "";
  Trainer t(cfg, *comm, *be, ds, opts);
  const auto [code, err] = run_to_agreed_end(t);
  EXPECT_EQ(code, exit_code::checkpoint_failed);
  EXPECT_EQ(t.state().global_step, 5);  // stopped at the end of the first of 3 epochs, on every rank
  EXPECT_EQ(t.state().epoch, 1);
  if (comm->rank() != 0) {
    EXPECT_EQ(err, "") << "the message is printed once, by rank 0";
    return;
  }
  const std::string ck = dir.file("ck") + "/" + checkpoint_file_name(5);
  EXPECT_EQ(count_of(err, "lockstep: error: "), 1) << err;
  EXPECT_EQ(count_of(err, "lockstep: error: /dev/full: write failed (No space left on device) at the end of epoch 1 "
                          "(step 5); the epoch's line is not in it; checkpoint " + ck + " holds this state"), 1)
      << err;
  EXPECT_NE(err.find("--resume auto"), std::string::npos) << err;
  const CheckpointData saved = read_checkpoint(ck);
  EXPECT_EQ(saved.trainer.global_step, 5);
  EXPECT_EQ(saved.trainer.epoch, 1);  // the epoch is counted: a resume starts the second one
  EXPECT_EQ(saved.trainer.step_in_epoch, 0);
  EXPECT_EQ(nlohmann::json::parse(saved.last_metrics_json)["epoch"], 1);
  EXPECT_EQ(read_latest(dir.file("ck")).path, ck);
}

}  // namespace
}  // namespace lockstep
