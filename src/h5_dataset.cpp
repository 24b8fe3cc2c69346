// Reading HDF5 data files (see h5_dataset.hpp): H5Data validates a file at open and reads the
// rows each gather asks for. The measurements behind the read paths (direct preads at HDF5's
// chunk offsets, else one H5Dread per run of rows) are in docs/data.md. Writing: h5_data_writer.cpp.
#include "lockstep/h5_dataset.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <numeric>

#include "lockstep/sharder.hpp"

namespace lockstep {
namespace {

constexpr const char* kFeatures = "/features";
constexpr const char* kLabels = "/labels";
constexpr size_t kScanBlockBytes = size_t{4} << 20;  // streaming passes read about this much at once
constexpr int64_t kLabelBlock = 1 << 16;             // labels streamed this many at a time

// Opens a dataset that must exist and be a dataset, naming the file in the message otherwise.
h5::Handle open_dataset(hid_t file, const std::string& path, const char* name, hid_t dapl = H5P_DEFAULT) {
  LOCKSTEP_REQUIRE(h5::exists(file, name), path, ": dataset ", name, " is missing (a lockstep data file holds ",
                   kFeatures, " (rows, features) and ", kLabels, " (rows); `lockstep convert` writes one)");
  h5::QuietErrors quiet;
  const hid_t ds = H5Dopen2(file, name, dapl);
  LOCKSTEP_REQUIRE(ds >= 0, path, ": ", name, " is not a dataset (", h5::last_error(), ")");
  return h5::Handle(ds);
}

std::vector<hsize_t> dims_of(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> d(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, d.data(), nullptr);
  return d;
}

// Selects rows [first, first + count) of a (rows, dim) dataspace.
void select_rows(hid_t space, int64_t first, int64_t count, int64_t dim, H5S_seloper_t op = H5S_SELECT_SET) {
  const hsize_t start[2] = {static_cast<hsize_t>(first), 0};
  const hsize_t cnt[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(dim)};
  LOCKSTEP_H5_CHECK(H5Sselect_hyperslab(space, op, start, nullptr, cnt, nullptr), "row selection");
}

// pread until `bytes` arrived: the direct read path's only system call.
void read_exact(int fd, void* dst, size_t bytes, int64_t offset, const std::string& path) {
  auto* p = static_cast<unsigned char*>(dst);
  while (bytes > 0) {
    const ssize_t got = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    LOCKSTEP_CHECK(got > 0, path, ": reading ", bytes, " bytes at offset ", offset, " failed (",
                   got < 0 ? std::strerror(errno) : "end of file", ")");
    p += got;
    bytes -= static_cast<size_t>(got);
    offset += got;
  }
}

// A contiguous dataset whose data would end past the end of the file is damaged (truncated, or
// a damaged layout message). HDF5 1.10 reads such data inconsistently: a large read through its
// sieve buffer succeeds, a one-row read fails with "addr overflow" (found by fuzz_h5_data: the
// scan passed and the first gather failed, in training). Checked at open instead.
void check_within_file(hid_t file, hid_t ds, const std::string& path, const char* name) {
  h5::Handle dcpl(H5Dget_create_plist(ds));
  if (!dcpl.valid() || H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS) return;
  const haddr_t offset = H5Dget_offset(ds);
  if (offset == HADDR_UNDEF) return;  // never written: HDF5 returns the fill value
  // The end of the file as HDF5 has allocated it (its reads stop there), in the same address
  // space as the dataset's offset.
  haddr_t end = 0;
  LOCKSTEP_H5_CHECK(H5Fget_eoa(file, &end), path, ": end of file");
  const hsize_t bytes = H5Dget_storage_size(ds);
  LOCKSTEP_REQUIRE(offset <= end && bytes <= end - offset, path, ": dataset ", name, ": its ", bytes,
                   " bytes at offset ", offset, " lie beyond the end of the file (", end,
                   " bytes): truncated or damaged");
}

}  // namespace

// ---- H5Data -----------------------------------------------------------------------------------

H5Data::H5Data(std::string path, int classes) : path_(std::move(path)), classes_(classes) {
  struct stat st{};
  LOCKSTEP_REQUIRE(::stat(path_.c_str(), &st) == 0, path_, ": cannot open (", std::strerror(errno), ")");
  LOCKSTEP_REQUIRE(S_ISREG(st.st_mode), path_, ": not a regular file");
  LOCKSTEP_REQUIRE(h5::is_hdf5_file(path_), path_,
                   ": not an HDF5 file (no HDF5 signature at its start, nor after a user block at 512, 1024, ...)");
  file_ = h5::open_file(path_, /*writable=*/false);  // read-only: many ranks share the file
  as_bad_input([&] {
    validate_features();
    read_labels();
  });
}

void H5Data::as_bad_input(const std::function<void()>& fn) const {
  // Every HDF5 call here reads the file's own structures: when one fails on a file that opened,
  // the file is damaged (found by fuzz_h5_data: a corrupt compressed chunk of /labels). That is
  // bad input (exit code 2, one message), not an internal error, and HDF5 prints nothing itself.
  h5::QuietErrors quiet;
  try {
    fn();
  } catch (const UserError&) {
    throw;
  } catch (const Error& e) {
    std::string why = e.what();
    if (why.rfind(path_ + ": ", 0) == 0) why = why.substr(path_.size() + 2);
    throw UserError(fmt(path_, ": unreadable, probably damaged or truncated (", why, ")"));
  }
}

H5Data::~H5Data() {
  if (fd_ >= 0) ::close(fd_);
}

void H5Data::set_read_mode(ReadMode m) {
  LOCKSTEP_CHECK(m != ReadMode::direct || fd_ >= 0, path_, ": direct reads do not apply to this file's layout");
  mode_ = m;
}

void H5Data::setup_direct(hid_t dcpl) {
  // Only where the stored bytes are the values gather wants: no filter, no type conversion, no
  // user block in front of HDF5's addresses, and chunks (if any) that hold whole rows.
  if (H5Pget_nfilters(dcpl) != 0 || stored_ == Stored::f64 || std::endian::native != std::endian::little) return;
  h5::QuietErrors quiet;
  h5::Handle type(H5Dget_type(features_.get()));
  if (H5Tequal(type.get(), stored_ == Stored::f32 ? H5T_IEEE_F32LE : H5T_STD_U8LE) <= 0) return;
  h5::Handle fcpl(H5Fget_create_plist(file_.get()));
  hsize_t userblock = 1;
  if (H5Pget_userblock(fcpl.get(), &userblock) < 0 || userblock != 0) return;
  // Offsets beyond 2^62 (a damaged file) or over 2^22 chunks to map: keep HDF5 reads.
  constexpr haddr_t kMaxOffset = haddr_t{1} << 62;
  constexpr int64_t kMaxChunks = int64_t{1} << 22;
  std::vector<int64_t> offsets;
  if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS) {
    const haddr_t a = H5Dget_offset(features_.get());
    if (a == HADDR_UNDEF || a > kMaxOffset) return;
    offsets.push_back(static_cast<int64_t>(a));
    rows_per_block_ = n_;
  } else if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t chunk[2] = {0, 0};
    if (H5Pget_chunk(dcpl, 2, chunk) != 2 || static_cast<int64_t>(chunk[1]) != dim_ || chunk[0] == 0) return;
    if ((n_ - 1) / static_cast<int64_t>(chunk[0]) + 1 > kMaxChunks) return;
    rows_per_block_ = static_cast<int64_t>(chunk[0]);
    for (int64_t first = 0; first < n_; first += rows_per_block_) {
      const hsize_t at[2] = {static_cast<hsize_t>(first), 0};
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t bytes = 0;
      if (H5Dget_chunk_info_by_coord(features_.get(), at, &mask, &addr, &bytes) < 0 || addr == HADDR_UNDEF ||
          addr > kMaxOffset)
        return;
      offsets.push_back(static_cast<int64_t>(addr));  // unwritten chunks (fill values) keep HDF5 reads
    }
  } else {
    return;
  }
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  // Trust, but verify: the first, middle and last rows must read the same through HDF5. The
  // width is not checked against the model yet, so only the first (at most 4096) values of each
  // row are compared: the buffers stay small whatever width the file declares.
  const size_t value_bytes = stored_ == Stored::u8 ? 1 : 4;
  const int64_t row_bytes = dim_ * static_cast<int64_t>(value_bytes);
  const int64_t probe = std::min<int64_t>(dim_, 4096);
  const auto probe_bytes = static_cast<size_t>(probe) * value_bytes;
  std::vector<unsigned char> via_h5(probe_bytes), via_fd(probe_bytes);
  h5::Handle space(H5Dget_space(features_.get()));
  const hsize_t mdims[2] = {1, static_cast<hsize_t>(probe)};
  h5::Handle mem(H5Screate_simple(2, mdims, nullptr));
  for (int64_t r : {int64_t{0}, n_ / 2, n_ - 1}) {
    const hsize_t start[2] = {static_cast<hsize_t>(r), 0}, count[2] = {1, static_cast<hsize_t>(probe)};
    const hid_t mt = stored_ == Stored::u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
    const int64_t b = r / rows_per_block_;
    const ssize_t got = ::pread(fd, via_fd.data(), probe_bytes,
                                static_cast<off_t>(offsets[static_cast<size_t>(b)] + (r - b * rows_per_block_) * row_bytes));
    if (H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0 ||
        H5Dread(features_.get(), mt, mem.get(), space.get(), H5P_DEFAULT, via_h5.data()) < 0 ||
        got != static_cast<ssize_t>(probe_bytes) || via_h5 != via_fd) {
      ::close(fd);
      return;
    }
  }
  fd_ = fd;
  chunk_offset_ = std::move(offsets);
  mode_ = ReadMode::direct;
}

