// A fingerprint of the data a run trains and tests on, stored in its checkpoints so that a resume
// on other data (another file behind the same path, a re-converted file, another test set) is
// refused instead of silently continuing a different run. Cheap by design: sample counts, every
// label, and the features of a few rows spread over the file, not a hash of every byte.
#pragma once
#include <cstdint>
#include <string>

#include "lockstep/dataset.hpp"

namespace lockstep {

struct DataFingerprint {
  int64_t train_samples = -1;  // rows of the training file (before the validation split); -1: unknown
  std::string train;           // checksum (16 hex digits) of the training file; "": unknown
  int64_t test_samples = -1;   // rows of the test set; 0: none; -1: unknown
  std::string test;
  bool known() const { return train_samples >= 0; }
};

// Rows whose features enter a fingerprint (evenly spread, first and last included).
inline constexpr int64_t kFingerprintRows = 64;

// The fingerprint of one source: FNV-1a 64 over its size, width, class count, every label and the
// features of kFingerprintRows rows.
std::string fingerprint_of(const DataSource& d);

// The fingerprint of loaded datasets: the whole training file (train_file, else train) and the test set.
DataFingerprint fingerprint_of(const Datasets& d);

}  // namespace lockstep
