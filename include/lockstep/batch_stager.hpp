// Double-buffered staging of training micro-batches into backend memory: while the backend
// still runs one micro-batch's backward pass, the host gathers the next micro-batch's rows
// (into pinned memory on a GPU) and enqueues their copy, so the next forward pass finds its
// input in place. Two slots sized once; no call allocates. It does not know the data order:
// the trainer names each micro-batch by a key and says which one comes next.
#pragma once
#include <cstdint>

#include "lockstep/backend.hpp"
#include "lockstep/dataset.hpp"

namespace lockstep {

// Names one micro-batch of training: (epoch, step in the epoch, micro-batch in the step).
struct BatchKey {
  int64_t epoch = -1, step = -1, micro = -1;
  bool operator==(const BatchKey&) const = default;
};

struct StagedBatch {
  const float* x = nullptr;    // (n, dim) in backend memory
  const int32_t* y = nullptr;  // (n)
};

class BatchStager {
 public:
  BatchStager(Backend& be, int64_t max_rows, int64_t dim);

  // The batch `key` made of rows[0..n) of data: the prefetched slot when prefetch() staged
  // exactly this key and row count, else staged now. Valid until the second call after this one.
  StagedBatch acquire(const DataSource& data, BatchKey key, const int64_t* rows, int64_t n);

  // Stages the batch that acquire() will be asked for next into the other slot. The backend must
  // be synchronised between two prefetches (the trainer synchronises every step), so a slot's
  // previous copy has finished before its host memory is rewritten.
  void prefetch(const DataSource& data, BatchKey key, const int64_t* rows, int64_t n);

  // Whether the last acquire() found its batch prefetched (for tests and timing).
  bool last_was_prefetched() const { return last_prefetched_; }

 private:
  void stage(const DataSource& data, int slot, const int64_t* rows, int64_t n);

  Backend* be_;
  int64_t max_rows_, dim_;
  bool host_staging_;           // the backend's memory is not host memory
  HostBuffer<float> x_host_[2];  // (max_rows, dim), pinned on a GPU; unused on the CPU
  HostBuffer<int32_t> y_host_[2];
  Buffer<float> x_[2];          // (max_rows, dim) in backend memory
  Buffer<int32_t> y_[2];
  int current_ = 0;             // slot handed out by the last acquire()
  BatchKey pending_;            // what the other slot holds after prefetch(); epoch -1: nothing
  int64_t pending_rows_ = 0;
  bool last_prefetched_ = false;
};

}  // namespace lockstep
