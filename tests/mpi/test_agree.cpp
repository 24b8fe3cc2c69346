// collectively() under mpirun -np 1, 2 and 3: one message, printed once, by the lowest failing
// rank; plain when every rank failed alike (no "[rank 0 on host]"), with the ranks and host when
// only some ranks failed. Every rank ends with the agreed exit code.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/exit_codes.hpp"

namespace lockstep {
namespace {

// Runs fn collectively; returns what this rank printed and sets the exit code (-1: no failure).
std::string outcome(Comm& comm, const std::function<void()>& fn, int& code) {
  std::ostringstream err;
  code = -1;
  try {
    collectively(comm, fn, err);
  } catch (const AgreedFailure& f) {
    code = f.exit_code;
  }
  return err.str();
}

TEST(Agree, EveryRankFailingAlikePrintsThePlainMessageOnce) {
  auto comm = make_mpi_comm();
  int code = 0;
  const std::string out =
      outcome(*comm, [] { throw UserError("key train.epochs: must be >= 1, got 0"); }, code);
  EXPECT_EQ(code, exit_code::bad_input);
  EXPECT_EQ(out, comm->rank() == 0 ? "lockstep: error: key train.epochs: must be >= 1, got 0\n" : "");
}

TEST(Agree, OnlySomeRanksFailingNamesThemAndTheirHost) {
  auto comm = make_mpi_comm();
  const int last = comm->size() - 1;
  int code = 0;
  const std::string out = outcome(
      *comm, [&] { LOCKSTEP_REQUIRE(comm->rank() != last, "/scratch/x.h5: cannot open (No such file or directory)"); },
      code);
  EXPECT_EQ(code, exit_code::bad_input);
  std::string expected;
  if (comm->rank() == last) {
    expected = "lockstep: error: /scratch/x.h5: cannot open (No such file or directory)";
    if (comm->size() > 1)
      expected += " [on rank " + std::to_string(last) + " of " + std::to_string(comm->size()) + " (host " +
                  comm->host() + "); rank" + (last > 1 ? "s 0-" : " ") + std::to_string(last - 1) +
                  " reported no error]";
    expected += "\n";
  }
  EXPECT_EQ(out, expected);
}

TEST(Agree, RankZeroAloneOnOneHostIsThePlainMessage) {
  // The pattern of work only rank 0 does (a checkpoint read, a conversion): where is noise.
  auto comm = make_mpi_comm();
  int code = 0;
  const std::string out = outcome(
      *comm, [&] { LOCKSTEP_REQUIRE(comm->rank() != 0, "checkpoint c.h5: not an HDF5 file"); }, code);
  EXPECT_EQ(code, exit_code::bad_input);
  EXPECT_EQ(out, comm->rank() == 0 ? "lockstep: error: checkpoint c.h5: not an HDF5 file\n" : "");
  // An internal error keeps exit code 1, and a success passes on every rank.
  const std::string internal = outcome(*comm, [] { throw Error("broken invariant [x at src/y.cpp:1]"); }, code);
  EXPECT_EQ(code, exit_code::internal_error);
  EXPECT_EQ(internal, comm->rank() == 0 ? "lockstep: error: broken invariant [x at src/y.cpp:1]\n" : "");
  EXPECT_EQ(outcome(*comm, [] {}, code), "");
  EXPECT_EQ(code, -1);
}

}  // namespace
}  // namespace lockstep
