// In-memory datasets, subsets, the validation split, and the choice between IDX and HDF5 input
// (see dataset.hpp; the HDF5 source itself is in h5_dataset.cpp).
#include "lockstep/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lockstep/check.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/h5_dataset.hpp"
#include "lockstep/idx.hpp"
#include "lockstep/rng.hpp"

namespace lockstep {

MemoryData::MemoryData(std::string name, int64_t dim, int classes, std::vector<float> features,
                       std::vector<int32_t> labels)
    : name_(std::move(name)), dim_(dim), classes_(classes), features_(std::move(features)), labels_(std::move(labels)) {
  LOCKSTEP_CHECK(features_.size() == labels_.size() * static_cast<size_t>(dim_), "feature/label size mismatch");
}

void MemoryData::gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const {
  const size_t row_bytes = sizeof(float) * static_cast<size_t>(dim_);
  for (int64_t i = 0; i < n; ++i) {
    const auto r = static_cast<size_t>(rows[i]);
    std::memcpy(X + static_cast<size_t>(i) * dim_, features_.data() + r * dim_, row_bytes);
    y[i] = labels_[r];
  }
}

SubsetData::SubsetData(std::shared_ptr<const DataSource> base, std::vector<int64_t> rows, std::string name)
    : base_(std::move(base)), rows_(std::move(rows)), name_(std::move(name)) {}

void SubsetData::reserve(int64_t max_rows) const {
  if (static_cast<int64_t>(mapped_.size()) < max_rows) mapped_.resize(static_cast<size_t>(max_rows));
  base_->reserve(max_rows);
}

void SubsetData::gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const {
  reserve(n);  // a no-op once reserve() has sized the scratch
  for (int64_t i = 0; i < n; ++i) mapped_[i] = rows_[static_cast<size_t>(rows[i])];
  base_->gather(mapped_.data(), n, X, y);
}

void SubsetData::file_rows(const int64_t* rows, int64_t n, int64_t* out) const {
  for (int64_t i = 0; i < n; ++i) out[i] = rows_[static_cast<size_t>(rows[i])];
  base_->file_rows(out, n, out);
}

RelabeledData::RelabeledData(std::shared_ptr<const DataSource> base, std::vector<int32_t> label_map, int classes)
    : base_(std::move(base)), map_(std::move(label_map)), classes_(classes) {}

void RelabeledData::gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const {
  base_->gather(rows, n, X, y);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t l = y[i];
    LOCKSTEP_CHECK(l >= 0 && static_cast<size_t>(l) < map_.size() && map_[static_cast<size_t>(l)] >= 0,
                   base_->name(), ": label ", l, " of a row outside the class subset");
    y[i] = map_[static_cast<size_t>(l)];
  }
}

std::vector<int32_t> labels_of(const DataSource& d) {
  if (const auto* m = dynamic_cast<const MemoryData*>(&d)) return m->labels();
  if (const auto* h = dynamic_cast<const H5Data*>(&d)) return h->labels();
  // Any other source: gather it in blocks (features read and dropped).
  constexpr int64_t kBlock = 1024;
  std::vector<int32_t> out(static_cast<size_t>(d.size()));
  std::vector<int64_t> rows(kBlock);
  std::vector<float> x(static_cast<size_t>(kBlock * d.dim()));
  d.reserve(kBlock);
  for (int64_t b = 0; b < d.size(); b += kBlock) {
    const int64_t n = std::min(kBlock, d.size() - b);
    for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = b + i;
    d.gather(rows.data(), n, x.data(), out.data() + b);
  }
  return out;
}

