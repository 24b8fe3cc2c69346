// make_h5_case KIND OUT: writes an HDF5 data file (/features float32 (64, 16) of 0.25, /labels of
// i % 4) with one flaw of a kind the HDF5 command-line tools cannot write, for the shell tests
// (tests/robustness/test_bad_input_matrix.sh):
//   scale-string   /features has a string attribute 'scale' ("0.5"), as h5py writes attrs['scale'] = '0.5'
//   labels-bool    /labels is an enum FALSE/TRUE of int8, as h5py writes numpy bools
//   labels-enum    /labels is an enum of int8 with named classes
// Uses the HDF5 C API only (not lockstep), so that the files are what another tool would write.
#include <hdf5.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr hsize_t kRows = 64, kDim = 16;

bool write(hid_t file, const char* name, hid_t type, int rank, const hsize_t* dims, const void* data) {
  const hid_t space = H5Screate_simple(rank, dims, nullptr);
  const hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const bool ok = ds >= 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_h5_case scale-string|labels-bool|labels-enum OUT\n");
    return 2;
  }
  const std::string kind = argv[1];
  if (kind != "scale-string" && kind != "labels-bool" && kind != "labels-enum") {
    std::fprintf(stderr, "make_h5_case: unknown kind %s\n", argv[1]);
    return 2;
  }
  const hid_t file = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return 1;
  const std::vector<float> x(kRows * kDim, 0.25f);
  const hsize_t fdims[2] = {kRows, kDim}, ldims[1] = {kRows};
  bool ok = write(file, "features", H5T_NATIVE_FLOAT, 2, fdims, x.data());
  if (kind == "scale-string") {
    const hid_t ds = H5Dopen2(file, "features", H5P_DEFAULT);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(ds, "scale", type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char* text = "0.5";
    ok = ok && a >= 0 && H5Awrite(a, type, &text) >= 0;
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(ds);
    std::vector<int32_t> y(kRows);
    for (hsize_t i = 0; i < kRows; ++i) y[i] = static_cast<int32_t>(i % 4);
    ok = ok && write(file, "labels", H5T_NATIVE_INT32, 1, ldims, y.data());
  } else {
    const hid_t type = H5Tenum_create(H5T_NATIVE_INT8);
    const char* bools[] = {"FALSE", "TRUE"};
    const char* classes[] = {"shirt", "shoe", "bag", "coat"};
    const int n = kind == "labels-bool" ? 2 : 4;
    for (int8_t i = 0; i < n; ++i) H5Tenum_insert(type, kind == "labels-bool" ? bools[i] : classes[i], &i);
    std::vector<int8_t> y(kRows);
    for (hsize_t i = 0; i < kRows; ++i) y[i] = static_cast<int8_t>(i % static_cast<hsize_t>(n));
    ok = ok && write(file, "labels", type, 1, ldims, y.data());
    H5Tclose(type);
  }
  return H5Fclose(file) >= 0 && ok ? 0 : 1;
}
