// lockstep's entry point: start MPI, set up the process, run the command line, and turn any
// error into one message and an exit of every rank (invariant 7).
#include <cstring>
#include <exception>
#include <iostream>

#include "cli.hpp"
#include "lockstep/check.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/runtime.hpp"
#include "lockstep/signals.hpp"

namespace {

// Everything between MPI_Init and MPI_Finalize; returns the exit code.
int run(int argc, char** argv) {
  using namespace lockstep;
  MpiSession mpi(&argc, &argv);
  std::unique_ptr<Comm> comm;
  try {
    comm = make_mpi_comm();
    enable_flush_to_zero();
    configure_blas_threads();
    return run_cli(argc, argv, *comm);
  } catch (const AgreedFailure& f) {
    // Every rank saw the failure and one of them already printed it: a clean, collective exit.
    return f.exit_code;
  } catch (const std::exception& e) {
    // A failure on this rank alone: the others may be waiting in a collective, so end them all.
    std::cerr << "lockstep: error on rank " << (comm ? comm->rank() : -1) << " (" << (comm ? comm->host() : "?")
              << "): " << e.what() << std::endl;
    MpiSession::abort_all(exit_code::internal_error);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // After a checkpoint or convert write that ran out of space, HDF5 could not close the file, and
  // libhdf5 1.10's exit-time cleanup then crashed on it: exit code 4 became a segfault
  // (tests/robustness/test_disk_full.sh). Every handle is closed by its owner, so that cleanup
  // has nothing else to do: skip it.
  lockstep::h5::skip_library_cleanup_at_exit();
  // A stop request (SIGUSR1, SIGTERM) to a training job is honoured at its first step boundary
  // however early it comes: the handlers go in before MPI_Init, which takes a while on a large
  // allocation, not only once the command line is parsed. Other commands keep the default
  // action (a signal ends them).
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;
    if (std::strcmp(argv[i], "train") == 0 || std::strcmp(argv[i], "distill") == 0)
      lockstep::install_stop_signal_handlers();
    break;
  }
  return run(argc, argv);
}
