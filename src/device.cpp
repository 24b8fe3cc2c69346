// Backend choice per rank (see device.hpp): probe the GPUs, pick one by node-local rank, agree
// across ranks with one allgather, then decide identically everywhere. The CUDA calls are
// confined to the LOCKSTEP_WITH_CUDA parts; a CPU-only build compiles the same decisions with
// "no GPU, this build has no CUDA backend" as the probe's answer.
#include "lockstep/device.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>
#include <type_traits>
#include <utility>

#include "lockstep/check.hpp"

#ifdef LOCKSTEP_WITH_CUDA
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "lockstep/cuda_backend.hpp"
#endif

namespace lockstep {
namespace {

// What one rank found and picked; fixed-size and trivially copyable so that one allgather
// tells every rank about every other.
struct RankGpu {
  int32_t usable = 0;  // 1: `device` is this rank's GPU
  int32_t device = -1;
  int32_t visible = 0;  // GPUs this process sees
  int32_t local_rank = 0, local_size = 1;
  char host[64] = {};
  char name[96] = {};
  char bus_id[32] = {};
  char reason[320] = {};
};
static_assert(std::is_trivially_copyable_v<RankGpu>);

template <size_t N>
void put(char (&dst)[N], const std::string& src) {
  const size_t n = std::min(N - 1, src.size());
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

// Local only: no collective, no throw (a failure becomes the reason).
RankGpu pick_gpu(const Comm& comm) {
  RankGpu r;
  r.local_rank = comm.local_rank();
  r.local_size = comm.local_size();
  put(r.host, comm.host());
  try {
    const GpuProbe probe = probe_gpus();
    r.visible = static_cast<int32_t>(probe.gpus.size());
    if (probe.gpus.empty()) {
      put(r.reason, probe.reason);
      return r;
    }
    // One GPU per node-local rank; with fewer GPUs than ranks the modulo makes ranks share,
    // which the agreement step rejects unless sharing is allowed.
    const GpuInfo& g = probe.gpus[static_cast<size_t>(r.local_rank) % probe.gpus.size()];
    r.device = g.index;
    put(r.name, g.name);
    put(r.bus_id, g.pci_bus_id);
    r.usable = 1;
  } catch (const std::exception& e) {
    put(r.reason, e.what());
  }
  return r;
}

// Identical on every rank (it sees the same gathered records): throws UserError when ranks
// would share a GPU without run.allow_shared_gpu.
void check_not_shared(const std::vector<RankGpu>& all) {
  std::map<std::pair<std::string, std::string>, size_t> owner;  // (host, bus id) -> first rank
  for (size_t i = 0; i < all.size(); ++i) {
    const RankGpu& b = all[i];
    const auto [it, fresh] = owner.emplace(std::make_pair(std::string(b.host), std::string(b.bus_id)), i);
    if (fresh) continue;
    const size_t first = it->second;
    const RankGpu& a = all[first];
    if (a.local_size > a.visible) {
      throw UserError(fmt("run.device: host ", a.host, " runs ", a.local_size, " ranks but only ", a.visible,
                          " GPU(s) are visible to them, so ranks ", first, " and ", i, " would share GPU ", b.bus_id,
                          "; start at most ", a.visible, " rank(s) per node, or set run.allow_shared_gpu = true"));
    }
    throw UserError(fmt("run.device: ranks ", first, " and ", i, " on host ", a.host, " would share GPU ", b.bus_id,
                        " (", b.name, "); give each rank its own GPU (e.g. CUDA_VISIBLE_DEVICES per rank), or set "
                        "run.allow_shared_gpu = true"));
  }
}

#ifdef LOCKSTEP_WITH_CUDA
std::string visible_devices_note() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v ? fmt(" (CUDA_VISIBLE_DEVICES=\"", v, "\")") : std::string();
}

std::string version_of(int code, int major_div, int minor_div) {
  return fmt(code / major_div, ".", (code % major_div) / minor_div);
}
#endif

}  // namespace

GpuProbe probe_gpus() {
  GpuProbe p;
#ifdef LOCKSTEP_WITH_CUDA
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    (void)cudaGetLastError();
    p.reason = fmt(cudaGetErrorString(rc), " (", cudaGetErrorName(rc), ")");
    if (rc == cudaErrorInsufficientDriver)
      p.reason += ": no NVIDIA driver is loaded on this host, or it is older than the CUDA runtime";
    p.reason += visible_devices_note();
    return p;
  }
  if (count == 0) {
    p.reason = "no CUDA GPU is visible" + visible_devices_note();
    return p;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    char bus[32] = {0};
    cudaError_t e = cudaGetDeviceProperties(&prop, i);
    if (e == cudaSuccess) e = cudaDeviceGetPCIBusId(bus, static_cast<int>(sizeof bus), i);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      p.gpus.clear();
      p.reason = fmt("GPU ", i, " cannot be queried: ", cudaGetErrorString(e), visible_devices_note());
      return p;
    }
    GpuInfo g;
    g.index = i;
    g.name = prop.name;
    g.pci_bus_id = bus;
    g.memory_bytes = prop.totalGlobalMem;
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    p.gpus.push_back(std::move(g));
  }