void H5Data::validate_features() {
  // Uncompressed chunks bypass HDF5's chunk cache when it is 0 bytes: a random row then costs one
  // read of that row, not of its whole (~1 MiB) chunk. Compressed chunks must be inflated whole;
  // a small cache keeps the last few for neighbouring rows (memory stays bounded either way).
  h5::Handle probe = open_dataset(file_.get(), path_, kFeatures);
  h5::Handle dcpl(LOCKSTEP_H5_CHECK(H5Dget_create_plist(probe.get()), path_, ": ", kFeatures, " properties"));
  const bool filtered = H5Pget_nfilters(dcpl.get()) > 0;
  h5::Handle dapl(LOCKSTEP_H5_CHECK(H5Pcreate(H5P_DATASET_ACCESS), "dataset access list"));
  LOCKSTEP_H5_CHECK(H5Pset_chunk_cache(dapl.get(), 521, filtered ? size_t{8} << 20 : 0, 0.75), "chunk cache");
  probe.reset();
  features_ = open_dataset(file_.get(), path_, kFeatures, dapl.get());
  check_within_file(file_.get(), features_.get(), path_, kFeatures);

  file_space_ = h5::Handle(LOCKSTEP_H5_CHECK(H5Dget_space(features_.get()), path_, ": ", kFeatures, " dataspace"));
  const auto d = dims_of(file_space_.get());
  LOCKSTEP_REQUIRE(d.size() == 2, path_, ": dataset ", kFeatures, " has ", d.size(),
                   " dimensions; expected 2 (rows, features)");
  LOCKSTEP_REQUIRE(d[0] > 0 && d[1] > 0, path_, ": dataset ", kFeatures, " is empty (", d[0], " x ", d[1], ")");
  // The bound of the IDX reader: row and byte offsets (rows x features x 8) then fit in int64.
  // Found by fuzz_h5_data: a declared width of 2^62 made the row buffers below overflow.
  constexpr hsize_t kMaxValues = hsize_t{1} << 40;
  LOCKSTEP_REQUIRE(d[1] <= kMaxValues / d[0], path_, ": dataset ", kFeatures, " declares ", d[0], " x ", d[1],
                   " values, implausibly many (more than 2^40)");
  n_ = static_cast<int64_t>(d[0]);
  dim_ = static_cast<int64_t>(d[1]);

  h5::Handle type(LOCKSTEP_H5_CHECK(H5Dget_type(features_.get()), path_, ": ", kFeatures, " type"));
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t bytes = H5Tget_size(type.get());
  if (cls == H5T_FLOAT && bytes == 4) stored_ = Stored::f32;
  else if (cls == H5T_FLOAT && bytes == 8) stored_ = Stored::f64;
  else if (cls == H5T_INTEGER && bytes == 1 && H5Tget_sign(type.get()) == H5T_SGN_NONE) stored_ = Stored::u8;
  else
    throw UserError(fmt(path_, ": dataset ", kFeatures, " holds ", h5::type_description(type.get()),
                        " values; expected float32, float64 or uint8"));

  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
    hsize_t chunk[2] = {0, 0};
    if (H5Pget_chunk(dcpl.get(), 2, chunk) == 2) chunk_rows_ = static_cast<int64_t>(chunk[0]);
  }
  // uint8 features are stored bytes: `scale` maps them to values (1/255 when absent, as for IDX).
  if (h5::has_attr(features_.get(), "scale")) {
    try {
      scale_ = h5::attr_double(features_.get(), "scale");
    } catch (const UserError& e) {
      throw UserError(fmt(path_, ": ", e.what()));
    }
  } else if (stored_ == Stored::u8) {
    scale_ = 1.0 / 255.0;
  }
  LOCKSTEP_REQUIRE(std::isfinite(scale_) && scale_ > 0, path_, ": dataset ", kFeatures, ": attribute 'scale' is ",
                   scale_, "; expected a finite value > 0");
  set_normalization(0.0, 1.0);
  setup_direct(dcpl.get());
}

