// The run directory: resolved config, metrics.jsonl (one JSON object per epoch) and, later,
// checkpoints. Only rank 0 writes here; other ranks never look at the file system for it.
#pragma once
#include <string>

#include "lockstep/trainer.hpp"

namespace lockstep {

// Creates the directory (and parents). Throws UserError naming it when that fails or when it is
// not writable.
void ensure_directory(const std::string& dir);

// Writes text to path through a temporary file and a rename, so readers never see half a file.
void write_file_atomic(const std::string& path, const std::string& text);

// One epoch as a JSON object on a single line.
std::string epoch_json(const EpochRecord& r);

// Appends a line to a file (created when missing) and flushes it.
void append_line(const std::string& path, const std::string& line);

}  // namespace lockstep