std::unique_ptr<MemoryData> load_idx_pair(const std::string& images, const std::string& labels, int classes,
                                          const std::string& classes_note) {
  const std::string note = classes_note.empty() ? fmt("data.classes = ", classes) : classes_note;
  const IdxArray img = read_idx(images);
  const IdxArray lab = read_idx(labels);
  LOCKSTEP_REQUIRE(img.dims.size() >= 2, images, ": an image file needs at least 2 dimensions, found ",
                   img.dims.size(), " (is it a label file?)");
  LOCKSTEP_REQUIRE(lab.dims.size() == 1, labels, ": a label file has 1 dimension, found ", lab.dims.size(),
                   " (is it an image file?)");
  LOCKSTEP_REQUIRE(img.items() == lab.items(), "image and label counts disagree: ", images, " has ", img.items(),
                   " images but ", labels, " has ", lab.items(), " labels");
  const int64_t n = img.items(), dim = img.item_size();
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double v = idx_value(lab, i);
    LOCKSTEP_REQUIRE(v == std::floor(v), labels, ": row ", i, ": label ", v, " is not an integer");
    LOCKSTEP_REQUIRE(v >= 0 && v < classes, labels, ": row ", i, ": label ", v, " is outside [0, ", classes, ") (", note, ")");
    y[i] = static_cast<int32_t>(v);
  }
  std::vector<float> x(static_cast<size_t>(n * dim));
  if (img.type == IdxType::u8) {
    // Divide, not multiply by 1/255: the product is 1 ulp off v/255 for half the byte values.
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(img.data[i]) / 255.0f;
  } else {
    for (size_t i = 0; i < x.size(); ++i) {
      const double v = idx_value(img, static_cast<int64_t>(i));
      LOCKSTEP_REQUIRE(std::isfinite(v), images, ": row ", static_cast<int64_t>(i) / dim, ": non-finite value");
      x[i] = static_cast<float>(v);
    }
  }
  return std::make_unique<MemoryData>(images, dim, classes, std::move(x), std::move(y));
}

