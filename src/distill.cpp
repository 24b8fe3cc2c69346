// Teacher logits (live or cached), the distillation loss call, and the teacher-logits cache file
// (see distill.hpp; the layout is in docs/distillation.md).
#include "lockstep/distill.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <numeric>

#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/evaluate.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/h5_dataset.hpp"
#include "lockstep/run_dir.hpp"

namespace lockstep {
namespace {

constexpr const char* kCacheKind = "lockstep-teacher-logits";

std::string joined(const std::vector<int64_t>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += sep;
    s += std::to_string(v[i]);
  }
  return s;
}
std::string widths_text(const std::vector<int64_t>& w) { return joined(w, "-"); }
std::string list_text(const std::vector<int64_t>& v) {
  std::string s(1, '[');
  s += joined(v, ", ");
  return s += ']';
}

void fsync_or_throw(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  LOCKSTEP_REQUIRE(fd >= 0, path, ": cannot open to sync (", std::strerror(errno), ")");
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  LOCKSTEP_REQUIRE(rc == 0, path, ": fsync failed (", std::strerror(e), ")");
}

// Opens a cache and checks it against the teacher and the training file. Every rank runs this.
std::unique_ptr<H5Data> open_cache(const std::string& path, const TeacherInfo& teacher, int teacher_classes,
                                   const DataSource& file, int data_classes) {
  const std::string what = "distill.cache = " + path;
  LOCKSTEP_REQUIRE(std::filesystem::is_regular_file(path), what, ": no such file (make it with lockstep distill ",
                   "--cache-teacher, or leave distill.cache empty to run the teacher live)");
  LOCKSTEP_REQUIRE(h5::is_hdf5_file(path), what, ": not an HDF5 file");
  {
    h5::Handle f = h5::open_file(path, /*writable=*/false);
    LOCKSTEP_REQUIRE(h5::has_attr(f.get(), "kind") && h5::attr_string(f.get(), "kind") == kCacheKind, what,
                     ": not a teacher-logits cache (no kind = \"", kCacheKind, "\" attribute)");
    const std::string sum = h5::attr_string(f.get(), "teacher_checksum");
    LOCKSTEP_REQUIRE(sum == hex64(teacher.checksum), what, ": made from the teacher ",
                     h5::attr_string(f.get(), "teacher"), " (checksum ", sum, "), but distill.teacher = ", teacher.path,
                     " has checksum ", hex64(teacher.checksum),
                     "; make a new cache for this teacher (--cache-teacher with another distill.cache)");
  }
  auto cache = std::make_unique<H5Data>(path, data_classes);
  LOCKSTEP_REQUIRE(cache->dim() == teacher_classes, what, ": holds ", cache->dim(), " logits per sample, but the teacher has ",
                   teacher_classes, " classes");
  LOCKSTEP_REQUIRE(cache->size() == file.size(), what, ": holds ", cache->size(), " samples, but the training file ",
                   file.name(), " has ", file.size(), "; it was made for another data file");
  const std::vector<int32_t> labels = labels_of(file);
  const auto& cached = cache->labels();
  const auto diff = std::mismatch(labels.begin(), labels.end(), cached.begin());
  LOCKSTEP_REQUIRE(diff.first == labels.end(), what, ": the label of sample ", diff.first - labels.begin(), " is ",
                   *diff.second, " in the cache but ", *diff.first, " in ", file.name(),
                   "; it was made for another data file");
  cache->scan_features();  // rejects NaN/inf logits, naming the row
  return cache;
}

}  // namespace

TeacherInfo teacher_info(const CheckpointData& teacher, const std::string& path) {
  TeacherInfo t;
  t.path = path;
  t.checksum = fnv1a64(teacher.params.data(), teacher.params.size() * sizeof(float));
  t.model = widths_text(teacher.layers) + " " + to_string(teacher.activation);
  return t;
}

void check_teacher_fits(const CheckpointData& teacher, const std::string& path, const Config& student) {
  const std::string what = "distill.teacher = " + path;
  const auto& s = student.model.layers;
  LOCKSTEP_REQUIRE(teacher.layers.front() == s.front(), what, ": the teacher's input width is ", teacher.layers.front(),
                   " but model.layers[0] of the student is ", s.front());
  LOCKSTEP_REQUIRE(teacher.layers.back() == s.back(), what, ": the teacher has ", teacher.layers.back(),
                   " classes but the student ", s.back(), " (model.layers)");
  const Config tc = parse_config_text(teacher.config_toml, path + " (stored config)");
  LOCKSTEP_REQUIRE(tc.data.class_subset == student.data.class_subset, what, ": the teacher was trained on ",
                   "data.class_subset = ", list_text(tc.data.class_subset), ", the student has ",
                   list_text(student.data.class_subset), "; its outputs would mean other classes");
  LOCKSTEP_REQUIRE(tc.data.normalize == student.data.normalize, what,
                   ": the teacher was trained with another data.normalize than the student's; it would see inputs "
                   "scaled differently from those it learned on");
}

