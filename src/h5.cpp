// HDF5 helpers (see h5.hpp).
#include "lockstep/h5.hpp"

#include <sys/stat.h>

#include <cstring>
#include <fstream>

namespace lockstep::h5 {
namespace {

herr_t collect_innermost(unsigned n, const H5E_error2_t* err, void* out) {
  // The walk goes from the innermost call outwards; keep the first (most specific) message.
  if (n == 0 && err && err->desc) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

hid_t native_of(const float*) { return H5T_NATIVE_FLOAT; }
hid_t native_of(const double*) { return H5T_NATIVE_DOUBLE; }
hid_t native_of(const int64_t*) { return H5T_NATIVE_INT64; }
hid_t native_of(const int32_t*) { return H5T_NATIVE_INT32; }

template <typename T>
void write_typed(hid_t parent, const std::string& name, const T* data, const std::vector<hsize_t>& dims) {
  Handle space(LOCKSTEP_H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                 "HDF5 dataspace for ", name));
  Handle ds(LOCKSTEP_H5_CHECK(H5Dcreate2(parent, name.c_str(), native_of(data), space.get(), H5P_DEFAULT,
                                         H5P_DEFAULT, H5P_DEFAULT),
                              "cannot create HDF5 dataset ", name));
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  if (count > 0)
    LOCKSTEP_H5_CHECK(H5Dwrite(ds.get(), native_of(data), H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                      "cannot write HDF5 dataset ", name);
}

// "/optimizer/exp_avg_sq": name as a path from the file's root, for messages.
std::string path_in_file(hid_t parent, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  const std::string at = object_path(parent);
  return (at == "/" || at.empty() ? "/" : at + "/") + name;
}

template <typename T>
std::vector<T> read_typed(hid_t parent, const std::string& name) {
  LOCKSTEP_REQUIRE(exists(parent, name), "missing dataset ", path_in_file(parent, name));
  Handle ds(LOCKSTEP_H5_CHECK(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "cannot open HDF5 dataset ", name));
  Handle type(LOCKSTEP_H5_CHECK(H5Dget_type(ds.get()), "type of ", name));
  const H5T_class_t cls = H5Tget_class(type.get());
  LOCKSTEP_REQUIRE(cls == H5T_INTEGER || cls == H5T_FLOAT, "dataset ", path_in_file(parent, name), " holds ",
                   type_description(type.get()), " values; expected numbers");
  Handle space(LOCKSTEP_H5_CHECK(H5Dget_space(ds.get()), "dataspace of ", name));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<T> out(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  if (!out.empty())
    LOCKSTEP_H5_CHECK(H5Dread(ds.get(), native_of(out.data()), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
                      "cannot read HDF5 dataset ", name);
  return out;
}

Handle string_type() {
  Handle t(LOCKSTEP_H5_CHECK(H5Tcopy(H5T_C_S1), "string type"));
  LOCKSTEP_H5_CHECK(H5Tset_size(t.get(), H5T_VARIABLE), "string type size");
  LOCKSTEP_H5_CHECK(H5Tset_cset(t.get(), H5T_CSET_UTF8), "string type charset");
  return t;
}

}  // namespace

std::string object_path(hid_t obj) {
  const ssize_t n = H5Iget_name(obj, nullptr, 0);
  if (n <= 0) return "";
  std::string s(static_cast<size_t>(n) + 1, '\0');
  H5Iget_name(obj, s.data(), s.size());
  s.resize(static_cast<size_t>(n));
  return s;
}

std::string type_description(hid_t type) {
  const size_t bytes = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return fmt(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", 8 * bytes);
    case H5T_FLOAT: return fmt("float", 8 * bytes);
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return fmt(8 * bytes, "-bit bitfield");
    case H5T_OPAQUE: return "opaque (raw bytes)";
    case H5T_COMPOUND: return "compound (record)";
    case H5T_REFERENCE: return "object reference";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_ARRAY: return "array";
    case H5T_TIME: return "time";
    case H5T_ENUM: {
      // h5py stores numpy bools as an enum of int8 {FALSE = 0, TRUE = 1}.
      Handle base(H5Tget_super(type));
      std::string members;
      const int n = H5Tget_nmembers(type);
      for (int i = 0; i < n && i < 4; ++i) {
        char* m = H5Tget_member_name(type, static_cast<unsigned>(i));
        members += fmt(i ? ", " : "", m ? m : "?");
        H5free_memory(m);
      }
      if (n == 2 && members == "FALSE, TRUE") return "bool (an HDF5 enum FALSE/TRUE, as h5py writes numpy bools)";
      return fmt("enum (an HDF5 enumeration of ", base.valid() ? type_description(base.get()) : "?", ": ", members,
                 n > 4 ? ", ..." : "", ")");
    }
    default: return fmt("HDF5 type class ", static_cast<int>(H5Tget_class(type)));
  }
}

std::string last_error() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_innermost, &msg);
  if (msg.empty()) return "unknown error";
  // A failed system call reads "file write failed: time = ..., filename = ..., errno = 28,
  // error message = 'No space left on device', buf = ...": keep the what and the why.
  const std::string key = "error message = '";
  const auto at = msg.find(key), colon = msg.find(": time = ");
  if (at != std::string::npos && colon != std::string::npos && colon < at) {
    const auto end = msg.find('\'', at + key.size());
    return msg.substr(0, colon) + ": " + msg.substr(at + key.size(), end - at - key.size());
  }
  return msg;
}

void Handle::reset() noexcept {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

QuietErrors::QuietErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}
QuietErrors::~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

void skip_library_cleanup_at_exit() { H5dont_atexit(); }

bool is_hdf5_file(const std::string& path) {
  static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  // Only regular files: opening a FIFO or a device named in a config would block or read forever.
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::ifstream f(path, std::ios::binary);
  // The superblock starts at 0, or after a user block (h5jam) at 512, 1024, 2048, ...: the HDF5
  // file format specification allows any power of two from 512 on (section II.A).
  const auto size = static_cast<uint64_t>(st.st_size);
  for (uint64_t at = 0; at + 8 <= size; at = at == 0 ? 512 : 2 * at) {
    unsigned char buf[8] = {0};
    f.seekg(static_cast<std::streamoff>(at));
    f.read(reinterpret_cast<char*>(buf), 8);
    if (f.gcount() == 8 && std::memcmp(buf, sig, 8) == 0) return true;
    f.clear();
  }
  return false;
}

Handle create_file(const std::string& path) {
  QuietErrors quiet;
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  LOCKSTEP_REQUIRE(f >= 0, path, ": cannot create HDF5 file (", last_error(), ")");
  return Handle(f);
}

std::string locking_hint(const std::string& hdf5_error) {
  if (hdf5_error.find("unable to lock") == std::string::npos && hdf5_error.find("locking") == std::string::npos)
    return "";
  // errno 11 (EAGAIN): the lock is held. HDF5 takes an exclusive lock for writing and a shared
  // one for reading, so another process has the file open for writing. Other errnos (ENOLCK,
  // EOPNOTSUPP; HDF5 1.10.8 ignores ENOSYS itself): the file system has no locks.
  if (hdf5_error.find("errno = 11,") != std::string::npos)
    return "; another process holds a lock on it (HDF5 locks a file it writes): wait until that process is done, "
           "or, if nothing writes the file, set HDF5_USE_FILE_LOCKING=FALSE";
  return "; this file system does not support HDF5's file locking: set HDF5_USE_FILE_LOCKING=FALSE";
}

Handle open_file(const std::string& path, bool writable) {
  QuietErrors quiet;
  const hid_t f = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    const std::string why = last_error();
    throw UserError(fmt(path, ": cannot open as HDF5 (", why, ")", locking_hint(why)));
  }
  return Handle(f);
}

Handle create_group(hid_t parent, const std::string& name) {
  return Handle(LOCKSTEP_H5_CHECK(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                  "cannot create HDF5 group ", name));
}

Handle open_group(hid_t parent, const std::string& name) {
  LOCKSTEP_REQUIRE(exists(parent, name), "missing group '", name, "'");
  return Handle(LOCKSTEP_H5_CHECK(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), "cannot open HDF5 group ", name));
}

