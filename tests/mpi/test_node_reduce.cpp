// The node-shared gradient allreduce (Comm::make_reduce_buffer), under mpirun -np 1..4: a buffer
// exists exactly when a node holds several ranks (and every node as many); its allreduce gives
// exact sums for integer-valued floats at sizes around the block and share boundaries and on
// ranges inside the buffer, bitwise the rank-order sum for arbitrary floats, the same bits on
// every rank, and keeps working with several buffers alive and released in any order. Groups of
// ranks acting as nodes (make_mpi_comm(k)) reach the path of a job spread over several nodes.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "lockstep/comm.hpp"
#include "lockstep/trainer.hpp"
#include "mpi/mpi_support.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// Element i of rank r: a small integer, so any order of float additions gives the exact sum.
float exact_value(size_t i, int rank) { return static_cast<float>((i * 7 + static_cast<size_t>(rank) * 3) % 11); }
float exact_sum(size_t i, int ranks) {
  int s = 0;
  for (int r = 0; r < ranks; ++r) s += static_cast<int>((i * 7 + static_cast<size_t>(r) * 3) % 11);
  return static_cast<float>(s);
}

// Whether this world, grouped into nodes of k ranks (0: the real nodes), gets a shared buffer:
// nodes of more than one rank, all of the same size.
bool expect_shared(const Comm& comm, int k) {
  if (comm.size() == 1) return false;
  if (k == 0) return true;  // mpirun on one machine: a single node of every rank
  return k > 1 && comm.size() % k == 0;
}


class NodeReduce : public ::testing::TestWithParam<int> {};