void H5Data::read_labels() {
  h5::Handle ds = open_dataset(file_.get(), path_, kLabels);
  check_within_file(file_.get(), ds.get(), path_, kLabels);
  h5::Handle space(LOCKSTEP_H5_CHECK(H5Dget_space(ds.get()), path_, ": ", kLabels, " dataspace"));
  h5::Handle type(LOCKSTEP_H5_CHECK(H5Dget_type(ds.get()), path_, ": ", kLabels, " type"));
  const auto d = dims_of(space.get());
  LOCKSTEP_REQUIRE(d.size() == 1, path_, ": dataset ", kLabels, " has ", d.size(), " dimensions; expected 1 (rows)");
  // Integers of at most 64 bits: a damaged type message can declare integers of gigabytes each,
  // for which HDF5 would allocate its conversion buffer (found by fuzz_h5_data: malloc(2.9 GB)).
  LOCKSTEP_REQUIRE(H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) <= 8, path_, ": dataset ",
                   kLabels, " holds ", h5::type_description(type.get()), " values; expected integers of at most 64 bits ",
                   "(e.g. numpy's labels.astype('int64'))");
  LOCKSTEP_REQUIRE(static_cast<int64_t>(d[0]) == n_, path_, ": dataset ", kLabels, " has ", d[0],
                   " rows but ", kFeatures, " has ", n_, " (one label per feature row)");
  // Streamed in blocks as 64-bit integers of the file's signedness, so that neither a wide type
  // nor a negative value (nor a uint64 beyond int64's range) is clipped before the range check;
  // kept as int32 (4 bytes a row: the only per-row state of H5Data).
  const bool is_unsigned = H5Tget_sign(type.get()) == H5T_SGN_NONE;
  labels_.resize(static_cast<size_t>(n_));
  std::vector<uint64_t> block(static_cast<size_t>(std::min<int64_t>(n_, kLabelBlock)));
  for (int64_t first = 0; first < n_; first += kLabelBlock) {
    const int64_t count = std::min(kLabelBlock, n_ - first);
    const hsize_t start = static_cast<hsize_t>(first), cnt = static_cast<hsize_t>(count);
    LOCKSTEP_H5_CHECK(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &cnt, nullptr), "labels");
    h5::Handle mem(LOCKSTEP_H5_CHECK(H5Screate_simple(1, &cnt, nullptr), "labels memory space"));
    LOCKSTEP_H5_CHECK(H5Dread(ds.get(), is_unsigned ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64, mem.get(), space.get(),
                              H5P_DEFAULT, block.data()),
                      path_, ": cannot read ", kLabels);
    for (int64_t i = 0; i < count; ++i) {
      const uint64_t bits = block[static_cast<size_t>(i)];
      const bool in_range = is_unsigned ? bits < static_cast<uint64_t>(classes_)
                                        : static_cast<int64_t>(bits) >= 0 && static_cast<int64_t>(bits) < classes_;
      if (!in_range) {
        const std::string v = is_unsigned ? fmt(bits) : fmt(static_cast<int64_t>(bits));
        throw UserError(fmt(path_, ": dataset ", kLabels, ": row ", first + i, ": label ", v, " is outside [0, ",
                            classes_, ") (data.classes = ", classes_, ")"));
      }
      labels_[static_cast<size_t>(first + i)] = static_cast<int32_t>(bits);
    }
  }
}

