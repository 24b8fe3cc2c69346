// Backend choice (run.device) in every build, with or without a GPU: cpu gives the CPU backend;
// where no GPU is usable (a CPU-only build, or no driver as on CI), auto falls back to the CPU with
// one line giving the reason and cuda is a UserError with that reason; the new run keys parse;
// `lockstep info` names the backends and says why no GPU is listed.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "lockstep/device.hpp"
#include "lockstep/runtime.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

Config with_device(DeviceChoice d) {
  Config c;
  c.run.device = d;
  return c;
}

TEST(Device, CpuChoiceGivesTheCpuBackendQuietly) {
  auto comm = make_self_comm();
  std::ostringstream log;
  auto be = make_backend(with_device(DeviceChoice::cpu), *comm, &log);
  EXPECT_EQ(be->kind(), DeviceKind::cpu);
  EXPECT_EQ(log.str(), "");
}

TEST(Device, ProbeGivesGpusOrAReason) {
  const GpuProbe p = probe_gpus();
  if (p.gpus.empty()) {
    EXPECT_FALSE(p.reason.empty());
#ifndef LOCKSTEP_WITH_CUDA
    EXPECT_NE(p.reason.find("no CUDA backend"), std::string::npos) << p.reason;
#endif
  } else {
    EXPECT_TRUE(p.reason.empty());
    for (const auto& g : p.gpus) EXPECT_FALSE(g.pci_bus_id.empty());
  }
}

TEST(Device, AutoFallsBackToTheCpuWithOneLineSayingWhy) {
  const GpuProbe p = probe_gpus();
  if (!p.gpus.empty()) GTEST_SKIP() << "a GPU is visible; the CUDA tests cover auto with a GPU";
  auto comm = make_self_comm();
  std::ostringstream log;
  auto be = make_backend(with_device(DeviceChoice::auto_), *comm, &log);
  EXPECT_EQ(be->kind(), DeviceKind::cpu);
  const std::string out = log.str();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find("run.device = \"auto\""), std::string::npos) << out;
  EXPECT_NE(out.find(p.reason), std::string::npos) << out;
  EXPECT_NE(out.find("training on the CPU"), std::string::npos) << out;
  // A null log is allowed.
  EXPECT_EQ(make_backend(with_device(DeviceChoice::auto_), *comm, nullptr)->kind(), DeviceKind::cpu);
}

TEST(Device, CudaWithoutAGpuIsAUserErrorGivingTheReason) {
  const GpuProbe p = probe_gpus();
  if (!p.gpus.empty()) GTEST_SKIP() << "a GPU is visible; the CUDA tests cover run.device = cuda";
  auto comm = make_self_comm();
  std::ostringstream log;
  EXPECT_TRUE(test::throws_user_error([&] { make_backend(with_device(DeviceChoice::cuda), *comm, &log); },
                                      {"run.device = \"cuda\"", "rank 0", p.reason, "run.device = \"cpu\""}));
  EXPECT_EQ(log.str(), "");
}

TEST(Device, GpuKeysParseAndDefaultOff) {
  const Config defaults;
  EXPECT_FALSE(defaults.run.tf32);
  EXPECT_FALSE(defaults.run.allow_shared_gpu);
  const Config c = load_config("", {"run.device=auto", "run.tf32=true", "run.allow_shared_gpu=true"});
  EXPECT_EQ(c.run.device, DeviceChoice::auto_);
  EXPECT_TRUE(c.run.tf32);
  EXPECT_TRUE(c.run.allow_shared_gpu);
  EXPECT_TRUE(test::throws_user_error([] { load_config("", {"run.tf32=1"}); }, {"run.tf32", "true or false"}));
}

TEST(Device, InfoNamesTheBackendsAndTheGpuSituation) {
  const std::string info = build_info();
#ifdef LOCKSTEP_WITH_CUDA
  EXPECT_NE(info.find("backends: cpu, cuda"), std::string::npos) << info;
  EXPECT_NE(info.find("CUDA: runtime"), std::string::npos) << info;
  EXPECT_NE(info.find("cuBLAS: "), std::string::npos) << info;
  EXPECT_NE(info.find("NCCL: "), std::string::npos) << info;
#else
  EXPECT_NE(info.find("backends: cpu\n"), std::string::npos) << info;
  EXPECT_NE(info.find("CUDA: not in this build"), std::string::npos) << info;
#endif
  EXPECT_NE(info.find("GPUs: "), std::string::npos) << info;
}

}  // namespace
}  // namespace lockstep