TEST_P(NodeReduce, ExactSumsAtEverySizeAndRange) {
  const int k = GetParam();
  auto comm = make_mpi_comm(k);
  const int p = comm->size();
  const size_t cap = 70000;
  auto buf = comm->make_reduce_buffer(cap);
  ASSERT_EQ(buf != nullptr, expect_shared(*comm, k)) << "np " << p << ", nodes of " << k;
  if (!buf) GTEST_SKIP() << "no shared buffer for np " << p << " in nodes of " << k << " (as expected)";
  ASSERT_GE(buf->size(), cap);
  float* x = buf->data();
  for (size_t i = 0; i < cap; ++i) ASSERT_EQ(x[i], 0.0f) << "not zeroed at " << i;
  // Sizes around the 1024-element block and the split into per-rank shares; ranges that start
  // inside the buffer, as the trainable ranges of a fine-tune do.
  for (size_t offset : {size_t{0}, size_t{5}, size_t{4093}}) {
    for (size_t n : {size_t{1}, size_t{2}, size_t{7}, size_t{1023}, size_t{1024}, size_t{1025}, size_t{3 * 1024 + 1},
                     size_t{65536}}) {
      if (offset + n > cap) continue;
      SCOPED_TRACE(testing::Message() << "offset " << offset << ", n " << n);
      for (size_t i = 0; i < cap; ++i) x[i] = -1.0f;  // outside [offset, offset + n) must stay as it is
      for (size_t i = 0; i < n; ++i) x[offset + i] = exact_value(i, comm->rank());
      comm->allreduce_sum(x + offset, n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(x[offset + i], exact_sum(i, p)) << "element " << i;
      for (size_t i = 0; i < offset; ++i) ASSERT_EQ(x[i], -1.0f) << "written before the range at " << i;
      for (size_t i = offset + n; i < cap; ++i) ASSERT_EQ(x[i], -1.0f) << "written after the range at " << i;
    }
  }
}

TEST_P(NodeReduce, ArbitraryFloatsGiveTheSameBitsEverywhere) {
  const int k = GetParam();
  auto comm = make_mpi_comm(k);
  const size_t n = 5000;
  auto buf = comm->make_reduce_buffer(n);
  ASSERT_EQ(buf != nullptr, expect_shared(*comm, k));
  if (!buf) GTEST_SKIP() << "no shared buffer here (as expected)";
  std::mt19937 gen(static_cast<unsigned>(17 + comm->rank()));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> mine(n);
  for (float& v : mine) v = u(gen) * 1e3f;
  std::memcpy(buf->data(), mine.data(), n * sizeof(float));
  comm->allreduce_sum(buf->data(), n);
  test::expect_same_on_all_ranks(*comm, buf->data(), n);
  // On one node every element is the sum in rank order, computed once.
  std::vector<float> all(n * static_cast<size_t>(comm->size()));
  comm->allgather(mine.data(), n * sizeof(float), all.data());
  if (k == 0) {
    for (size_t i = 0; i < n; ++i) {
      float s = all[i];
      for (int r = 1; r < comm->size(); ++r) s += all[static_cast<size_t>(r) * n + i];
      ASSERT_EQ(buf->data()[i], s) << "element " << i;
    }
  } else {
    // Across nodes MPI adds the node sums in its own order: within the rounding of p terms.
    for (size_t i = 0; i < n; ++i) {
      double s = 0.0, mag = 0.0;
      for (int r = 0; r < comm->size(); ++r) {
        s += all[static_cast<size_t>(r) * n + i];
        mag += std::abs(all[static_cast<size_t>(r) * n + i]);
      }
      ASSERT_NEAR(buf->data()[i], s, 4.0 * comm->size() * 6e-8 * mag) << "element " << i;
    }
  }
}

TEST_P(NodeReduce, SeveralBuffersReleasedInAnyOrder) {
  const int k = GetParam();
  auto comm = make_mpi_comm(k);
  auto a = comm->make_reduce_buffer(100);
  auto b = comm->make_reduce_buffer(3000);
  ASSERT_EQ(a != nullptr, expect_shared(*comm, k));
  ASSERT_EQ(b != nullptr, expect_shared(*comm, k));
  if (!a) GTEST_SKIP() << "no shared buffer here (as expected)";
  EXPECT_NE(a->data(), b->data());
  for (size_t i = 0; i < 100; ++i) a->data()[i] = exact_value(i, comm->rank());
  for (size_t i = 0; i < 3000; ++i) b->data()[i] = exact_value(i + 1, comm->rank());
  a.reset();  // released first, though made first; b keeps working, and a new one can be made
  comm->allreduce_sum(b->data(), 3000);
  for (size_t i = 0; i < 3000; ++i) ASSERT_EQ(b->data()[i], exact_sum(i + 1, comm->size()));
  auto c = comm->make_reduce_buffer(50);
  ASSERT_TRUE(c);
  for (size_t i = 0; i < 50; ++i) c->data()[i] = 1.0f;
  comm->allreduce_sum(c->data(), 50);
  for (size_t i = 0; i < 50; ++i) ASSERT_EQ(c->data()[i], static_cast<float>(comm->size()));
  // A plain buffer still goes through MPI.
  std::vector<float> plain(10, 2.0f);
  comm->allreduce_sum(plain.data(), plain.size());
  for (float v : plain) ASSERT_EQ(v, 2.0f * static_cast<float>(comm->size()));
}

// 0: the real node (every rank of this machine); 1, 2: groups of ranks acting as nodes.
INSTANTIATE_TEST_SUITE_P(Nodes, NodeReduce, ::testing::Values(0, 1, 2));

TEST(NodeReduce, TrainingThroughSharedMemoryMatchesMpiAllreduce) {
  auto comm = make_mpi_comm();
  auto be = make_cpu_backend();
  auto data = test::synthetic_data(240, 12, 3, 3);
  Config cfg = test::small_config({12, 20, 3}, 48, 2);
  cfg.optimizer.name = OptimizerKind::adam;
  cfg.optimizer.clip_norm = 0.5;
  auto train = [&](bool shared) {
    cfg.run.shared_memory_allreduce = shared;
    Datasets ds;
    ds.train = data;
    Trainer t(cfg, *comm, *be, ds);
    t.run();
    return t.model().get_params();
  };
  const std::vector<float> shm = train(true), mpi = train(false);
  test::expect_same_on_all_ranks(*comm, shm.data(), shm.size());
  // The same per-rank sums added in another order at most: rounding only.
  EXPECT_TRUE(test::all_close(shm, std::vector<double>(mpi.begin(), mpi.end()), 1e-5, 1e-6));
  if (comm->size() <= 2) {
    // Two terms add the same whichever comes first: bitwise the MPI result.
    EXPECT_EQ(std::memcmp(shm.data(), mpi.data(), shm.size() * sizeof(float)), 0);
  }
}

}  // namespace
}  // namespace lockstep