std::string H5Data::feature_type() const {
  return stored_ == Stored::f32 ? "float32" : stored_ == Stored::f64 ? "float64" : "uint8";
}

float H5Data::convert(float v) const {
  // The same two roundings as the in-memory path: scaled value to float, then standardised.
  if (scale_ != 1.0) v = static_cast<float>(static_cast<double>(v) * scale_);
  return static_cast<float>((static_cast<double>(v) - mean_) / stddev_);
}

void H5Data::set_normalization(double mean, double stddev) {
  mean_ = mean;
  stddev_ = stddev;
  transform_ = scale_ != 1.0 || mean != 0.0 || stddev != 1.0;
  // float(double(b) * (1/255)) equals float(b) / 255.0f for every byte (the IDX path's value):
  // the double product is within 1e-16 of b/255, far closer than b/255 ever lies to a float
  // rounding midpoint. The unit tests check all 256 values.
  for (int b = 0; b < 256; ++b) lut_[b] = convert(static_cast<float>(b));
}

FeatureMoments H5Data::scan_features(const std::vector<int64_t>* moments_rows, int part, int parts) const {
  FeatureMoments m;
  as_bad_input([&] { m = scan_rows(moments_rows, part, parts); });
  return m;
}

FeatureMoments H5Data::scan_rows(const std::vector<int64_t>* moments_rows, int part, int parts) const {
  FeatureMoments m;
  // Bytes cannot be NaN, but uint8 files are read too: every chunk must decode here, before
  // training, not at its first gather (found by fuzz_h5_data: a damaged compressed chunk).
  // Shares and reads are made of whole chunks, so a compressed chunk is inflated once, by one rank.
  const int64_t unit = chunk_rows_ > 0 ? chunk_rows_ : 1;
  const Range units = moments_rows ? Range{0, (n_ + unit - 1) / unit} : split_evenly((n_ + unit - 1) / unit, part, parts);
  const int64_t row_begin = units.begin * unit, row_end = std::min(units.end * unit, n_);
  const int64_t row_bytes = dim_ * (stored_ == Stored::u8 ? 1 : 4);
  int64_t block = std::max<int64_t>(1, static_cast<int64_t>(kScanBlockBytes) / row_bytes);
  block = std::max<int64_t>(1, block / unit) * unit;
  block = std::min(block, std::max<int64_t>(row_end - row_begin, 1));
  std::vector<unsigned char> buf(static_cast<size_t>(block * row_bytes));
  h5::Handle space(LOCKSTEP_H5_CHECK(H5Dget_space(features_.get()), "features dataspace"));
  const hid_t mem_type = stored_ == Stored::u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  size_t next = 0;  // index into moments_rows of the next row to sum
  auto non_finite = [&](int64_t row, int64_t col, float stored) {
    const char* what = std::isnan(stored) ? "NaN"
                       : !std::isfinite(stored) ? (stored_ == Stored::f64 ? "infinite value (or beyond float32 range)"
                                                                         : "infinite value")
                                                : "value that overflows when multiplied by the scale attribute";
    throw UserError(fmt(path_, ": dataset ", kFeatures, ": row ", row, ", column ", col, ": ", what,
                        " (features must be finite)"));
  };
  for (int64_t first = row_begin; first < row_end; first += block) {
    const int64_t count = std::min(block, row_end - first);
    select_rows(space.get(), first, count, dim_);
    const hsize_t mdims[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(dim_)};
    h5::Handle mem(LOCKSTEP_H5_CHECK(H5Screate_simple(2, mdims, nullptr), "scan memory space"));
    LOCKSTEP_H5_CHECK(H5Dread(features_.get(), mem_type, mem.get(), space.get(), H5P_DEFAULT, buf.data()), path_,
                      ": cannot read ", kFeatures, " rows ", first, "..", first + count - 1);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t row = first + i;
      const bool sum = moments_rows && next < moments_rows->size() && (*moments_rows)[next] == row;
      if (sum) ++next;
      if (stored_ == Stored::u8) {
        const uint8_t* r = buf.data() + i * dim_;
        for (int64_t j = 0; j < dim_ && sum; ++j) {
          const double v = static_cast<float>(static_cast<double>(r[j]) * scale_);
          m.sum += v;
          m.sum_sq += v * v;
        }
      } else {
        const float* r = reinterpret_cast<const float*>(buf.data()) + i * dim_;
        for (int64_t j = 0; j < dim_; ++j) {
          float v = r[j];
          if (scale_ != 1.0) v = static_cast<float>(static_cast<double>(v) * scale_);
          if (!std::isfinite(v)) non_finite(row, j, r[j]);
          if (!sum) continue;
          m.sum += v;
          m.sum_sq += static_cast<double>(v) * v;
        }
      }
      if (sum) m.values += dim_;
    }
  }
  return m;
}

