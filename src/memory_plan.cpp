// The set-up memory of a run and its check against the machine (see memory_plan.hpp), and the
// message of OutOfMemory. The sizes mirror what the constructors allocate: Mlp (parameters and
// gradients), Optimizer (state over the trainable parameters), Workspace, BatchStager, Evaluator.
#include "lockstep/memory_plan.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "kernels/optimizer_update.hpp"

namespace lockstep {
namespace {

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

uint64_t mul(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kSaturated : r;
}
uint64_t add(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? kSaturated : r;
}
uint64_t u(int64_t v) { return v > 0 ? static_cast<uint64_t>(v) : 0; }

constexpr uint64_t kFloat = 4;  // float and int32 alike

// Workspace(model, rows): z of every layer, y of the hidden ones, two dL/dy of the widest layer,
// the logits' gradient, and the frozen layers' bias scratch (model.hpp).
uint64_t workspace_bytes(const std::vector<int64_t>& w, uint64_t rows) {
  uint64_t outs = 0, hidden = 0, widest = 0;
  for (size_t l = 1; l < w.size(); ++l) {
    outs = add(outs, u(w[l]));
    if (l + 1 < w.size()) hidden = add(hidden, u(w[l]));
  }
  for (int64_t x : w) widest = std::max(widest, u(x));
  uint64_t floats = mul(rows, add(add(outs, hidden), add(mul(2, widest), u(w.back()))));
  return mul(add(floats, widest), kFloat);
}

// BatchStager(rows, dim): two slots of (rows, dim) features and (rows) labels.
uint64_t staging_bytes(uint64_t rows, int64_t dim) { return mul(2, mul(mul(rows, add(u(dim), 1)), kFloat)); }

std::string layers_text(const std::vector<int64_t>& w) {
  std::string s = "[";
  for (size_t i = 0; i < w.size(); ++i) s += (i ? ", " : "") + std::to_string(w[i]);
  return s + "]";
}

std::string key_value(const Config& c, const std::string& key) {
  if (key == "model.layers") return key + " = " + layers_text(c.model.layers);
  if (key == "train.batch_size") return fmt(key, " = ", c.train.batch_size);
  if (key == "data.eval_batch") return fmt(key, " = ", c.data.eval_batch);
  return key;
}

std::string bytes_text(uint64_t b) {
  if (b == kSaturated) return "more than 2^64 bytes (the sizes overflow 64 bits)";
  return b < 1024 ? fmt(b, " bytes") : fmt(human_bytes(b), " (", b, " bytes)");
}

}  // namespace

std::string human_bytes(uint64_t b) {
  if (b < 1024) return fmt(b, " bytes");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(b) / 1024.0;
  int i = 0;
  while (v >= 1024.0 && i < 5) v /= 1024.0, ++i;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[i]);
  return buf;
}

OutOfMemory::OutOfMemory(uint64_t bytes, std::string memory, std::string purpose)
    : UserError([&] {
        std::string m = "out of memory";
        if (!purpose.empty()) m += " while allocating " + purpose;
        m += bytes > 0 ? fmt(": ", bytes_text(bytes), " of ", memory, " could not be allocated")
                       : fmt(": an allocation of ", memory, " failed");
        if (memory == "host memory") {
          if (const uint64_t avail = host_memory_bytes("MemAvailable"); avail > 0)
            m += fmt(" (MemAvailable: ", human_bytes(avail), ")");
          // A limit of this process (ulimit -v, or a batch system's) ends allocations long before the host's memory.
          struct rlimit as{};
          if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
            m += fmt(" (address-space limit, ulimit -v: ", human_bytes(as.rlim_cur), ")");
        }
        return m + "; reduce model.layers, train.batch_size or data.eval_batch, or run on fewer ranks per host";
      }()),
      bytes_(bytes),
      memory_(std::move(memory)),
      purpose_(std::move(purpose)) {}

uint64_t MemoryPlan::bytes(MemorySpace s) const {
  uint64_t sum = 0;
  for (const MemoryPart& p : parts)
    if (p.space == s) sum = add(sum, p.bytes);
  return sum;
}
uint64_t MemoryPlan::total() const { return add(bytes(MemorySpace::host), bytes(MemorySpace::device)); }

