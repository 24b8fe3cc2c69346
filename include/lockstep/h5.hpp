// A thin layer over the HDF5 C API: owning handles that close themselves, a check macro that
// turns a negative return into an exception carrying HDF5's own error text, and typed helpers
// for the datasets and attributes lockstep reads and writes. HDF5's automatic error printing is
// switched off per call site so that only lockstep's message reaches the user.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/check.hpp"

namespace lockstep::h5 {

// The innermost HDF5 error message of the current error stack ("" when none).
std::string last_error();

// An object's path in its file ("/optimizer"; "/" for the file itself), "" when it has none.
std::string object_path(hid_t obj);

// A datatype in words, for messages: "int32", "float64", "string", "bool (an HDF5 enum ...)",
// "enum (an HDF5 enumeration of int8: A, B, C)", "compound (record)", ...
std::string type_description(hid_t type);

}  // namespace lockstep::h5

#define LOCKSTEP_H5_CHECK(expr, ...)                                                             \
  ([&]() {                                                                                       \
    auto lockstep_h5_rc_ = (expr);                                                               \
    if (lockstep_h5_rc_ < 0)                                                                     \
      throw ::lockstep::Error(::lockstep::fmt(__VA_ARGS__, " (HDF5: ", ::lockstep::h5::last_error(), ")")); \
    return lockstep_h5_rc_;                                                                      \
  }())

namespace lockstep::h5 {

// Owner of one HDF5 identifier; closes it with the right H5?close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() noexcept;
  // Gives up ownership (the caller closes it and checks the status).
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Silences HDF5's error printing for this thread while alive (restores it afterwards).
class QuietErrors {
 public:
  QuietErrors();
  ~QuietErrors();
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// Tells libhdf5 not to run its cleanup at process exit (H5dont_atexit); call before any other
// HDF5 function. In 1.10 that cleanup crashes, or loops printing "infinite loop closing library",
// on a file whose close failed (a write that ran out of disk space or hit the file size limit);
// otherwise it has nothing to do, since every handle is closed by its owner.
void skip_library_cleanup_at_exit();

// True when the file holds the HDF5 signature where the format puts it: at offset 0, or after
// a user block (h5jam) at 512, 1024, 2048, ... (any power of two from 512).
bool is_hdf5_file(const std::string& path);

// When an HDF5 error is a file-locking failure, a hint that says why (the lock is held by a
// writer, or the file system has no locks) and names HDF5_USE_FILE_LOCKING=FALSE; else "".
std::string locking_hint(const std::string& hdf5_error);

Handle create_file(const std::string& path);                 // truncates
Handle open_file(const std::string& path, bool writable);    // UserError naming the file on failure
Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);    // UserError naming the group when missing
bool exists(hid_t parent, const std::string& path);

// Datasets of fixed type and shape, written whole.
void write(hid_t parent, const std::string& name, const float* data, const std::vector<hsize_t>& dims);
void write(hid_t parent, const std::string& name, const std::vector<float>& v);
void write(hid_t parent, const std::string& name, const std::vector<double>& v);
void write(hid_t parent, const std::string& name, const std::vector<int64_t>& v);
void write(hid_t parent, const std::string& name, const std::vector<int32_t>& v);
void write_string(hid_t parent, const std::string& name, const std::string& s);

// Shape of a dataset, and whole-dataset reads with type conversion by HDF5.
std::vector<hsize_t> shape(hid_t parent, const std::string& name);
std::vector<float> read_floats(hid_t parent, const std::string& name);
std::vector<double> read_doubles(hid_t parent, const std::string& name);
std::vector<int64_t> read_int64s(hid_t parent, const std::string& name);
std::string read_string(hid_t parent, const std::string& name);

// Scalar attributes on an object. The readers throw UserError naming the object and the
// attribute when it is missing, of another kind (a string for a number, a float for an integer)
// or not a single value.
void set_attr(hid_t obj, const std::string& name, int64_t v);
void set_attr(hid_t obj, const std::string& name, double v);
void set_attr(hid_t obj, const std::string& name, const std::string& v);
int64_t attr_int(hid_t obj, const std::string& name);
double attr_double(hid_t obj, const std::string& name);
std::string attr_string(hid_t obj, const std::string& name);
bool has_attr(hid_t obj, const std::string& name);

}  // namespace lockstep::h5
