// Helpers of the multi-rank tests (tests/mpi/): replicas compared bit for bit across ranks, a
// temporary directory every rank sees, and a trainer restored from a checkpoint file the way the
// program does it (rank 0 reads, every rank gets the state).
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "lockstep/checkpoint.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/trainer.hpp"

namespace lockstep::test {

// x[0..n) is bitwise rank 0's on this rank.
inline void expect_same_on_all_ranks(Comm& comm, const float* x, size_t n) {
  std::vector<float> root(x, x + n);
  comm.broadcast(root.data(), n * sizeof(float), 0);
  EXPECT_EQ(std::memcmp(root.data(), x, n * sizeof(float)), 0) << "rank " << comm.rank() << " differs from rank 0";
}
inline void expect_same_on_all_ranks(Comm& comm, const std::vector<float>& v) {
  expect_same_on_all_ranks(comm, v.data(), v.size());
}

// A fresh directory under the system's temporary directory, made by rank 0, its path on every rank.
inline std::string shared_dir(Comm& comm, const std::string& tag) {
  std::string dir;
  if (comm.rank() == 0) {
    dir = (std::filesystem::temp_directory_path() / ("lockstep-" + tag + "-" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  comm.broadcast_string(dir, 0);
  return dir;
}

// Restores `trainer` from the checkpoint file at path, read on rank 0 and broadcast; the
// checkpoint must be one cfg may resume.
inline void restore_from_file(Comm& comm, Trainer& trainer, const std::string& path, const Config& cfg) {
  CheckpointData ck;
  if (comm.rank() == 0) ck = read_checkpoint(path);
  broadcast_checkpoint(comm, ck, 0);
  EXPECT_EQ(resume_incompatibilities(ck, cfg), "");
  trainer.restore(ck);
}

}  // namespace lockstep::test