SplitRows holdout_split(int64_t n, int64_t val_size, uint64_t seed) {
  LOCKSTEP_REQUIRE(val_size < n, "data.val_size: ", val_size, " validation samples leave none of the ", n,
                   " training samples for training");
  std::vector<int64_t> perm;
  Rng rng(seed, Stream::split);
  random_permutation(rng, n, perm);
  SplitRows s;
  s.val.assign(perm.begin(), perm.begin() + val_size);
  s.train.assign(perm.begin() + val_size, perm.end());
  // Sorted rows: the subsets read the base in file order; the epoch order comes from the sharder.
  std::sort(s.val.begin(), s.val.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

namespace {

void check_width(const DataSource& d, int64_t input_dim) {
  LOCKSTEP_REQUIRE(d.dim() == input_dim, d.name(), ": samples have ", d.dim(),
                   " features but the model's input width (model.layers[0]) is ", input_dim);
}

// One configured set (training or test). The rule (docs/data.md): when the images key names an
// HDF5 file (told by its signature, not its name) that file holds features and labels both, and
// the labels key must be empty; otherwise the two keys name an IDX pair.
std::shared_ptr<DataSource> open_source(const std::string& images_key, const std::string& images,
                                        const std::string& labels_key, const std::string& labels, int classes,
                                        int64_t input_dim) {
  if (h5::is_hdf5_file(images)) {
    LOCKSTEP_REQUIRE(labels.empty(), images_key, " = ", images, " is an HDF5 data file, which holds its labels (",
                     "/labels); set ", labels_key, " to \"\" (it is ", labels, ")");
    auto d = std::make_shared<H5Data>(images, classes);
    check_width(*d, input_dim);  // before the feature scan: a wrong width fails fast
    return d;
  }
  LOCKSTEP_REQUIRE(!labels.empty(), labels_key, " is empty, but ", images_key, " = ", images,
                   " is not an HDF5 data file (an IDX image file needs its IDX label file)");
  LOCKSTEP_REQUIRE(!h5::is_hdf5_file(labels), labels_key, " = ", labels, " is an HDF5 file: put it in ", images_key,
                   " and set ", labels_key, " to \"\"");
  std::shared_ptr<DataSource> d = load_idx_pair(images, labels, classes);
  check_width(*d, input_dim);
  return d;
}

// data.class_subset as a map from file label to model label (-1: not kept); empty: no subset.
std::vector<int32_t> class_label_map(const DataConfig& cfg) {
  std::vector<int32_t> map;
  if (cfg.class_subset.empty()) return map;
  map.assign(static_cast<size_t>(cfg.classes), -1);
  for (size_t i = 0; i < cfg.class_subset.size(); ++i) map[static_cast<size_t>(cfg.class_subset[i])] = static_cast<int32_t>(i);
  return map;
}

// Rows (ascending) of d whose label the map keeps.
std::vector<int64_t> rows_in_subset(const DataSource& d, const std::vector<int32_t>& map) {
  const std::vector<int32_t> labels = labels_of(d);
  std::vector<int64_t> rows;
  for (size_t i = 0; i < labels.size(); ++i)
    if (map[static_cast<size_t>(labels[i])] >= 0) rows.push_back(static_cast<int64_t>(i));
  return rows;
}

std::string subset_text(const DataConfig& cfg) {
  std::string s = "[";
  for (size_t i = 0; i < cfg.class_subset.size(); ++i) s += (i ? ", " : "") + std::to_string(cfg.class_subset[i]);
  return s + "]";
}

// The test set as the model sees it: the rows of data.class_subset's classes, relabelled.
std::shared_ptr<const DataSource> test_subset(const DataConfig& cfg, std::shared_ptr<DataSource> test,
                                              const std::vector<int32_t>& label_map) {
  if (label_map.empty()) return test;
  std::vector<int64_t> rows = rows_in_subset(*test, label_map);
  LOCKSTEP_REQUIRE(!rows.empty(), test->name(), ": no test sample has a class of data.class_subset = ",
                   subset_text(cfg));
  return std::make_shared<RelabeledData>(
      std::make_shared<SubsetData>(test, std::move(rows), test->name() + " (class subset)"), label_map,
      static_cast<int>(cfg.class_subset.size()));
}

}  // namespace

Datasets load_datasets(const DataConfig& cfg, int64_t input_dim, uint64_t seed, ScanShare share) {
  std::shared_ptr<DataSource> full = open_source("data.train_images", cfg.train_images, "data.train_labels",
                                                 cfg.train_labels, cfg.classes, input_dim);
  std::shared_ptr<DataSource> test;
  if (!cfg.test_images.empty())
    test = open_source("data.test_images", cfg.test_images, "data.test_labels", cfg.test_labels, cfg.classes,
                       input_dim);
  // The rows in play: all, or those of data.class_subset's classes (the split and the limit below
  // draw from them; `pool` maps their positions back to file rows, ascending).
  const std::vector<int32_t> label_map = class_label_map(cfg);
  std::vector<int64_t> pool;
  if (!label_map.empty()) {
    pool = rows_in_subset(*full, label_map);
    LOCKSTEP_REQUIRE(!pool.empty(), full->name(), ": no training sample has a class of data.class_subset = ",
                     subset_text(cfg));
  }
  SplitRows split = holdout_split(pool.empty() ? full->size() : static_cast<int64_t>(pool.size()), cfg.val_size, seed);
  if (!pool.empty()) {
    for (auto* rows : {&split.train, &split.val})
      for (int64_t& r : *rows) r = pool[static_cast<size_t>(r)];
  }
  if (cfg.train_limit > 0) {
    const auto have = static_cast<int64_t>(split.train.size());
    LOCKSTEP_REQUIRE(cfg.train_limit <= have, "data.train_limit: asks for ", cfg.train_limit, " training samples but ",
                     have, " remain after the validation split", label_map.empty() ? "" : " and data.class_subset");
    // A random train_limit of them, chosen by the seed (its own stream index: the split used 0).
    std::vector<int64_t> perm;
    Rng rng(seed, Stream::split, 1);
    random_permutation(rng, have, perm);
    std::vector<int64_t> kept(static_cast<size_t>(cfg.train_limit));
    for (size_t i = 0; i < kept.size(); ++i) kept[i] = split.train[static_cast<size_t>(perm[i])];
    std::sort(kept.begin(), kept.end());
    split.train = std::move(kept);
  }
  const bool standardize = cfg.normalize == Normalize::standardize;

  // HDF5 features are not in memory: a streaming pass rejects NaN/inf rows (this process's share
  // of them) and, when standardising, sums every training row in the same order as the
  // in-memory loop below, so the mean and deviation are bitwise those of the IDX path.
  auto* full_h5 = dynamic_cast<H5Data*>(full.get());
  auto* test_h5 = dynamic_cast<H5Data*>(test.get());
  FeatureMoments moments;
  if (full_h5) moments = full_h5->scan_features(standardize ? &split.train : nullptr, share.part, share.parts);
  if (test_h5) test_h5->scan_features(nullptr, share.part, share.parts);

  Datasets out;
  if (standardize) {
    // One mean and deviation over the training rows only, applied to every set alike.
    double sum = 0.0, sq = 0.0;
    if (full_h5) {
      sum = moments.sum;
      sq = moments.sum_sq;
    } else {
      const auto& f = static_cast<MemoryData&>(*full).features();
      for (int64_t r : split.train) {
        const float* row = f.data() + static_cast<size_t>(r) * input_dim;
        for (int64_t j = 0; j < input_dim; ++j) {
          sum += row[j];
          sq += static_cast<double>(row[j]) * row[j];
        }
      }
    }
    const double count = static_cast<double>(split.train.size()) * static_cast<double>(input_dim);
    out.mean = sum / count;
    out.stddev = std::sqrt(std::max(sq / count - out.mean * out.mean, 1e-12));
    for (DataSource* d : {full.get(), test.get()}) {
      if (auto* h = dynamic_cast<H5Data*>(d)) {
        h->set_normalization(out.mean, out.stddev);  // applied inside gather
      } else if (auto* m = dynamic_cast<MemoryData*>(d)) {
        for (float& v : m->features()) v = static_cast<float>((v - out.mean) / out.stddev);
      }
    }
  }
  const bool whole = static_cast<int64_t>(split.train.size()) == full->size();  // sorted, so every row in order
  if (whole) {
    out.train = full;
  } else {
    out.train = std::make_shared<SubsetData>(full, std::move(split.train), full->name() + " (training part)");
  }
  if (!split.val.empty())
    out.val = std::make_shared<SubsetData>(full, std::move(split.val), full->name() + " (validation part)");
  out.test = test ? test_subset(cfg, test, label_map) : nullptr;
  if (!label_map.empty()) {
    const int k = static_cast<int>(cfg.class_subset.size());
    out.train = std::make_shared<RelabeledData>(out.train, label_map, k);
    if (out.val) out.val = std::make_shared<RelabeledData>(out.val, label_map, k);
  }
  out.train_file = full;
  return out;
}

Datasets load_test_set(const DataConfig& cfg, int64_t input_dim, ScanShare share) {
  LOCKSTEP_REQUIRE(cfg.normalize == Normalize::scale,
                   "data.normalize = standardize takes its mean and deviation from the training data: load them "
                   "with load_datasets");
  LOCKSTEP_REQUIRE(!cfg.test_images.empty(), "data.test_images is empty: there is no test set to load");
  std::shared_ptr<DataSource> test =
      open_source("data.test_images", cfg.test_images, "data.test_labels", cfg.test_labels, cfg.classes, input_dim);
  if (auto* h = dynamic_cast<H5Data*>(test.get())) h->scan_features(nullptr, share.part, share.parts);
  Datasets out;
  out.test = test_subset(cfg, test, class_label_map(cfg));
  return out;
}

}  // namespace lockstep
