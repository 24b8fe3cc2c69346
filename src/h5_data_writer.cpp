// Writing HDF5 data files (see h5_dataset.hpp): H5DataWriter lays out /features and /labels in
// chunks, optionally gzip-compressed; convert_idx_to_h5 turns an IDX pair into such a file
// atomically (temporary name, fsync, rename). Reading is in h5_dataset.cpp.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "lockstep/h5_dataset.hpp"
#include "lockstep/idx.hpp"
#include "lockstep/run_dir.hpp"
#include "lockstep/version.hpp"

namespace lockstep {
namespace {

constexpr const char* kFeatures = "/features";
constexpr const char* kLabels = "/labels";

void select_rows(hid_t space, int64_t first, int64_t count, int64_t dim) {
  const hsize_t start[2] = {static_cast<hsize_t>(first), 0};
  const hsize_t cnt[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(dim)};
  LOCKSTEP_H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, cnt, nullptr), "row selection");
}

}  // namespace

// ---- writing ----------------------------------------------------------------------------------

int64_t default_chunk_rows(int64_t rows, int64_t dim, H5FeatureType dtype) {
  const int64_t row_bytes = dim * (dtype == H5FeatureType::uint8 ? 1 : 4);
  return std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(row_bytes, 1), 1, std::max<int64_t>(rows, 1));
}

H5DataWriter::H5DataWriter(const std::string& path, int64_t rows, int64_t dim, const H5WriteOptions& opts)
    : path_(path), rows_(rows), dim_(dim), opts_(opts) {
  LOCKSTEP_REQUIRE(rows > 0 && dim > 0, path, ": cannot write an empty dataset (", rows, " x ", dim, ")");
  LOCKSTEP_REQUIRE(opts.compress >= 0 && opts.compress <= 9, "--compress: gzip level must be 0..9, got ",
                   opts.compress);
  chunk_rows_ = opts.chunk_rows > 0 ? std::min(opts.chunk_rows, rows) : default_chunk_rows(rows, dim, opts.dtype);
  if (opts.compress > 0)
    LOCKSTEP_REQUIRE(H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0, "this HDF5 library has no gzip filter");
  file_ = h5::create_file(path);

  // Byte shuffle before gzip groups the exponent bytes of the floats: it compresses far better.
  auto chunked = [&](int rank, const hsize_t* chunk) {
    h5::Handle dcpl(LOCKSTEP_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), "dataset creation list"));
    LOCKSTEP_H5_CHECK(H5Pset_chunk(dcpl.get(), rank, chunk), "chunk shape");
    if (opts.compress > 0) {
      LOCKSTEP_H5_CHECK(H5Pset_shuffle(dcpl.get()), "shuffle filter");
      LOCKSTEP_H5_CHECK(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(opts.compress)), "gzip filter");
    }
    return dcpl;
  };
  const hsize_t fdims[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(dim)};
  const hsize_t fchunk[2] = {static_cast<hsize_t>(chunk_rows_), static_cast<hsize_t>(dim)};
  h5::Handle fspace(LOCKSTEP_H5_CHECK(H5Screate_simple(2, fdims, nullptr), "features dataspace"));
  h5::Handle fdcpl = chunked(2, fchunk);
  const hid_t ftype = opts.dtype == H5FeatureType::uint8 ? H5T_STD_U8LE : H5T_IEEE_F32LE;
  features_ = h5::Handle(LOCKSTEP_H5_CHECK(
      H5Dcreate2(file_.get(), kFeatures, ftype, fspace.get(), H5P_DEFAULT, fdcpl.get(), H5P_DEFAULT), path,
      ": cannot create ", kFeatures));
  if (opts.dtype == H5FeatureType::uint8) h5::set_attr(features_.get(), "scale", opts.scale);

  const hsize_t ldims = static_cast<hsize_t>(rows);
  const hsize_t lchunk = std::min<hsize_t>(ldims, hsize_t{1} << 18);
  h5::Handle lspace(LOCKSTEP_H5_CHECK(H5Screate_simple(1, &ldims, nullptr), "labels dataspace"));
  h5::Handle ldcpl = chunked(1, &lchunk);
  labels_ = h5::Handle(LOCKSTEP_H5_CHECK(
      H5Dcreate2(file_.get(), kLabels, H5T_STD_I32LE, lspace.get(), H5P_DEFAULT, ldcpl.get(), H5P_DEFAULT), path,
      ": cannot create ", kLabels));
}

H5DataWriter::~H5DataWriter() = default;

void H5DataWriter::write_block(int64_t first_row, int64_t count, hid_t mem_type, const void* x) {
  LOCKSTEP_CHECK(first_row >= 0 && count >= 0 && first_row + count <= rows_, "rows out of range");
  if (count == 0) return;
  h5::Handle space(LOCKSTEP_H5_CHECK(H5Dget_space(features_.get()), "features dataspace"));
  select_rows(space.get(), first_row, count, dim_);
  const hsize_t mdims[2] = {static_cast<hsize_t>(count), static_cast<hsize_t>(dim_)};
  h5::Handle mem(LOCKSTEP_H5_CHECK(H5Screate_simple(2, mdims, nullptr), "memory space"));
  LOCKSTEP_H5_CHECK(H5Dwrite(features_.get(), mem_type, mem.get(), space.get(), H5P_DEFAULT, x), path_,
                    ": cannot write ", kFeatures);
}