bool exists(hid_t parent, const std::string& path) {
  QuietErrors quiet;
  // Check each component so "a/b" with a missing "a" is false rather than an error.
  size_t pos = 0;
  while (true) {
    const size_t next = path.find('/', pos);
    const std::string prefix = path.substr(0, next);
    if (!prefix.empty() && H5Lexists(parent, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

void write(hid_t parent, const std::string& name, const float* data, const std::vector<hsize_t>& dims) {
  write_typed(parent, name, data, dims);
}
void write(hid_t parent, const std::string& name, const std::vector<float>& v) {
  write_typed(parent, name, v.data(), {v.size()});
}
void write(hid_t parent, const std::string& name, const std::vector<double>& v) {
  write_typed(parent, name, v.data(), {v.size()});
}
void write(hid_t parent, const std::string& name, const std::vector<int64_t>& v) {
  write_typed(parent, name, v.data(), {v.size()});
}
void write(hid_t parent, const std::string& name, const std::vector<int32_t>& v) {
  write_typed(parent, name, v.data(), {v.size()});
}

void write_string(hid_t parent, const std::string& name, const std::string& s) {
  Handle type = string_type();
  Handle space(LOCKSTEP_H5_CHECK(H5Screate(H5S_SCALAR), "scalar dataspace"));
  Handle ds(LOCKSTEP_H5_CHECK(H5Dcreate2(parent, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT,
                                         H5P_DEFAULT),
                              "cannot create HDF5 dataset ", name));
  const char* p = s.c_str();
  LOCKSTEP_H5_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), "cannot write ", name);
}

std::vector<hsize_t> shape(hid_t parent, const std::string& name) {
  LOCKSTEP_REQUIRE(exists(parent, name), "missing dataset '", name, "'");
  Handle ds(LOCKSTEP_H5_CHECK(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "cannot open HDF5 dataset ", name));
  Handle space(LOCKSTEP_H5_CHECK(H5Dget_space(ds.get()), "dataspace of ", name));
  const int rank = LOCKSTEP_H5_CHECK(H5Sget_simple_extent_ndims(space.get()), "rank of ", name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

std::vector<float> read_floats(hid_t parent, const std::string& name) { return read_typed<float>(parent, name); }
std::vector<double> read_doubles(hid_t parent, const std::string& name) { return read_typed<double>(parent, name); }
std::vector<int64_t> read_int64s(hid_t parent, const std::string& name) { return read_typed<int64_t>(parent, name); }

std::string read_string(hid_t parent, const std::string& name) {
  LOCKSTEP_REQUIRE(exists(parent, name), "missing dataset '", name, "'");
  Handle ds(LOCKSTEP_H5_CHECK(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "cannot open HDF5 dataset ", name));
  Handle type = string_type();
  Handle space(LOCKSTEP_H5_CHECK(H5Dget_space(ds.get()), "dataspace of ", name));
  char* p = nullptr;
  LOCKSTEP_H5_CHECK(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), "cannot read ", name);
  std::string s = p ? p : "";
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, &p);
  return s;
}

namespace {
template <typename T>
void set_attr_typed(hid_t obj, const std::string& name, hid_t type, const T* v) {
  Handle space(LOCKSTEP_H5_CHECK(H5Screate(H5S_SCALAR), "scalar dataspace"));
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle a(LOCKSTEP_H5_CHECK(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                             "cannot create attribute ", name));
  LOCKSTEP_H5_CHECK(H5Awrite(a.get(), type, v), "cannot write attribute ", name);
}
// "dataset /features", "group /optimizer", "the root group": the owner of an attribute, for messages.
std::string owner_of(hid_t obj) {
  const std::string path = object_path(obj);
  if (path == "/" || path.empty()) return "the root group";
  return (H5Iget_type(obj) == H5I_DATASET ? "dataset " : "group ") + path;
}

enum class AttrKind { integer, number, string };

// Opens a scalar attribute of the expected kind; UserError naming its owner and itself otherwise
// (a string where a number belongs made HDF5 fail its conversion with an error stack, and an
// array read into one value wrote past it).
Handle open_attr(hid_t obj, const std::string& name, AttrKind kind) {
  LOCKSTEP_REQUIRE(H5Aexists(obj, name.c_str()) > 0, owner_of(obj), ": missing attribute '", name, "'");
  QuietErrors quiet;
  Handle a(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  LOCKSTEP_REQUIRE(a.valid(), owner_of(obj), ": attribute '", name, "' cannot be opened (", last_error(), ")");
  Handle type(H5Aget_type(a.get())), space(H5Aget_space(a.get()));
  LOCKSTEP_REQUIRE(type.valid() && space.valid(), owner_of(obj), ": attribute '", name, "' is unreadable (",
                   last_error(), ")");
  const H5T_class_t cls = H5Tget_class(type.get());
  const bool ok = kind == AttrKind::string    ? cls == H5T_STRING
                  : kind == AttrKind::integer ? cls == H5T_INTEGER
                                              : cls == H5T_INTEGER || cls == H5T_FLOAT;
  const char* expected = kind == AttrKind::string ? "a string" : kind == AttrKind::integer ? "an integer" : "a number";
  LOCKSTEP_REQUIRE(ok, owner_of(obj), ": attribute '", name, "' has type ", type_description(type.get()), "; expected ",
                   expected);
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  LOCKSTEP_REQUIRE(points == 1, owner_of(obj), ": attribute '", name, "' holds ", points, " values; expected one (",
                   expected, ")");
  return a;
}
}  // namespace

void set_attr(hid_t obj, const std::string& name, int64_t v) { set_attr_typed(obj, name, H5T_NATIVE_INT64, &v); }
void set_attr(hid_t obj, const std::string& name, double v) { set_attr_typed(obj, name, H5T_NATIVE_DOUBLE, &v); }
void set_attr(hid_t obj, const std::string& name, const std::string& v) {
  Handle type = string_type();
  const char* p = v.c_str();
  set_attr_typed(obj, name, type.get(), &p);
}

int64_t attr_int(hid_t obj, const std::string& name) {
  Handle a = open_attr(obj, name, AttrKind::integer);
  int64_t v = 0;
  LOCKSTEP_H5_CHECK(H5Aread(a.get(), H5T_NATIVE_INT64, &v), "cannot read attribute ", name);
  return v;
}
double attr_double(hid_t obj, const std::string& name) {
  Handle a = open_attr(obj, name, AttrKind::number);
  double v = 0;
  LOCKSTEP_H5_CHECK(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), "cannot read attribute ", name);
  return v;
}
std::string attr_string(hid_t obj, const std::string& name) {
  Handle a = open_attr(obj, name, AttrKind::string);
  Handle stored(LOCKSTEP_H5_CHECK(H5Aget_type(a.get()), "type of attribute ", name));
  if (H5Tis_variable_str(stored.get()) <= 0) {  // fixed length (numpy's bytes_, h5import): NUL-padded
    Handle type(LOCKSTEP_H5_CHECK(H5Tcopy(stored.get()), "string type"));
    std::string s(H5Tget_size(type.get()), '\0');
    LOCKSTEP_H5_CHECK(H5Aread(a.get(), type.get(), s.data()), "cannot read attribute ", name);
    s.resize(std::strlen(s.c_str()));
    return s;
  }
  Handle type = string_type();
  char* p = nullptr;
  LOCKSTEP_H5_CHECK(H5Aread(a.get(), type.get(), &p), "cannot read attribute ", name);
  std::string s = p ? p : "";
  H5free_memory(p);
  return s;
}
bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

}  // namespace lockstep::h5
