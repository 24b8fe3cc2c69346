// bench_allreduce: lockstep's Comm::allreduce_sum against a plain MPI_Allreduce on the same
// sizes, 4 KB to 64 MB, nccl-tests style: time, algorithm and bus bandwidth, and a count of
// wrong values (element i of rank r holds (7i + r) mod 13, so every sum is a small integer that
// floats add exactly in any order). lockstep sums in the memory its trainer keeps gradients in
// (Comm::make_reduce_buffer: node-shared memory when a node holds several ranks; --plain: an
// ordinary buffer, i.e. MPI too), MPI_Allreduce in an ordinary buffer. The two are timed in
// alternating rounds; medians reported.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "bench/common/bench_util.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/runtime.hpp"

namespace lockstep::bench {
namespace {

float input_value(size_t i, int rank) { return static_cast<float>((i * 7 + static_cast<size_t>(rank)) % 13); }

void fill_inputs(float* x, size_t n, int rank) {
  for (size_t i = 0; i < n; ++i) x[i] = input_value(i, rank);
}

int64_t count_wrong(const float* x, size_t n, int ranks) {
  int64_t wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    int expect = 0;
    for (int r = 0; r < ranks; ++r) expect += static_cast<int>((i * 7 + static_cast<size_t>(r)) % 13);
    wrong += x[i] != static_cast<float>(expect) ? 1 : 0;
  }
  return wrong;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run(int argc, char** argv, Comm& comm) {
  size_t min_bytes = 4096, max_bytes = size_t{64} << 20;
  int rounds = 5, factor = 2;
  double round_seconds = 0.05;
  std::string csv_path = "bench/results/allreduce.csv";
  CLI::App app{"allreduce benchmark: lockstep Comm vs MPI_Allreduce (run under mpirun -np k)"};
  app.add_option("--min-bytes", min_bytes, "smallest buffer")->capture_default_str();
  app.add_option("--max-bytes", max_bytes, "largest buffer")->capture_default_str();
  app.add_option("--factor", factor, "size step (2 or 4)")->capture_default_str()->check(CLI::Range(2, 16));
  app.add_option("--rounds", rounds, "alternating rounds per size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--round-seconds", round_seconds, "target time of one round")->capture_default_str();
  app.add_option("--csv", csv_path, "CSV to append to (empty: none)")->capture_default_str();
  bool plain = false;
  app.add_flag("--plain", plain, "lockstep on an ordinary buffer too (its MPI path), not its reduce buffer");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return comm.rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  const int p = comm.size(), rank = comm.rank();
  const bool root = rank == 0;
  const bool oversubscribed = comm.local_size() > online_cores();
  const double load = load_average_1min();
  const double bus_factor = 2.0 * (p - 1) / p;
  std::vector<float> mpi_buf(max_bytes / sizeof(float));
  std::unique_ptr<ReduceBuffer> shared = plain ? nullptr : comm.make_reduce_buffer(mpi_buf.size());
  std::vector<float> own_buf(shared ? 0 : mpi_buf.size());
  float* lbuf = shared ? shared->data() : own_buf.data();
  const char* path = shared ? "node shared memory" : "MPI";
  std::unique_ptr<CsvAppender> csv;
  if (root && !csv_path.empty()) {
    csv = std::make_unique<CsvAppender>(
        csv_path, std::vector<std::string>{"utc", "host", "ranks", "bytes", "count", "lockstep_us", "mpi_us",
                                           "lockstep_algbw_gbs", "lockstep_busbw_gbs", "mpi_algbw_gbs",
                                           "mpi_busbw_gbs", "lockstep_wrong", "mpi_wrong", "ratio",
                                           "oversubscribed", "load1", "lockstep_path"});
    std::printf("# bench_allreduce: %d ranks, %s, load %.2f%s; lockstep sums through %s\n", p,
                host_name().c_str(), load, oversubscribed ? ", OVERSUBSCRIBED" : "", path);
    std::printf("# %12s %10s | %10s %8s %8s %6s | %10s %8s %8s %6s | %6s\n", "bytes", "count", "lockstep us",
                "algbw", "busbw", "wrong", "MPI us", "algbw", "busbw", "wrong", "ratio");
  }

  // The two contenders: lockstep's communicator in its buffer and the bare MPI call.
  auto lockstep_op = [&](size_t n) { comm.allreduce_sum(lbuf, n); };
  auto mpi_op = [&](size_t n) {
    MPI_Allreduce(MPI_IN_PLACE, mpi_buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  };

  for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= static_cast<size_t>(factor)) {
    const size_t n = bytes / sizeof(float);
    int64_t wrong[2] = {0, 0};
    // Correctness: one call of each on the known inputs.
    fill_inputs(lbuf, n, rank);
    lockstep_op(n);
    wrong[0] = count_wrong(lbuf, n, p);
    fill_inputs(mpi_buf.data(), n, rank);
    mpi_op(n);
    wrong[1] = count_wrong(mpi_buf.data(), n, p);
    comm.allreduce_sum(wrong, 2);

    // Timing on zeros (values do not change the cost of a float add; sums of the inputs
    // would grow without bound over many in-place calls). Iterations sized from a probe.
    std::fill(lbuf, lbuf + n, 0.0f);
    std::fill(mpi_buf.begin(), mpi_buf.begin() + static_cast<std::ptrdiff_t>(n), 0.0f);
    comm.barrier();
    double probe = wall_seconds();
    lockstep_op(n);
    probe = wall_seconds() - probe;
    comm.allreduce_max(&probe, 1);
    const int iters = std::clamp(static_cast<int>(round_seconds / std::max(probe, 1e-7)), 3, 5000);
    std::vector<double> t[2];
    for (int round = 0; round < rounds; ++round) {
      for (int which = 0; which < 2; ++which) {
        comm.barrier();
        const double start = wall_seconds();
        for (int i = 0; i < iters; ++i) which == 0 ? lockstep_op(n) : mpi_op(n);
        double per_call = (wall_seconds() - start) / iters;
        comm.allreduce_max(&per_call, 1);  // the slowest rank sets the pace
        t[which].push_back(per_call);
      }
    }
    if (!root) continue;
    const double tl = median(t[0]), tm = median(t[1]);
    const double algl = static_cast<double>(bytes) / tl * 1e-9, algm = static_cast<double>(bytes) / tm * 1e-9;
    std::printf("  %12zu %10zu | %10.1f %8.2f %8.2f %6lld | %10.1f %8.2f %8.2f %6lld | %6.3f\n", bytes, n, tl * 1e6,
                algl, algl * bus_factor, static_cast<long long>(wrong[0]), tm * 1e6, algm, algm * bus_factor,
                static_cast<long long>(wrong[1]), tl / tm);
    if (csv) {
      csv->row({utc_timestamp(), host_name(), std::to_string(p), std::to_string(bytes), std::to_string(n),
                fixed(tl * 1e6, 2), fixed(tm * 1e6, 2), fixed(algl, 3), fixed(algl * bus_factor, 3), fixed(algm, 3),
                fixed(algm * bus_factor, 3), std::to_string(wrong[0]), std::to_string(wrong[1]), fixed(tl / tm, 4),
                oversubscribed ? "yes" : "no", fixed(load, 2), shared ? "shm" : "mpi"});
    }
  }
  if (root) std::printf("# ratio = lockstep time / MPI time (1.00: no overhead); busbw = 2(p-1)/p x algbw\n");
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
    std::cerr << "bench_allreduce: error on rank " << (comm ? comm->rank() : -1) << ": " << e.what() << std::endl;
    MpiSession::abort_all(1);
  }
}