Distiller::Distiller(Backend& be, const Config& cfg, const CheckpointData& teacher, const DataSource& train,
                     const DataSource* train_file, int64_t max_rows)
    : be_(&be),
      train_(&train),
      info_(teacher_info(teacher, cfg.distill.teacher)),
      coef_(make_distill_coef<float>(cfg.distill.temperature, cfg.distill.alpha)),
      classes_(static_cast<int>(teacher.layers.back())) {
  check_teacher_fits(teacher, cfg.distill.teacher, cfg);
  const auto rows = static_cast<size_t>(max_rows);
  if (cfg.distill.cache.empty()) {
    teacher_ = std::make_unique<Mlp>(be, teacher.layers, teacher.activation);
    teacher_->set_params(teacher.params);
    teacher_ws_ = std::make_unique<Workspace>(*teacher_, max_rows);
    return;
  }
  cache_ = open_cache(cfg.distill.cache, info_, classes_, train_file ? *train_file : train, cfg.data.classes);
  cache_->reserve(max_rows);
  file_rows_.resize(rows);
  labels_host_.resize(rows);
  if (be.kind() != DeviceKind::cpu) logits_host_.resize(rows * static_cast<size_t>(classes_));
  logits_ = Buffer<float>(be, rows * static_cast<size_t>(classes_));
}

Distiller::~Distiller() = default;

LossSums Distiller::loss(const int64_t* rows, const float* x, int64_t n, const float* student_logits, const int32_t* y,
                         float* dlogits) {
  const float* t = nullptr;
  if (cache_) {
    train_->file_rows(rows, n, file_rows_.data());
    const bool host = be_->kind() == DeviceKind::cpu;  // CPU buffers are host memory: read straight in
    cache_->gather(file_rows_.data(), n, host ? logits_.data() : logits_host_.data(), labels_host_.data());
    if (!host)
      be_->to_device(logits_.data(), logits_host_.data(), sizeof(float) * static_cast<size_t>(n) * classes_);
    t = logits_.data();
  } else {
    t = forward(*teacher_, *teacher_ws_, x, n);
  }
  return be_->distill_xent(static_cast<int>(n), classes_, student_logits, t, y, coef_, dlogits);
}

void build_teacher_cache(Comm& comm, Backend& be, const CheckpointData& teacher, const std::string& teacher_path,
                         const DataSource& file, int data_classes, int64_t batch_rows, const std::string& path,
                         std::ostream& err) {
  const bool root = comm.rank() == 0;
  const TeacherInfo info = teacher_info(teacher, teacher_path);
  Mlp model(be, teacher.layers, teacher.activation);
  model.set_params(teacher.params);
  Workspace ws(model, batch_rows);
  const int64_t n_rows = file.size(), classes = model.output_dim();
  const auto k = static_cast<size_t>(batch_rows);
  std::vector<int64_t> rows(k);
  BatchStager stager(be, static_cast<int64_t>(k), file.dim());
  std::vector<float> mine(k * static_cast<size_t>(classes), 0.0f);
  std::vector<float> all(mine.size() * static_cast<size_t>(comm.size()));
  file.reserve(batch_rows);

  // Rank 0 writes as the blocks arrive; a write failure is remembered, not thrown, so that the
  // other ranks are not left waiting in the next allgather; it is agreed on after the loop.
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::unique_ptr<H5DataWriter> writer;
  std::exception_ptr failure;
  if (root) {
    try {
      // Its folder (by default the run directory, not yet made by a fresh run) is made here.
      const std::string parent = std::filesystem::path(path).parent_path().string();
      if (!parent.empty()) ensure_directory(parent, "teacher-logits cache directory");
      H5WriteOptions o;
      o.classes = data_classes;
      o.source = "teacher logits of " + file.name();
      writer = std::make_unique<H5DataWriter>(tmp, n_rows, classes, o);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  // Block b covers rows [b, b + block): rank r computes the r-th run of batch_rows of them, so
  // the allgathered blocks are in row order. Every rank runs the same number of blocks.
  const int64_t block = batch_rows * comm.size();
  for (int64_t b = 0; b < n_rows; b += block) {
    const int64_t first = std::min(n_rows, b + comm.rank() * batch_rows);
    const int64_t n = std::min(n_rows, first + batch_rows) - first;
    if (n > 0) {
      std::iota(rows.begin(), rows.begin() + n, first);
      const StagedBatch in = stager.acquire(file, BatchKey{0, b, 0}, rows.data(), n);
      const float* logits = forward(model, ws, in.x, n);
      be.to_host(mine.data(), logits, sizeof(float) * static_cast<size_t>(n * classes));
    }
    comm.allgather(mine.data(), mine.size() * sizeof(float), all.data());
    if (root && !failure) {
      try {
        writer->write_features(b, std::min(block, n_rows - b), all.data());
      } catch (...) {
        failure = std::current_exception();
      }
    }
  }
  collectively(
      comm,
      [&] {
        if (!root) return;
        try {
          if (failure) std::rethrow_exception(failure);
          writer->write_labels(labels_of(file).data());
          writer->close();
          writer.reset();
          {
            h5::Handle f = h5::open_file(tmp, /*writable=*/true);
            h5::set_attr(f.get(), "kind", std::string(kCacheKind));
            h5::set_attr(f.get(), "teacher", info.path);
            h5::set_attr(f.get(), "teacher_checksum", hex64(info.checksum));
            h5::set_attr(f.get(), "teacher_model", info.model);
            h5::set_attr(f.get(), "samples", n_rows);
            h5::QuietErrors quiet;
            LOCKSTEP_H5_CHECK(H5Fclose(f.release()), tmp, ": close failed");
          }
          fsync_or_throw(tmp, false);
          LOCKSTEP_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": rename failed (", std::strerror(errno),
                           ")");
          const auto parent = std::filesystem::path(path).parent_path();
          fsync_or_throw(parent.empty() ? "." : parent.string(), true);
        } catch (const std::exception& e) {
          writer.reset();
          std::error_code ec;
          std::filesystem::remove(tmp, ec);
          throw UserError(fmt("teacher-logits cache ", path, ": cannot be written (", e.what(), ")"));
        }
      },
      err);
}

}  // namespace lockstep
