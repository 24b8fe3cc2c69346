// The IDX reader (read_idx, idx_value) and load_idx_pair: raw and gzip input, pixel scaling, and
// the rejection of every kind of bad file with a message naming the file and the cause.
// Also loads the real Fashion-MNIST files when installed, checked against an independent zlib read.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lockstep/check.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/idx.hpp"
#include "lockstep/rng.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

using test::idx_bytes;
using test::TempDir;
using test::throws_user_error;
using test::write_bytes;

// n images of rows x cols with pseudo-random pixels (incompressible enough that half a gzip
// stream is really half the data).
std::vector<uint8_t> pixels(uint32_t n, uint32_t rows, uint32_t cols, uint64_t seed) {
  Rng rng(seed, Stream::test);
  std::vector<uint8_t> p(static_cast<size_t>(n) * rows * cols);
  for (auto& v : p) v = static_cast<uint8_t>(rng.uniform_below(256));
  return p;
}

std::vector<uint8_t> label_payload(uint32_t n, int classes) {
  std::vector<uint8_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>((i * 7 + 3) % static_cast<uint32_t>(classes));
  return p;
}

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(Idx, RawAndGzipLoadIdenticallyWhateverTheName) {
  TempDir dir;
  const auto img_payload = pixels(60, 4, 4, 1);
  const auto lab_payload = label_payload(60, 10);
  const auto img = idx_bytes(0x08, {60, 4, 4}, img_payload);
  const auto lab = idx_bytes(0x08, {60}, lab_payload);
  struct Variant {
    std::string suffix;
    bool gzip;
  };
  // A gzip file named .idx and a raw file named .gz: compression comes from the bytes.
  const std::vector<Variant> variants{{".idx", false}, {".gz", true}, {"-gz.idx", true}, {"-raw.gz", false}};
  for (const auto& v : variants) {
    SCOPED_TRACE(v.suffix);
    const std::string ip = dir.file("images" + v.suffix), lp = dir.file("labels" + v.suffix);
    write_bytes(ip, img, v.gzip);
    write_bytes(lp, lab, v.gzip);
    ASSERT_EQ(slurp(ip)[0] == 0x1f, v.gzip);  // the file really is (or is not) gzip

    const IdxArray a = read_idx(ip);
    EXPECT_EQ(a.type, IdxType::u8);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{60, 4, 4}));
    EXPECT_EQ(a.items(), 60);
    EXPECT_EQ(a.item_size(), 16);
    EXPECT_EQ(a.data, img_payload);

    const auto d = load_idx_pair(ip, lp, 10);
    ASSERT_EQ(d->size(), 60);
    ASSERT_EQ(d->dim(), 16);
    EXPECT_EQ(d->classes(), 10);
    for (size_t i = 0; i < lab_payload.size(); ++i) EXPECT_EQ(d->labels()[i], lab_payload[i]) << "row " << i;
    for (size_t i = 0; i < img_payload.size(); ++i)
      ASSERT_EQ(d->features()[i], static_cast<float>(img_payload[i]) / 255.0f) << "element " << i;
  }
}

TEST(Idx, PixelScalingIsExactlyValueOver255) {
  TempDir dir;
  std::vector<uint8_t> all(256);
  for (int v = 0; v < 256; ++v) all[v] = static_cast<uint8_t>(v);
  write_bytes(dir.file("i"), idx_bytes(0x08, {16, 4, 4}, all));
  write_bytes(dir.file("l"), idx_bytes(0x08, {16}, label_payload(16, 3)));
  const auto d = load_idx_pair(dir.file("i"), dir.file("l"), 3);
  ASSERT_EQ(d->features().size(), 256u);
  for (int v = 0; v < 256; ++v) EXPECT_EQ(d->features()[v], static_cast<float>(v) / 255.0f) << "pixel value " << v;
  EXPECT_EQ(d->features()[0], 0.0f);
  EXPECT_EQ(d->features()[255], 1.0f);
}

