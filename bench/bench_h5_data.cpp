// HDF5 data input under mpirun: rank 0 writes a small and a >= 2 GB synthetic data file in /tmp,
// then every rank opens both, times the open-time finite scan (whole file, and this rank's share
// as load_datasets does with a ScanShare), and gathers rows the way training does (the sharder's
// slices of a random permutation) with each read strategy, from the page cache (warm) and after
// evicting the file (cold), reporting rows/s and peak RSS per rank.
// Not a correctness test (tests/unit/test_h5_dataset.cpp is); kept out of CTest: it is slow.
#include <fcntl.h>
#include <malloc.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "lockstep/h5_dataset.hpp"
#include "lockstep/rng.hpp"
#include "lockstep/sharder.hpp"

namespace {

using namespace lockstep;
using Clock = std::chrono::steady_clock;

struct Args {
  int64_t small_rows = 20000, large_rows = 700000, dim = 784, batch = 128;
  int64_t steps = 1000, cold_steps = 150, window = 8192;
  std::string dir = "/tmp", csv = "bench/results/h5_data.csv";
  bool keep = false;
};

// Peak resident set size of this process in MiB (VmHWM), and a reset of it where the kernel
// allows (writing 5 to clear_refs), so each phase can report its own peak.
double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}
bool reset_peak_rss() {
  // Freed heap memory (rank 0's writing buffers, say) goes back to the system first, so a
  // phase's peak is what it holds live, not what an earlier phase left in malloc's free lists.
  malloc_trim(0);
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return f.good();
}

// Drops the file's pages from the page cache, so the next reads come from the disk.
void evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

void write_synthetic(const std::string& path, int64_t rows, int64_t dim, int compress, int64_t chunk_rows) {
  H5WriteOptions o;
  o.compress = compress;
  o.chunk_rows = chunk_rows;
  o.classes = 10;
  o.source = "bench_h5_data synthetic";
  H5DataWriter w(path, rows, dim, o);
  const int64_t block = 4096;
  std::vector<float> x(static_cast<size_t>(block * dim));
  for (int64_t first = 0; first < rows; first += block) {
    const int64_t count = std::min(block, rows - first);
    for (int64_t i = 0; i < count; ++i)
      for (int64_t j = 0; j < dim; ++j)
        x[static_cast<size_t>(i * dim + j)] =
            static_cast<float>(((static_cast<uint64_t>(first + i) * 2654435761u + static_cast<uint64_t>(j) * 40503u) >> 8) & 255) / 255.0f;
    w.write_features(first, count, x.data());
  }
  std::vector<int32_t> y(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) y[static_cast<size_t>(i)] = static_cast<int32_t>(i % 10);
  w.write_labels(y.data());
  w.close();
}

struct Result {
  std::string dataset, strategy, cache;
  double gb = 0, rows_per_s = 0, seconds = 0, peak_mib = 0;
};

// Gathers `steps` training slices (sharder order, this rank's part) and returns rows/s.
double training_gathers(const H5Data& d, const Args& a, int64_t steps, int rank, int world) {
  Sharder sharder(d.size(), a.batch, false, 42);
  std::vector<int64_t> order;
  const int64_t per_rank = (a.batch + world - 1) / world;
  std::vector<float> X(static_cast<size_t>(per_rank * d.dim()));
  std::vector<int32_t> y(static_cast<size_t>(per_rank));
  d.reserve(per_rank);
  int64_t rows = 0, epoch = -1;
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t e = s / sharder.steps_per_epoch(), b = s % sharder.steps_per_epoch();
    if (e != epoch) sharder.epoch_order(epoch = e, order);
    const Range r = sharder.slice(b, rank, world);
    d.gather(order.data() + r.begin, r.size(), X.data(), y.data());
    rows += r.size();
  }
  return static_cast<double>(rows) / std::chrono::duration<double>(Clock::now() - t0).count();
}

