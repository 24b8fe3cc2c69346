// PMI mismatch detection (see launch.hpp).
#include "lockstep/launch.hpp"

#include <cstdlib>

#include "lockstep/check.hpp"

namespace lockstep {

std::string launch_mismatch(int world_size, const EnvLookup& env) {
  if (world_size != 1) return "";
  if (const char* allow = env("LOCKSTEP_ALLOW_SINGLE_RANK"); allow && std::string(allow) == "1") return "";
  // Variables that launchers set to the number of processes they started, the one closest to this
  // process first: an srun step, then an MPI launcher, then the Slurm allocation. The first one
  // set decides, so `mpirun -np 1` inside a 4-task allocation (OMPI_COMM_WORLD_SIZE=1 beside
  // SLURM_NTASKS=4) is one rank on purpose, while a batch script of 4 tasks that starts
  // lockstep without srun or mpirun (only SLURM_NTASKS=4) is refused.
  for (const char* name : {"SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    const char* v = env(name);
    if (!v || !*v) continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end == v) continue;
    if (n <= 1) return "";
    return fmt("MPI reports a world of 1 rank, but ", name, "=", v, " says ", n,
               " tasks were started: the launcher and the MPI library do not speak the same PMI, so each task "
               "would train alone into the same run directory (or lockstep was started without srun or "
               "mpirun). Under Slurm launch with srun --mpi=pmix "
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
