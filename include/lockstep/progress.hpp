// Rank 0's console output: a progress bar redrawn in place while an epoch runs (only when the
// stream is a terminal) and one summary line per epoch. Formatting uses fixed buffers, so
// updating the bar inside the step loop does not allocate.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iosfwd>

namespace lockstep {

struct EpochRecord;

class Progress {
 public:
  Progress(std::ostream* out, bool bar, int64_t epochs);
  void begin_epoch(int64_t epoch, int64_t steps);
  void step(int64_t done, double loss);
  void end_epoch(const EpochRecord& rec);

 private:
  std::ostream* out_;
  bool bar_;
  int64_t epochs_, epoch_ = 0, steps_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
  bool drawn_ = false;
};

// A value as printed for people: a NaN without its sign bit ("nan", never "-nan").
inline double shown(double v) { return std::isnan(v) ? std::fabs(v) : v; }

// True when file descriptor 1 is a terminal.
bool stdout_is_terminal();

}  // namespace lockstep
