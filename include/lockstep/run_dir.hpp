// The run directory: resolved config, metrics.jsonl (one JSON object per epoch) and, later,
// checkpoints. Only rank 0 writes here; other ranks never look at the file system for it.
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

// Writes text to path through a temporary file and a rename, so readers never see half a file.
void write_file_atomic(const std::string& path, const std::string& text);

// One epoch as a JSON object on a single line.
std::string epoch_json(const EpochRecord& r);

// Appends a line to a file (created when missing) and flushes it.
void append_line(const std::string& path, const std::string& line);

}  // namespace lockstep
