// The checkpoint directory of a run: rank 0 writes step-<N>.h5 files atomically, then updates
// the `latest` pointer, links best.h5 and prunes old files; every rank learns the outcome by a
// broadcast (never by looking at the file system). Resolving --resume happens here too.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "lockstep/checkpoint.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"

namespace lockstep {

class Checkpointer {
 public:
  Checkpointer(Comm& comm, std::string dir, int64_t keep, std::ostream* log);

  const std::string& dir() const { return dir_; }

  // Collective. Saves ck as step-<global step>.h5, points `latest` at it, and when best also
  // makes best.h5 the same file. On failure rank 0 prints the reason and every rank throws
  // AgreedFailure(exit_code::checkpoint_failed); the previous checkpoint stays as it was.
  std::string save(const CheckpointData& ck, bool best, const char* reason);
  // Collective. Writes only best.h5.
  void save_best(const CheckpointData& ck);

 private:
  void agree(int status, const std::string& message);
  Comm* comm_;
  std::string dir_;
  int64_t keep_;
  std::ostream* log_;
};

// Rank-0 helpers on a checkpoint directory.
std::string checkpoint_file_name(int64_t global_step);
// Periodic checkpoints in the directory, newest first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// The file `latest` points to, or "" when there is none.
std::string latest_checkpoint(const std::string& dir);
// Removes temporaries left by an interrupted save; returns how many.
int remove_checkpoint_temporaries(const std::string& dir);

// What --resume names: "auto" (latest in dir, or "" for a fresh start), a directory (its
// latest), or a file. Throws UserError when an explicit path does not exist.
std::string resolve_resume(const std::string& arg, const std::string& dir);

// Reads the checkpoint at path; when it cannot be read, the UserError also offers the newest
// other checkpoint in its directory that does read.
CheckpointData read_checkpoint_or_offer_previous(const std::string& path);

}  // namespace lockstep
