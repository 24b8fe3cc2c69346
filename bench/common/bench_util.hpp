// Helpers shared by the benchmark programs: clocks, peak memory, core counts, machine load,
// and CSV files that gain a header when new. No MPI and no timing policy here: each benchmark
// decides what it times and how it reduces the figures across ranks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lockstep::bench {

double wall_seconds();          // steady clock
double process_cpu_seconds();   // CPU time of this process, all its threads
double peak_rss_mib();          // VmHWM of this process
int online_cores();             // logical CPUs online on this node
double load_average_1min();     // from /proc/loadavg; negative when unreadable
std::string utc_timestamp();    // 2024-01-31T12:00:00Z
std::string host_name();

// Appends rows to a CSV file; writes `header` first when the file is missing or empty.
// An existing file with another header is an error (naming the file), not silently mixed.
class CsvAppender {
 public:
  CsvAppender(std::string path, std::vector<std::string> header);
  void row(const std::vector<std::string>& cells);

 private:
  std::string path_;
  size_t columns_;
};

// Fixed-precision number text for CSV cells and tables.
std::string fixed(double v, int decimals = 3);

}  // namespace lockstep::bench