#else
  p.reason = "this build has no CUDA backend (it was configured with LOCKSTEP_CUDA=OFF or without nvcc)";
#endif
  return p;
}

std::unique_ptr<Backend> make_backend(const Config& cfg, Comm& comm, std::ostream* log) {
  const DeviceChoice choice = cfg.run.device;
  if (choice == DeviceChoice::cpu) return make_cpu_backend();

  // Every rank reaches this allgather (pick_gpu does not throw), so a rank without a GPU cannot
  // leave the others waiting; from here on each rank decides from the same records.
  const RankGpu mine = pick_gpu(comm);
  std::vector<RankGpu> all(static_cast<size_t>(comm.size()));
  comm.allgather(&mine, sizeof mine, all.data());
  const bool root = comm.rank() == 0;
  const std::string key = fmt("run.device = \"", to_string(choice), "\"");

  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].usable) continue;
    const std::string why = fmt("rank ", r, " (host ", all[r].host, ") has no usable GPU: ", all[r].reason);
    if (choice == DeviceChoice::cuda)
      throw UserError(fmt(key, ": ", why, "; use run.device = \"cpu\" or \"auto\" to train on the CPU"));
    if (root && log) *log << "lockstep: " << key << ": " << why << "; training on the CPU" << std::endl;
    return make_cpu_backend();
  }
  if (!cfg.run.allow_shared_gpu) check_not_shared(all);
  if (root && log) {
    for (size_t r = 0; r < all.size(); ++r) {
      const RankGpu& g = all[r];
      *log << "lockstep: rank " << r << " on " << g.host << " (local rank " << g.local_rank << " of " << g.local_size
           << "): GPU " << g.device << " " << g.name << ", PCI " << g.bus_id << "\n";
    }
    log->flush();
  }
#ifdef LOCKSTEP_WITH_CUDA
  return make_cuda_backend(mine.device, cfg.run.tf32);
#else
  throw Error("a CPU-only build found a GPU");  // unreachable: probe_gpus never reports one here
#endif
}

std::string cuda_info() {
  std::ostringstream os;
#ifdef LOCKSTEP_WITH_CUDA
  int runtime = 0, driver = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  (void)cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  (void)cudaGetLastError();
  os << "CUDA: runtime " << version_of(runtime, 1000, 10) << ", driver "
     << (driver > 0 ? version_of(driver, 1000, 10) : std::string("none")) << "\n";
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    os << "cuBLAS: " << major << "." << minor << "." << patch << "\n";
  } else {
    os << "cuBLAS: version unavailable\n";
  }
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess) {
    os << "NCCL: " << nccl / 10000 << "." << (nccl % 10000) / 100 << "." << nccl % 100 << "\n";
  } else {
    os << "NCCL: version unavailable\n";
  }
#else
  os << "CUDA: not in this build (configured with LOCKSTEP_CUDA=OFF or without nvcc)\n";
  os << "GPUs: not used (no CUDA backend)\n";
  return os.str();
#endif
  const GpuProbe p = probe_gpus();
  if (p.gpus.empty()) {
    os << "GPUs: none usable (" << p.reason << ")\n";
  } else {
    os << "GPUs: " << p.gpus.size() << " visible\n";
    for (const GpuInfo& g : p.gpus) {
      os << "  GPU " << g.index << ": " << g.name << ", PCI " << g.pci_bus_id << ", " << std::fixed
         << std::setprecision(1) << static_cast<double>(g.memory_bytes) / static_cast<double>(1ull << 30) << " GiB, compute capability "
         << g.cc_major << "." << g.cc_minor << "\n";
    }
  }
  return os.str();
}

}  // namespace lockstep
