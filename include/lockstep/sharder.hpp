// The sharder: which samples each rank takes at each step. The epoch order is a permutation
// that depends only on (seed, epoch); global batch b covers positions [b*B, min((b+1)*B, N)) of
// it; a batch is split across ranks in contiguous slices whose sizes differ by at most one.
// Every rank runs steps_per_epoch() steps whatever its slice size (a slice may be empty).
#pragma once
#include <cstdint>
#include <vector>

namespace lockstep {

struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// The part of [0, total) that rank `rank` of `parts` owns: sizes differ by at most one,
// the lower ranks get the extra elements.
Range split_evenly(int64_t total, int rank, int parts);

class Sharder {
 public:
  Sharder(int64_t samples, int64_t global_batch, bool drop_last, uint64_t seed);

  int64_t samples() const { return n_; }
  int64_t global_batch() const { return batch_; }
  int64_t steps_per_epoch() const { return steps_; }

  // The order of epoch `epoch`: perm[i] is the sample at position i. Reuses perm's storage.
  void epoch_order(int64_t epoch, std::vector<int64_t>& perm) const;

  // Positions of global batch `step` (0-based within the epoch).
  Range batch(int64_t step) const;

  // Positions of this rank's slice of global batch `step`.
  Range slice(int64_t step, int rank, int world) const;

 private:
  int64_t n_, batch_, steps_;
  uint64_t seed_;
};

}  // namespace lockstep
