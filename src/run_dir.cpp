// Run directory files (see run_dir.hpp).
#include "lockstep/run_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lockstep/check.hpp"

namespace lockstep {

void ensure_directory(const std::string& dir, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  LOCKSTEP_REQUIRE(!ec, what, " ", dir, ": cannot be created (", ec.message(), ")");
  LOCKSTEP_REQUIRE(std::filesystem::is_directory(dir), what, " ", dir, ": exists and is not a directory");
  LOCKSTEP_REQUIRE(::access(dir.c_str(), W_OK) == 0, what, " ", dir, ": not writable (", std::strerror(errno), ")");
}

void check_directory_creatable(const std::string& dir, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target = fs::absolute(dir, ec);
  LOCKSTEP_REQUIRE(!ec, what, " ", dir, ": invalid path (", ec.message(), ")");
  // The nearest part of the path that exists decides: it must be a directory we may write to.
  fs::path p = target;
  while (!fs::exists(fs::symlink_status(p, ec)) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  if (p == target)
    LOCKSTEP_REQUIRE(fs::is_directory(p, ec), what, " ", dir, ": exists and is not a directory");
  else
    LOCKSTEP_REQUIRE(fs::is_directory(p, ec), what, " ", dir, ": cannot be created: ", p.string(), " is not a directory");
  LOCKSTEP_REQUIRE(::access(p.c_str(), W_OK) == 0, what, " ", dir, ": cannot be written: ", p.string(),
                   " is not writable (", std::strerror(errno), ")");
}

void check_file_appendable(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) {
    check_directory_creatable(fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string(), what);
    return;
  }
  LOCKSTEP_REQUIRE(fs::is_regular_file(st), what, " ", path, ": exists and is not a regular file");
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  LOCKSTEP_REQUIRE(fd >= 0, what, " ", path, ": cannot be appended to (", std::strerror(errno), ")");
  ::close(fd);
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

void RunDirLock::acquire(const std::string& dir, const std::string& command, std::string* warning) {
  const std::string path = dir + "/" + kFileName;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  LOCKSTEP_REQUIRE(fd >= 0, "run directory ", dir, ": cannot open its lock file ", path, " (", std::strerror(errno), ")");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      // A file system without locks (some network mounts): run unprotected, and say so.
      ::close(fd);
      if (warning)
        *warning = fmt("warning: cannot lock ", path, " (", std::strerror(err),
                       "): a second job on this run directory would not be detected");
      return;
    }
    char buf[512] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw UserError(fmt("run directory ", dir, " is in use by another job: its lock file ", path, " is held",
                        holder.empty() ? std::string() : " (" + holder + ")",
                        "; wait until that job ends, or choose another run.dir (--run-dir)"));
  }
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "unknown-host");
  const std::string record =
      fmt("pid ", ::getpid(), " on host ", host, " since ", utc_time(), ": lockstep ", command, "\n");
  // The record is informative only: a failure to write it leaves the lock held and valid.
  if (::ftruncate(fd, 0) == 0) {
    const ssize_t w = ::pwrite(fd, record.data(), record.size(), 0);
    (void)w;
  }
  fd_ = fd;
}

std::string utc_time(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  // A failed write leaves no temporary behind (a full disk would otherwise keep a stray file).
  auto fail = [&](const char* what) {
    const int err = errno;
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw UserError(fmt(path, ": ", what, " (", std::strerror(err), ")"));
  };
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f.good()) fail("cannot write");
    f << text;
    f.flush();
    if (!f.good()) fail("write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename failed");
}

std::string epoch_json(const EpochRecord& r) {
  nlohmann::json j;
  j["epoch"] = r.epoch + 1;
  j["step"] = r.global_step;
  j["first_step"] = r.first_step;
  j["partial"] = r.partial;
  j["train_loss"] = r.train_loss;
  j["train_accuracy"] = r.train_accuracy;
  if (r.val) {
    j["val_loss"] = r.val->loss;
    j["val_accuracy"] = r.val->accuracy;
  }
  if (r.test) {
    j["test_loss"] = r.test->loss;
    j["test_accuracy"] = r.test->accuracy;
  }
  j["lr"] = r.lr;
  j["seconds"] = r.seconds;
  j["compute_seconds"] = r.compute_seconds;
  j["allreduce_seconds"] = r.allreduce_seconds;
  j["data_seconds"] = r.data_seconds;
  j["forward_seconds"] = r.forward_seconds;
  j["backward_seconds"] = r.backward_seconds;
  j["optimizer_seconds"] = r.optimizer_seconds;
  j["samples_per_second"] = r.samples_per_second;
  j["skipped_steps"] = r.skipped_steps;
  j["stopped_early"] = r.stopped_early;
  return j.dump();
}

void append_line(const std::string& path, const std::string& line) {
  // write(2), not a stream: the OS error of a failed write (a full disk) is the one reported.
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  LOCKSTEP_REQUIRE(fd >= 0, path, ": cannot append (", std::strerror(errno), ")");
  struct stat st{};
  const off_t before = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
  const std::string text = line + '\n';
  size_t done = 0;
  int err = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<size_t>(n);
  }
  // Half a line would make the file unreadable as JSON lines: cut it back to the last whole line.
  if (err != 0 && done > 0 && before >= 0 && ::ftruncate(fd, before) != 0) {
    // Nothing more to do: the error below is the one that matters.
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  LOCKSTEP_REQUIRE(err == 0, path, ": write failed (", std::strerror(err), ")");
}

}  // namespace lockstep
