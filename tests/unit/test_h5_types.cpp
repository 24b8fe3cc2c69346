// HDF5 files as other tools write them: attributes and labels of unexpected types are rejected
// in one message naming the file, the dataset and the attribute, with no HDF5 error stack; the
// type is named in words; uint64 labels keep their value; a user block before the superblock
// (h5jam, H5Pset_userblock) is a valid HDF5 file; the locking hint says which case it is.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "lockstep/h5.hpp"
#include "lockstep/h5_dataset.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

using test::TempDir;
using test::throws_user_error;

void put(hid_t file, const char* name, hid_t file_type, hid_t mem_type, std::vector<hsize_t> dims, const void* data) {
  h5::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  h5::Handle ds(H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_TRUE(ds.valid());
  ASSERT_GE(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
}

// An attribute of any type and shape on `obj`.
void put_attr(hid_t obj, const char* name, hid_t type, std::vector<hsize_t> dims, const void* data) {
  h5::Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                                : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  h5::Handle a(H5Acreate2(obj, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_TRUE(a.valid());
  ASSERT_GE(H5Awrite(a.get(), type, data), 0);
}

const std::vector<float> kX{0.5f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // 4 rows of 3
const std::vector<int32_t> kY{0, 1, 2, 3};

// A data file; `edit` gets the file and its /features dataset to add attributes.
template <typename Edit>
std::string data_file(const TempDir& dir, const std::string& name, Edit&& edit, hid_t fcpl = H5P_DEFAULT) {
  const std::string path = dir.file(name);
  h5::Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT));
  EXPECT_TRUE(f.valid());
  put(f.get(), "features", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {4, 3}, kX.data());
  h5::Handle ds(H5Dopen2(f.get(), "features", H5P_DEFAULT));
  edit(f.get(), ds.get());
  return path;
}

std::string with_labels(const TempDir& dir, const std::string& name, hid_t file_type, hid_t mem_type,
                        const void* labels) {
  return data_file(dir, name, [&](hid_t f, hid_t) { put(f, "labels", file_type, mem_type, {4}, labels); });
}

// The message, and nothing from HDF5 on stderr.
::testing::AssertionResult rejected_quietly(const std::string& path, const std::vector<std::string>& parts) {
  ::testing::internal::CaptureStderr();
  auto r = throws_user_error([&] { open_h5_data(path, 10); }, parts);
  const std::string err = ::testing::internal::GetCapturedStderr();
  if (!err.empty()) return ::testing::AssertionFailure() << "stderr: " << err;
  return r;
}

TEST(H5Types, ScaleAttributeOfAnotherTypeNamesFileDatasetAndAttribute) {
  TempDir dir;
  const auto labels = [](hid_t f) { put(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, kY.data()); };
  // A string, as h5py writes d.attrs['scale'] = '0.5' (it was exit 1, "no appropriate function
  // for conversion path", no file name, and 15 lines of HDF5 error stack).
  std::string p = data_file(dir, "str.h5", [&](hid_t f, hid_t ds) {
    labels(f);
    h5::set_attr(ds, "scale", std::string("0.5"));
  });
  EXPECT_TRUE(rejected_quietly(p, {p + ": dataset /features: attribute 'scale' has type string; expected a number"}));
  // An array of two numbers (it was read into one double: a write past it).
  p = data_file(dir, "arr.h5", [&](hid_t f, hid_t ds) {
    labels(f);
    const double two[2] = {0.5, 0.25};
    put_attr(ds, "scale", H5T_NATIVE_DOUBLE, {2}, two);
  });
  EXPECT_TRUE(rejected_quietly(p, {p + ": dataset /features: attribute 'scale' holds 2 values; expected one"}));
  // A compound.
  p = data_file(dir, "cmp.h5", [&](hid_t f, hid_t ds) {
    labels(f);
    h5::Handle t(H5Tcreate(H5T_COMPOUND, 8));
    H5Tinsert(t.get(), "v", 0, H5T_NATIVE_DOUBLE);
    const double v = 0.5;
    put_attr(ds, "scale", t.get(), {}, &v);
  });
  EXPECT_TRUE(rejected_quietly(p, {p, "attribute 'scale' has type compound (record); expected a number"}));
  // An integer is a number: accepted, exactly.
  p = data_file(dir, "int.h5", [&](hid_t f, hid_t ds) {
    labels(f);
    const int32_t two = 2;
    put_attr(ds, "scale", H5T_STD_I32LE, {}, &two);
  });
  const auto d = open_h5_data(p, 10);
  EXPECT_EQ(d->scale(), 2.0);
  float row[3];
  int32_t y = -1;
  const int64_t r = 1;
  d->gather(&r, 1, row, &y);
  EXPECT_EQ(row[0], 6.0f);
  EXPECT_EQ(y, 1);
}

TEST(H5Types, LabelTypesAreNamedInWords) {
  TempDir dir;
  // h5py writes numpy bools as an enum of int8 {FALSE = 0, TRUE = 1}.
  // (Both enums used to read "holds HDF5 type class 8 values".)
  h5::Handle b(H5Tenum_create(H5T_NATIVE_INT8));
  int8_t v = 0;
  H5Tenum_insert(b.get(), "FALSE", &v);
  v = 1;
  H5Tenum_insert(b.get(), "TRUE", &v);
  const int8_t bits[4] = {0, 1, 1, 0};
  std::string p = with_labels(dir, "bool.h5", b.get(), b.get(), bits);
  EXPECT_TRUE(rejected_quietly(p, {p + ": dataset /labels holds bool (an HDF5 enum FALSE/TRUE, as h5py writes numpy "
                                       "bools) values; expected integers"}));
  h5::Handle e(H5Tenum_create(H5T_NATIVE_INT8));
  const char* names[] = {"shirt", "shoe", "bag", "coat", "dress"};
  for (int8_t i = 0; i < 5; ++i) H5Tenum_insert(e.get(), names[i], &i);
  const int8_t cls[4] = {0, 1, 2, 3};
  p = with_labels(dir, "enum.h5", e.get(), e.get(), cls);
  EXPECT_TRUE(rejected_quietly(p, {p + ": dataset /labels holds enum (an HDF5 enumeration of int8: shirt, shoe, bag, "
                                       "coat, ...) values"}));
  p = with_labels(dir, "f.h5", H5T_IEEE_F64LE, H5T_NATIVE_INT32, kY.data());
  EXPECT_TRUE(rejected_quietly(p, {p + ": dataset /labels holds float64 values; expected integers"}));
}

TEST(H5Types, Uint64LabelsKeepTheirValue) {
  TempDir dir;
  const uint64_t big[4] = {0, 1, (uint64_t{1} << 63) + 5, 3};
  std::string p = with_labels(dir, "u64.h5", H5T_STD_U64LE, H5T_NATIVE_UINT64, big);
  // It was clamped to 9223372036854775807 by the conversion to int64.
  EXPECT_TRUE(rejected_quietly(p, {p + ": dataset /labels: row 2: label 9223372036854775813 is outside [0, 10)"}));
  const uint64_t max[4] = {0, 1, UINT64_MAX, 3};
  p = with_labels(dir, "max.h5", H5T_STD_U64BE, H5T_NATIVE_UINT64, max);
  EXPECT_TRUE(rejected_quietly(p, {"row 2: label 18446744073709551615 is outside"}));
  const uint64_t fine[4] = {9, 0, 7, 3};
  p = with_labels(dir, "ok.h5", H5T_STD_U64LE, H5T_NATIVE_UINT64, fine);
  EXPECT_EQ(open_h5_data(p, 10)->labels(), (std::vector<int32_t>{9, 0, 7, 3}));
  const int64_t neg[4] = {0, -9223372036854775807 - 1, 2, 3};
  p = with_labels(dir, "neg.h5", H5T_STD_I64LE, H5T_NATIVE_INT64, neg);
  EXPECT_TRUE(rejected_quietly(p, {"row 1: label -9223372036854775808 is outside"}));
}

TEST(H5Types, UserBlockBeforeTheSuperblockIsAnHdf5File) {
  TempDir dir;
  const auto labels = [](hid_t f, hid_t) { put(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {4}, kY.data()); };
  const std::string plain = data_file(dir, "plain.h5", labels);
  const auto ref = open_h5_data(plain, 10);
  for (hsize_t ub : {512, 1024, 4096, 65536}) {
    SCOPED_TRACE(ub);
    h5::Handle fcpl(H5Pcreate(H5P_FILE_CREATE));
    ASSERT_GE(H5Pset_userblock(fcpl.get(), ub), 0);
    const std::string p = data_file(dir, "ub.h5", labels, fcpl.get());
    EXPECT_TRUE(h5::is_hdf5_file(p));
    const auto d = open_h5_data(p, 10);  // it was "not an HDF5 file (no HDF5 signature at its start)"
    EXPECT_EQ(d->labels(), ref->labels());
    std::vector<float> a(12), b(12);
    std::vector<int32_t> ya(4), yb(4);
    const std::vector<int64_t> rows{3, 0, 2, 1};
    d->gather(rows.data(), 4, a.data(), ya.data());
    ref->gather(rows.data(), 4, b.data(), yb.data());
    EXPECT_EQ(a, b);
    EXPECT_EQ(ya, yb);
  }
  // The signature only counts where the format allows it: 0, 512, 1024, 2048, ...
  const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  for (size_t at : {size_t{2048}, size_t{3000}}) {
    std::vector<char> bytes(4096, 0);
    std::memcpy(bytes.data() + at, sig, 8);
    const std::string p = dir.file("sig" + std::to_string(at));
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_EQ(h5::is_hdf5_file(p), at == 2048) << at;
  }
}

TEST(H5Types, HelpersNameTheObjectAndTheExpectedKind) {
  TempDir dir;
  const std::string p = dir.file("h.h5");
  {
    h5::Handle f = h5::create_file(p);
    h5::Handle g = h5::create_group(f.get(), "optimizer");
    h5::set_attr(g.get(), "lr", 0.5);
    h5::set_attr(g.get(), "name", std::string("adam"));
    h5::write_string(g.get(), "text", "not numbers");
    h5::set_attr(f.get(), "version", int64_t{3});
  }
  h5::Handle f = h5::open_file(p, false);
  h5::Handle g = h5::open_group(f.get(), "optimizer");
  EXPECT_EQ(h5::attr_double(g.get(), "lr"), 0.5);
  EXPECT_EQ(h5::attr_int(f.get(), "version"), 3);
  EXPECT_EQ(h5::attr_double(f.get(), "version"), 3.0);  // an integer is a number
  EXPECT_TRUE(throws_user_error([&] { h5::attr_int(g.get(), "lr"); },
                                {"group /optimizer: attribute 'lr' has type float64; expected an integer"}));
  EXPECT_TRUE(throws_user_error([&] { h5::attr_string(g.get(), "lr"); }, {"expected a string"}));
  EXPECT_TRUE(throws_user_error([&] { h5::attr_double(g.get(), "name"); }, {"'name' has type string"}));
  EXPECT_TRUE(throws_user_error([&] { h5::attr_int(f.get(), "absent"); },
                                {"the root group: missing attribute 'absent'"}));
  EXPECT_TRUE(throws_user_error([&] { h5::read_floats(g.get(), "exp_avg_sq"); },
                                {"missing dataset /optimizer/exp_avg_sq"}));
  EXPECT_TRUE(throws_user_error([&] { h5::read_floats(g.get(), "text"); },
                                {"dataset /optimizer/text holds string values; expected numbers"}));
}

TEST(H5Types, LockingHintTellsAHeldLockFromAFileSystemWithout) {
  const std::string held = h5::locking_hint(
      "unable to lock file, errno = 11, error message = 'Resource temporarily unavailable'");
  EXPECT_NE(held.find("another process holds a lock on it"), std::string::npos) << held;
  EXPECT_NE(held.find("HDF5_USE_FILE_LOCKING=FALSE"), std::string::npos);
  const std::string none = h5::locking_hint("unable to lock file, errno = 38, error message = 'Function not implemented'");
  EXPECT_NE(none.find("this file system does not support HDF5's file locking"), std::string::npos) << none;
  EXPECT_EQ(h5::locking_hint("truncated file: eof = 600"), "");
}

}  // namespace
}  // namespace lockstep
