// BatchStager: a prefetched micro-batch is handed out only for the key and row count it was
// staged for, anything else is staged afresh, and a batch handed out stays intact while the
// next one is prefetched into the other slot.
#include <gtest/gtest.h>

#include <vector>

#include "lockstep/batch_stager.hpp"
#include "lockstep/check.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

constexpr int64_t kDim = 5;

// What gather gives for these rows, straight from the data source.
void expect_rows(const DataSource& data, const StagedBatch& b, const std::vector<int64_t>& rows) {
  const auto n = static_cast<int64_t>(rows.size());
  std::vector<float> x(static_cast<size_t>(n * kDim));
  std::vector<int32_t> y(static_cast<size_t>(n));
  data.gather(rows.data(), n, x.data(), y.data());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(b.x[i], x[i]) << "feature " << i;
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(b.y[i], y[i]) << "label " << i;
}

class BatchStagerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend();
  std::shared_ptr<MemoryData> data = test::synthetic_data(40, kDim, 3, 7);
  BatchStager stager{*be, 8, kDim};
};

TEST_F(BatchStagerTest, StagesOnDemandWithoutPrefetch) {
  const std::vector<int64_t> rows{3, 1, 4, 1, 5};
  const StagedBatch b = stager.acquire(*data, BatchKey{0, 0, 0}, rows.data(), 5);
  EXPECT_FALSE(stager.last_was_prefetched());
  expect_rows(*data, b, rows);
}

TEST_F(BatchStagerTest, HandsOutThePrefetchedBatchForItsKey) {
  const std::vector<int64_t> first{0, 2, 4}, second{9, 8, 7, 6};
  const StagedBatch a = stager.acquire(*data, BatchKey{1, 0, 0}, first.data(), 3);
  stager.prefetch(*data, BatchKey{1, 1, 0}, second.data(), 4);
  expect_rows(*data, a, first);  // the batch in use is untouched by the prefetch
  // Rows passed to acquire are ignored when the batch was prefetched: poison them.
  const std::vector<int64_t> poison{39, 39, 39, 39};
  const StagedBatch b = stager.acquire(*data, BatchKey{1, 1, 0}, poison.data(), 4);
  EXPECT_TRUE(stager.last_was_prefetched());
  EXPECT_NE(a.x, b.x);
  expect_rows(*data, b, second);
}

TEST_F(BatchStagerTest, RestagesWhenTheKeyOrRowCountDiffers) {
  const std::vector<int64_t> staged{10, 11, 12}, wanted{20, 21, 22};
  stager.acquire(*data, BatchKey{2, 0, 0}, staged.data(), 3);
  stager.prefetch(*data, BatchKey{2, 1, 0}, staged.data(), 3);
  StagedBatch b = stager.acquire(*data, BatchKey{2, 1, 1}, wanted.data(), 3);  // other micro-batch
  EXPECT_FALSE(stager.last_was_prefetched());
  expect_rows(*data, b, wanted);
  stager.prefetch(*data, BatchKey{3, 0, 0}, staged.data(), 3);
  b = stager.acquire(*data, BatchKey{3, 0, 0}, wanted.data(), 2);  // other row count
  EXPECT_FALSE(stager.last_was_prefetched());
  expect_rows(*data, b, {20, 21});
  // A prefetch is consumed once: asking for the same key again stages afresh.
  stager.prefetch(*data, BatchKey{4, 0, 0}, staged.data(), 3);
  stager.acquire(*data, BatchKey{4, 0, 0}, staged.data(), 3);
  EXPECT_TRUE(stager.last_was_prefetched());
  b = stager.acquire(*data, BatchKey{4, 0, 0}, wanted.data(), 3);
  EXPECT_FALSE(stager.last_was_prefetched());
  expect_rows(*data, b, wanted);
}

TEST_F(BatchStagerTest, RejectsBatchesLargerThanItsSlots) {
  const std::vector<int64_t> rows(9, 0);
  EXPECT_THROW(stager.acquire(*data, BatchKey{0, 0, 0}, rows.data(), 9), Error);
}

}  // namespace
}  // namespace lockstep
