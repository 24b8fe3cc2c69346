// What a start removes from a checkpoint directory: the temporaries of an interrupted save and
// nothing else (it once removed every name containing ".tmp", a user's draft.tmp included).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "lockstep/checkpointer.hpp"

namespace lockstep {
namespace {

namespace fs = std::filesystem;

TEST(CheckpointTemporaries, OnlyTheNamesASaveWritesAreRemoved) {
  const fs::path dir = fs::temp_directory_path() / ("lockstep-tmpnames-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::set<std::string> ours{"step-000000010.h5.tmp-123", "best.h5.tmp-9", "latest.tmp"};
  const std::set<std::string> theirs{"draft.tmp",       "results.tmp.csv", "notes.tmp.txt", "my.tmpl",
                                     "step-000000010.h5", "best.h5",       "latest",        "step-1.h5.tmp-",
                                     "step-1.h5.tmp-12x", "x-step-1.h5.tmp-3"};
  for (const auto& set : {ours, theirs})
    for (const auto& name : set) std::ofstream(dir / name) << "x";
  fs::create_directories(dir / "emptydir.tmp");
  fs::create_directories(dir / "step-000000020.h5.tmp-7");  // a directory, whatever its name

  EXPECT_EQ(remove_checkpoint_temporaries(dir.string()), static_cast<int>(ours.size()));
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.insert(e.path().filename().string());
  std::set<std::string> expected = theirs;
  expected.insert("emptydir.tmp");
  expected.insert("step-000000020.h5.tmp-7");
  EXPECT_EQ(left, expected);
  for (const auto& name : ours) EXPECT_TRUE(is_checkpoint_temporary(name)) << name;
  for (const auto& name : theirs) EXPECT_FALSE(is_checkpoint_temporary(name)) << name;
  fs::remove_all(dir);
}

TEST(CheckpointNames, OnlyTheNamesASaveWritesCarryAStep) {
  EXPECT_EQ(checkpoint_step_of("/x/step-000000200.h5"), 200);
  EXPECT_EQ(checkpoint_step_of(checkpoint_file_name(1234567890)), 1234567890);  // 10 digits
  EXPECT_EQ(checkpoint_step_of("step-7.h5"), -1);                       // fewer than 9 digits: a user's
  EXPECT_EQ(checkpoint_step_of("step-000000200-keep.h5"), -1);
  EXPECT_EQ(checkpoint_step_of("step-000000200.h5.tmp-5"), -1);
  EXPECT_EQ(checkpoint_step_of("step-1234567890123456789.h5"), -1);     // beyond int64: not ours
  EXPECT_EQ(checkpoint_step_of("best.h5"), -1);
}

TEST(CheckpointNames, ListedNewestFirstByStepNumber) {
  const fs::path dir = fs::temp_directory_path() / ("lockstep-names-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const int64_t step : {5, 1000000000, 40}) std::ofstream(dir / checkpoint_file_name(step)) << "x";
  std::ofstream(dir / "step-7.h5") << "x";
  const std::vector<std::string> listed = list_checkpoints(dir.string());
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(checkpoint_step_of(listed[0]), 1000000000);
  EXPECT_EQ(checkpoint_step_of(listed[1]), 40);
  EXPECT_EQ(checkpoint_step_of(listed[2]), 5);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lockstep
