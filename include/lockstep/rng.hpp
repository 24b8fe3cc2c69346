// Deterministic random numbers that depend only on their inputs: a stream is a function of
// (seed, stream id, counter), so the data order of epoch e or the initial weights never depend on
// what was drawn before. The generator and the distributions are our own (std:: distributions
// differ between standard libraries), so results are the same on every machine.
#pragma once
#include <cstdint>
#include <vector>

namespace lockstep {

// Named streams, so two uses of one seed never share numbers.
enum class Stream : uint64_t { init = 1, split = 2, epoch_order = 3, test = 4 };

uint64_t splitmix64(uint64_t x);

// xoshiro256** seeded through splitmix64 from (seed, stream, index).
class Rng {
 public:
  Rng(uint64_t seed, Stream stream, uint64_t index = 0);
  uint64_t next_u64();
  // Uniform integer in [0, bound), unbiased (Lemire's multiply-and-reject).
  uint64_t uniform_below(uint64_t bound);
  // Uniform double in [0, 1) with 53 random bits.
  double uniform01();
  // Standard normal (Box-Muller on doubles).
  double normal();

 private:
  uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Fills perm with a uniformly random permutation of 0..n-1 (Fisher-Yates). Reuses perm's storage.
void random_permutation(Rng& rng, int64_t n, std::vector<int64_t>& perm);

}  // namespace lockstep
