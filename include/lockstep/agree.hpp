// Collective error agreement for the setup phase: every rank runs a piece of setup; if it
// throws on any rank, all ranks learn it through one allgather, the lowest failing rank prints
// its message once, and every rank throws AgreedFailure. No rank is left waiting in a
// collective that another rank skipped (invariant 7), and the message appears once.
#pragma once
#include <functional>
#include <iosfwd>

#include "lockstep/comm.hpp"

namespace lockstep {

// Runs fn on this rank, then agrees with the others. Must be called by every rank.
void collectively(Comm& comm, const std::function<void()>& fn, std::ostream& err);

}  // namespace lockstep