void H5Data::reserve(int64_t max_rows) const {
  if (max_rows <= reserved_) return;
  const auto rows = static_cast<size_t>(max_rows);
  order_.resize(rows);
  sorted_.resize(rows);
  buf_.resize(rows * static_cast<size_t>(dim_) * (stored_ == Stored::u8 ? 1 : 4));
  const hsize_t mdims[2] = {static_cast<hsize_t>(max_rows), static_cast<hsize_t>(dim_)};
  // mem_space_ is logically scratch too: it is replaced only here, while reserving.
  const_cast<h5::Handle&>(mem_space_) =
      h5::Handle(LOCKSTEP_H5_CHECK(H5Screate_simple(2, mdims, nullptr), "gather memory space"));
  reserved_ = max_rows;
}

void H5Data::read_rows(int64_t distinct) const {
  const hid_t mem_type = stored_ == Stored::u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  const int64_t* rows = sorted_.data();
  const hid_t fspace = file_space_.get(), mspace = mem_space_.get();
  if (mode_ == ReadMode::union_selection) {
    // One hyperslab per run of consecutive rows, OR-ed into one selection, one H5Dread.
    for (int64_t i = 0, first = 1; i < distinct; first = 0) {
      int64_t j = i + 1;
      while (j < distinct && rows[j] == rows[j - 1] + 1) ++j;
      select_rows(fspace, rows[i], j - i, dim_, first ? H5S_SELECT_SET : H5S_SELECT_OR);
      i = j;
    }
    select_rows(mspace, 0, distinct, dim_);
    LOCKSTEP_H5_CHECK(H5Dread(features_.get(), mem_type, mspace, fspace, H5P_DEFAULT, buf_.data()), path_,
                      ": cannot read ", distinct, " rows of ", kFeatures);
    return;
  }
  // One H5Dread per run: each selection is a single block, which HDF5 maps to its chunk directly,
  // where a union spanning the file makes it intersect the selection with every chunk in between.
  for (int64_t i = 0; i < distinct;) {
    int64_t j = i + 1;
    while (j < distinct && rows[j] == rows[j - 1] + 1) ++j;
    select_rows(fspace, rows[i], j - i, dim_);
    select_rows(mspace, i, j - i, dim_);
    LOCKSTEP_H5_CHECK(H5Dread(features_.get(), mem_type, mspace, fspace, H5P_DEFAULT, buf_.data()), path_,
                      ": cannot read rows ", rows[i], "..", rows[j - 1], " of ", kFeatures);
    i = j;
  }
}

