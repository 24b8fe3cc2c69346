// Double-buffered micro-batch staging (see batch_stager.hpp).
#include "lockstep/batch_stager.hpp"

#include "lockstep/check.hpp"
#include "lockstep/memory_plan.hpp"

namespace lockstep {

BatchStager::BatchStager(Backend& be, int64_t max_rows, int64_t dim)
    : be_(&be), max_rows_(max_rows), dim_(dim), host_staging_(be.kind() != DeviceKind::cpu) {
  const auto rows = static_cast<size_t>(max_rows);
  allocating(fmt("the batch buffers for ", max_rows, " rows of ", dim, " features"), [&] {
    for (int s = 0; s < 2; ++s) {
      if (host_staging_) {
        x_host_[s] = HostBuffer<float>(be, rows * static_cast<size_t>(dim));
        y_host_[s] = HostBuffer<int32_t>(be, rows);
      }
      x_[s] = Buffer<float>(be, rows * static_cast<size_t>(dim));
      y_[s] = Buffer<int32_t>(be, rows);
    }
  });
}

void BatchStager::stage(const DataSource& data, int slot, const int64_t* rows, int64_t n) {
  LOCKSTEP_CHECK(n >= 0 && n <= max_rows_, "batch of ", n, " rows exceeds the staging slots of ", max_rows_);
  LOCKSTEP_CHECK(data.dim() == dim_, data.name(), ": rows have ", data.dim(), " features, staging expects ", dim_);
  if (!host_staging_) {
    data.gather(rows, n, x_[slot].data(), y_[slot].data());
    return;
  }
  data.gather(rows, n, x_host_[slot].data(), y_host_[slot].data());
  const auto count = static_cast<size_t>(n);
  be_->to_device_async(x_[slot].data(), x_host_[slot].data(), sizeof(float) * count * static_cast<size_t>(dim_));
  be_->to_device_async(y_[slot].data(), y_host_[slot].data(), sizeof(int32_t) * count);
}

StagedBatch BatchStager::acquire(const DataSource& data, BatchKey key, const int64_t* rows, int64_t n) {
  const int other = 1 - current_;
  last_prefetched_ = pending_.epoch >= 0 && pending_ == key && pending_rows_ == n;
  // Not prefetched: the other slot's last use has finished (the backend was synchronised since),
  // so it is staged now; the stream orders the copy before the forward pass that reads it.
  if (!last_prefetched_) stage(data, other, rows, n);
  pending_ = BatchKey{};
  current_ = other;
  return StagedBatch{x_[current_].data(), y_[current_].data()};
}

void BatchStager::prefetch(const DataSource& data, BatchKey key, const int64_t* rows, int64_t n) {
  const int other = 1 - current_;
  stage(data, other, rows, n);
  pending_ = key;
  pending_rows_ = n;
}

}  // namespace lockstep