MemoryPlan plan_memory(const Config& c, int world_size, MemoryUse use, bool gpu) {
  const auto& w = c.model.layers;
  MemoryPlan plan;
  if (w.size() < 2) return plan;  // validate_config rejects it, naming the key
  uint64_t params = 0, frozen = 0;
  for (size_t l = 0; l + 1 < w.size(); ++l) {
    const uint64_t n = add(mul(u(w[l]), u(w[l + 1])), u(w[l + 1]));
    params = add(params, n);
    if (std::find(c.init.freeze.begin(), c.init.freeze.end(), static_cast<int64_t>(l)) != c.init.freeze.end())
      frozen = add(frozen, n);
  }
  const uint64_t trainable = params == kSaturated ? kSaturated : params - frozen;
  auto part = [&](std::string what, const char* key, MemorySpace space, uint64_t bytes) {
    if (bytes > 0) plan.parts.push_back({std::move(what), key, space, bytes});
  };
  part("model parameters and gradients", "model.layers", MemorySpace::device, mul(mul(2, params), kFloat));
  const uint64_t eval_rows = u(c.data.eval_batch);
  const bool pinned_copies = gpu;  // a GPU backend stages batches through pinned host memory
  if (use == MemoryUse::train) {
    const int states = optimizer_state_count(c.optimizer.name);
    part(fmt("optimizer state (", to_string(c.optimizer.name), ": ", states, " buffer", states == 1 ? "" : "s", ")"),
         "model.layers", MemorySpace::device, mul(mul(u(states), trainable), kFloat));
    part("host copies of the weights and optimizer state (initialisation, checkpoints)", "model.layers",
         MemorySpace::host, mul(add(params, mul(u(states), trainable)), kFloat));
    const int64_t ranks = std::max(world_size, 1), accum = std::max<int64_t>(c.train.grad_accum, 1);
    const uint64_t rows = u(((c.train.batch_size + ranks - 1) / ranks + accum - 1) / accum);
    part(fmt("training activations for ", rows, " row", rows == 1 ? "" : "s", " per rank"), "train.batch_size",
         MemorySpace::device, workspace_bytes(w, rows));
    part("training batch buffers", "train.batch_size", MemorySpace::device, staging_bytes(rows, w.front()));
    if (pinned_copies)
      part("pinned host copies of the training batches", "train.batch_size", MemorySpace::host,
           staging_bytes(rows, w.front()));
    if (!c.distill.teacher.empty())
      part("teacher logits of a batch", "train.batch_size", MemorySpace::device, mul(mul(rows, u(w.back())), kFloat));
  } else {
    part("host copy of the weights", "model.layers", MemorySpace::host, mul(params, kFloat));
  }
  part(fmt("evaluation activations for ", eval_rows, " rows"), "data.eval_batch", MemorySpace::device,
       workspace_bytes(w, eval_rows));
  part("evaluation batch buffers", "data.eval_batch", MemorySpace::device, staging_bytes(eval_rows, w.front()));
  part("evaluation row indices", "data.eval_batch", MemorySpace::host, mul(eval_rows, 8));
  if (pinned_copies)
    part("pinned host copies of the evaluation batches", "data.eval_batch", MemorySpace::host,
         staging_bytes(eval_rows, w.front()));
  return plan;
}

void check_memory_plan(const MemoryPlan& plan, const Config& c, const MemoryLimits& limits) {
  // Each memory, what it holds per rank and what one host or GPU has of it.
  struct Memory {
    const char* name;
    bool host_parts, device_parts;
    uint64_t limit;
    int sharing;  // ranks that share it
    std::string source;
  };
  const bool device_is_host = limits.device_bytes == 0;
  std::vector<Memory> memories{{"host", true, device_is_host, limits.host_bytes, std::max(limits.ranks_on_host, 1),
                                limits.host_source}};
  if (!device_is_host) memories.push_back({"GPU", false, true, limits.device_bytes, 1, limits.device_name});
  for (const Memory& mem : memories) {
    std::vector<const MemoryPart*> parts;
    uint64_t need = 0;
    std::map<std::string, uint64_t> by_key;
    for (const MemoryPart& p : plan.parts) {
      if (!(p.space == MemorySpace::host ? mem.host_parts : mem.device_parts)) continue;
      parts.push_back(&p);
      need = add(need, p.bytes);
      by_key[p.key] = add(by_key[p.key], p.bytes);
    }
    const uint64_t all = mul(need, u(mem.sharing));
    const bool overflow = all == kSaturated;
    if (parts.empty() || (!overflow && (mem.limit == 0 || all <= mem.limit))) continue;
    // Name the key whose parts weigh most in this memory.
    const auto top = std::max_element(by_key.begin(), by_key.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; });
    std::stable_sort(parts.begin(), parts.end(),
                     [](const MemoryPart* a, const MemoryPart* b) { return a->bytes > b->bytes; });
    std::ostringstream m;
    m << key_value(c, top->first) << ": the run needs " << bytes_text(need) << " of " << mem.name
      << " memory per rank";
    if (overflow) {
      m << ", which no machine has";
    } else {
      if (mem.sharing > 1) m << ", " << bytes_text(all) << " for the " << mem.sharing << " ranks on this host";
      m << ", more than the " << human_bytes(mem.limit) << " there " << (mem.sharing > 1 ? "are" : "is") << " ("
        << mem.source << ")";
    }
    // The parts that matter (each at least 1% of the need), largest first.
    m << ":";
    size_t listed = 0;
    for (const MemoryPart* p : parts) {
      if (listed > 0 && p->bytes < need / 100) break;
      m << (listed ? ", " : " ") << p->what << " "
        << (p->bytes == kSaturated ? std::string("> 2^64 bytes") : human_bytes(p->bytes)) << " (" << p->key << ")";
      ++listed;
    }
    if (listed < parts.size()) m << ", and " << parts.size() - listed << " smaller part" << (parts.size() - listed == 1 ? "" : "s");
    throw UserError(m.str());
  }
}

uint64_t host_memory_bytes(const char* field) {
  std::ifstream f("/proc/meminfo");
  std::string name, unit;
  uint64_t kib = 0;
  while (f >> name >> kib) {
    std::getline(f, unit);
    if (name == std::string(field) + ":") return mul(kib, 1024);
  }
  return 0;
}

void check_memory(const Config& c, const Comm& comm, const Backend& backend, MemoryUse use) {
  MemoryLimits limits;
  limits.host_bytes = host_memory_bytes();
  limits.ranks_on_host = comm.local_size();
  limits.device_bytes = backend.memory_bytes();
  limits.device_name = backend.describe();
  check_memory_plan(plan_memory(c, comm.size(), use, backend.kind() != DeviceKind::cpu), c, limits);
}

}  // namespace lockstep