TEST(Idx, ValuesOfEveryElementTypeAreReadBigEndian) {
  TempDir dir;
  // i16: -2, 258; i32: -1, 16909060; f32: 1.5, -0.25; f64: 3.0 — written big-endian by hand.
  write_bytes(dir.file("i16"), idx_bytes(0x0B, {2}, {0xFF, 0xFE, 0x01, 0x02}));
  write_bytes(dir.file("i32"), idx_bytes(0x0C, {2}, {0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x02, 0x03, 0x04}));
  write_bytes(dir.file("f32"), idx_bytes(0x0D, {2}, {0x3F, 0xC0, 0, 0, 0xBE, 0x80, 0, 0}));
  write_bytes(dir.file("f64"), idx_bytes(0x0E, {1}, {0x40, 0x08, 0, 0, 0, 0, 0, 0}));
  write_bytes(dir.file("i8"), idx_bytes(0x09, {2}, {0xFF, 0x7F}));
  const IdxArray i16 = read_idx(dir.file("i16")), i32 = read_idx(dir.file("i32"));
  const IdxArray f32 = read_idx(dir.file("f32")), f64 = read_idx(dir.file("f64")), i8 = read_idx(dir.file("i8"));
  EXPECT_EQ(idx_value(i16, 0), -2.0);
  EXPECT_EQ(idx_value(i16, 1), 258.0);
  EXPECT_EQ(idx_value(i32, 0), -1.0);
  EXPECT_EQ(idx_value(i32, 1), 16909060.0);
  EXPECT_EQ(idx_value(f32, 0), 1.5);
  EXPECT_EQ(idx_value(f32, 1), -0.25);
  EXPECT_EQ(idx_value(f64, 0), 3.0);
  EXPECT_EQ(idx_value(i8, 0), -1.0);
  EXPECT_EQ(idx_value(i8, 1), 127.0);
}

TEST(Idx, TruncatedGzipIsRejectedAsTruncated) {
  TempDir dir;
  const std::string full = dir.file("full.gz"), half = dir.file("half.gz");
  write_bytes(full, idx_bytes(0x08, {60, 28, 28}, pixels(60, 28, 28, 2)), true);
  auto bytes = slurp(full);
  ASSERT_GT(bytes.size(), 1000u);
  ASSERT_NO_THROW(read_idx(full));
  bytes.resize(bytes.size() / 2);
  write_bytes(half, bytes);
  EXPECT_TRUE(throws_user_error([&] { read_idx(half); }, {half, "truncated gzip"}));
}

TEST(Idx, CorruptGzipIsRejected) {
  TempDir dir;
  const std::string path = dir.file("bad.gz");
  write_bytes(path, idx_bytes(0x08, {60, 28, 28}, pixels(60, 28, 28, 3)), true);
  auto bytes = slurp(path);
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 16; ++i) bytes[i] ^= 0x5A;
  write_bytes(path, bytes);
  EXPECT_TRUE(throws_user_error([&] { read_idx(path); }, {path, "gzip"}));
}

TEST(Idx, TenByteFileHasAnIncompleteHeader) {
  TempDir dir;
  const std::string path = dir.file("short.idx");
  write_bytes(path, {0, 0, 0x08, 3, 0, 0, 0, 60, 0, 0});
  EXPECT_TRUE(throws_user_error([&] { read_idx(path); }, {path, "header incomplete", "10 bytes"}));
}

// Found by fuzz_idx: 145 x 4291367413 passed the old bound, and the next product overflowed
// int64 (undefined behaviour) before the bound was checked again.
TEST(Idx, DimensionsWhoseProductOverflowsAreRejectedBeforeMultiplying) {
  const auto bytes = idx_bytes(0x08, {145, 0xffc911f5u, 0x7cced458u}, {});
  EXPECT_TRUE(throws_user_error([&] { parse_idx(bytes, "big.idx"); }, {"big.idx", "implausibly large"}));
  // The largest accepted element count still parses up to the payload check.
  const auto edge = idx_bytes(0x08, {1u << 20, 1u << 20}, {});
  EXPECT_TRUE(throws_user_error([&] { parse_idx(edge, "edge.idx"); }, {"edge.idx", "truncated"}));
}

TEST(Idx, DataForOneImageFewerThanTheHeaderPromises) {
  TempDir dir;
  auto payload = pixels(60, 4, 4, 4);
  payload.resize(59 * 16);
  for (bool gz : {false, true}) {
    const std::string path = dir.file(gz ? "short.gz" : "short.idx");
    write_bytes(path, idx_bytes(0x08, {60, 4, 4}, payload), gz);
    // The header is not counted as data (it read "the data has 960 bytes").
    EXPECT_TRUE(throws_user_error([&] { read_idx(path); },
                                  {path, "truncated", "promises 60 items (976 bytes with the 16-byte header)",
                                   "there are 960 bytes, the header and 944 bytes of data: enough for 59 items"}));
  }
}

