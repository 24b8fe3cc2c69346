// A fingerprint of the data a run trains and tests on, stored in its checkpoints so that a resume
// on other data (another file behind the same path, a re-converted file, another test set) is
// refused instead of silently continuing a different run, and compared across ranks at start-up
// (agree_on_data in config_agree.hpp) so that ranks reading other copies are refused too. Cheap by design: sample counts, every
// label, and the features of a few rows spread over the file, not a hash of every byte.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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

// One data file as the ranks compare it at start-up (agree_on_data in config_agree.hpp): the
// config keys and paths that name it, its rows and its fingerprint.
struct DataFileFingerprint {
  std::string file;          // "data.train_images = tr.h5" (", data.train_labels = ..." for an IDX pair)
  int64_t samples = -1;
  std::string fingerprint;   // "": this rank could not read it (left to the check that reads it)
};

// The training file and (when data.test_images is set) the test set of fp, named by cfg's keys.
// The list depends on cfg alone, so ranks that agree on the config list the same files.
std::vector<DataFileFingerprint> data_files_of(const DataConfig& cfg, const DataFingerprint& fp);

}  // namespace lockstep
