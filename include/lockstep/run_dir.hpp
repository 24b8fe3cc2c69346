// The run directory: resolved config, metrics.jsonl (one JSON object per epoch), the lock that
// keeps a second job out, and, later, checkpoints. Only rank 0 writes here; other ranks never
// look at the file system for it.
#pragma once
#include <string>

#include "lockstep/trainer.hpp"

namespace lockstep {

// Creates the directory (and parents). Throws UserError naming it (as `what`, e.g. "run
// directory") when that fails or when it is not writable.
void ensure_directory(const std::string& dir, const std::string& what = "run directory");

// The same checks without creating anything, for validation before a run writes a single file:
// dir is a writable directory, or the nearest part of its path that exists is one. (As root,
// permission bits do not stop writes; a read-only file system or a file in the path still does.)
void check_directory_creatable(const std::string& dir, const std::string& what);

// For a file that will be appended to (metrics.jsonl): when it exists it must be a regular file
// this process can open for appending (opened and closed, nothing written); when it does not,
// its directory must be creatable. Throws UserError naming the path.
void check_file_appendable(const std::string& path, const std::string& what);

// An exclusive lock on a run directory for a run's lifetime: flock() on <dir>/lockstep.lock,
// held by rank 0 until the object is destroyed or the process ends (so no lock outlives its
// job). The file records the holder ("pid P on host H since T: lockstep train").
class RunDirLock {
 public:
  static constexpr const char* kFileName = "lockstep.lock";
  RunDirLock() = default;
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;
  // Takes the lock on the existing directory dir. Throws UserError naming the lock file and the
  // recorded holder when another process holds it. Where the file system has no locks, returns
  // without one and sets *warning (the caller prints it).
  void acquire(const std::string& dir, const std::string& command, std::string* warning);
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Writes text to path through a temporary file and a rename, so readers never see half a file.
void write_file_atomic(const std::string& path, const std::string& text);

// The time now in UTC, formatted by strftime (the default: 2026-12-04T08:00:00Z), as run
// directories, checkpoints and data files record it.
std::string utc_time(const char* format = "%Y-%m-%dT%H:%M:%SZ");

// One epoch as a JSON object on a single line.
std::string epoch_json(const EpochRecord& r);

// Appends a line to a file (created when missing) and flushes it.
void append_line(const std::string& path, const std::string& line);

}  // namespace lockstep
