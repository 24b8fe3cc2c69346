// The sharder (epoch order, global batches, per-rank slices), split_evenly and holdout_split:
// equal step counts on every rank, slices that tile each batch, each epoch covered exactly once,
// and orders that depend on (seed, epoch) only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "lockstep/check.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/sharder.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

using test::throws_user_error;

bool is_permutation_of_iota(std::vector<int64_t> v, int64_t n) {
  if (static_cast<int64_t>(v.size()) != n) return false;
  std::sort(v.begin(), v.end());
  for (int64_t i = 0; i < n; ++i)
    if (v[i] != i) return false;
  return true;
}

struct Case {
  int64_t samples, batch;
  int world;
  bool drop_last;
};

class SharderEpoch : public ::testing::TestWithParam<Case> {};

TEST_P(SharderEpoch, SlicesTileBatchesAndCoverTheEpochOnce) {
  const Case c = GetParam();
  const uint64_t seed = 1234;
  const int64_t expected_steps = c.drop_last ? c.samples / c.batch : (c.samples + c.batch - 1) / c.batch;
  const int64_t covered = c.drop_last ? expected_steps * c.batch : c.samples;
  const Sharder s(c.samples, c.batch, c.drop_last, seed);
  ASSERT_EQ(s.samples(), c.samples);
  ASSERT_EQ(s.global_batch(), c.batch);
  ASSERT_EQ(s.steps_per_epoch(), expected_steps);

  for (int64_t epoch : {0, 1, 7}) {
    SCOPED_TRACE(::testing::Message() << "epoch " << epoch);
    std::vector<int64_t> perm;
    s.epoch_order(epoch, perm);
    ASSERT_TRUE(is_permutation_of_iota(perm, c.samples));

    // Each rank walks the epoch on its own, as it would in the trainer.
    std::vector<std::vector<int64_t>> taken(c.world);
    std::vector<int64_t> steps_run(c.world, 0);
    for (int r = 0; r < c.world; ++r) {
      for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
        const Range sl = s.slice(step, r, c.world);
        ASSERT_LE(sl.begin, sl.end);
        for (int64_t p = sl.begin; p < sl.end; ++p) taken[r].push_back(perm[p]);
        ++steps_run[r];
      }
    }
    for (int r = 0; r < c.world; ++r) EXPECT_EQ(steps_run[r], expected_steps) << "rank " << r;

    for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
      const Range b = s.batch(step);
      EXPECT_EQ(b.begin, step * c.batch);
      EXPECT_EQ(b.end, std::min((step + 1) * c.batch, c.samples));
      int64_t pos = b.begin, lo = b.size(), hi = 0;
      for (int r = 0; r < c.world; ++r) {
        const Range sl = s.slice(step, r, c.world);
        EXPECT_EQ(sl.begin, pos) << "step " << step << " rank " << r;  // contiguous, in rank order
        pos = sl.end;
        lo = std::min(lo, sl.size());
        hi = std::max(hi, sl.size());
        if (r > 0) {  // lower ranks get the extra
          EXPECT_GE(s.slice(step, r - 1, c.world).size(), sl.size());
        }
      }
      EXPECT_EQ(pos, b.end) << "step " << step;
      EXPECT_LE(hi - lo, 1) << "step " << step;
    }

    // Disjoint across ranks, and together exactly the covered prefix of the epoch order.
    std::vector<int64_t> all;
    for (const auto& t : taken) all.insert(all.end(), t.begin(), t.end());
    ASSERT_EQ(static_cast<int64_t>(all.size()), covered);
    std::vector<int64_t> expected(perm.begin(), perm.begin() + covered);
    std::sort(all.begin(), all.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a sample is taken twice";
    EXPECT_EQ(all, expected);
    if (!c.drop_last) {
      EXPECT_TRUE(is_permutation_of_iota(all, c.samples));
    }
  }
}

TEST_P(SharderEpoch, OrderDependsOnSeedAndEpochOnly) {
  const Case c = GetParam();
  const Sharder a(c.samples, c.batch, c.drop_last, 99), again(c.samples, c.batch, c.drop_last, 99);
  const Sharder other(c.samples, c.batch, c.drop_last, 100);
  std::vector<int64_t> e0, e1, e0_again, e0_other, reused(5, -1);
  a.epoch_order(0, e0);
  a.epoch_order(1, e1);
  again.epoch_order(0, e0_again);
  other.epoch_order(0, e0_other);
  a.epoch_order(1, reused);  // storage of another size and content is simply overwritten
  EXPECT_EQ(e0, e0_again);
  EXPECT_EQ(reused, e1);
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, e0_other);
  // Not a near-identity either: most positions move between epochs.
  int64_t same = 0;
  for (size_t i = 0; i < e0.size(); ++i) same += e0[i] == e1[i];
  if (c.samples >= 100) {
    EXPECT_LT(same, c.samples / 20);
  }
  // Asking for another epoch first gives the same epoch 0 afterwards (no hidden state).
  std::vector<int64_t> e0_later;
  again.epoch_order(5, e0_later);
  again.epoch_order(0, e0_later);
  EXPECT_EQ(e0_later, e0);
}

