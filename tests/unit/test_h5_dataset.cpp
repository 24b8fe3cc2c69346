// HDF5 data input: convert (float32 and uint8) then read back gives bitwise the floats of the IDX
// path for any rows in any order; load_datasets accepts .h5 train/test sets (validation split and
// standardisation included) and enforces the key rule; every malformed file is rejected naming
// the file, the dataset and the row. Multi-rank use is covered by tests/cli/test_convert.sh.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "lockstep/dataset.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/h5_dataset.hpp"
#include "lockstep/rng.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

using test::idx_bytes;
using test::TempDir;
using test::throws_user_error;
using test::write_bytes;

constexpr uint32_t kRows = 53, kSide = 5;  // 53 images of 5x5: odd sizes catch off-by-one chunking
constexpr int64_t kDim = kSide * kSide;

// An IDX pair of random bytes with labels in [0, 10); returns {images, labels} paths.
std::pair<std::string, std::string> write_idx_pair(const TempDir& dir, uint32_t n = kRows, uint64_t seed = 7) {
  Rng rng(seed, Stream::test);
  std::vector<uint8_t> px(static_cast<size_t>(n) * kDim), lab(n);
  for (auto& v : px) v = static_cast<uint8_t>(rng.uniform_below(256));
  for (auto& v : lab) v = static_cast<uint8_t>(rng.uniform_below(10));
  const std::string images = dir.file("img.gz"), labels = dir.file("lab.gz");
  write_bytes(images, idx_bytes(0x08, {n, kSide, kSide}, px), true);
  write_bytes(labels, idx_bytes(0x08, {n}, lab), true);
  return {images, labels};
}

std::string convert(const TempDir& dir, const std::string& out, H5FeatureType dtype, int compress = 0,
                    int64_t chunk_rows = 0) {
  const auto [images, labels] = write_idx_pair(dir);
  ConvertOptions o;
  o.images = images;
  o.labels = labels;
  o.out = dir.file(out);
  o.dtype = dtype;
  o.compress = compress;
  o.chunk_rows = chunk_rows;
  o.classes = 10;
  convert_idx_to_h5(o);
  return o.out;
}

// Gathers `rows` from both sources and requires bitwise equal features and equal labels.
void expect_same_rows(const DataSource& a, const DataSource& b, const std::vector<int64_t>& rows) {
  const auto n = static_cast<int64_t>(rows.size());
  std::vector<float> xa(rows.size() * a.dim(), -1.f), xb(rows.size() * b.dim(), -2.f);
  std::vector<int32_t> ya(rows.size(), -1), yb(rows.size(), -2);
  a.gather(rows.data(), n, xa.data(), ya.data());
  b.gather(rows.data(), n, xb.data(), yb.data());
  ASSERT_EQ(a.dim(), b.dim());
  EXPECT_EQ(0, std::memcmp(xa.data(), xb.data(), xa.size() * sizeof(float))) << "features differ";
  EXPECT_EQ(ya, yb);
}

// Rows in the orders the trainer and evaluator produce, plus duplicates and the extremes.
std::vector<std::vector<int64_t>> row_patterns() {
  std::vector<int64_t> perm;
  Rng rng(3, Stream::test);
  random_permutation(rng, kRows, perm);
  std::vector<int64_t> all(kRows);
  for (int64_t i = 0; i < kRows; ++i) all[i] = i;
  return {perm, all, {kRows - 1, 0, 17, 18, 19, 5, 17, 0}, {4}, std::vector<int64_t>(perm.begin(), perm.begin() + 9)};
}

