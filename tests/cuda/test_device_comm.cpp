// The device-buffer communicator under mpirun -np 1 and 2: the float allreduce of device buffers
// is exact for small-integer inputs (any summation order gives the same sum), it waits for work
// queued on the backend's stream, and the host methods still work. With one GPU per rank this is
// NCCL; ranks sharing a GPU take the host-staged path. Skipped unless every rank has a GPU.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "lockstep/backend.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/device.hpp"
#include "lockstep/nccl_comm.hpp"

namespace lockstep {
namespace {

struct CommSetup {
  std::unique_ptr<Comm> host;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Comm> device;
};

// Every rank decides to skip together, so no rank waits in a collective the others skipped.
bool make_setup(CommSetup& s, std::string& why) {
  s.host = make_mpi_comm();
  const GpuProbe p = probe_gpus();
  if (!s.host->all_true(!p.gpus.empty())) {
    why = p.gpus.empty() ? p.reason : "another rank has no GPU";
    return false;
  }
  Config cfg;
  cfg.run.device = DeviceChoice::cuda;
  cfg.run.allow_shared_gpu = true;  // one GPU on the machine still tests the staged path
  std::ostringstream log;
  s.backend = make_backend(cfg, *s.host, &log);
  s.device = make_nccl_comm(*s.host, *s.backend, &log, 60.0);
  if (s.host->rank() == 0) std::cout << log.str();
  return true;
}

TEST(DeviceComm, AllreduceOfSmallIntegersIsExact) {
  CommSetup s;
  std::string why;
  if (!make_setup(s, why)) GTEST_SKIP() << "needs a GPU on every rank: " << why;
  const int p = s.host->size(), r = s.host->rank();
  for (size_t n : {size_t{1}, size_t{7}, size_t{1023}, size_t{1025}, (size_t{1} << 22) + 3}) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 13) + static_cast<float>(r + 1);
    Buffer<float> d(*s.backend, n);
    s.backend->to_device(d.data(), x.data(), n * sizeof(float));
    s.device->allreduce_sum(d.data(), n);
    s.backend->to_host(x.data(), d.data(), n * sizeof(float));
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) {
      const float expected = static_cast<float>(p * static_cast<int>(i % 13) + p * (p + 1) / 2);
      wrong += x[i] != expected ? 1 : 0;
    }
    EXPECT_EQ(wrong, 0u) << "n=" << n << " on rank " << r;
  }
}

TEST(DeviceComm, AllreduceWaitsForWorkQueuedOnTheBackendStream) {
  CommSetup s;
  std::string why;
  if (!make_setup(s, why)) GTEST_SKIP() << "needs a GPU on every rank: " << why;
  const int p = s.host->size(), r = s.host->rank();
  const size_t n = (size_t{1} << 24) + 1;  // large enough that the fill is still running when asked
  Buffer<float> d(*s.backend, n);
  for (int round = 1; round <= 3; ++round) {
    s.backend->fill(d.data(), n, static_cast<float>(round * (r + 1)));  // asynchronous on the backend stream
    s.device->allreduce_sum(d.data(), n);
    std::vector<float> x(n);
    s.backend->to_host(x.data(), d.data(), n * sizeof(float));
    const auto expected = static_cast<float>(round * p * (p + 1) / 2);
    size_t wrong = 0;
    for (float v : x) wrong += v != expected ? 1 : 0;
    EXPECT_EQ(wrong, 0u) << "round " << round << " on rank " << r;
  }
}

TEST(DeviceComm, HostMethodsGoThroughMpi) {
  CommSetup s;
  std::string why;
  if (!make_setup(s, why)) GTEST_SKIP() << "needs a GPU on every rank: " << why;
  double v[2] = {1.0, static_cast<double>(s.host->rank())};
  s.device->allreduce_sum(v, 2);
  const int p = s.host->size();
  EXPECT_EQ(v[0], p);
  EXPECT_EQ(v[1], p * (p - 1) / 2);
  EXPECT_TRUE(s.device->all_true(true));
  EXPECT_EQ(s.device->rank(), s.host->rank());
  EXPECT_EQ(s.device->size(), p);
}

}  // namespace
}  // namespace lockstep
