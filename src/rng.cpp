// Counter-seeded xoshiro256** and the few distributions lockstep needs (see rng.hpp).
#include "lockstep/rng.hpp"

#include <cmath>

namespace lockstep {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed, Stream stream, uint64_t index) {
  // Mix the three inputs so nearby (seed, stream, index) triples give unrelated states.
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ (static_cast<uint64_t>(stream) * 0xD1B54A32D192ED03ull));
  h = splitmix64(h ^ (index * 0x8CB92BA72F3D8DD7ull + 0x632BE59BD9B4E019ull));
  for (auto& s : s_) {
    h = splitmix64(h);
    s = h;
  }
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::uniform_below(uint64_t bound) {
  // 128-bit multiply maps a 64-bit draw onto [0, bound); reject the few draws that bias it.
  __extension__ using u128 = unsigned __int128;
  u128 m = static_cast<u128>(next_u64()) * bound;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      m = static_cast<u128>(next_u64()) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

double Rng::uniform01() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform01();
  while (u1 <= 0.0) u1 = uniform01();
  const double u2 = uniform01();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * M_PI * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

void random_permutation(Rng& rng, int64_t n, std::vector<int64_t>& perm) {
  perm.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.uniform_below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
}

}  // namespace lockstep
