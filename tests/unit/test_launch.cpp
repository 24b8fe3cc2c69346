// Launch sanity: a world of 1 while the launcher's variables say more tasks were started is
// refused with a hint; consistent launches and explicit single-rank runs pass.
#include <gtest/gtest.h>

#include <map>

#include "lockstep/launch.hpp"

namespace lockstep {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(Launch, SingleRankUnderMultiTaskSrunIsRefusedWithHint) {
  const std::string why = launch_mismatch(1, env_of({{"SLURM_NTASKS", "4"}, {"SLURM_STEP_NUM_TASKS", "4"}}));
  EXPECT_NE(why.find("SLURM_STEP_NUM_TASKS=4"), std::string::npos) << why;
  EXPECT_NE(why.find("srun --mpi=pmix"), std::string::npos) << why;
  EXPECT_NE(why.find("mpirun -np 4"), std::string::npos) << why;
}

TEST(Launch, OtherLaunchersVariablesAreChecked) {
  EXPECT_NE(launch_mismatch(1, env_of({{"OMPI_COMM_WORLD_SIZE", "2"}})), "");
  EXPECT_NE(launch_mismatch(1, env_of({{"PMI_SIZE", "8"}})), "");
  EXPECT_NE(launch_mismatch(1, env_of({{"PMIX_SIZE", "3"}})), "");
}

TEST(Launch, ConsistentLaunchesPass) {
  EXPECT_EQ(launch_mismatch(4, env_of({{"SLURM_NTASKS", "4"}})), "");
  EXPECT_EQ(launch_mismatch(1, env_of({})), "");
  EXPECT_EQ(launch_mismatch(1, env_of({{"SLURM_NTASKS", "1"}, {"OMPI_COMM_WORLD_SIZE", "1"}})), "");
  EXPECT_EQ(launch_mismatch(1, env_of({{"SLURM_NTASKS", "x"}})), "");
}

TEST(Launch, TheLauncherClosestToTheProcessDecides) {
  // mpirun -np 1 inside a 2-task allocation: one rank on purpose.
  EXPECT_EQ(launch_mismatch(1, env_of({{"SLURM_NTASKS", "2"}, {"OMPI_COMM_WORLD_SIZE", "1"}})), "");
  // srun -n 1 inside it: the step's count, not the allocation's.
  EXPECT_EQ(launch_mismatch(1, env_of({{"SLURM_NTASKS", "2"}, {"SLURM_STEP_NUM_TASKS", "1"}})), "");
  // A batch script of 2 tasks that starts lockstep without a launcher: only the allocation speaks.
  const std::string why = launch_mismatch(1, env_of({{"SLURM_NTASKS", "2"}}));
  EXPECT_NE(why.find("SLURM_NTASKS=2"), std::string::npos) << why;
  EXPECT_NE(why.find("without srun or mpirun"), std::string::npos) << why;
  // A 4-task srun step whose MPI sees 1 rank is refused whatever mpirun variables linger.
  EXPECT_NE(launch_mismatch(1, env_of({{"SLURM_STEP_NUM_TASKS", "4"}, {"OMPI_COMM_WORLD_SIZE", "1"}})), "");
  // An unreadable value does not hide the next variable.
  EXPECT_NE(launch_mismatch(1, env_of({{"OMPI_COMM_WORLD_SIZE", "x"}, {"SLURM_NTASKS", "3"}})), "");
}

TEST(Launch, ExplicitSingleRankIsAllowed) {
  EXPECT_EQ(launch_mismatch(1, env_of({{"SLURM_NTASKS", "4"}, {"LOCKSTEP_ALLOW_SINGLE_RANK", "1"}})), "");
}

}  // namespace
}  // namespace lockstep