TEST(Idx, TrailingBytesAreRejected) {
  TempDir dir;
  auto bytes = idx_bytes(0x08, {5, 2, 2}, pixels(5, 2, 2, 5));
  bytes.insert(bytes.end(), {1, 2, 3});
  for (bool gz : {false, true}) {
    const std::string path = dir.file(gz ? "trail.gz" : "trail.idx");
    write_bytes(path, bytes, gz);
    EXPECT_TRUE(throws_user_error([&] { read_idx(path); }, {path, "3 trailing bytes"}));
  }
}

TEST(Idx, WrongElementTypeByteIsRejected) {
  TempDir dir;
  const std::string path = dir.file("type.idx");
  write_bytes(path, idx_bytes(0x07, {4}, {0, 1, 2, 3}));
  EXPECT_TRUE(throws_user_error([&] { read_idx(path); }, {path, "element type", "0x7"}));
}

TEST(Idx, BadMagicAndBadDimensionCountAreRejected) {
  TempDir dir;
  const std::string text = dir.file("text.idx"), dims = dir.file("dims.idx"), zero = dir.file("zero.idx");
  write_bytes(text, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  write_bytes(dims, {0, 0, 0x08, 0});
  write_bytes(zero, idx_bytes(0x08, {0, 4}, {}));
  EXPECT_TRUE(throws_user_error([&] { read_idx(text); }, {text, "not an IDX file"}));
  EXPECT_TRUE(throws_user_error([&] { read_idx(dims); }, {dims, "dimension count 0"}));
  EXPECT_TRUE(throws_user_error([&] { read_idx(zero); }, {zero, "dimension 0 is 0"}));
}

TEST(Idx, EmptyMissingAndDirectoryPathsAreRejected) {
  TempDir dir;
  const std::string empty = dir.file("empty.idx"), missing = dir.file("missing.idx"), sub = dir.file("subdir");
  write_bytes(empty, {});
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  EXPECT_TRUE(throws_user_error([&] { read_idx(empty); }, {empty, "empty file"}));
  EXPECT_TRUE(throws_user_error([&] { read_idx(missing); }, {missing, "cannot open", "No such file"}));
  EXPECT_TRUE(throws_user_error([&] { read_idx(sub); }, {sub, "directory"}));
  // Through load_idx_pair too, for either argument.
  write_bytes(dir.file("l"), idx_bytes(0x08, {3}, {0, 1, 2}));
  EXPECT_TRUE(throws_user_error([&] { load_idx_pair(missing, dir.file("l"), 3); }, {missing}));
  write_bytes(dir.file("i"), idx_bytes(0x08, {3, 2}, {0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(throws_user_error([&] { load_idx_pair(dir.file("i"), sub, 3); }, {sub, "directory"}));
}

TEST(IdxPair, ImageAndLabelCountMismatchNamesBothFilesAndCounts) {
  TempDir dir;
  const std::string ip = dir.file("imgs.idx"), lp = dir.file("labs.idx");
  write_bytes(ip, idx_bytes(0x08, {59, 4, 4}, pixels(59, 4, 4, 6)));
  write_bytes(lp, idx_bytes(0x08, {60}, label_payload(60, 10)));
  EXPECT_TRUE(throws_user_error([&] { load_idx_pair(ip, lp, 10); }, {ip, lp, "59 images", "60 labels"}));
}

TEST(IdxPair, LabelEqualToClassCountNamesTheRow) {
  TempDir dir;
  const std::string ip = dir.file("imgs.idx"), lp = dir.file("labs.idx");
  auto labels = label_payload(20, 10);
  labels[13] = 10;
  write_bytes(ip, idx_bytes(0x08, {20, 2, 2}, pixels(20, 2, 2, 7)));
  write_bytes(lp, idx_bytes(0x08, {20}, labels));
  EXPECT_TRUE(throws_user_error([&] { load_idx_pair(ip, lp, 10); }, {lp, "row 13", "label 10", "[0, 10)"}));
  // The same file is fine with one more class.
  EXPECT_EQ(load_idx_pair(ip, lp, 11)->labels()[13], 10);
}

TEST(IdxPair, NegativeSignedLabelIsRejected) {
  TempDir dir;
  const std::string ip = dir.file("imgs.idx"), lp = dir.file("labs.idx");
  write_bytes(ip, idx_bytes(0x08, {4, 2, 2}, pixels(4, 2, 2, 8)));
  write_bytes(lp, idx_bytes(0x09, {4}, {0, 1, 2, 0xFF}));  // i8: the last label is -1
  EXPECT_TRUE(throws_user_error([&] { load_idx_pair(ip, lp, 10); }, {lp, "row 3", "label -1"}));
}

TEST(IdxPair, SwappedFilesAreRecognised) {
  TempDir dir;
  const std::string ip = dir.file("imgs.idx"), lp = dir.file("labs.idx");
  write_bytes(ip, idx_bytes(0x08, {6, 2, 2}, pixels(6, 2, 2, 9)));
  write_bytes(lp, idx_bytes(0x08, {6}, label_payload(6, 3)));
  EXPECT_TRUE(throws_user_error([&] { load_idx_pair(lp, lp, 3); }, {lp, "at least 2 dimensions", "label file"}));
  EXPECT_TRUE(throws_user_error([&] { load_idx_pair(ip, ip, 3); }, {ip, "1 dimension", "image file"}));
}

// The Debian package dataset-fashion-mnist; reads the gzip headers and first rows with zlib
// directly and compares them with what the library loads.
std::vector<uint8_t> gz_prefix(const std::string& path, size_t n) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return {};
  std::vector<uint8_t> out(n);
  const int got = gzread(f, out.data(), static_cast<unsigned>(n));
  gzclose(f);
  out.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | b[at + 3];
}

TEST(IdxFashionMnist, RealFilesLoad) {
  const std::string dir = kFashionMnistDir;
  const std::string ti = dir + "/train-images-idx3-ubyte.gz", tl = dir + "/train-labels-idx1-ubyte.gz";
  const std::string vi = dir + "/t10k-images-idx3-ubyte.gz", vl = dir + "/t10k-labels-idx1-ubyte.gz";
  struct stat st{};
  for (const auto& p : {ti, tl, vi, vl})
    if (::stat(p.c_str(), &st) != 0) GTEST_SKIP() << p << " is not installed";

  const auto raw_labels = gz_prefix(tl, 8 + 50);
  const auto raw_images = gz_prefix(ti, 16 + 2 * 784);
  ASSERT_EQ(raw_labels.size(), 58u);
  ASSERT_EQ(raw_images.size(), 16u + 2 * 784);
  EXPECT_EQ(be32(raw_labels, 0), 0x00000801u);
  EXPECT_EQ(be32(raw_images, 0), 0x00000803u);

  const auto train = load_idx_pair(ti, tl, 10);
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(train->dim(), 784);
  EXPECT_EQ(static_cast<uint32_t>(train->size()), be32(raw_labels, 4));
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(train->labels()[i], raw_labels[8 + i]) << "row " << i;
  for (size_t i = 0; i < 2 * 784; ++i)
    ASSERT_EQ(train->features()[i], static_cast<float>(raw_images[16 + i]) / 255.0f) << "element " << i;

  const auto test = load_idx_pair(vi, vl, 10);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(test->dim(), 784);
  // Fashion-MNIST is balanced: 6000 training and 1000 test images of each of the 10 classes.
  std::vector<int64_t> train_count(10), test_count(10);
  for (int32_t y : train->labels()) {
    ASSERT_TRUE(y >= 0 && y < 10) << y;
    ++train_count[y];
  }
  for (int32_t y : test->labels()) {
    ASSERT_TRUE(y >= 0 && y < 10) << y;
    ++test_count[y];
  }
  for (int c = 0; c < 10; ++c) {
    EXPECT_EQ(train_count[c], 6000) << "class " << c;
    EXPECT_EQ(test_count[c], 1000) << "class " << c;
  }
  float lo = 1.0f, hi = 0.0f;
  for (float v : train->features()) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
}

}  // namespace
}  // namespace lockstep
