// The counter-seeded generator: determinism per (seed, stream, index), independence of streams,
// and the distributions (uniform_below, uniform01, normal, random_permutation) checked with
// statistical bounds derived from each statistic's own standard deviation (5-6 sigma).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "lockstep/rng.hpp"

namespace lockstep {
namespace {

std::vector<uint64_t> draws(Rng rng, int n) {
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = rng.next_u64();
  return out;
}

// Pearson's statistic for counts against a uniform expectation. With k bins it is approximately
// chi-square with k-1 degrees of freedom: mean k-1, standard deviation sqrt(2(k-1)).
double chi_square(const std::vector<int64_t>& counts, double expected_per_bin) {
  double x2 = 0.0;
  for (int64_t c : counts) x2 += (double(c) - expected_per_bin) * (double(c) - expected_per_bin) / expected_per_bin;
  return x2;
}
double chi_square_bound(size_t bins) {
  const double df = double(bins - 1);
  return df + 6.0 * std::sqrt(2.0 * df);
}

TEST(Rng, Splitmix64KnownValues) {
  // Reference outputs of splitmix64 from state 0 (Vigna's splitmix64.c): the first output is
  // mix(0 + golden), the second mix(2 * golden) = splitmix64(golden).
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(splitmix64(0x9E3779B97F4A7C15ull), 0x6E789E6AA1B965F4ull);
}

TEST(Rng, SameInputsSameNumbers) {
  EXPECT_EQ(draws(Rng(42, Stream::init, 3), 1000), draws(Rng(42, Stream::init, 3), 1000));
  Rng a(7, Stream::test), b(7, Stream::test);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(a.uniform_below(1000 + i), b.uniform_below(1000 + i));
    ASSERT_EQ(a.normal(), b.normal());
    ASSERT_EQ(a.uniform01(), b.uniform01());
  }
}

TEST(Rng, DifferentSeedStreamOrIndexGivesUnrelatedNumbers) {
  const auto base = draws(Rng(42, Stream::epoch_order, 0), 256);
  const std::vector<std::vector<uint64_t>> others{
      draws(Rng(43, Stream::epoch_order, 0), 256), draws(Rng(42, Stream::split, 0), 256),
      draws(Rng(42, Stream::init, 0), 256),        draws(Rng(42, Stream::test, 0), 256),
      draws(Rng(42, Stream::epoch_order, 1), 256), draws(Rng(0, Stream::epoch_order, 42), 256)};
  const std::set<uint64_t> seen(base.begin(), base.end());
  for (size_t k = 0; k < others.size(); ++k) {
    // Not merely different: no 64-bit value in common, not even shifted (a shared stream would overlap).
    for (uint64_t v : others[k]) EXPECT_EQ(seen.count(v), 0u) << "variant " << k;
  }
}

TEST(Rng, ConsecutiveIndicesAreIndependent) {
  // The first draw of streams 0..n-1: their mean is that of n independent uniforms.
  const int n = 20000;
  double sum = 0.0;
  int64_t top_bit = 0;
  for (int i = 0; i < n; ++i) {
    Rng r(5, Stream::epoch_order, static_cast<uint64_t>(i));
    const uint64_t v = r.next_u64();
    sum += double(v >> 11) * 0x1.0p-53;
    top_bit += static_cast<int64_t>(v >> 63);
  }
  EXPECT_NEAR(sum / n, 0.5, 5.0 * std::sqrt(1.0 / 12.0 / n));
  EXPECT_NEAR(double(top_bit) / n, 0.5, 5.0 * std::sqrt(0.25 / n));
}

TEST(Rng, UniformBelowStaysInRange) {
  Rng rng(1, Stream::test);
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  for (uint64_t bound : {uint64_t(1), uint64_t(2), uint64_t(3), uint64_t(7), uint64_t(1000), (uint64_t(1) << 63) + 1,
                         max - 1, max}) {
    for (int i = 0; i < 2000; ++i) ASSERT_LT(rng.uniform_below(bound), bound) << "bound " << bound;
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(rng.uniform_below(1), 0u);
}

TEST(Rng, UniformBelowIsUniform) {
  Rng rng(2, Stream::test);
  for (uint64_t k : {uint64_t(10), uint64_t(1000), uint64_t(37)}) {
    const int64_t n = static_cast<int64_t>(k) * 1000;
    std::vector<int64_t> counts(k);
    for (int64_t i = 0; i < n; ++i) ++counts[rng.uniform_below(k)];
    EXPECT_LT(chi_square(counts, double(n) / double(k)), chi_square_bound(k)) << "bound " << k;
  }
  // A bound of 3*2^62 is where reducing a 64-bit draw modulo the bound is most biased (the
  // lowest 2^62 values would come twice as often; P(x < 2^63) = 3/4 instead of 2/3).
  const uint64_t bound = uint64_t(3) << 62;
  const int n = 200000;
  int64_t low = 0;
  for (int i = 0; i < n; ++i) low += rng.uniform_below(bound) < (uint64_t(1) << 63);
  const double p = 2.0 / 3.0;
  EXPECT_NEAR(double(low) / n, p, 6.0 * std::sqrt(p * (1 - p) / n));
}

TEST(Rng, Uniform01) {
  Rng rng(3, Stream::test);
  const int n = 100000;
  double sum = 0.0;
  std::vector<int64_t> counts(20);
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform01();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    ++counts[static_cast<size_t>(u * 20)];
  }
  EXPECT_NEAR(sum / n, 0.5, 5.0 * std::sqrt(1.0 / 12.0 / n));
  EXPECT_LT(chi_square(counts, n / 20.0), chi_square_bound(20));
}

TEST(Rng, NormalMomentsAndShape) {
  Rng rng(4, Stream::test);
  const int n = 100000;
  double s1 = 0.0, s2 = 0.0, s4 = 0.0;
  int64_t within_one = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    ASSERT_TRUE(std::isfinite(x));
    s1 += x;
    s2 += x * x;
    s4 += x * x * x * x;
    within_one += std::fabs(x) < 1.0;
  }
  const double mean = s1 / n;
  const double var = (s2 - n * mean * mean) / (n - 1);
  // Standard errors for a standard normal: mean 1/sqrt(n), variance sqrt(2/(n-1)),
  // fourth moment sqrt((E x^8 - (E x^4)^2)/n) = sqrt((105 - 9)/n).
  EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(double(n)));
  EXPECT_NEAR(var, 1.0, 5.0 * std::sqrt(2.0 / (n - 1)));
  EXPECT_NEAR(s4 / n, 3.0, 5.0 * std::sqrt(96.0 / n));
  const double p = std::erf(1.0 / std::sqrt(2.0));  // P(|x| < 1), about 0.6827
  EXPECT_NEAR(double(within_one) / n, p, 5.0 * std::sqrt(p * (1 - p) / n));
}

