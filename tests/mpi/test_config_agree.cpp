// Start-up agreement across ranks (config_agree.hpp): ranks that resolved different configs, run
// different commands or read different data all end with exit code 2, rank 0 printing one message
// that names the ranks that differ and each differing key (or file) with both values; identical
// ranks pass untouched.
#include <gtest/gtest.h>

#include <sstream>

#include "lockstep/comm.hpp"
#include "lockstep/config_agree.hpp"
#include "lockstep/exit_codes.hpp"

namespace lockstep {
namespace {

int code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const AgreedFailure& e) {
    return e.exit_code;
  }
  return 0;
}

TEST(ConfigAgreement, IdenticalConfigsPass) {
  auto comm = make_mpi_comm();
  std::ostringstream err;
  EXPECT_EQ(code_of([&] { agree_on_config(*comm, Config{}, {{"command", "train"}}, err); }), 0);
  EXPECT_EQ(code_of([&] { agree_on_command(*comm, "train", "", err); }), 0);
  EXPECT_EQ(err.str(), "");
}

TEST(ConfigAgreement, TheLastRankWithOtherKeysIsNamedByRankZeroOnly) {
  auto comm = make_mpi_comm();
  const int last = comm->size() - 1;
  Config cfg;
  if (comm->size() > 1 && comm->rank() == last) {
    cfg.train.epochs = 1;
    cfg.data.val_size = 4000;
  }
  std::ostringstream err;
  const int code = code_of([&] { agree_on_config(*comm, cfg, {{"command", "train"}}, err); });
  if (comm->size() == 1) {
    EXPECT_EQ(code, 0);
    return;
  }
  EXPECT_EQ(code, exit_code::bad_input);
  if (comm->rank() != 0) {
    EXPECT_EQ(err.str(), "");
    return;
  }
  const std::string m = err.str();
  EXPECT_EQ(m.rfind("lockstep: error: the ranks resolved different configs", 0), 0u) << m;
  EXPECT_NE(m.find("  rank " + std::to_string(last) + " differs from rank 0 in:\n    data.val_size: rank 0 has 5000, rank " +
                   std::to_string(last) + " has 4000\n    train.epochs: rank 0 has 20, rank " + std::to_string(last) +
                   " has 1\n"),
            std::string::npos) << m;
  EXPECT_EQ(m.find("model.layers"), std::string::npos) << m;
}

TEST(ConfigAgreement, SeveralGroupsAreEachNamed) {
  auto comm = make_mpi_comm();
  if (comm->size() < 3) GTEST_SKIP() << "needs 3 ranks";
  // Ranks 1 and 2 (and any further ones) share one seed, rank 0 has another.
  Config cfg;
  if (comm->rank() > 0) cfg.run.seed = 7;
  std::ostringstream err;
  EXPECT_EQ(code_of([&] { agree_on_config(*comm, cfg, {}, err); }), exit_code::bad_input);
  if (comm->rank() == 0) {
    const std::string who = comm->size() == 3 ? "ranks 1, 2" : "ranks 1-" + std::to_string(comm->size() - 1);
    EXPECT_NE(err.str().find("  " + who + " differ from rank 0 in:\n    run.seed: rank 0 has 42, rank 1 has 7"),
              std::string::npos) << err.str();
  }
}

TEST(ConfigAgreement, DifferentCommandsOrAFailedParseEndEveryRank) {
  auto comm = make_mpi_comm();
  if (comm->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const int last = comm->size() - 1;
  std::ostringstream err;
  EXPECT_EQ(code_of([&] { agree_on_command(*comm, comm->rank() == last ? "eval" : "train", "", err); }),
            exit_code::bad_input);
  if (comm->rank() == 0)
    EXPECT_NE(err.str().find("the ranks were not started with the same command line: "), std::string::npos) << err.str();
  if (comm->rank() == 0) EXPECT_NE(err.str().find("rank " + std::to_string(last) + " runs `eval`"), std::string::npos);
  // The rank that could not parse is the one that speaks: only it knows why.
  std::ostringstream err2;
  EXPECT_EQ(code_of([&] {
              agree_on_command(*comm, comm->rank() == last ? "" : "train",
                               comm->rank() == last ? "The following argument was not expected: --bogus" : "", err2);
            }),
            exit_code::bad_input);
  if (comm->rank() == last) {
    EXPECT_NE(err2.str().find("rank " + std::to_string(last) + " could not parse theirs (The following argument was "
                              "not expected: --bogus)"),
              std::string::npos) << err2.str();
  } else {
    EXPECT_EQ(err2.str(), "");
  }
  // No rank parsed: nothing agreed to report, the caller prints the parse error.
  std::ostringstream err3;
  EXPECT_EQ(code_of([&] { agree_on_command(*comm, "", "bad", err3); }), 0);
  EXPECT_EQ(err3.str(), "");
}

TEST(DataAgreement, IdenticalDataPassAndTheLastRanksOtherCopyEndsEveryRank) {
  auto comm = make_mpi_comm();
  const int last = comm->size() - 1;
  std::vector<DataFileFingerprint> files{{"data.train_images = tr.h5", 8, "1111111111111111"},
                                         {"data.test_images = t.h5", 4, "2222222222222222"}};
  std::ostringstream err;
  EXPECT_EQ(code_of([&] { agree_on_data(*comm, files, err); }), 0);
  EXPECT_EQ(err.str(), "");
  // The last rank's test file differs (another copy behind the same relative path).
  if (comm->rank() == last) files[1].fingerprint = "3333333333333333";
  const int code = code_of([&] { agree_on_data(*comm, files, err); });
  // Afterwards the ranks are still in step: one more agreement passes on every rank.
  files[1].fingerprint = "2222222222222222";
  std::ostringstream again;
  EXPECT_EQ(code_of([&] { agree_on_data(*comm, files, again); }), 0);
  EXPECT_EQ(again.str(), "");
  if (comm->size() == 1) {
    EXPECT_EQ(code, 0);
    return;
  }
  EXPECT_EQ(code, exit_code::bad_input);
  if (comm->rank() != 0) {
    EXPECT_EQ(err.str(), "") << "the message is printed once, by rank 0";
    return;
  }
  const std::string m = err.str(), r = std::to_string(last), host = comm->host();
  EXPECT_EQ(m.rfind("lockstep: error: the ranks read different data:\n  data.test_images = t.h5: ", 0), 0u) << m;
  EXPECT_NE(m.find("rank " + r + " (host " + host + ") reads 4 samples with fingerprint 3333333333333333"),
            std::string::npos) << m;
  EXPECT_NE(m.find(" 4 samples with fingerprint 2222222222222222"), std::string::npos) << m;
  EXPECT_NE(m.find(comm->size() == 2 ? "no majority among the 2 ranks" : "rank " + r + " differs from the other"),
            std::string::npos) << m;
  EXPECT_EQ(m.find("data.train_images"), std::string::npos) << "the training file agrees: " << m;
}

}  // namespace
}  // namespace lockstep
