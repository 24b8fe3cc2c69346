// Progress bar and epoch lines (see progress.hpp).
#include "lockstep/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>

#include "lockstep/trainer.hpp"

namespace lockstep {

namespace {

// Whether descriptor fd of process pid is a terminal, from the link /proc/pid/fd/fd.
bool proc_fd_is_terminal(pid_t pid, int fd) {
  char link[64], target[256];
  std::snprintf(link, sizeof link, "/proc/%d/fd/%d", static_cast<int>(pid), fd);
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return std::strncmp(target, "/dev/pts/", 9) == 0 || std::strncmp(target, "/dev/tty", 8) == 0;
}

}  // namespace

// Open MPI gives every rank a pseudo-terminal as stdout, even when mpirun's own output goes to
// a file; there the launcher (the rank's parent: mpirun or orted) tells whether a person sees it.
bool stdout_is_terminal() {
  if (isatty(1) != 1) return false;
  if (!std::getenv("OMPI_COMM_WORLD_SIZE")) return true;
  return proc_fd_is_terminal(getppid(), 1);
}

Progress::Progress(std::ostream* out, bool bar, int64_t epochs) : out_(out), bar_(bar && out), epochs_(epochs) {}

void Progress::begin_epoch(int64_t epoch, int64_t steps) {
  epoch_ = epoch;
  steps_ = steps;
  drawn_ = false;
  last_draw_ = std::chrono::steady_clock::now();
}

void Progress::step(int64_t done, double loss) {
  if (!bar_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const int filled = steps_ > 0 ? static_cast<int>(kWidth * done / steps_) : kWidth;
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  char line[160];
  std::snprintf(line, sizeof line, "\repoch %3lld/%lld [%s] %5lld/%lld  loss %.4f ", static_cast<long long>(epoch_ + 1),
                static_cast<long long>(epochs_), bar, static_cast<long long>(done), static_cast<long long>(steps_), shown(loss));
  *out_ << line << std::flush;
  drawn_ = true;
}

void Progress::end_epoch(const EpochRecord& r) {
  if (!out_) return;
  if (drawn_) *out_ << "\r\033[K";  // clear the bar before the summary line
  char line[400];
  int n = std::snprintf(line, sizeof line, "epoch %3lld/%lld  loss %.4f  acc %.4f", static_cast<long long>(r.epoch + 1),
                        static_cast<long long>(epochs_), shown(r.train_loss), r.train_accuracy);
  if (r.val) n += std::snprintf(line + n, sizeof line - n, "  val_loss %.4f  val_acc %.4f", shown(r.val->loss), r.val->accuracy);
  if (r.test) n += std::snprintf(line + n, sizeof line - n, "  test_acc %.4f", r.test->accuracy);
  n += std::snprintf(line + n, sizeof line - n, "  lr %.2e  %.0f samples/s  compute %.2fs  allreduce %.2fs", r.lr,
                     r.samples_per_second, r.compute_seconds, r.allreduce_seconds);
  if (r.skipped_steps > 0)
    n += std::snprintf(line + n, sizeof line - n, "  skipped %lld step%s", static_cast<long long>(r.skipped_steps),
                       r.skipped_steps == 1 ? "" : "s");
  if (r.partial)
    std::snprintf(line + n, sizeof line - n, "  (partial: steps %lld-%lld of the epoch so far)",
                  static_cast<long long>(r.first_step), static_cast<long long>(r.global_step));
  *out_ << line << (r.stopped_early ? "  (early stop)" : "") << std::endl;
}

}  // namespace lockstep
