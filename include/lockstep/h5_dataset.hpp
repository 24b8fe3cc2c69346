// Labelled data in HDF5: /features (N, D) and /labels (N) in one file (docs/data.md).
// H5Data reads only the rows a gather asks for (hyperslab selections), so a rank's memory does
// not grow with the feature bytes; H5DataWriter and convert_idx_to_h5 write such files.
// Deliberately not here: choosing between IDX and HDF5 input (load_datasets does that).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lockstep/dataset.hpp"
#include "lockstep/h5.hpp"

namespace lockstep {

// ---- reading ----------------------------------------------------------------------------------

// Sums over the feature values of some rows, for data.normalize = standardize.
struct FeatureMoments {
  double sum = 0.0, sum_sq = 0.0;
  int64_t values = 0;
};

class H5Data final : public DataSource {
 public:
  // Opens `path` read-only and validates its structure: /features 2-D of float32, float64 or
  // uint8; /labels 1-D integer with one label per feature row, each in [0, classes). Labels are
  // read (streamed) and kept; features are not read here: call scan_features() before training.
  // Every rejection is a UserError naming the file, the dataset and, where it applies, the row.
  H5Data(std::string path, int classes);
  ~H5Data() override;

  int64_t size() const override { return n_; }
  int64_t dim() const override { return dim_; }
  int classes() const override { return classes_; }
  std::string name() const override { return path_; }
  void gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const override;
  void reserve(int64_t max_rows) const override;

  // A streaming pass over the feature rows, a block of whole chunks at a time (memory bounded
  // by the block, not the file): rejects NaN and infinite values naming the row, and a file
  // whose chunks do not all read (damaged) as bad input. Without
  // moments_rows it reads share `part` of `parts` (whole chunks each; the parts cover every row
  // once); with moments_rows (sorted ascending) it reads every row and sums those rows' values.
  FeatureMoments scan_features(const std::vector<int64_t>* moments_rows = nullptr, int part = 0,
                               int parts = 1) const;

  // How gather reads its rows (docs/data.md measures each): `direct` preads each run of rows at
  // the file offset HDF5 reports for its chunk (only for uncompressed little-endian float32 or
  // uint8 chunks spanning whole rows; checked against HDF5 reads at open); `per_run` makes one
  // H5Dread per run of consecutive rows; `union_selection` one H5Dread of a union of hyperslabs.
  // The default is the fastest that applies: direct, else per_run.
  enum class ReadMode { direct, per_run, union_selection };
  void set_read_mode(ReadMode m);
  ReadMode read_mode() const { return mode_; }

  // Values returned by gather become (x - mean) / stddev, computed exactly as MemoryData's
  // in-place standardisation, so both sources give bitwise the same floats.
  void set_normalization(double mean, double stddev);

  // What the file declares, for messages and `lockstep info`-style summaries.
  std::string feature_type() const;             // "float32", "float64" or "uint8"
  double scale() const { return scale_; }       // 1 unless the file carries a scale attribute
  int64_t chunk_rows() const { return chunk_rows_; }  // 0 when /features is not chunked
  const std::vector<int32_t>& labels() const { return labels_; }

 private:
  enum class Stored { f32, f64, u8 };
  void as_bad_input(const std::function<void()>& fn) const;  // HDF5 failures become UserError
  FeatureMoments scan_rows(const std::vector<int64_t>* moments_rows, int part, int parts) const;
  void validate_features();
  void read_labels();
  void read_rows(int64_t distinct) const;  // sorted_[0..distinct) into buf_, by mode_
  void setup_direct(hid_t dcpl);           // enables ReadMode::direct when the layout allows it
  void gather_direct(const int64_t* rows, int64_t n, float* X, int32_t* y) const;
  float convert(float v) const;                                    // scale and normalisation

  std::string path_;
  int classes_;
  int64_t n_ = 0, dim_ = 0, chunk_rows_ = 0;
  Stored stored_ = Stored::f32;
  double scale_ = 1.0, mean_ = 0.0, stddev_ = 1.0;
  ReadMode mode_ = ReadMode::per_run;
  int fd_ = -1;                       // the file opened again by us, for ReadMode::direct
  std::vector<int64_t> chunk_offset_; // direct: file offset of each row chunk (one entry if contiguous)
  int64_t rows_per_block_ = 0;        // direct: rows per entry of chunk_offset_
  bool transform_ = false;  // scale or normalisation to apply after the read
  float lut_[256] = {};     // uint8 files: the float of every byte value, transform included
  std::vector<int32_t> labels_;
  h5::Handle file_, features_, file_space_, mem_space_;

  // Scratch sized by reserve(), reused by every gather so that gather never allocates.
  mutable int64_t reserved_ = -1;
  mutable std::vector<int64_t> order_;      // (n): request positions sorted by row
  mutable std::vector<int64_t> sorted_;     // (n): distinct rows in file order
  mutable std::vector<unsigned char> buf_;  // (n, dim) in the stored type, file order
};

// Opens and fully validates an HDF5 data file (structure, labels, then the finite scan).
std::unique_ptr<H5Data> open_h5_data(const std::string& path, int classes);

// ---- writing ----------------------------------------------------------------------------------

enum class H5FeatureType { float32, uint8 };

struct H5WriteOptions {
  H5FeatureType dtype = H5FeatureType::float32;
  int compress = 0;          // gzip level 1..9 (with the byte-shuffle filter); 0: uncompressed
  int64_t chunk_rows = 0;    // rows per chunk; 0: chosen for about 1 MiB per chunk
  int classes = 0;           // recorded as the root attribute 'classes'
  std::string source;        // recorded as the root attribute 'source'
  double scale = 1.0 / 255;  // uint8 files: the 'scale' attribute of /features
};

// Rows per chunk when not given: about 1 MiB of stored features, at least 1, at most rows.
int64_t default_chunk_rows(int64_t rows, int64_t dim, H5FeatureType dtype);

// Writes a data file in pieces (the benchmark writes gigabytes this way without holding them).
// The file is created (truncated) at `path`; close() flushes and writes the root attributes.
class H5DataWriter {
 public:
  H5DataWriter(const std::string& path, int64_t rows, int64_t dim, const H5WriteOptions& opts);
  ~H5DataWriter();
  void write_features(int64_t first_row, int64_t count, const float* x);    // (count, dim), float32 files
  void write_features(int64_t first_row, int64_t count, const uint8_t* x);  // (count, dim), uint8 files
  void write_labels(const int32_t* y);                                       // (rows)
  void close();
  int64_t chunk_rows() const { return chunk_rows_; }

 private:
  void write_block(int64_t first_row, int64_t count, hid_t mem_type, const void* x);
  std::string path_;
  int64_t rows_, dim_, chunk_rows_;
  H5WriteOptions opts_;
  h5::Handle file_, features_, labels_;
};

struct ConvertOptions {
  std::string images, labels, out;
  H5FeatureType dtype = H5FeatureType::float32;
  int compress = 0;
  int classes = 0;           // 0: the largest label + 1
  int64_t chunk_rows = 0;
  bool force = false;        // replace an existing output file
};

struct ConvertSummary {
  int64_t rows = 0, dim = 0, chunk_rows = 0, file_bytes = 0;
  int classes = 0;
};

// `lockstep convert`: IDX images + labels to one HDF5 data file. Writes to a temporary file in
// the output's directory, flushes and fsyncs it, then renames it over `out`, so `out` is either
// the complete new file or untouched. Refuses an existing `out` unless force.
ConvertSummary convert_idx_to_h5(const ConvertOptions& opts);

}  // namespace lockstep