// Strategy (b): read this rank's contiguous shard a window at a time (one run per read) and
// shuffle inside the window. Not the trainer's order: measured to compare the I/O alone.
double shard_gathers(const H5Data& d, const Args& a, int64_t steps, int rank, int world) {
  const Range shard = split_evenly(d.size(), rank, world);
  const int64_t per_rank = (a.batch + world - 1) / world, w = std::min(a.window, shard.size());
  std::vector<float> win(static_cast<size_t>(w * d.dim())), X(static_cast<size_t>(per_rank * d.dim()));
  std::vector<int32_t> wy(static_cast<size_t>(w)), y(static_cast<size_t>(per_rank));
  std::vector<int64_t> rows(static_cast<size_t>(w)), perm;
  d.reserve(w);
  Rng rng(7, Stream::test);
  int64_t next = shard.begin, pos = w, delivered = 0;
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    if (pos + per_rank > w) {  // refill: the next window of the shard, then a fresh shuffle
      if (next + w > shard.end) next = shard.begin;
      std::iota(rows.begin(), rows.end(), next);
      d.gather(rows.data(), w, win.data(), wy.data());
      random_permutation(rng, w, perm);
      next += w;
      pos = 0;
    }
    for (int64_t i = 0; i < per_rank; ++i, ++pos) {
      const auto src = static_cast<size_t>(perm[static_cast<size_t>(pos)]);
      std::memcpy(X.data() + i * d.dim(), win.data() + src * d.dim(), sizeof(float) * d.dim());
      y[static_cast<size_t>(i)] = wy[src];
    }
    delivered += per_rank;
  }
  return static_cast<double>(delivered) / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--small-rows") a.small_rows = std::stoll(v);
    else if (k == "--large-rows") a.large_rows = std::stoll(v);
    else if (k == "--steps") a.steps = std::stoll(v);
    else if (k == "--cold-steps") a.cold_steps = std::stoll(v);
    else if (k == "--dir") a.dir = v;
    else if (k == "--csv") a.csv = v;
    else if (k == "--keep") a.keep = v == "1";
    else if (rank == 0) std::cerr << "unknown option " << k << " (ignored)\n";
  }
  const bool can_reset = reset_peak_rss();
  std::vector<Result> results;
  int pid = static_cast<int>(::getpid());  // rank 0's process id names the files on every rank
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const std::string tag = std::to_string(pid);
  try {
    // The small and the large plain file show whether memory follows the file size; the gzip
    // variants (warm only) what compression costs random reads, with the default ~1 MiB chunks
    // and with small ones.
    struct Set {
      std::string name;
      int64_t rows;
      int compress;
      int64_t chunk_rows;
      bool cold;
    };
    const std::vector<Set> sets{{"small", a.small_rows, 0, 0, true},
                                {"large", a.large_rows, 0, 0, true},
                                {"small_gz", a.small_rows, 4, 0, false},
                                {"small_gz16", a.small_rows, 4, 16, false}};
    for (const Set& set : sets) {
      const std::string& name = set.name;
      const int64_t rows = set.rows;
      std::string path = a.dir + "/lockstep-bench-" + tag + "-" + name + ".h5";
      const double gb = static_cast<double>(rows * a.dim * 4) / 1e9;
      if (rank == 0) {
        const auto t0 = Clock::now();
        write_synthetic(path, rows, a.dim, set.compress, set.chunk_rows);
        std::printf("wrote %s: %lld x %lld float32%s, %.2f GB of features, %.2f GB file, in %.1f s\n", path.c_str(),
                    static_cast<long long>(rows), static_cast<long long>(a.dim), set.compress ? " gzip" : "", gb,
                    static_cast<double>(std::filesystem::file_size(path)) / 1e9,
                    std::chrono::duration<double>(Clock::now() - t0).count());
        std::fflush(stdout);
      }
      MPI_Barrier(MPI_COMM_WORLD);
      auto record = [&](const std::string& strategy, const std::string& cache, double rate, double secs) {
        results.push_back({name, strategy, cache, gb, rate, secs, peak_rss_mib()});
        reset_peak_rss();
      };
      for (const std::string cache : {"warm", "cold"}) {
        if (cache == "cold" && !set.cold) continue;
        if (cache == "cold") evict(path);
        MPI_Barrier(MPI_COMM_WORLD);
        auto t0 = Clock::now();
        H5Data d(path, 10);
        d.scan_features();
        const double scan_s = std::chrono::duration<double>(Clock::now() - t0).count();
        record("open+scan", cache, static_cast<double>(rows) / scan_s, scan_s);
        // What training does: each rank checks its share of the rows (load_datasets' ScanShare).
        if (cache == "cold") evict(path);
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = Clock::now();
        d.scan_features(nullptr, rank, world);
        const double share_s = std::chrono::duration<double>(Clock::now() - t0).count();
        record("scan_share", cache, static_cast<double>(split_evenly(rows, rank, world).size()) / share_s, share_s);
        const int64_t steps = cache == "warm" ? a.steps : a.cold_steps;
        using M = H5Data::ReadMode;
        for (auto [mode, label] : {std::pair{M::direct, "rows:direct"}, std::pair{M::per_run, "rows:per_run"},
                                   std::pair{M::union_selection, "rows:union"}}) {
          if (mode == M::direct && d.read_mode() != M::direct) continue;  // compressed: not applicable
          d.set_read_mode(mode);
          if (cache == "cold") evict(path);
          MPI_Barrier(MPI_COMM_WORLD);
          // The slow modes get a tenth of the steps, which keeps the run short.
          const int64_t k = mode == M::direct ? steps : std::max<int64_t>(steps / 10, 10);
          record(label, cache, training_gathers(d, a, k, rank, world), 0);
        }
        d.set_read_mode(set.compress ? M::per_run : M::direct);
        if (cache == "cold") evict(path);
        MPI_Barrier(MPI_COMM_WORLD);
        record("shard_window", cache, shard_gathers(d, a, steps * 4, rank, world), 0);
      }
      MPI_Barrier(MPI_COMM_WORLD);
      if (rank == 0 && !a.keep) std::filesystem::remove(path);
    }
  } catch (const std::exception& e) {
    std::cerr << "rank " << rank << ": " << e.what() << std::endl;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

  // Rank 0 prints and writes every rank's figures.
  const int n = static_cast<int>(results.size());
  std::vector<double> mine;
  for (const auto& r : results) mine.insert(mine.end(), {r.rows_per_s, r.seconds, r.peak_mib});
  std::vector<double> all(mine.size() * static_cast<size_t>(world));
  MPI_Gather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(), static_cast<int>(mine.size()),
             MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    std::filesystem::create_directories(std::filesystem::path(a.csv).parent_path());
    std::ofstream csv(a.csv);
    csv << "dataset,gb,strategy,cache,rank,ranks,rows_per_s,seconds,peak_rss_mib\n";
    std::printf("\n%-10s %6s %-14s %-5s %s\n", "data", "GB", "what", "cache", "per rank: rows/s (seconds) peak RSS MiB");
    for (int i = 0; i < n; ++i) {
      const Result& r = results[static_cast<size_t>(i)];
      std::printf("%-10s %6.2f %-14s %-5s", r.dataset.c_str(), r.gb, r.strategy.c_str(), r.cache.c_str());
      for (int q = 0; q < world; ++q) {
        const double* v = &all[static_cast<size_t>(q) * mine.size() + 3 * static_cast<size_t>(i)];
        std::printf("  r%d %9.0f", q, v[0]);
        if (v[1] > 0) std::printf(" (%.2fs)", v[1]);
        std::printf(" %6.1f", v[2]);
        csv << r.dataset << "," << r.gb << "," << r.strategy << "," << r.cache << "," << q << "," << world << ","
            << v[0] << "," << v[1] << "," << v[2] << "\n";
      }
      std::printf("\n");
    }
    std::printf("peak RSS is %s; CSV: %s\n", can_reset ? "per phase (VmHWM reset between phases)" : "since start",
                a.csv.c_str());
  }
  MPI_Finalize();
  return 0;
}
