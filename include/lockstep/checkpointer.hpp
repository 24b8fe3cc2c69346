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
// The step in the name of a periodic checkpoint file (step-<9 to 18 digits>.h5); -1 for any other.
int64_t checkpoint_step_of(const std::string& path);
// Periodic checkpoints in the directory (those names, nothing else), newest first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// Whether a file name is one a save writes before its rename (step-N.h5.tmp-<pid>,
// best.h5.tmp-<pid>, latest.tmp).
bool is_checkpoint_temporary(const std::string& name);
// Removes the temporaries an interrupted save left (regular files with those names, nothing
// else); returns how many.
int remove_checkpoint_temporaries(const std::string& dir);

// The `latest` pointer of a checkpoint directory. It must hold one bare file name of the
// directory (no '/', not "." or ".."); anything else is a damaged pointer, never followed.
struct LatestPointer {
  enum class State { missing, ok, empty, not_a_name, dangling } state = State::missing;
  std::string name;  // what the file holds (first line, trimmed)
  std::string path;  // dir/name when state is ok
};
LatestPointer read_latest(const std::string& dir);

// What a checkpoint directory offers to continue from.
struct ResumePoint {
  std::string path;  // "" when the directory holds neither `latest` nor a step file
  std::string note;  // a line for the log when `latest` could not be used and a step file was taken
};
// The checkpoint `latest` names. When `latest` is missing, empty, damaged or names a missing file,
// the newest step file that reads completely (checksums included), with a note saying so; a
// UserError naming the directory (`what` names the argument, e.g. "--resume DIR") when step files
// exist but none reads, or when `latest` is damaged and there are no step files at all.
ResumePoint find_resume_point(const std::string& dir, const std::string& what);

// What --resume (flag "--resume"), eval --checkpoint or inspect PATH names: "auto" (the
// resume point of dir, possibly none), a directory (its resume point, which must exist), or a
// file. Messages name the argument as `flag ARG`.
ResumePoint resolve_checkpoint_arg(const std::string& arg, const std::string& dir, const std::string& flag);

// Reads the checkpoint at path; when it cannot be read (or fails its checks), the UserError also
// offers the newest other checkpoint in its directory that does read, as "<how><that path>",
// e.g. how = "resume from it with --resume ".
CheckpointData read_checkpoint_or_offer_previous(const std::string& path, const std::string& how);

// The files that show a run directory already holds a run: "metrics.jsonl", "checkpoints/latest",
// "2 checkpoint files (step-*.h5)", "best.h5" (paths as given); empty when there is none.
std::vector<std::string> existing_run_files(const std::string& run_dir, const std::string& checkpoint_dir);

}  // namespace lockstep
