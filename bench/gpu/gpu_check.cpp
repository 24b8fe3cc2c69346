// The helper program of bench/gpu/check.sh, on one process (no MPI needed):
//   losses      train from a config for N steps on a backend and print each step's loss, so the
//               CUDA and CPU backends can be compared step by step;
//   throughput  time training steps of an MLP of given widths on synthetic data and print one
//               line of key=value results. It links lockstep_core; it is not the `lockstep` program.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "lockstep/check.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/device.hpp"
#include "lockstep/rng.hpp"
#include "lockstep/runtime.hpp"
#include "lockstep/trainer.hpp"

namespace lockstep {
namespace {

DeviceChoice parse_device(const std::string& s) {
  if (s == "cpu") return DeviceChoice::cpu;
  if (s == "cuda") return DeviceChoice::cuda;
  if (s == "auto") return DeviceChoice::auto_;
  throw UserError("--device must be cpu, cuda or auto, got " + s);
}

std::string join(const std::vector<int64_t>& v, char sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? std::string(1, sep) : "") + std::to_string(v[i]);
  return s;
}

// Prints "step <global step> loss <mean loss>" for each of the first `steps` steps.
int run_losses(const std::string& config, const std::vector<std::string>& sets, const std::string& device,
               int64_t steps) {
  Config cfg = load_config(config, sets);
  cfg.run.device = parse_device(device);
  cfg.train.max_steps = steps;
  cfg.train.progress = false;
  Datasets data = load_datasets(cfg.data, cfg.model.layers.front(), cfg.run.seed);
  data.val = nullptr;  // only the training losses are compared
  data.test = nullptr;
  auto comm = make_self_comm();
  auto backend = make_backend(cfg, *comm, &std::cerr);
  std::cerr << "losses: " << backend->describe() << ", " << steps << " steps\n";
  TrainerOptions opts;
  opts.on_step = [](const StepRecord& s) { std::printf("step %lld loss %.9g\n", static_cast<long long>(s.global_step), s.loss); };
  Trainer trainer(cfg, *comm, *backend, data, opts);
  trainer.run();
  return 0;
}

std::shared_ptr<MemoryData> random_data(int64_t n, int64_t dim, int classes, uint64_t seed) {
  Rng rng(seed, Stream::test, 0);
  std::vector<float> x(static_cast<size_t>(n * dim));
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (auto& v : x) v = static_cast<float>(rng.uniform01());
  for (auto& v : y) v = static_cast<int32_t>(rng.uniform_below(static_cast<uint64_t>(classes)));
  return std::make_shared<MemoryData>("synthetic", dim, classes, std::move(x), std::move(y));
}

// Times `steps` training steps after `warmup` untimed ones (cuBLAS heuristics, first-touch).
int run_throughput(const std::vector<int64_t>& layers, const std::string& device, int64_t batch, int64_t steps,
                   int64_t warmup, bool tf32) {
  LOCKSTEP_REQUIRE(layers.size() >= 2, "--layers needs at least two widths");
  LOCKSTEP_REQUIRE(batch > 0 && steps > 0 && warmup >= 0, "--batch and --steps must be positive");
  Config cfg;
  cfg.run.device = parse_device(device);
  cfg.run.tf32 = tf32;
  cfg.model.layers = layers;
  cfg.data.classes = static_cast<int>(layers.back());
  cfg.data.val_size = 0;
  cfg.train.batch_size = batch;
  cfg.train.epochs = 1 << 20;
  cfg.train.max_steps = warmup + steps;
  cfg.train.progress = false;
  Datasets data;
  data.train = random_data(batch * 8, layers.front(), cfg.data.classes, 1);
  auto comm = make_self_comm();
  auto backend = make_backend(cfg, *comm, &std::cerr);
  using Clock = std::chrono::steady_clock;
  Clock::time_point start = Clock::now(), end = start;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) {
    if (s.global_step == warmup) start = Clock::now();
    end = Clock::now();  // the trainer synchronises the backend at the end of every step
  };
  Trainer trainer(cfg, *comm, *backend, data, opts);
  if (warmup == 0) start = Clock::now();
  trainer.run();
  const double secs = std::chrono::duration<double>(end - start).count();
  const auto params = static_cast<double>(trainer.model().num_params());
  const double samples = static_cast<double>(batch * steps);
  std::printf("throughput layers=%s device=%s tf32=%d batch=%lld steps=%lld params=%.0f ms_per_step=%.4f "
              "samples_per_s=%.1f tflops=%.3f\n",
              join(layers, '-').c_str(), backend->kind() == DeviceKind::cuda ? "cuda" : "cpu", tf32 ? 1 : 0,
              static_cast<long long>(batch), static_cast<long long>(steps), params, 1e3 * secs / static_cast<double>(steps),
              samples / secs, 6.0 * params * samples / secs / 1e12);
  return 0;
}

}  // namespace
}  // namespace lockstep

int main(int argc, char** argv) {
  using namespace lockstep;
  CLI::App app{"lockstep GPU check helper: per-step losses and training throughput on one process"};
  app.require_subcommand(1);
  std::string device = "cuda";

  auto* losses = app.add_subcommand("losses", "print the loss of each of the first --steps steps");
  std::string config;
  std::vector<std::string> sets;
  int64_t loss_steps = 50;
  losses->add_option("--config", config, "config file (TOML)");
  losses->add_option("--set", sets, "override a key: section.key=value (repeatable)");
  losses->add_option("--device", device, "cpu, cuda or auto");
  losses->add_option("--steps", loss_steps, "steps to run")->check(CLI::PositiveNumber);

  auto* tput = app.add_subcommand("throughput", "time training steps of an MLP on synthetic data");
  std::string widths = "784,256,128,10";
  int64_t batch = 1024, steps = 100, warmup = 10;
  bool tf32 = false;
  tput->add_option("--layers", widths, "layer widths, comma-separated");
  tput->add_option("--device", device, "cpu, cuda or auto");
  tput->add_option("--batch", batch, "global batch size");
  tput->add_option("--steps", steps, "timed steps");
  tput->add_option("--warmup", warmup, "untimed steps first");
  tput->add_flag("--tf32", tf32, "TF32 tensor cores for the GEMMs");

  CLI11_PARSE(app, argc, argv);
  try {
    enable_flush_to_zero();
    configure_blas_threads();
    if (*losses) return run_losses(config, sets, device, loss_steps);
    std::vector<int64_t> layers;
    std::stringstream ss(widths);
    for (std::string w; std::getline(ss, w, ',');) layers.push_back(std::stoll(w));
    return run_throughput(layers, device, batch, steps, warmup, tf32);
  } catch (const std::exception& e) {
    std::cerr << "lockstep_gpu_check: error: " << e.what() << std::endl;
    return 1;
  }
}
