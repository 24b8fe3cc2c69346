// Internal to checkpoint.cpp: what a checkpoint's checksums are computed over (docs/
// checkpoint-format.md, "Checksums"), their verification on read, and the checks of what a
// checksum cannot vouch for (finite values, a possible trainer position).
#pragma once
#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lockstep/checkpoint.hpp"

namespace lockstep::checkpoint_checks {

// FNV-1a 64 over the values as 8-byte little-endian words, in 16 hex digits.
std::string values_checksum(const void* data, size_t bytes);
// Over each group's scalars, in the documented order.
std::string trainer_checksum(const CheckpointData& ck);
std::string model_checksum(const CheckpointData& ck);
std::string optimizer_checksum(const CheckpointData& ck);

// Verifies what read_checkpoint reads against the stored checksums, counting those present.
struct Verifier {
  int64_t verified = 0, missing = 0;
  // obj_path names the object in messages ("/optimizer/exp_avg"); name is relative to parent
  // ("": parent itself). A mismatch is a UserError naming the object.
  void check(hid_t parent, const std::string& name, const std::string& obj_path, const std::string& computed,
             const char* kind = "dataset");
};

// A NaN or inf in the weights or state is damage (or a diverged run saved): UserError naming the
// dataset and the element (row and column when columns > 1).
void require_finite(const std::vector<float>& v, const std::string& obj_path, int64_t columns);
// The trainer position and counters must be possible (UserError naming the attribute).
void check_trainer_state(const CheckpointData& ck, bool has_sample_position, int64_t sample_position);

}  // namespace lockstep::checkpoint_checks
