// Where an agreed setup failure says it happened (agree.hpp): nothing when the job is one rank,
// when every rank failed alike, or when rank 0 alone failed on a one-host job; the ranks and
// hosts when only some ranks failed, or when they failed differently. The multi-rank printing
// itself is in tests/mpi/test_agree.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lockstep/agree.hpp"

namespace lockstep {
namespace {

TEST(FailureLocation, NoNoteWhenEveryRankAgreesOrTheJobIsOneRank) {
  EXPECT_EQ(failure_location({1}, {7}, {"vm"}), "");
  EXPECT_EQ(failure_location({1, 1, 1}, {7, 7, 7}, {"vm", "vm", "vm"}), "");
  EXPECT_EQ(failure_location({1, 1, 1, 1}, {7, 7, 7, 7}, {"a", "a", "b", "b"}), "");  // two hosts, one failure
  // Rank 0 alone on a one-host job: what only rank 0 does (reading a checkpoint, converting).
  EXPECT_EQ(failure_location({1, 0}, {7, 0}, {"vm", "vm"}), "");
  EXPECT_EQ(failure_location({0, 0}, {0, 0}, {"vm", "vm"}), "");  // no failure at all
}

TEST(FailureLocation, SomeRanksFailingAreNamedWithTheirHosts) {
  // A file missing on one node: ranks 2 and 3 (host b) fail, 0 and 1 (host a) do not.
  EXPECT_EQ(failure_location({0, 0, 1, 1}, {0, 0, 9, 9}, {"a", "a", "b", "b"}),
            " [on ranks 2-3 of 4 (host b); ranks 0-1 (host a) reported no error]");
  EXPECT_EQ(failure_location({0, 1}, {0, 9}, {"vm", "vm"}), " [on rank 1 of 2 (host vm); rank 0 reported no error]");
  // Rank 0 alone on a job of several hosts: its host is worth knowing.
  EXPECT_EQ(failure_location({1, 0, 0}, {9, 0, 0}, {"a", "b", "c"}),
            " [on rank 0 of 3 (host a); ranks 1-2 (hosts b, c) reported no error]");
  // Ranks that failed with another message are told apart.
  EXPECT_EQ(failure_location({1, 1, 0}, {9, 8, 0}, {"a", "a", "a"}),
            " [on rank 0 of 3 (host a); rank 1 failed otherwise; rank 2 reported no error]");
  EXPECT_EQ(failure_location({1, 1}, {9, 8}, {"a", "b"}), " [on rank 0 of 2 (host a); rank 1 failed otherwise]");
}

TEST(FailureLocation, LongRankListsAreRangesAndCut) {
  std::vector<int> failed(40, 0);
  std::vector<uint64_t> msg(40, 0);
  std::vector<std::string> host(40, "h");
  for (int r : {1, 3, 5, 7, 9, 11, 13, 20, 21, 22}) failed[r] = 1, msg[r] = 5;
  const std::string s = failure_location(failed, msg, host);
  EXPECT_EQ(s.substr(0, 39), " [on ranks 1, 3, 5, 7, 9, 11, ... (10 r") << s;
  EXPECT_NE(s.find("reported no error]"), std::string::npos) << s;
}

}  // namespace
}  // namespace lockstep
