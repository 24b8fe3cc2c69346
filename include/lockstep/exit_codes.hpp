// The exit codes of `lockstep`, documented in the README, and the exception that carries an
// agreed (every-rank) failure to main.
#pragma once
#include <stdexcept>

namespace lockstep {

namespace exit_code {
constexpr int ok = 0;
constexpr int internal_error = 1;   // a failure on one rank; the job was aborted
constexpr int bad_input = 2;        // config, arguments or data rejected before training
}  // namespace exit_code

// Thrown on every rank after a failure that every rank agreed on (the message is already printed).
struct AgreedFailure : std::runtime_error {
  int exit_code;
  explicit AgreedFailure(int code) : std::runtime_error("agreed failure"), exit_code(code) {}
};

}  // namespace lockstep
