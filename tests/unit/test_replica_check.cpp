// replicas_that_differ: the replica-drift message names the ranks whose weight checksum differs
// from the one most ranks hold, whichever ranks they are (rank 0 included), and every group when
// no checksum has a majority. (The check itself, across ranks: tests/mpi/test_faults.cpp.)
#include <gtest/gtest.h>

#include "lockstep/trainer.hpp"

namespace lockstep {
namespace {

TEST(ReplicaCheck, IdenticalChecksumsGiveNoMessage) {
  EXPECT_EQ(replicas_that_differ({7, 7, 7, 7}), "");
  EXPECT_EQ(replicas_that_differ({7}), "");
}

TEST(ReplicaCheck, TheMinorityIsNamedWhicheverRanksItHolds) {
  EXPECT_EQ(replicas_that_differ({5, 5, 9}),
            "rank(s) 2 (checksum 0000000000000009) hold weights that differ from those of the other 2 ranks "
            "(checksum 0000000000000005)");
  EXPECT_EQ(replicas_that_differ({9, 5, 5, 5}),
            "rank(s) 0 (checksum 0000000000000009) hold weights that differ from those of the other 3 ranks "
            "(checksum 0000000000000005)");
  EXPECT_EQ(replicas_that_differ({5, 8, 5, 9, 5}),
            "rank(s) 1 (checksum 0000000000000008), 3 (checksum 0000000000000009) hold weights that differ from "
            "those of the other 3 ranks (checksum 0000000000000005)");
}

TEST(ReplicaCheck, WithoutAMajorityEveryGroupIsNamed) {
  EXPECT_EQ(replicas_that_differ({5, 9}),
            "no majority among the 2 ranks: rank(s) 0 hold checksum 0000000000000005, rank(s) 1 (checksum "
            "0000000000000009) differ");
  EXPECT_EQ(replicas_that_differ({9, 5, 5, 9}),
            "no majority among the 4 ranks: rank(s) 0, 3 hold checksum 0000000000000009, rank(s) 1 (checksum "
            "0000000000000005), 2 (checksum 0000000000000005) differ");
}

}  // namespace
}  // namespace lockstep
