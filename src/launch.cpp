// PMI mismatch detection (see launch.hpp).
#include "lockstep/launch.hpp"

#include <cstdlib>

#include "lockstep/check.hpp"

namespace lockstep {

std::string launch_mismatch(int world_size, const EnvLookup& env) {
  if (world_size != 1) return "";
  if (const char* allow = env("LOCKSTEP_ALLOW_SINGLE_RANK"); allow && std::string(allow) == "1") return "";
  // Variables that launchers set to the number of processes they started.
  for (const char* name : {"SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const char* v = env(name);
    if (!v || !*v) continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end == v || n <= 1) continue;
    return fmt("MPI reports a world of 1 rank, but ", name, "=", v, " says ", n,
               " tasks were started: the launcher and the MPI library do not speak the same PMI, so each task "
               "would train alone into the same run directory. Under Slurm launch with srun --mpi=pmix "
               "(Debian's Open MPI has PMIx, not PMI-2) or with mpirun -np ", n,
               " inside the allocation; to run one rank inside a larger allocation on purpose, set "
               "LOCKSTEP_ALLOW_SINGLE_RANK=1");
  }
  return "";
}

void check_launch(int world_size) {
  const std::string why = launch_mismatch(world_size, [](const char* n) { return std::getenv(n); });
  LOCKSTEP_REQUIRE(why.empty(), why);
}

}  // namespace lockstep
