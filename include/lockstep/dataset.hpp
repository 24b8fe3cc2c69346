// Labelled data as random-access rows. A DataSource copies any set of rows into a caller's
// buffers (so the step loop never allocates); MemoryData holds a whole dataset, SubsetData is a
// view on some rows of another source (the train/validation split), RelabeledData renumbers the
// labels of a class subset. load_datasets reads the configured files, validates them against the
// model, keeps the configured classes and splits off the validation set; load_test_set reads the
// test set alone.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/config.hpp"

namespace lockstep {

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t dim() const = 0;
  virtual int classes() const = 0;
  virtual std::string name() const = 0;
  // X (n, dim) and y (n) receive rows[0..n).
  virtual void gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const = 0;
  // Prepares scratch for gathers of up to max_rows rows, so gather itself never allocates.
  virtual void reserve(int64_t max_rows) const { (void)max_rows; }
  // out[i] = the row of the underlying data file that row rows[i] of this source is (out may
  // equal rows). A source that is a whole file is the identity. (The teacher-logits cache is
  // keyed by file row, so it serves any split, subset or seed of the same file.)
  virtual void file_rows(const int64_t* rows, int64_t n, int64_t* out) const {
    for (int64_t i = 0; i < n; ++i) out[i] = rows[i];
  }
};

class MemoryData final : public DataSource {
 public:
  MemoryData(std::string name, int64_t dim, int classes, std::vector<float> features, std::vector<int32_t> labels);
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int64_t dim() const override { return dim_; }
  int classes() const override { return classes_; }
  std::string name() const override { return name_; }
  void gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const override;

  std::vector<float>& features() { return features_; }
  const std::vector<int32_t>& labels() const { return labels_; }

 private:
  std::string name_;
  int64_t dim_;
  int classes_;
  std::vector<float> features_;  // (size, dim)
  std::vector<int32_t> labels_;
};

class SubsetData final : public DataSource {
 public:
  SubsetData(std::shared_ptr<const DataSource> base, std::vector<int64_t> rows, std::string name);
  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  int64_t dim() const override { return base_->dim(); }
  int classes() const override { return base_->classes(); }
  std::string name() const override { return name_; }
  void gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const override;
  void reserve(int64_t max_rows) const override;
  void file_rows(const int64_t* rows, int64_t n, int64_t* out) const override;

 private:
  std::shared_ptr<const DataSource> base_;
  std::vector<int64_t> rows_;
  std::string name_;
  mutable std::vector<int64_t> mapped_;  // scratch sized once, reused by gather
};

// Another source whose labels are renumbered: label l becomes label_map[l] (data.class_subset;
// every row of the base must map to a label >= 0).
class RelabeledData final : public DataSource {
 public:
  RelabeledData(std::shared_ptr<const DataSource> base, std::vector<int32_t> label_map, int classes);
  int64_t size() const override { return base_->size(); }
  int64_t dim() const override { return base_->dim(); }
  int classes() const override { return classes_; }
  std::string name() const override { return base_->name(); }
  void gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const override;
  void reserve(int64_t max_rows) const override { base_->reserve(max_rows); }
  void file_rows(const int64_t* rows, int64_t n, int64_t* out) const override { base_->file_rows(rows, n, out); }

 private:
  std::shared_ptr<const DataSource> base_;
  std::vector<int32_t> map_;
  int classes_;
};

// Every label of a source, in row order (read without the features where the source keeps them).
std::vector<int32_t> labels_of(const DataSource& d);

// Reads an IDX image file and label file into memory, pixels scaled to [0, 1].
// Checks that the counts agree and every label lies in [0, classes), naming the file and row;
// classes_note says where the class count came from ("" means "data.classes = N").
std::unique_ptr<MemoryData> load_idx_pair(const std::string& images, const std::string& labels, int classes,
                                          const std::string& classes_note = "");

// Training rows and validation rows of a training set of n samples: val_size rows chosen by seed.
struct SplitRows {
  std::vector<int64_t> train, val;
};
SplitRows holdout_split(int64_t n, int64_t val_size, uint64_t seed);

struct Datasets {
  std::shared_ptr<const DataSource> train, val, test;  // val and test may be null
  double mean = 0.0, stddev = 1.0;                       // normalisation applied to all three
  // The whole training file (every row, labels as in the file), normalised like the others;
  // train and val are views on it. Null when train is not drawn from a file (tests).
  std::shared_ptr<const DataSource> train_file;
};

// The part of an HDF5 file's feature rows that this process checks for NaN/inf while loading:
// part `part` of `parts` (pass the rank and world size, inside collectively(), so every row is
// read once by one rank rather than by every rank; the default checks every row here).
struct ScanShare {
  int part = 0, parts = 1;
};

// Loads and validates the configured data for a model whose input width is input_dim.
Datasets load_datasets(const DataConfig& cfg, int64_t input_dim, uint64_t seed, ScanShare share = {});

// The test set alone (data.test_images, with data.class_subset applied), without opening the
// training file: for scoring a model on the test set when data.normalize = scale (standardize
// needs the training rows' statistics; this refuses it). Only `test` is set.
Datasets load_test_set(const DataConfig& cfg, int64_t input_dim, ScanShare share = {});

}  // namespace lockstep
