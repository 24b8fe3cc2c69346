// bench_throughput: training throughput of one MLP through lockstep::Trainer (the real step
// loop), under `mpirun -np k`. Prints samples/s, the per-step split by phase, achieved GFLOP/s
// against the single-core SGEMM rate at the step's own GEMM shapes measured in the same run, peak
// RSS per rank, and whether the ranks oversubscribe the cores; appends one row to a CSV.
// It does not time kernels in isolation (see the profile in bench/results/README.md for that).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "bench/common/bench_data.hpp"
#include "bench/common/bench_util.hpp"
#include "bench/common/sgemm_rate.hpp"
#include "lockstep/check.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/runtime.hpp"
#include "lockstep/sharder.hpp"
#include "lockstep/trainer.hpp"

namespace lockstep::bench {
namespace {

struct Args {
  std::vector<int64_t> layers{784, 256, 128, 10};
  int64_t batch = 128;             // global
  std::string optimizer = "adam";
  std::string activation = "relu";
  int64_t steps = 100;             // per measured epoch
  int64_t warmup_steps = 10;
  int64_t repeats = 3;             // measured epochs; the median is reported
  std::string data = "synthetic";
  std::string data_dir = kFashionMnistDir;
  std::string csv = "bench/results/throughput.csv";
  std::string label = "throughput";
  double sgemm_seconds = 1.0;
};

// One rank's figures for the reported epoch, in seconds per step.
struct Phases {
  double step = 0, data = 0, forward = 0, backward = 0, allreduce = 0, optimizer = 0;
};

Phases per_step(const EpochRecord& r, int64_t steps) {
  const auto s = static_cast<double>(steps);
  return {r.seconds / s,          r.data_seconds / s,      r.forward_seconds / s,
          r.backward_seconds / s, r.allreduce_seconds / s, r.optimizer_seconds / s};
}

std::string widths_text(const std::vector<int64_t>& w) {
  std::string s;
  for (size_t i = 0; i < w.size(); ++i) s += (i ? "-" : "") + std::to_string(w[i]);
  return s;
}

// Enum values by their config-file names (to_string is the one spelling of each).
template <typename E>
E parse_enum(const std::string& name, std::initializer_list<E> values, const char* option) {
  for (E v : values) {
    if (to_string(v) == name) return v;
  }
  throw UserError(fmt(option, ": unknown value ", name));
}

Config make_config(const Args& a) {
  Config cfg;
  cfg.run.name = "bench-throughput";
  cfg.model.layers = a.layers;
  cfg.model.activation = parse_enum(a.activation, {Activation::relu, Activation::tanh, Activation::sigmoid,
                                                   Activation::gelu, Activation::none}, "--activation");
  cfg.optimizer.name = parse_enum(a.optimizer, {OptimizerKind::sgd, OptimizerKind::momentum, OptimizerKind::adam,
                                                OptimizerKind::adamw, OptimizerKind::adagrad, OptimizerKind::rmsprop},
                                  "--optimizer");
  cfg.train.batch_size = a.batch;
  cfg.train.epochs = 1 + a.repeats;  // epoch 0: the warm-up steps only
  cfg.train.progress = false;
  cfg.schedule.kind = ScheduleKind::constant;
  cfg.data.val_size = 0;
  return cfg;
}

int run(int argc, char** argv, Comm& comm) {
  Args a;
  CLI::App app{"lockstep training throughput benchmark (run under mpirun -np k)"};
  app.add_option("--layers", a.layers, "MLP widths, input first")->delimiter(',')->capture_default_str();
  app.add_option("--batch", a.batch, "global batch (split across ranks)")->capture_default_str();
  app.add_option("--optimizer", a.optimizer, "sgd|momentum|adam|adamw|adagrad|rmsprop")->capture_default_str();
  app.add_option("--activation", a.activation, "hidden activation")->capture_default_str();
  app.add_option("--steps", a.steps, "steps per measured epoch")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--warmup-steps", a.warmup_steps, "untimed steps first")->capture_default_str();
  app.add_option("--repeats", a.repeats, "measured epochs; the median is reported")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--data", a.data, "fmnist|synthetic")->capture_default_str();
  app.add_option("--data-dir", a.data_dir, "Fashion-MNIST directory")->capture_default_str();
  app.add_option("--csv", a.csv, "CSV to append to (empty: none)")->capture_default_str();
  app.add_option("--label", a.label, "case name in the CSV")->capture_default_str();
  app.add_option("--sgemm-seconds", a.sgemm_seconds, "time spent measuring the SGEMM rate")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return comm.rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  LOCKSTEP_REQUIRE(a.layers.size() >= 2, "--layers needs at least two widths");
  a.warmup_steps = std::clamp<int64_t>(a.warmup_steps, 0, a.steps);
  const bool root = comm.rank() == 0;
  const int p = comm.size();
  const int blas_threads = configure_blas_threads();
  const int cores = online_cores();
  const bool oversubscribed = comm.local_size() * blas_threads > cores;
  const double load_before = load_average_1min();

  const Config cfg = make_config(a);
  Datasets data;
  data.train = make_bench_data(a.data, a.data_dir, a.layers.front(), static_cast<int>(a.layers.back()),
                               a.steps * a.batch, 7);
  auto backend = make_cpu_backend();
  double warm_wall = 0.0, warm_cpu = 0.0;
  TrainerOptions opts;
  opts.on_step = [&](const StepRecord& s) {
    if (s.epoch == 0 && s.step_in_epoch + 1 == a.steps) {
      warm_wall = wall_seconds();
      warm_cpu = process_cpu_seconds();
    }
  };
  Trainer trainer(cfg, comm, *backend, data, opts);
  // Epoch 0 runs only its last warmup_steps steps; epochs 1..repeats are measured whole.
  trainer.state().step_in_epoch = a.steps - a.warmup_steps;
  if (a.warmup_steps == 0) {
    trainer.state().epoch = 1;
    trainer.state().step_in_epoch = 0;
    warm_wall = wall_seconds();
    warm_cpu = process_cpu_seconds();
  }
  const TrainResult result = trainer.run();
  const double cpu_seconds = process_cpu_seconds() - warm_cpu;
  const double cpu_share = cpu_seconds / (wall_seconds() - warm_wall) / blas_threads;
  const double rss = peak_rss_mib();
  LOCKSTEP_CHECK(static_cast<int64_t>(result.epochs.size()) >= a.repeats, "trainer ran too few epochs");

  // The median measured epoch by wall time (rank 0 chooses, everyone reports that epoch).
  std::vector<size_t> idx(static_cast<size_t>(a.repeats));
  std::iota(idx.begin(), idx.end(), result.epochs.size() - idx.size());
  std::sort(idx.begin(), idx.end(), [&](size_t i, size_t j) { return result.epochs[i].seconds < result.epochs[j].seconds; });
  int64_t pick[2] = {static_cast<int64_t>(idx[idx.size() / 2]), static_cast<int64_t>(idx.front())};
  comm.broadcast(pick, sizeof pick, 0);
  const EpochRecord& med = result.epochs[static_cast<size_t>(pick[0])];
  const EpochRecord& best = result.epochs[static_cast<size_t>(pick[1])];
  const Phases ph = per_step(med, a.steps);
  // Phases averaged over ranks; step time and memory as the slowest rank saw them.
  double sums[6] = {ph.data, ph.forward, ph.backward, ph.allreduce, ph.optimizer, cpu_share};
  comm.allreduce_sum(sums, 6);
  for (double& v : sums) v /= p;
  double maxes[4] = {ph.step, best.seconds / static_cast<double>(a.steps), rss, cpu_seconds};
  comm.allreduce_max(maxes, 4);

  // The yardstick: every rank times the step's GEMMs at its own slice size, all at once.
  comm.barrier();
  const Range slice = split_evenly(a.batch, comm.rank(), p);
  const SgemmRate sg = measure_mlp_sgemm(a.layers, static_cast<int>(std::max<int64_t>(1, slice.size())), a.sgemm_seconds);
  double sg_mean = sg.gflops;
  comm.allreduce_sum(&sg_mean, 1);
  sg_mean /= p;

  if (!root) return 0;
  const double params = static_cast<double>(trainer.model().num_params());
  const double step_s = maxes[0], best_step_s = maxes[1];
  const double sps = static_cast<double>(a.batch) / step_s;
  const double sps_best = static_cast<double>(a.batch) / best_step_s;
  const double model_gflops = 6.0 * params * sps * 1e-9;
  const double per_rank = model_gflops / p;
  const double gemm_flops_per_sample = total_flops(mlp_step_gemms(a.layers, 1));
  const double ratio = per_rank / sg_mean;
  const double gemm_share = gemm_flops_per_sample * sps / p * 1e-9 / sg_mean;
  // Samples per CPU second of the busiest rank: what the step costs when the rank is not
  // descheduled (robust against other load on the machine; includes MPI's busy waiting).
  const double cpu_sps = static_cast<double>(a.batch * a.steps * a.repeats) / maxes[3];
  const double other = step_s - (sums[0] + sums[1] + sums[2] + sums[3] + sums[4]);
  const double ms = 1e3;

  std::printf("bench_throughput %s: %s (%.0f params), %s, global batch %lld on %d rank(s) x %d BLAS thread(s), data %s\n",
              a.label.c_str(), widths_text(a.layers).c_str(), params, a.optimizer.c_str(),
              static_cast<long long>(a.batch), p, blas_threads, a.data.c_str());
  std::printf("  %lld steps x %lld repeats after %lld warm-up steps; %d cores; load %.2f; oversubscribed: %s\n",
              static_cast<long long>(a.steps), static_cast<long long>(a.repeats),
              static_cast<long long>(a.warmup_steps), cores, load_before, oversubscribed ? "YES (not an efficiency figure)" : "no");
  std::printf("  samples/s      %.0f (median epoch), %.0f (best epoch), %.0f per CPU second of the busiest rank\n",
              sps, sps_best, cpu_sps);
  std::printf("  step           %.3f ms: data %.3f | forward %.3f | backward %.3f | allreduce %.3f | optimizer %.3f | other %.3f\n",
              step_s * ms, sums[0] * ms, sums[1] * ms, sums[2] * ms, sums[3] * ms, sums[4] * ms, other * ms);
  std::printf("  model GFLOP/s  %.1f total, %.1f per rank (6 x params x samples/s)\n", model_gflops, per_rank);
  std::printf("  SGEMM GFLOP/s  %.1f per rank at this step's GEMM shapes (%d sequences in %.2f s)\n", sg_mean,
              sg.repeats, sg.seconds);
  std::printf("  ratio          %.3f of SGEMM (6P convention); the step's GEMMs are %.2fP flops/sample, so GEMM-bound share %.3f\n",
              ratio, gemm_flops_per_sample / params, gemm_share);
  std::printf("  peak RSS       %.1f MiB (largest rank); CPU share %.3f of wall per thread\n", maxes[2], sums[5]);
  std::printf("  final loss     %.4f\n", result.epochs.back().train_loss);
  // One machine-readable line for the scripts (bench/peers/compare.sh, bench/scaling/run.sh).
  const nlohmann::json out = {{"samples_per_s", sps},     {"samples_per_s_best", sps_best}, {"step_ms", step_s * ms},
                              {"model_gflops", model_gflops}, {"sgemm_gflops_per_rank", sg_mean},
                              {"sgemm_ratio", ratio},     {"gemm_share", gemm_share},   {"ranks", p},
                              {"oversubscribed", oversubscribed}, {"cpu_share", sums[5]},
                              {"samples_per_cpu_s", cpu_sps}};
  std::printf("RESULT %s\n", out.dump().c_str());

  if (!a.csv.empty()) {
    CsvAppender csv(a.csv, {"utc", "host", "case", "layers", "params", "batch", "ranks", "blas_threads", "optimizer",
                            "data", "steps", "samples_per_s", "samples_per_s_best", "step_ms", "data_ms",
                            "forward_ms", "backward_ms", "allreduce_ms", "optimizer_ms", "other_ms", "model_gflops",
                            "sgemm_gflops_per_rank", "sgemm_ratio", "gemm_share", "peak_rss_mib", "oversubscribed",
                            "cpu_share", "samples_per_cpu_s", "load1"});
    csv.row({utc_timestamp(), host_name(), a.label, widths_text(a.layers), fixed(params, 0), std::to_string(a.batch),
             std::to_string(p), std::to_string(blas_threads), a.optimizer, a.data, std::to_string(a.steps),
             fixed(sps, 1), fixed(sps_best, 1), fixed(step_s * ms, 4), fixed(sums[0] * ms, 4), fixed(sums[1] * ms, 4),
             fixed(sums[2] * ms, 4), fixed(sums[3] * ms, 4), fixed(sums[4] * ms, 4), fixed(other * ms, 4),
             fixed(model_gflops, 2), fixed(sg_mean, 2), fixed(ratio, 4), fixed(gemm_share, 4), fixed(maxes[2], 1),
             oversubscribed ? "yes" : "no", fixed(sums[5], 3), fixed(cpu_sps, 1), fixed(load_before, 2)});
  }
  return 0;
}

}  // namespace
}  // namespace lockstep::bench

int main(int argc, char** argv) {
  using namespace lockstep;
  MpiSession mpi(&argc, &argv);
  std::unique_ptr<Comm> comm;
  try {
    comm = make_mpi_comm();
    enable_flush_to_zero();
    return bench::run(argc, argv, *comm);
  } catch (const std::exception& e) {
    std::cerr << "bench_throughput: error on rank " << (comm ? comm->rank() : -1) << ": " << e.what() << std::endl;
    MpiSession::abort_all(1);
  }
}
