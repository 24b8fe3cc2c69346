// Choosing each rank's compute backend from run.device (cpu | cuda | auto): which GPUs this
// process sees (or why none), one GPU per rank by node-local rank, the checks that no two ranks
// share a GPU unless run.allow_shared_gpu, and the start-up lines naming every rank's GPU. The
// decision is agreed across ranks, so every rank gets the same kind of backend. Also builds in
// CPU-only builds, where no GPU is ever usable.
#pragma once
#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"

namespace lockstep {

struct GpuInfo {
  int index = 0;              // among the GPUs this process sees
  std::string name;
  std::string pci_bus_id;     // "0000:1b:00.0"
  size_t memory_bytes = 0;
  int cc_major = 0, cc_minor = 0;
};

struct GpuProbe {
  std::vector<GpuInfo> gpus;  // empty when no GPU is usable
  std::string reason;         // why gpus is empty ("" otherwise)
};

// The GPUs this process can use. Never throws: a missing driver, no device or a build without
// CUDA all come back as an empty list with the reason.
GpuProbe probe_gpus();

// The backend of this rank for cfg.run.device. Collective: every rank must call it, and every
// rank gets the same kind of backend. cpu: the CPU backend. cuda: a GPU per rank, else UserError
// naming the rank, host and reason. auto: the GPUs when every rank has one, else the CPU for all
// ranks, with one line on rank 0 saying why. When GPUs are used, rank 0 writes one line per rank
// (host, local rank, GPU, PCI bus id) to log (may be null).
std::unique_ptr<Backend> make_backend(const Config& cfg, Comm& comm, std::ostream* log);

// Lines for `lockstep info`: CUDA runtime and driver, cuBLAS and NCCL versions and the GPUs
// visible (or why there are none), or that the build has no CUDA backend.
std::string cuda_info();

}  // namespace lockstep