TEST(Rng, RandomPermutationIsAPermutation) {
  Rng rng(5, Stream::test);
  std::vector<int64_t> perm(3, 99);  // old content and size are replaced
  for (int64_t n : {0, 1, 2, 10, 1000, 3}) {
    random_permutation(rng, n, perm);
    ASSERT_EQ(static_cast<int64_t>(perm.size()), n);
    std::vector<int64_t> sorted(perm);
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i) << "n " << n;
  }
  std::vector<int64_t> a, b;
  Rng r1(6, Stream::test), r2(6, Stream::test);
  random_permutation(r1, 500, a);
  random_permutation(r2, 500, b);
  EXPECT_EQ(a, b);
}

TEST(Rng, RandomPermutationIsUniform) {
  // All 6 orders of 3 elements equally often, and element 0 of 10 equally often at each position.
  Rng rng(7, Stream::test);
  std::vector<int64_t> perm;
  const int n3 = 60000;
  std::vector<int64_t> orders(6);
  for (int t = 0; t < n3; ++t) {
    random_permutation(rng, 3, perm);
    // Lehmer code of the permutation: an index in 0..5.
    const int64_t first_rank = perm[0];
    const int64_t second_rank = perm[1] - (perm[1] > perm[0] ? 1 : 0);
    ++orders[first_rank * 2 + second_rank];
  }
  EXPECT_LT(chi_square(orders, n3 / 6.0), chi_square_bound(6));
  const int n10 = 50000;
  std::vector<int64_t> where(10);
  for (int t = 0; t < n10; ++t) {
    random_permutation(rng, 10, perm);
    ++where[std::find(perm.begin(), perm.end(), 0) - perm.begin()];
  }
  EXPECT_LT(chi_square(where, n10 / 10.0), chi_square_bound(10));
}

}  // namespace
}  // namespace lockstep