void H5DataWriter::write_features(int64_t first_row, int64_t count, const float* x) {
  LOCKSTEP_CHECK(opts_.dtype == H5FeatureType::float32, "float rows written to a uint8 file");
  write_block(first_row, count, H5T_NATIVE_FLOAT, x);
}

void H5DataWriter::write_features(int64_t first_row, int64_t count, const uint8_t* x) {
  LOCKSTEP_CHECK(opts_.dtype == H5FeatureType::uint8, "byte rows written to a float32 file");
  write_block(first_row, count, H5T_NATIVE_UINT8, x);
}

void H5DataWriter::write_labels(const int32_t* y) {
  LOCKSTEP_H5_CHECK(H5Dwrite(labels_.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y), path_,
                    ": cannot write ", kLabels);
}

void H5DataWriter::close() {
  if (!file_.valid()) return;
  h5::set_attr(file_.get(), "classes", static_cast<int64_t>(opts_.classes));
  h5::set_attr(file_.get(), "source", opts_.source);
  h5::set_attr(file_.get(), "created", utc_time());
  h5::set_attr(file_.get(), "lockstep_version", std::string(LOCKSTEP_VERSION_STRING));
  features_.reset();
  labels_.reset();
  LOCKSTEP_H5_CHECK(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), path_, ": cannot flush");
  file_.reset();
}

namespace {

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;  // a directory some systems will not open: best effort
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

ConvertSummary convert_idx_to_h5(const ConvertOptions& o) {
  namespace fs = std::filesystem;
  // Everything about --out is checked before the (long) reading and writing.
  LOCKSTEP_REQUIRE(!o.out.empty(), "--out: the path is empty; name the HDF5 file to write, e.g. --out train.h5");
  std::error_code ec;
  const fs::file_status st = fs::status(o.out, ec);
  LOCKSTEP_REQUIRE(!fs::is_directory(st), "--out ", o.out, ": is a directory; name a file in it, e.g. --out ",
                   (fs::path(o.out) / "data.h5").string());
  LOCKSTEP_REQUIRE(!fs::exists(st) || fs::is_regular_file(st), "--out ", o.out,
                   ": exists and is not a regular file; it is not replaced");
  LOCKSTEP_REQUIRE(o.force || !fs::exists(st), "--out ", o.out, ": already exists; use --force to replace it");
  const fs::path parent = fs::absolute(o.out).parent_path();
  LOCKSTEP_REQUIRE(fs::is_directory(parent), "--out ", o.out, ": the directory ", parent.string(), " does not exist");

  // Labels first: they decide the class count when --classes is not given.
  const IdxArray lab = read_idx(o.labels);
  LOCKSTEP_REQUIRE(lab.dims.size() == 1, o.labels, ": a label file has 1 dimension, found ", lab.dims.size(),
                   " (is it an image file?)");
  int classes = o.classes;
  if (classes <= 0) {
    double top = 0;
    for (int64_t i = 0; i < lab.items(); ++i) top = std::max(top, idx_value(lab, i));
    classes = static_cast<int>(std::min(top, 1e9)) + 1;
  }
  // Named in label errors: convert's own option, not the config key of training.
  const std::string classes_source =
      o.classes > 0 ? fmt("--classes ", o.classes) : fmt(classes, " = the largest label + 1, as --classes is not given");
  // The float32 path is the very function training uses on IDX input: bitwise the same values.
  std::vector<uint8_t> bytes;
  std::shared_ptr<MemoryData> mem;
  int64_t rows = 0, dim = 0;
  if (o.dtype == H5FeatureType::float32) {
    mem = load_idx_pair(o.images, o.labels, classes, classes_source);
    rows = mem->size();
    dim = mem->dim();
  } else {
    IdxArray img = read_idx(o.images);
    LOCKSTEP_REQUIRE(img.type == IdxType::u8, o.images, ": --dtype uint8 needs unsigned-byte images (IDX type 0x08)",
                     "; this file holds another type: use --dtype float32");
    mem = load_idx_pair(o.images, o.labels, classes, classes_source);  // the same validation as training
    rows = img.items();
    dim = img.item_size();
    bytes = std::move(img.data);
  }

  H5WriteOptions w;
  w.dtype = o.dtype;
  w.compress = o.compress;
  w.chunk_rows = o.chunk_rows;
  w.classes = classes;
  w.source = fmt("images: ", fs::absolute(o.images).string(), "; labels: ", fs::absolute(o.labels).string());
  const std::string tmp = fmt(o.out, ".tmp.", ::getpid());
  ConvertSummary s;
  try {
    h5::QuietErrors quiet;  // a failed write (disk full) is reported once, by our message
    H5DataWriter writer(tmp, rows, dim, w);
    if (o.dtype == H5FeatureType::float32) writer.write_features(0, rows, mem->features().data());
    else writer.write_features(0, rows, bytes.data());
    writer.write_labels(mem->labels().data());
    writer.close();
    s.chunk_rows = writer.chunk_rows();
    fsync_path(tmp);
    LOCKSTEP_REQUIRE(std::rename(tmp.c_str(), o.out.c_str()) == 0, o.out, ": cannot rename ", tmp, " to it (",
                     std::strerror(errno), ")");
    fsync_path(parent.string());  // the rename itself reaches the disk
  } catch (...) {
    fs::remove(tmp, ec);  // never leave a half file behind, under any name
    throw;
  }
  s.rows = rows;
  s.dim = dim;
  s.classes = classes;
  s.file_bytes = static_cast<int64_t>(fs::file_size(o.out));
  return s;
}

}  // namespace lockstep