TEST(H5Dataset, Float32RoundTripEqualsIdxBitwise) {
  TempDir dir;
  const std::string h5file = convert(dir, "d.h5", H5FeatureType::float32, 0, 7);
  const auto idx = load_idx_pair(dir.file("img.gz"), dir.file("lab.gz"), 10);
  const auto h5d = open_h5_data(h5file, 10);
  EXPECT_EQ(h5d->size(), kRows);
  EXPECT_EQ(h5d->dim(), kDim);
  EXPECT_EQ(h5d->feature_type(), "float32");
  EXPECT_EQ(h5d->chunk_rows(), 7);
  EXPECT_EQ(h5d->labels(), idx->labels());
  h5d->reserve(kRows);
  // Every read path gives the same floats; direct preads are the default where they apply.
  EXPECT_EQ(h5d->read_mode(), H5Data::ReadMode::direct);
  for (auto mode : {H5Data::ReadMode::direct, H5Data::ReadMode::per_run, H5Data::ReadMode::union_selection}) {
    h5d->set_read_mode(mode);
    for (const auto& rows : row_patterns()) expect_same_rows(*idx, *h5d, rows);
  }

  // The root attributes describe the file.
  h5::Handle f = h5::open_file(h5file, false);
  EXPECT_EQ(h5::attr_int(f.get(), "classes"), 10);
  EXPECT_NE(h5::attr_string(f.get(), "source").find("img.gz"), std::string::npos);
  EXPECT_NE(h5::attr_string(f.get(), "source").find("lab.gz"), std::string::npos);
  EXPECT_EQ(h5::attr_string(f.get(), "created").size(), 20u);  // 2024-01-02T03:04:05Z
  EXPECT_FALSE(h5::attr_string(f.get(), "lockstep_version").empty());
}

TEST(H5Dataset, Uint8RoundTripEqualsIdxBitwiseAndCompressedToo) {
  TempDir dir;
  const auto idx_files = write_idx_pair(dir);
  const auto idx = load_idx_pair(idx_files.first, idx_files.second, 10);
  for (int compress : {0, 6}) {
    const std::string h5file = convert(dir, fmt("u8_", compress, ".h5"), H5FeatureType::uint8, compress, 4);
    const auto h5d = open_h5_data(h5file, 10);
    EXPECT_EQ(h5d->feature_type(), "uint8");
    EXPECT_DOUBLE_EQ(h5d->scale(), 1.0 / 255);
    // Compressed chunks cannot be read in place: HDF5 reads them (and inflates them).
    EXPECT_EQ(h5d->read_mode(), compress ? H5Data::ReadMode::per_run : H5Data::ReadMode::direct);
    if (compress) EXPECT_THROW(h5d->set_read_mode(H5Data::ReadMode::direct), Error);
    for (auto mode : {H5Data::ReadMode::per_run, H5Data::ReadMode::union_selection, h5d->read_mode()}) {
      h5d->set_read_mode(mode);
      for (const auto& rows : row_patterns()) expect_same_rows(*idx, *h5d, rows);
    }
  }
  const std::string gz = convert(dir, "f32_gz.h5", H5FeatureType::float32, 9);
  for (const auto& rows : row_patterns()) expect_same_rows(*idx, *open_h5_data(gz, 10), rows);
}

TEST(H5Dataset, EveryByteScalesExactlyAsTheIdxReaderDoes) {
  TempDir dir;
  std::vector<uint8_t> px(256), lab(1, 0);
  for (int b = 0; b < 256; ++b) px[b] = static_cast<uint8_t>(b);
  write_bytes(dir.file("i"), idx_bytes(0x08, {1, 16, 16}, px));
  write_bytes(dir.file("l"), idx_bytes(0x08, {1}, lab));
  ConvertOptions o{dir.file("i"), dir.file("l"), dir.file("b.h5"), H5FeatureType::uint8};
  convert_idx_to_h5(o);
  const auto h5d = open_h5_data(o.out, 2);
  std::vector<float> x(256);
  int32_t y = -1;
  const int64_t row = 0;
  h5d->gather(&row, 1, x.data(), &y);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(x[b], static_cast<float>(b) / 255.0f) << "byte " << b;
}

DataConfig h5_config(const std::string& train, const std::string& test) {
  DataConfig c;
  c.train_images = train;
  c.train_labels = "";
  c.test_images = test;
  c.test_labels = "";
  c.classes = 10;
  c.val_size = 11;
  return c;
}