void H5Data::gather_direct(const int64_t* rows, int64_t n, float* X, int32_t* y) const {
  // No sorting: each run of consecutive rows inside one chunk is one pread straight into X (or
  // into buf_ when values need scaling), in the order asked.
  const auto d = static_cast<size_t>(dim_);
  const size_t row_bytes = d * (stored_ == Stored::u8 ? 1 : 4);
  const bool into_x = stored_ == Stored::f32 && !transform_;
  for (int64_t i = 0; i < n; ++i) LOCKSTEP_CHECK(rows[i] >= 0 && rows[i] < n_, path_, ": row ", rows[i], " requested of ", n_);
  for (int64_t i = 0; i < n;) {
    const int64_t r = rows[i], block = r / rows_per_block_;
    int64_t j = i + 1;
    while (j < n && rows[j] == rows[j - 1] + 1 && rows[j] / rows_per_block_ == block) ++j;
    unsigned char* dst = into_x ? reinterpret_cast<unsigned char*>(X + static_cast<size_t>(i) * d)
                                : buf_.data() + static_cast<size_t>(i) * row_bytes;
    read_exact(fd_, dst, static_cast<size_t>(j - i) * row_bytes,
               chunk_offset_[static_cast<size_t>(block)] + (r - block * rows_per_block_) * static_cast<int64_t>(row_bytes),
               path_);
    i = j;
  }
  for (int64_t i = 0; i < n; ++i) {
    y[i] = labels_[static_cast<size_t>(rows[i])];
    if (into_x) continue;
    float* out = X + static_cast<size_t>(i) * d;
    if (stored_ == Stored::u8) {
      const uint8_t* in = buf_.data() + static_cast<size_t>(i) * d;
      for (size_t j = 0; j < d; ++j) out[j] = lut_[in[j]];
    } else {
      const float* in = reinterpret_cast<const float*>(buf_.data()) + static_cast<size_t>(i) * d;
      for (size_t j = 0; j < d; ++j) out[j] = convert(in[j]);
    }
  }
}

