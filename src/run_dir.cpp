// Run directory files (see run_dir.hpp).
#include "lockstep/run_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lockstep/check.hpp"

namespace lockstep {

void ensure_directory(const std::string& dir, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  LOCKSTEP_REQUIRE(!ec, what, " ", dir, ": cannot be created (", ec.message(), ")");
  LOCKSTEP_REQUIRE(std::filesystem::is_directory(dir), what, " ", dir, ": exists and is not a directory");
  LOCKSTEP_REQUIRE(::access(dir.c_str(), W_OK) == 0, what, " ", dir, ": not writable (", std::strerror(errno), ")");
}

void check_directory_creatable(const std::string& dir, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target = fs::absolute(dir, ec);
  LOCKSTEP_REQUIRE(!ec, what, " ", dir, ": invalid path (", ec.message(), ")");
  // The nearest part of the path that exists decides: it must be a directory we may write to.
  fs::path p = target;
  while (!fs::exists(fs::symlink_status(p, ec)) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  if (p == target)
    LOCKSTEP_REQUIRE(fs::is_directory(p, ec), what, " ", dir, ": exists and is not a directory");
  else
    LOCKSTEP_REQUIRE(fs::is_directory(p, ec), what, " ", dir, ": cannot be created: ", p.string(), " is not a directory");
  LOCKSTEP_REQUIRE(::access(p.c_str(), W_OK) == 0, what, " ", dir, ": cannot be written: ", p.string(),
                   " is not writable (", std::strerror(errno), ")");
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    LOCKSTEP_REQUIRE(f.good(), path, ": cannot write (", std::strerror(errno), ")");
    f << text;
    f.flush();
    LOCKSTEP_REQUIRE(f.good(), path, ": write failed (", std::strerror(errno), ")");
  }
  LOCKSTEP_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": rename failed (", std::strerror(errno), ")");
}

std::string epoch_json(const EpochRecord& r) {
  nlohmann::json j;
  j["epoch"] = r.epoch + 1;
  j["step"] = r.global_step;
  j["train_loss"] = r.train_loss;
  j["train_accuracy"] = r.train_accuracy;
  if (r.val) {
    j["val_loss"] = r.val->loss;
    j["val_accuracy"] = r.val->accuracy;
  }
  if (r.test) {
    j["test_loss"] = r.test->loss;
    j["test_accuracy"] = r.test->accuracy;
  }
  j["lr"] = r.lr;
  j["seconds"] = r.seconds;
  j["compute_seconds"] = r.compute_seconds;
  j["allreduce_seconds"] = r.allreduce_seconds;
  j["data_seconds"] = r.data_seconds;
  j["forward_seconds"] = r.forward_seconds;
  j["backward_seconds"] = r.backward_seconds;
  j["optimizer_seconds"] = r.optimizer_seconds;
  j["samples_per_second"] = r.samples_per_second;
  j["skipped_steps"] = r.skipped_steps;
  j["stopped_early"] = r.stopped_early;
  return j.dump();
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  LOCKSTEP_REQUIRE(f.good(), path, ": cannot append (", std::strerror(errno), ")");
  f << line << '\n';
  f.flush();
  LOCKSTEP_REQUIRE(f.good(), path, ": write failed (", std::strerror(errno), ")");
}

}  // namespace lockstep