TEST(H5Dataset, LoadDatasetsMatchesIdxWithSplitAndStandardize) {
  TempDir dir;
  for (auto dtype : {H5FeatureType::float32, H5FeatureType::uint8}) {
    const std::string h5file = convert(dir, "s.h5", dtype);
    for (auto norm : {Normalize::scale, Normalize::standardize}) {
      DataConfig hc = h5_config(h5file, h5file);
      DataConfig ic = hc;
      ic.train_images = ic.test_images = dir.file("img.gz");
      ic.train_labels = ic.test_labels = dir.file("lab.gz");
      hc.normalize = ic.normalize = norm;
      const Datasets h = load_datasets(hc, kDim, 99), i = load_datasets(ic, kDim, 99);
      EXPECT_EQ(h.mean, i.mean);
      EXPECT_EQ(h.stddev, i.stddev);
      ASSERT_TRUE(h.val && h.test);
      EXPECT_EQ(h.train->size(), kRows - 11);
      for (int64_t r : {0, 5, 20, 41}) expect_same_rows(*i.train, *h.train, {r, 40 - r / 2});
      expect_same_rows(*i.val, *h.val, {10, 0, 3});
      expect_same_rows(*i.test, *h.test, row_patterns()[0]);
    }
    std::filesystem::remove(h5file);
  }
}

TEST(H5Dataset, ConfigKeyRuleAndWidthAreChecked) {
  TempDir dir;
  const std::string h5file = convert(dir, "k.h5", H5FeatureType::float32);
  DataConfig c = h5_config(h5file, "");
  c.train_labels = dir.file("lab.gz");
  EXPECT_TRUE(throws_user_error([&] { load_datasets(c, kDim, 1); },
                                {"data.train_images", "data.train_labels", "HDF5", h5file}));
  c = h5_config(dir.file("img.gz"), "");
  EXPECT_TRUE(throws_user_error([&] { load_datasets(c, kDim, 1); }, {"data.train_labels is empty", "img.gz"}));
  c = h5_config(h5file, dir.file("img.gz"));
  EXPECT_TRUE(throws_user_error([&] { load_datasets(c, kDim, 1); }, {"data.test_labels is empty"}));
  c = h5_config(h5file, "");
  EXPECT_TRUE(throws_user_error([&] { load_datasets(c, kDim + 1, 1); }, {h5file, "model.layers[0]"}));
  c.train_images = dir.file("img.gz");
  c.train_labels = h5file;
  EXPECT_TRUE(throws_user_error([&] { load_datasets(c, kDim, 1); }, {"data.train_labels", "is an HDF5 file"}));
}

// ---- malformed files --------------------------------------------------------------------------

void put(hid_t file, const char* name, hid_t file_type, hid_t mem_type, std::vector<hsize_t> dims, const void* data) {
  h5::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  h5::Handle ds(H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_TRUE(ds.valid());
  ASSERT_GE(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
}

// A file with 4 rows of 3 float features; `edit` may replace or drop either dataset.
struct Bad {
  std::vector<float> x = std::vector<float>(12, 0.5f);
  std::vector<int32_t> y{0, 1, 2, 3};
  bool features = true, labels = true;
};
std::string write_bad(const TempDir& dir, const Bad& b, const std::string& name = "bad.h5") {
  const std::string path = dir.file(name);
  h5::Handle f = h5::create_file(path);
  if (b.features) put(f.get(), "features", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {b.x.size() / 3, 3}, b.x.data());
  if (b.labels) put(f.get(), "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {b.y.size()}, b.y.data());
  return path;
}

TEST(H5Dataset, RejectsMissingDatasetsAndWrongShapes) {
  TempDir dir;
  Bad b;
  b.features = false;
  std::string p = write_bad(dir, b);
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/features is missing"}));
  b = Bad{};
  b.labels = false;
  p = write_bad(dir, b);
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/labels is missing"}));

  b = Bad{};
  b.y = {0, 1, 2};
  p = write_bad(dir, b);
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/labels has 3 rows but /features has 4"}));

  // Wrong ranks and types, each written by hand.
  auto custom = [&](auto&& fill) {
    const std::string path = dir.file("custom.h5");
    {
      h5::Handle f = h5::create_file(path);
      fill(f.get());
    }
    return path;
  };
  const std::vector<float> x(24, 0.f);
  const std::vector<int32_t> y{0, 1, 2, 3};
  p = custom([&](hid_t f) {
    put(f, "features", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {2, 3, 4}, x.data());
    put(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {2}, y.data());
  });
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/features has 3 dimensions; expected 2"}));
  const std::vector<int32_t> xi(12, 1);
  p = custom([&](hid_t f) {
    put(f, "features", H5T_STD_I16LE, H5T_NATIVE_INT32, {4, 3}, xi.data());
    put(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, y.data());
  });
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/features holds int16 values"}));
  p = custom([&](hid_t f) {
    put(f, "features", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {4, 3}, x.data());
    put(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {2, 2}, y.data());
  });
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/labels has 2 dimensions; expected 1"}));
  p = custom([&](hid_t f) {
    put(f, "features", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {4, 3}, x.data());
    put(f, "labels", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {4}, x.data());
  });
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/labels holds float32 values; expected integers"}));
  p = custom([&](hid_t f) {
    h5::create_group(f, "features");
    put(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, y.data());
  });
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/features is not a dataset"}));
  // float64 features are accepted and converted to float.
  const std::vector<double> xd{1.5, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.25};
  p = custom([&](hid_t f) {
    put(f, "features", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {4, 3}, xd.data());
    put(f, "labels", H5T_STD_I64LE, H5T_NATIVE_INT32, {4}, y.data());
  });
  const auto d64 = open_h5_data(p, 10);
  EXPECT_EQ(d64->feature_type(), "float64");
  EXPECT_EQ(d64->read_mode(), H5Data::ReadMode::per_run);  // HDF5 converts to float
  float row[3];
  int32_t lab = -1;
  const int64_t r = 3;
  d64->gather(&r, 1, row, &lab);
  EXPECT_EQ(row[0], 10.f);
  EXPECT_EQ(row[2], 12.25f);
  EXPECT_EQ(lab, 3);
}

TEST(H5Dataset, RejectsLabelsOutOfRangeNamingTheRow) {
  TempDir dir;
  Bad b;
  b.y = {0, 1, 10, 3};
  std::string p = write_bad(dir, b);
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/labels: row 2: label 10 is outside [0, 10)"}));
  b.y = {0, 1, 2, -1};
  p = write_bad(dir, b);
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "/labels: row 3: label -1 is outside"}));
}

