// The exit codes of `lockstep`, documented in the README, and the exception that carries an
// agreed (every-rank) failure to main.
#pragma once
#include <stdexcept>

namespace lockstep {

namespace exit_code {
constexpr int ok = 0;
constexpr int internal_error = 1;   // a failure on one rank; the job was aborted
constexpr int bad_input = 2;        // config, arguments or data rejected before training
constexpr int checkpoint_failed = 4; // a checkpoint could not be written; the previous one is intact (or
                                     // metrics.jsonl could not be written; the state's checkpoint was saved)
constexpr int non_finite = 5;        // a non-finite loss or gradient stopped training
constexpr int replica_drift = 6;     // the ranks' weights stopped being identical
constexpr int preempted = 75;        // stopped on SIGUSR1/SIGTERM after saving a checkpoint (EX_TEMPFAIL):
                                     // run the same command with --resume auto to continue
}  // namespace exit_code

// Thrown on every rank after a failure that every rank agreed on (the message is already printed).
struct AgreedFailure : std::runtime_error {
  int exit_code;
  explicit AgreedFailure(int code) : std::runtime_error("agreed failure"), exit_code(code) {}
};

}  // namespace lockstep
