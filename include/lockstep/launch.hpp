// Launch sanity: a job started as N tasks whose MPI library sees a world of 1 (the launcher and
// the MPI library speak different PMI flavours, e.g. srun --mpi=pmi2 with an Open MPI that only
// has PMIx) would run N independent trainings into one run directory. Detected from the
// launchers' environment variables and refused with a hint.
#pragma once
#include <functional>
#include <string>

namespace lockstep {

using EnvLookup = std::function<const char*(const char*)>;

// "" when consistent, else the message. LOCKSTEP_ALLOW_SINGLE_RANK=1 accepts a single rank.
std::string launch_mismatch(int world_size, const EnvLookup& env);

// Throws UserError when launch_mismatch finds a problem in this process's environment.
void check_launch(int world_size);

}  // namespace lockstep