INSTANTIATE_TEST_SUITE_P(Cases, SharderEpoch,
                         ::testing::Values(Case{1000, 111, 3, false}, Case{1000, 111, 3, true},
                                           Case{1001, 64, 3, false}, Case{1001, 64, 3, true},
                                           Case{1000, 1000, 3, false}, Case{7, 3, 2, false}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           const Case& c = p.param;
                           return "n" + std::to_string(c.samples) + "_b" + std::to_string(c.batch) + "_w" +
                                  std::to_string(c.world) + (c.drop_last ? "_drop" : "_keep");
                         });

TEST(Sharder, LastBatchSmallerThanWorldLeavesSomeSlicesEmpty) {
  const int world = 5;
  const int64_t batch = 64, samples = 2 * batch + 2;  // the last batch has 2 samples for 5 ranks
  const Sharder s(samples, batch, false, 3);
  ASSERT_EQ(s.steps_per_epoch(), 3);
  const int64_t last = s.steps_per_epoch() - 1;
  EXPECT_EQ(s.batch(last).size(), 2);
  int64_t total = 0;
  for (int r = 0; r < world; ++r) {
    const Range sl = s.slice(last, r, world);
    EXPECT_EQ(sl.size(), r < 2 ? 1 : 0) << "rank " << r;
    EXPECT_GE(sl.begin, s.batch(last).begin);
    EXPECT_LE(sl.end, samples);
    total += sl.size();
  }
  EXPECT_EQ(total, 2);
}

TEST(Sharder, BatchLargerThanDataset) {
  // Without drop_last it is one short batch; with drop_last nothing would be left: a user error.
  const Sharder s(50, 64, false, 1);
  EXPECT_EQ(s.steps_per_epoch(), 1);
  EXPECT_EQ(s.batch(0).begin, 0);
  EXPECT_EQ(s.batch(0).end, 50);
  EXPECT_TRUE(throws_user_error([] { Sharder(50, 64, true, 1); }, {"train.drop_last", "64", "50"}));
  EXPECT_EQ(Sharder(64, 64, true, 1).steps_per_epoch(), 1);
}

TEST(SplitEvenly, PropertiesForManyTotalsAndParts) {
  std::vector<int64_t> totals;
  for (int64_t t = 0; t <= 40; ++t) totals.push_back(t);
  for (int64_t t : std::vector<int64_t>{99, 100, 101, 1000, 1001, 65537, int64_t(1) << 40}) totals.push_back(t);
  for (int64_t total : totals) {
    for (int parts = 1; parts <= 13; ++parts) {
      SCOPED_TRACE(::testing::Message() << "total " << total << " parts " << parts);
      int64_t pos = 0;
      const int64_t small = total / parts;
      int64_t big_count = 0;
      for (int r = 0; r < parts; ++r) {
        const Range rg = split_evenly(total, r, parts);
        ASSERT_EQ(rg.begin, pos);
        ASSERT_TRUE(rg.size() == small || rg.size() == small + 1) << "size " << rg.size();
        if (r > 0) {
          ASSERT_LE(rg.size(), split_evenly(total, r - 1, parts).size());
        }
        big_count += rg.size() == small + 1;
        pos = rg.end;
      }
      ASSERT_EQ(pos, total);
      ASSERT_EQ(big_count, total % parts);
    }
  }
  // Fewer elements than parts: the first `total` parts get one each, the rest none.
  for (int r = 0; r < 8; ++r) EXPECT_EQ(split_evenly(3, r, 8).size(), r < 3 ? 1 : 0);
}

TEST(HoldoutSplit, DisjointCompleteSizedAndSeeded) {
  const int64_t n = 1000, val = 137;
  const SplitRows a = holdout_split(n, val, 7), b = holdout_split(n, val, 7), c = holdout_split(n, val, 8);
  ASSERT_EQ(static_cast<int64_t>(a.val.size()), val);
  ASSERT_EQ(static_cast<int64_t>(a.train.size()), n - val);
  std::vector<int64_t> all(a.train);
  all.insert(all.end(), a.val.begin(), a.val.end());
  EXPECT_TRUE(is_permutation_of_iota(all, n));  // disjoint and covering
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  std::set<int64_t> va(a.val.begin(), a.val.end()), vc(c.val.begin(), c.val.end());
  EXPECT_NE(va, vc);
  // Chosen at random, not the first or last rows: about val/n of the first half is validation.
  int64_t in_first_half = 0;
  for (int64_t r : a.val) in_first_half += r < n / 2;
  EXPECT_GT(in_first_half, val / 4);
  EXPECT_LT(in_first_half, 3 * val / 4);
}

TEST(HoldoutSplit, EdgeSizes) {
  const SplitRows none = holdout_split(10, 0, 1);
  EXPECT_TRUE(none.val.empty());
  EXPECT_TRUE(is_permutation_of_iota(none.train, 10));
  const SplitRows one_left = holdout_split(10, 9, 1);
  EXPECT_EQ(one_left.train.size(), 1u);
  EXPECT_EQ(one_left.val.size(), 9u);
  EXPECT_TRUE(throws_user_error([] { holdout_split(10, 10, 1); }, {"data.val_size", "10"}));
  EXPECT_TRUE(throws_user_error([] { holdout_split(10, 11, 1); }, {"data.val_size", "11", "10"}));
}

}  // namespace
}  // namespace lockstep
