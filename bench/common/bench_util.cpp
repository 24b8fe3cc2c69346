// Clocks, /proc readers and the CSV appender of the benchmarks (see bench_util.hpp).
#include "bench/common/bench_util.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lockstep/check.hpp"
#include "lockstep/run_dir.hpp"

namespace lockstep::bench {

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream s(line.substr(6));
      double kib = 0.0;
      s >> kib;
      return kib / 1024.0;
    }
  }
  return -1.0;
}

int online_cores() { return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)); }

double load_average_1min() {
  std::ifstream in("/proc/loadavg");
  double v = -1.0;
  in >> v;
  return in ? v : -1.0;
}

std::string utc_timestamp() { return utc_time(); }

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

namespace {
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}
}  // namespace

CsvAppender::CsvAppender(std::string path, std::vector<std::string> header)
    : path_(std::move(path)), columns_(header.size()) {
  namespace fs = std::filesystem;
  const fs::path p(path_);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  const std::string want = join(header);
  if (fs::exists(p) && fs::file_size(p) > 0) {
    std::ifstream in(path_);
    std::string first;
    std::getline(in, first);
    LOCKSTEP_REQUIRE(first == want, path_, ": existing CSV has another header; move it away or pass another path");
    return;
  }
  std::ofstream out(path_);
  LOCKSTEP_REQUIRE(out.good(), path_, ": cannot write");
  out << want << "\n";
}

void CsvAppender::row(const std::vector<std::string>& cells) {
  LOCKSTEP_CHECK(cells.size() == columns_, "CSV row has ", cells.size(), " cells, header ", columns_);
  std::ofstream out(path_, std::ios::app);
  LOCKSTEP_REQUIRE(out.good(), path_, ": cannot append");
  out << join(cells) << "\n";
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace lockstep::bench
