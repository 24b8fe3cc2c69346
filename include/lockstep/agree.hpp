// Collective error agreement for the setup phase: every rank runs a piece of setup; if it
// throws on any rank, all ranks learn it through one allgather, the lowest failing rank prints
// its message once, and every rank throws AgreedFailure. No rank is left waiting in a
// collective that another rank skipped (invariant 7), and the message appears once.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "lockstep/comm.hpp"

namespace lockstep {

// Runs fn on this rank, then agrees with the others. Must be called by every rank.
// The message then says where it happened only when that tells something: see failure_location.
void collectively(Comm& comm, const std::function<void()>& fn, std::ostream& err);

// The note after the message, from every rank's outcome (failed: 0 none, else failed; message: a
// hash of its text; host: its host name): "" when the job is one rank, when every rank failed
// alike, or when rank 0 alone failed on a one-host job (the work only rank 0 does); else
// " [on rank 1 of 4 (host b); ranks 0, 2-3 (host a) reported no error]", naming also the ranks
// that failed with another message.
std::string failure_location(const std::vector<int>& failed, const std::vector<uint64_t>& message,
                             const std::vector<std::string>& host);

}  // namespace lockstep
