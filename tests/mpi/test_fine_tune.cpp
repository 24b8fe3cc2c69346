// Transfer learning across ranks, under mpirun -np 1, 2 and 3: frozen layers come out bit for bit
// as loaded while the rest trains, with replicas identical and the result independent of the
// rank count; the optimizer keeps state for the trainable layers only; a fine-tune starts its
// optimizer, schedule and epochs afresh; and a fine-tune's checkpoint resumes bit for bit.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "lockstep/checkpoint.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/schedule.hpp"
#include "lockstep/trainer.hpp"
#include "lockstep/transfer.hpp"
#include "mpi/mpi_support.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

constexpr double kSplitRtol = 1e-5;  // as in test_data_parallel

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }



// A "pretrained" model: {12, 10, 8, 4} trained for 30 steps on 4 classes, on one process.
CheckpointData pretrained() {
  auto self = make_self_comm();
  auto be = make_cpu_backend();
  Config cfg = test::small_config({12, 10, 8, 4}, 32, 1);
  cfg.train.max_steps = 30;
  Datasets ds;
  ds.train = test::synthetic_data(30 * 32, 12, 4, 31);
  Trainer t(cfg, *self, *be, ds);
  t.run();
  return t.snapshot();
}

// The fine-tune: the same body, a new 3-class head, on other data.
Config fine_tune_config(std::vector<int64_t> freeze) {
  Config cfg = test::small_config({12, 10, 8, 3}, 30, 2);
  cfg.init.from = "base.h5";
  cfg.init.reset_head = true;
  cfg.init.freeze = std::move(freeze);
  cfg.optimizer.name = OptimizerKind::adam;
  cfg.optimizer.clip_norm = 1.0;
  cfg.schedule.kind = ScheduleKind::cosine;
  cfg.schedule.warmup_steps = 3;
  cfg.checkpoint.every_epochs = 0;
  cfg.checkpoint.at_end = false;
  return cfg;
}

struct Outcome {
  std::vector<float> init, params;
  std::vector<StepRecord> steps;
  TrainResult result;
  size_t state_size = 0;
};

Outcome fine_tune(Comm& comm, const Config& cfg, const CheckpointData* from, std::shared_ptr<const DataSource> data,
              Checkpointer* ckpt = nullptr, int64_t stop_at = 0, const std::string& resume_from = "") {
  auto be = make_cpu_backend();
  Datasets ds;
  ds.train = std::move(data);
  Outcome run;
  TrainerOptions opts;
  opts.init_from = from;
  opts.checkpointer = ckpt;
  opts.on_step = [&](const StepRecord& s) { run.steps.push_back(s); };
  Trainer* self = nullptr;
  opts.stop_requested = [&] {
    return stop_at > 0 && comm.rank() == comm.size() - 1 && self->state().global_step == stop_at - 1;
  };
  Trainer t(cfg, comm, *be, ds, opts);
  self = &t;
  run.init = t.model().get_params();
  run.state_size = t.optimizer().state_size();
  if (!resume_from.empty()) test::restore_from_file(comm, t, resume_from, cfg);
  run.result = t.run();
  run.params = t.model().get_params();
  return run;
}

// Parameter counts of the {12, 10, 8, 3} layers.
constexpr size_t kL0 = 12 * 10 + 10, kL1 = 10 * 8 + 8, kL2 = 8 * 3 + 3;

TEST(FineTune, FrozenBodyComesOutBitwiseUnchanged) {
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  const CheckpointData base = pretrained();
  auto data = test::synthetic_data(150, 12, 3, 32);  // 5 steps per epoch
  const Config cfg = fine_tune_config({0, 1});
  const Outcome parallel = fine_tune(*comm, cfg, &base, data);
  ASSERT_EQ(parallel.steps.size(), 10u);
  // Loaded: the body is the checkpoint's, bit for bit, before and after training.
  EXPECT_TRUE(same_bits(parallel.init.data(), base.params.data(), kL0 + kL1));
  EXPECT_TRUE(same_bits(parallel.params.data(), base.params.data(), kL0 + kL1)) << "a frozen layer changed";
  EXPECT_FALSE(same_bits(parallel.params.data() + kL0 + kL1, parallel.init.data() + kL0 + kL1, kL2))
      << "the head did not train";
  EXPECT_EQ(parallel.state_size, kL2);  // optimizer state for the head only
  test::expect_same_on_all_ranks(*comm, parallel.params);
  const Outcome single = fine_tune(*self, cfg, &base, data);
  EXPECT_TRUE(test::all_close(parallel.params, as_double(single.params), kSplitRtol, 1e-6));
}

