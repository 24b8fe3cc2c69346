// Knowledge distillation on the training side (docs/distillation.md): the teacher's logits for
// the rows of each micro-batch, either live (the frozen teacher run forward on this rank's slice,
// on its own workspace sized once) or read by row from a teacher-logits cache, and the
// distillation loss on the backend (kernels/distill_loss.hpp). Also the cache file: built
// collectively (each rank computes its share of every block, rank 0 writes) and checked against
// the teacher and the training file before it is used.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/checkpoint.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/model.hpp"

namespace lockstep {

class H5Data;

// What identifies a teacher, as recorded in the student's checkpoints and in the cache.
struct TeacherInfo {
  std::string path;
  uint64_t checksum = 0;  // fnv1a64 of the teacher's parameters (the checksum `lockstep inspect` prints)
  std::string model;      // "784-1024-1024-10 relu"
};
TeacherInfo teacher_info(const CheckpointData& teacher, const std::string& path);

// Throws UserError (naming the teacher and the keys) unless the teacher fits the student's
// config: the same input width, as many outputs as the student has classes, the same input
// normalisation.
void check_teacher_fits(const CheckpointData& teacher, const std::string& path, const Config& student);

class Distiller {
 public:
  // teacher: the checkpoint named by cfg.distill.teacher, on every rank. With cfg.distill.cache
  // the logits come from that file, checked here against the teacher and train_file (the whole
  // training file that `train` is a view on; null: train itself). max_rows: the largest
  // micro-batch. Throws UserError when the cache does not match.
  Distiller(Backend& be, const Config& cfg, const CheckpointData& teacher, const DataSource& train,
            const DataSource* train_file, int64_t max_rows);
  ~Distiller();

  // Sums of the distillation loss over n rows, and dlogits (n, classes) their gradient (not
  // divided by rows). rows: indices into the training source; x (n, dim) and y (n) their staged
  // features and labels; all pointers in backend memory except rows (host).
  LossSums loss(const int64_t* rows, const float* x, int64_t n, const float* student_logits, const int32_t* y,
                float* dlogits);

  const TeacherInfo& teacher() const { return info_; }
  bool cached() const { return cache_ != nullptr; }

 private:
  Backend* be_;
  const DataSource* train_;
  TeacherInfo info_;
  DistillCoef coef_;
  int classes_;
  // Live: the frozen teacher and its workspace.
  std::unique_ptr<Mlp> teacher_;
  std::unique_ptr<Workspace> teacher_ws_;
  // Cached: the logits file and the scratch of one micro-batch's rows, sized once.
  std::unique_ptr<H5Data> cache_;
  std::vector<int64_t> file_rows_;
  std::vector<float> logits_host_;
  std::vector<int32_t> labels_host_;
  Buffer<float> logits_;
};

// Collective. Computes the teacher's logits for every row of train_file, batch_rows rows per
// forward pass on each rank, and rank 0 writes them with the teacher's identity and the file's
// labels to `path` (a temporary name, fsync, rename: the file is complete or absent). A failure
// ends every rank with one message on err (AgreedFailure). data_classes: data.classes.
void build_teacher_cache(Comm& comm, Backend& be, const CheckpointData& teacher, const std::string& teacher_path,
                         const DataSource& train_file, int data_classes, int64_t batch_rows, const std::string& path,
                         std::ostream& err);

}  // namespace lockstep
