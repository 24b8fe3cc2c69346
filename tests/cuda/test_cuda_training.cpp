// Training on the CUDA backend matches the CPU backend: the same config and seed give the same
// per-step losses and gradient norms and nearly the same weights after a few steps, for several
// activation/optimizer pairs; and run.device picks the GPU and names it. Skipped without a GPU.
#include <gtest/gtest.h>

#include <sstream>

#include "lockstep/cuda_backend.hpp"
#include "lockstep/device.hpp"
#include "lockstep/trainer.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

struct TrainedRun {
  std::vector<StepRecord> steps;
  std::vector<float> params;
  EvalResult eval;
};

TrainedRun train(Backend& be, const Config& cfg, std::shared_ptr<const DataSource> data) {
  auto comm = make_self_comm();
  Datasets ds;
  ds.train = data;
  TrainedRun run;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) { run.steps.push_back(s); };
  Trainer t(cfg, *comm, be, ds, opts);
  t.run();
  run.params = t.model().get_params();
  run.eval = t.evaluate(*data);
  return run;
}

void skip_without_gpu() {
  const GpuProbe p = probe_gpus();
  if (p.gpus.empty()) GTEST_SKIP() << "no GPU, CUDA training tests skipped: " << p.reason;
}

struct Case {
  Activation act;
  OptimizerKind opt;
  double clip;
};

class CudaTraining : public ::testing::TestWithParam<Case> {};

// Ten steps, reduction orders differing between cuBLAS and OpenBLAS: the losses agree to 1e-5
// relative, the weights to 1e-4 (with a floor of 1e-5 of the largest weight: a weight whose
// updates nearly cancel carries the rounding of the updates, not of itself).
TEST_P(CudaTraining, FewStepsMatchTheCpuBackend) {
  skip_without_gpu();
  if (::testing::Test::IsSkipped()) return;
  const Case c = GetParam();
  auto data = test::synthetic_data(700, 24, 6, 3);
  Config cfg = test::small_config({24, 48, 32, 6}, 64, 2);
  cfg.model.activation = c.act;
  cfg.optimizer.name = c.opt;
  cfg.optimizer.clip_norm = c.clip;
  cfg.train.max_steps = 10;
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend(0, false);
  const TrainedRun a = train(*cpu, cfg, data), b = train(*gpu, cfg, data);
  ASSERT_EQ(a.steps.size(), b.steps.size());
  for (size_t i = 0; i < a.steps.size(); ++i) {
    EXPECT_NEAR(b.steps[i].loss, a.steps[i].loss, 1e-5 * a.steps[i].loss) << "step " << i;
    EXPECT_NEAR(b.steps[i].grad_norm, a.steps[i].grad_norm, 1e-4 * a.steps[i].grad_norm) << "step " << i;
  }
  EXPECT_TRUE(test::all_close(b.params, std::vector<double>(a.params.begin(), a.params.end()), 1e-4, 1e-5));
  EXPECT_NEAR(b.eval.loss, a.eval.loss, 1e-4 * a.eval.loss);
  EXPECT_EQ(b.eval.count, a.eval.count);
}

INSTANTIATE_TEST_SUITE_P(Pairs, CudaTraining,
                         ::testing::Values(Case{Activation::tanh, OptimizerKind::adam, 0.0},
                                           Case{Activation::relu, OptimizerKind::momentum, 0.5},
                                           Case{Activation::gelu, OptimizerKind::adamw, 0.0},
                                           Case{Activation::sigmoid, OptimizerKind::rmsprop, 0.0},
                                           Case{Activation::relu, OptimizerKind::sgd, 0.1}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return to_string(info.param.act) + "_" + to_string(info.param.opt);
                         });

TEST(CudaDevice, CudaAndAutoPickTheGpuAndNameIt) {
  skip_without_gpu();
  if (::testing::Test::IsSkipped()) return;
  auto comm = make_self_comm();
  for (DeviceChoice choice : {DeviceChoice::cuda, DeviceChoice::auto_}) {
    Config cfg;
    cfg.run.device = choice;
    std::ostringstream log;
    auto be = make_backend(cfg, *comm, &log);
    EXPECT_EQ(be->kind(), DeviceKind::cuda);
    EXPECT_NE(log.str().find("PCI"), std::string::npos) << log.str();
    EXPECT_NE(log.str().find("local rank 0 of 1"), std::string::npos) << log.str();
    EXPECT_NE(be->describe().find(probe_gpus().gpus.front().pci_bus_id), std::string::npos) << be->describe();
  }
}

}  // namespace
}  // namespace lockstep