TEST(FineTune, AMiddleLayerCanBeFrozenAlone) {
  // Layer 1 frozen between trainable layers: two trainable ranges, two allreduces.
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  const CheckpointData base = pretrained();
  auto data = test::synthetic_data(150, 12, 3, 33);
  const Config cfg = fine_tune_config({1});
  const Outcome parallel = fine_tune(*comm, cfg, &base, data);
  EXPECT_TRUE(same_bits(parallel.params.data() + kL0, base.params.data() + kL0, kL1)) << "frozen layer 1 changed";
  EXPECT_FALSE(same_bits(parallel.params.data(), base.params.data(), kL0)) << "layer 0 did not train";
  EXPECT_EQ(parallel.state_size, kL0 + kL2);
  test::expect_same_on_all_ranks(*comm, parallel.params);
  const Outcome single = fine_tune(*self, cfg, &base, data);
  EXPECT_TRUE(test::all_close(parallel.params, as_double(single.params), kSplitRtol, 1e-6));
}

TEST(FineTune, OptimizerScheduleAndEpochsStartAfresh) {
  auto comm = make_mpi_comm();
  const CheckpointData base = pretrained();
  ASSERT_EQ(base.trainer.global_step, 30);
  ASSERT_GT(base.optimizer_step, 0);
  const Config cfg = fine_tune_config({});
  const Outcome r = fine_tune(*comm, cfg, &base, test::synthetic_data(150, 12, 3, 34));
  ASSERT_EQ(r.steps.size(), 10u);
  EXPECT_EQ(r.steps.front().global_step, 1);
  EXPECT_EQ(r.steps.front().epoch, 0);
  EXPECT_EQ(r.steps.front().lr, learning_rate(cfg.schedule, cfg.optimizer.lr, 0, 10));  // warmup from step 0
  EXPECT_EQ(r.state_size, kL0 + kL1 + kL2);
  // Without freezing, everything trains, the body included.
  EXPECT_TRUE(same_bits(r.init.data(), base.params.data(), kL0 + kL1));
  EXPECT_FALSE(same_bits(r.params.data(), base.params.data(), kL0 + kL1));
}

TEST(FineTune, CheckpointResumesBitwise) {
  auto comm = make_mpi_comm();
  const CheckpointData base = pretrained();
  auto data = test::synthetic_data(140, 12, 3, 35);  // 140 / 30: 5 steps per epoch, the last partial
  Config cfg = fine_tune_config({0});
  cfg.train.epochs = 3;
  const std::string dir = test::shared_dir(*comm, "finetune-resume");
  Checkpointer a(*comm, dir + "/whole", 100, nullptr), b(*comm, dir + "/part", 100, nullptr),
      c(*comm, dir + "/rest", 100, nullptr);
  const Outcome whole = fine_tune(*comm, cfg, &base, data, &a);
  const Outcome first = fine_tune(*comm, cfg, &base, data, &b, 8);
  ASSERT_TRUE(first.result.preempted);
  const std::string ck = dir + "/part/" + checkpoint_file_name(8);
  // A resume takes its weights from the checkpoint, not from init.from (none given).
  const Outcome rest = fine_tune(*comm, cfg, nullptr, data, &c, 0, ck);
  ASSERT_EQ(first.steps.size() + rest.steps.size(), whole.steps.size());
  for (size_t i = 0; i < rest.steps.size(); ++i)
    EXPECT_EQ(rest.steps[i].loss, whole.steps[first.steps.size() + i].loss) << "step " << first.steps.size() + i;
  EXPECT_TRUE(same_bits(rest.params.data(), whole.params.data(), whole.params.size())) << "final weights differ";
  EXPECT_TRUE(same_bits(rest.params.data(), base.params.data(), kL0)) << "frozen layer 0 changed across the resume";

  // The file: frozen layers recorded, optimizer state only for the trainable ones, provenance.
  CheckpointData saved;
  if (comm->rank() == 0) saved = read_checkpoint(ck);
  broadcast_checkpoint(*comm, saved, 0);
  EXPECT_EQ(saved.frozen_layers, (std::vector<int64_t>{0}));
  ASSERT_EQ(saved.optimizer_state.size(), 2u);
  EXPECT_EQ(saved.optimizer_state[0].size(), kL1 + kL2);
  EXPECT_EQ(saved.notes.at(kInitFromNote), "base.h5");
  // Another freeze list would lay the optimizer state out differently: refused.
  Config other = cfg;
  other.init.freeze = {0, 1};
  EXPECT_NE(resume_incompatibilities(saved, other).find("init.freeze: checkpoint has [0], config has [0, 1]"),
            std::string::npos);
  comm->barrier();
  if (comm->rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lockstep
