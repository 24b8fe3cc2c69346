// Data fingerprints (see data_fingerprint.hpp).
#include "lockstep/data_fingerprint.hpp"

#include <algorithm>
#include <vector>

#include "lockstep/checksum.hpp"

namespace lockstep {

std::string fingerprint_of(const DataSource& d) {
  const int64_t n = d.size(), dim = d.dim();
  const int64_t header[3] = {n, dim, d.classes()};
  uint64_t h = fnv1a64(header, sizeof header);
  const std::vector<int32_t> labels = labels_of(d);
  h = fnv1a64(labels.data(), labels.size() * sizeof(int32_t), h);
  const int64_t k = std::min(n, kFingerprintRows);
  if (k > 0) {
    std::vector<int64_t> rows(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) rows[static_cast<size_t>(i)] = k == 1 ? 0 : i * (n - 1) / (k - 1);
    std::vector<float> x(static_cast<size_t>(k * dim));
    std::vector<int32_t> y(static_cast<size_t>(k));
    d.reserve(k);
    d.gather(rows.data(), k, x.data(), y.data());
    h = fnv1a64(x.data(), x.size() * sizeof(float), h);
  }
  return hex64(h);
}

DataFingerprint fingerprint_of(const Datasets& d) {
  DataFingerprint f;
  const DataSource* train = d.train_file ? d.train_file.get() : d.train.get();
  if (!train) return f;
  f.train_samples = train->size();
  f.train = fingerprint_of(*train);
  f.test_samples = d.test ? d.test->size() : 0;
  if (d.test) f.test = fingerprint_of(*d.test);
  return f;
}

namespace {
// "data.train_images = A" or "data.train_images = A, data.train_labels = B" (an IDX pair).
std::string file_keys(const char* images_key, const std::string& images, const char* labels_key,
                      const std::string& labels) {
  std::string s = std::string(images_key) + " = " + images;
  if (!labels.empty()) s += std::string(", ") + labels_key + " = " + labels;
  return s;
}
}  // namespace

std::vector<DataFileFingerprint> data_files_of(const DataConfig& cfg, const DataFingerprint& fp) {
  std::vector<DataFileFingerprint> out;
  out.push_back({file_keys("data.train_images", cfg.train_images, "data.train_labels", cfg.train_labels),
                 fp.train_samples, fp.train});
  if (!cfg.test_images.empty())
    out.push_back({file_keys("data.test_images", cfg.test_images, "data.test_labels", cfg.test_labels),
                   fp.test_samples, fp.test});
  return out;
}

}  // namespace lockstep