TEST(H5Dataset, RejectsNonFiniteFeaturesNamingTheRow) {
  TempDir dir;
  Bad b;
  b.x[7] = std::numeric_limits<float>::quiet_NaN();  // row 2, column 1
  std::string p = write_bad(dir, b);
  EXPECT_TRUE(throws_user_error([&] { open_h5_data(p, 10); }, {p, "/features: row 2, column 1: NaN"}));
  b = Bad{};
  b.x[11] = -std::numeric_limits<float>::infinity();
  p = write_bad(dir, b);
  EXPECT_TRUE(throws_user_error([&] { open_h5_data(p, 10); }, {p, "/features: row 3, column 2: infinite"}));
  // A float64 beyond the float32 range would become infinite in training.
  const std::vector<double> big{1, 2, 3, 4, 5, 6e300, 7, 8, 9, 10, 11, 12};
  const std::vector<int32_t> y{0, 1, 2, 3};
  const std::string p64 = dir.file("big.h5");
  {
    h5::Handle f = h5::create_file(p64);
    put(f.get(), "features", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {4, 3}, big.data());
    put(f.get(), "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, y.data());
  }
  EXPECT_TRUE(throws_user_error([&] { open_h5_data(p64, 10); }, {p64, "row 1, column 2", "float32 range"}));
  // Contiguous (unchunked) files, as h5py writes by default, take the direct path too.
  b = Bad{};
  p = write_bad(dir, b, "contiguous.h5");
  EXPECT_EQ(open_h5_data(p, 10)->read_mode(), H5Data::ReadMode::direct);
  // The same through load_datasets: caught before training, not at the first gather.
  b.x[11] = std::numeric_limits<float>::quiet_NaN();
  p = write_bad(dir, b);
  DataConfig c = h5_config(p, "");
  c.val_size = 1;
  EXPECT_TRUE(throws_user_error([&] { load_datasets(c, 3, 1); }, {p, "row 3"}));
}

// Found by fuzz_h5_data: one byte inserted into a compressed file makes /labels fail to inflate.
// That used to escape as an internal error (exit code 1, HDF5's error stack printed); a damaged
// file is bad input, named once.
TEST(H5Dataset, DamagedCompressedChunkIsBadInput) {
  const std::string p = std::string(LOCKSTEP_FUZZ_DIR) + "/crashes/h5_data_corrupt_labels_chunk.h5";
  testing::internal::CaptureStderr();
  EXPECT_TRUE(throws_user_error([&] { open_h5_data(p, 10); }, {p, "unreadable, probably damaged", "/labels"}));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "") << "HDF5 printed its own error stack";
  // A damaged uint8 feature chunk: uint8 rows cannot be NaN, yet the scan must read them all, or
  // the damage surfaces at the first gather, in training, as an internal error on one rank.
  const std::string u8 = std::string(LOCKSTEP_FUZZ_DIR) + "/crashes/h5_data_corrupt_uint8_features_chunk.h5";
  EXPECT_NO_THROW(H5Data(u8, 10)) << "the structure is intact: only a chunk is damaged";
  EXPECT_TRUE(throws_user_error([&] { open_h5_data(u8, 10); }, {u8, "unreadable, probably damaged", "/features"}));
}

