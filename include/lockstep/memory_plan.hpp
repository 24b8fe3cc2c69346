// What a run allocates when it sets up, computed from the config alone, before any of it is
// allocated: the model's parameters and gradients, the optimizer state, the activations and batch
// buffers of training and evaluation, and the host copies of the weights. check_memory rejects a
// run whose sizes overflow or exceed the host's memory (MemTotal) or the GPU's, naming the key
// that sizes the largest part. An allocation that still fails throws OutOfMemory (check.hpp);
// allocating() adds what it was for. Deliberately not here: the datasets (their sizes come from
// the files, read later) and a teacher's model (from its checkpoint).
#pragma once
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/check.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"

namespace lockstep {

enum class MemoryUse { train, eval };
// device: the backend's memory, which is host memory on the CPU backend.
enum class MemorySpace { host, device };

struct MemoryPart {
  std::string what;   // "training activations for 64 rows per rank"
  std::string key;    // the config key that sizes it: "train.batch_size"
  MemorySpace space = MemorySpace::device;
  uint64_t bytes = 0; // saturates at UINT64_MAX (sizes that overflow 64 bits)
};

struct MemoryPlan {
  std::vector<MemoryPart> parts;
  uint64_t bytes(MemorySpace s) const;  // saturating sums
  uint64_t total() const;
};

// The parts one rank allocates for `use`, of world_size ranks; gpu: on a GPU backend (which
// stages batches through pinned host memory).
MemoryPlan plan_memory(const Config& c, int world_size, MemoryUse use, bool gpu = false);

struct MemoryLimits {
  uint64_t host_bytes = 0;     // 0: unknown, not checked
  std::string host_source = "MemTotal in /proc/meminfo";
  int ranks_on_host = 1;       // ranks of this job sharing the host's memory
  uint64_t device_bytes = 0;   // 0: the device is the host (CPU backend)
  std::string device_name;     // for messages: "GPU 0 (NVIDIA H200)"
};

// UserError naming the key of the largest part, the bytes needed and the limit, when the plan
// overflows or does not fit. Parts in device memory count against the host on a CPU backend.
void check_memory_plan(const MemoryPlan& plan, const Config& c, const MemoryLimits& limits);

// /proc/meminfo's MemTotal (or MemAvailable) in bytes; 0 when it cannot be read.
uint64_t host_memory_bytes(const char* field = "MemTotal");

// plan_memory + check_memory_plan for this rank: limits from /proc/meminfo, the ranks comm puts
// on this host, and the backend's device memory.
void check_memory(const Config& c, const Comm& comm, const Backend& backend, MemoryUse use);

// "1.5 GiB" (binary units, one decimal; bytes below 1 KiB as "512 bytes").
std::string human_bytes(uint64_t bytes);

// Runs fn; an allocation failure inside it (std::bad_alloc, OutOfMemory without a purpose)
// becomes OutOfMemory saying that it happened while allocating `what`.
template <typename F>
auto allocating(const std::string& what, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const OutOfMemory& e) {
    if (e.has_purpose()) throw;
    throw e.for_purpose(what);
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(0, "host memory").for_purpose(what);
  }
}

}  // namespace lockstep