void H5Data::gather(const int64_t* rows, int64_t n, float* X, int32_t* y) const {
  if (n <= 0) return;
  reserve(n);  // a no-op once reserve() has sized the scratch
  if (mode_ == ReadMode::direct) return gather_direct(rows, n, X, y);
  // HDF5 returns a hyperslab selection in file order, so sort the request, read the distinct
  // rows once each, then scatter them to the positions that asked for them.
  int64_t* order = order_.data();
  std::iota(order, order + n, int64_t{0});
  std::sort(order, order + n, [rows](int64_t a, int64_t b) { return rows[a] < rows[b]; });
  int64_t distinct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows[order[i]];
    LOCKSTEP_CHECK(r >= 0 && r < n_, path_, ": row ", r, " requested of ", n_);
    if (distinct == 0 || sorted_[static_cast<size_t>(distinct - 1)] != r) sorted_[static_cast<size_t>(distinct++)] = r;
  }
  read_rows(distinct);

  const auto d = static_cast<size_t>(dim_);
  int64_t k = -1, prev = -1;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = order[i], r = rows[pos];
    if (r != prev) ++k, prev = r;
    float* out = X + static_cast<size_t>(pos) * d;
    y[pos] = labels_[static_cast<size_t>(r)];
    if (stored_ == Stored::u8) {
      const uint8_t* in = buf_.data() + static_cast<size_t>(k) * d;
      for (size_t j = 0; j < d; ++j) out[j] = lut_[in[j]];
    } else {
      const float* in = reinterpret_cast<const float*>(buf_.data()) + static_cast<size_t>(k) * d;
      if (!transform_) std::memcpy(out, in, d * sizeof(float));
      else for (size_t j = 0; j < d; ++j) out[j] = convert(in[j]);
    }
  }
}

std::unique_ptr<H5Data> open_h5_data(const std::string& path, int classes) {
  auto d = std::make_unique<H5Data>(path, classes);
  d->scan_features();
  return d;
}

}  // namespace lockstep