// Found by fuzz_h5_data: a /features of absurd declared size (a few KB on disk, chunks never
// written) made the constructor allocate a row buffer of the declared width (64 GiB, or more than
// a vector can hold) and overflow its offset arithmetic before the width was checked.
TEST(H5Dataset, ImplausiblyLargeDeclaredShapeIsBadInput) {
  TempDir dir;
  const std::string p = dir.file("huge.h5");
  {
    h5::Handle f = h5::create_file(p);
    const hsize_t dims[2] = {hsize_t{1} << 21, hsize_t{1} << 20}, chunk[2] = {1, 1024};  // 2^41 values
    h5::Handle space(H5Screate_simple(2, dims, nullptr));
    h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    ASSERT_GE(H5Pset_chunk(dcpl.get(), 2, chunk), 0);
    h5::Handle ds(H5Dcreate2(f.get(), "features", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
    ASSERT_TRUE(ds.valid());
  }
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "2097152 x 1048576 values, implausibly many"}));
  for (const char* name : {"h5_data_width_64_gib_row.h5", "h5_data_width_beyond_vector_max.h5",
                           "h5_data_row_offset_overflow.h5"}) {
    const std::string crash = std::string(LOCKSTEP_FUZZ_DIR) + "/crashes/" + name;
    EXPECT_TRUE(throws_user_error([&] { open_h5_data(crash, 10); }, {crash})) << name;
  }
  // A damaged type message declaring labels of 23488102432 bits each (HDF5 allocated 2.9 GB).
  const std::string wide = std::string(LOCKSTEP_FUZZ_DIR) + "/crashes/h5_data_labels_integer_of_gigabytes.h5";
  EXPECT_TRUE(throws_user_error([&] { H5Data(wide, 10); }, {wide, "/labels", "expected integers of at most 64 bits"}));
}

// Found by fuzz_h5_data: a contiguous /features whose 96 bytes run 22 bytes past the end of the
// file. The scan's one large read succeeded (HDF5's sieve buffer), a one-row gather then failed
// in training. Rejected at open, naming the dataset; so is a plainly truncated file.
TEST(H5Dataset, ContiguousDataPastTheEndOfTheFileIsRejectedAtOpen) {
  const std::string p = std::string(LOCKSTEP_FUZZ_DIR) + "/crashes/h5_data_contiguous_beyond_eof.h5";
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); },
                                {p, "dataset /features: its 96 bytes at offset 2094 lie beyond the end of the file (2168 bytes)"}));
}

