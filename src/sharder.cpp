// Epoch permutations and the split of each global batch across ranks (see sharder.hpp).
#include "lockstep/sharder.hpp"

#include "lockstep/check.hpp"
#include "lockstep/rng.hpp"

namespace lockstep {

Range split_evenly(int64_t total, int rank, int parts) {
  const int64_t base = total / parts, extra = total % parts;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

Sharder::Sharder(int64_t samples, int64_t global_batch, bool drop_last, uint64_t seed)
    : n_(samples), batch_(global_batch), seed_(seed) {
  LOCKSTEP_CHECK(samples > 0 && global_batch > 0, "sharder needs samples and a batch size");
  steps_ = drop_last ? samples / global_batch : (samples + global_batch - 1) / global_batch;
  LOCKSTEP_REQUIRE(steps_ > 0, "train.drop_last: the batch size ", global_batch, " is larger than the ",
                   samples, " training samples, so every batch would be dropped");
}

void Sharder::epoch_order(int64_t epoch, std::vector<int64_t>& perm) const {
  Rng rng(seed_, Stream::epoch_order, static_cast<uint64_t>(epoch));
  random_permutation(rng, n_, perm);
}

Range Sharder::batch(int64_t step) const {
  const int64_t begin = step * batch_;
  return {begin, std::min(begin + batch_, n_)};
}

Range Sharder::slice(int64_t step, int rank, int world) const {
  const Range b = batch(step);
  const Range part = split_evenly(b.size(), rank, world);
  return {b.begin + part.begin, b.begin + part.end};
}

}  // namespace lockstep
