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

TEST(Launch, ExplicitSingleRankIsAllowed) {
  EXPECT_EQ(launch_mismatch(1, env_of({{"SLURM_NTASKS", "4"}, {"LOCKSTEP_ALLOW_SINGLE_RANK", "1"}})), "");
}

}  // namespace
}  // namespace lockstep