TEST(H5Dataset, ScanSharesSplitTheRowsBetweenRanks) {
  // 53 rows in chunks of 7 (8 chunks), a NaN in row 30 (chunk 4): of 3 shares (chunks 0-2, 3-5,
  // 6-7) only the second reads it, and a single share reads everything.
  TempDir dir;
  std::vector<float> x(static_cast<size_t>(kRows * kDim), 0.25f);
  x[30 * kDim + 4] = std::numeric_limits<float>::quiet_NaN();
  std::vector<int32_t> y(kRows, 1);
  H5WriteOptions o;
  o.chunk_rows = 7;
  H5DataWriter w(dir.file("nan.h5"), kRows, kDim, o);
  w.write_features(0, kRows, x.data());
  w.write_labels(y.data());
  w.close();
  H5Data d(dir.file("nan.h5"), 10);
  EXPECT_NO_THROW(d.scan_features(nullptr, 0, 3));
  EXPECT_TRUE(throws_user_error([&] { d.scan_features(nullptr, 1, 3); }, {"row 30, column 4: NaN"}));
  EXPECT_NO_THROW(d.scan_features(nullptr, 2, 3));
  EXPECT_TRUE(throws_user_error([&] { d.scan_features(); }, {"row 30"}));
  // With 20 shares, some are empty; still exactly one finds the NaN.
  int found = 0;
  for (int part = 0; part < 20; ++part) {
    try {
      d.scan_features(nullptr, part, 20);
    } catch (const UserError&) {
      ++found;
    }
  }
  EXPECT_EQ(found, 1);
  DataConfig c = h5_config(dir.file("nan.h5"), "");
  EXPECT_NO_THROW(load_datasets(c, kDim, 1, {0, 3}));
  EXPECT_TRUE(throws_user_error([&] { load_datasets(c, kDim, 1, {1, 3}); }, {"nan.h5", "row 30"}));
}

TEST(H5Dataset, RejectsFilesThatAreNotHdf5) {
  TempDir dir;
  const auto [images, labels] = write_idx_pair(dir);
  EXPECT_TRUE(throws_user_error([&] { H5Data(images, 10); }, {images, "not an HDF5 file"}));
  EXPECT_TRUE(throws_user_error([&] { H5Data(dir.file("none.h5"), 10); }, {"none.h5", "cannot open"}));
  // A truncated HDF5 file keeps its signature but not its contents.
  const std::string good = convert(dir, "t.h5", H5FeatureType::float32);
  std::filesystem::resize_file(good, 600);
  EXPECT_TRUE(throws_user_error([&] { H5Data(good, 10); }, {good, "cannot open as HDF5"}));
}

TEST(H5Dataset, LockingFailureNamesTheVariable) {
  const char* env = std::getenv("HDF5_USE_FILE_LOCKING");
  if (env && std::string(env) != "TRUE" && std::string(env) != "1") GTEST_SKIP() << "file locking disabled";
  TempDir dir;
  const std::string p = convert(dir, "locked.h5", H5FeatureType::float32);
  // Another writer's exclusive lock, as a process writing the file would hold it.
  const int fd = ::open(p.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  EXPECT_TRUE(throws_user_error([&] { H5Data(p, 10); }, {p, "HDF5_USE_FILE_LOCKING=FALSE"}));
  ::close(fd);
  EXPECT_NO_THROW(H5Data(p, 10));
}

TEST(H5Dataset, ConvertRefusesToOverwriteAndLeavesNothingOnFailure) {
  TempDir dir;
  const std::string out = convert(dir, "o.h5", H5FeatureType::float32);
  const auto size = std::filesystem::file_size(out);
  ConvertOptions o{dir.file("img.gz"), dir.file("lab.gz"), out};
  EXPECT_TRUE(throws_user_error([&] { convert_idx_to_h5(o); }, {out, "already exists", "--force"}));
  o.force = true;
  o.dtype = H5FeatureType::uint8;
  EXPECT_NO_THROW(convert_idx_to_h5(o));
  EXPECT_LT(std::filesystem::file_size(out), size);  // replaced by the smaller uint8 file

  // A failing conversion (labels out of the given class range) leaves no file of any name.
  ConvertOptions bad{dir.file("img.gz"), dir.file("lab.gz"), dir.file("new.h5")};
  bad.classes = 2;
  EXPECT_TRUE(throws_user_error([&] { convert_idx_to_h5(bad); }, {"lab.gz", "outside [0, 2)"}));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().string().find("new.h5"), std::string::npos) << e.path();
  // Float IDX images cannot become uint8.
  std::vector<uint8_t> f32(4 * 4, 0);
  write_bytes(dir.file("f.idx"), idx_bytes(0x0D, {1, 2, 2}, f32));
  write_bytes(dir.file("l.idx"), idx_bytes(0x08, {1}, {0}));
  ConvertOptions u8{dir.file("f.idx"), dir.file("l.idx"), dir.file("u.h5"), H5FeatureType::uint8};
  EXPECT_TRUE(throws_user_error([&] { convert_idx_to_h5(u8); }, {"f.idx", "--dtype uint8"}));
}

}  // namespace
}  // namespace lockstep
