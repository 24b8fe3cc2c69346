// Checkpoint directory management (see checkpointer.hpp).
#include "lockstep/checkpointer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "lockstep/check.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/run_dir.hpp"

namespace fs = std::filesystem;

namespace lockstep {
namespace {

constexpr const char* kPrefix = "step-";
constexpr const char* kSuffix = ".h5";

bool is_checkpoint_name(const std::string& name) {
  return name.rfind(kPrefix, 0) == 0 && name.size() > 8 && name.compare(name.size() - 3, 3, kSuffix) == 0 &&
         name.find(".tmp") == std::string::npos;
}

// best.h5 becomes the same file as `target` (a hard link, renamed into place); where links are
// not supported, a copy.
void place_best(const std::string& target, const std::string& best) {
  const std::string tmp = best + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_hard_link(target, tmp, ec);
  if (ec) fs::copy_file(target, tmp, fs::copy_options::overwrite_existing);
  LOCKSTEP_REQUIRE(std::rename(tmp.c_str(), best.c_str()) == 0, best, ": rename failed (", std::strerror(errno), ")");
}

}  // namespace

std::string checkpoint_file_name(int64_t global_step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%09lld%s", kPrefix, static_cast<long long>(global_step), kSuffix);
  return buf;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && is_checkpoint_name(name)) out.push_back(e.path().string());
  }
  // Zero-padded step numbers: lexical order is step order.
  std::sort(out.rbegin(), out.rend());
  return out;
}

std::string latest_checkpoint(const std::string& dir) {
  std::ifstream f(dir + "/latest");
  std::string name;
  if (!(f >> name)) return "";
  return dir + "/" + name;
}

int remove_checkpoint_temporaries(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename().string().find(".tmp") != std::string::npos && fs::remove(e.path(), ec)) ++n;
  }
  return n;
}

std::string resolve_resume(const std::string& arg, const std::string& dir) {
  if (arg == "auto") return fs::exists(dir) ? latest_checkpoint(dir) : "";
  LOCKSTEP_REQUIRE(fs::exists(arg), "--resume ", arg, ": no such file or directory");
  if (fs::is_directory(arg)) {
    const std::string latest = latest_checkpoint(arg);
    LOCKSTEP_REQUIRE(!latest.empty(), "--resume ", arg, ": the directory has no `latest` checkpoint pointer");
    return latest;
  }
  return arg;
}

namespace {
// The newest checkpoint beside `path` (other than it) that reads completely, or "".
std::string previous_readable(const std::string& path) {
  const std::string dir = fs::path(path).parent_path().string();
  for (const std::string& other : list_checkpoints(dir.empty() ? "." : dir)) {
    std::error_code ec;
    if (fs::equivalent(other, path, ec)) continue;
    try {
      read_checkpoint(other);
      return other;
    } catch (const UserError&) {
      // damaged too: try the next older one
    }
  }
  return "";
}
}  // namespace

CheckpointData read_checkpoint_or_offer_previous(const std::string& path) {
  try {
    return read_checkpoint(path);
  } catch (const UserError& e) {
    const std::string offer = previous_readable(path);
    if (offer.empty()) throw;
    throw UserError(fmt(e.what(), "\n  the previous checkpoint ", offer, " reads fine: resume from it with --resume ", offer));
  }
}

Checkpointer::Checkpointer(Comm& comm, std::string dir, int64_t keep, std::ostream* log)
    : comm_(&comm), dir_(std::move(dir)), keep_(keep), log_(log) {}

void Checkpointer::agree(int status, const std::string& message) {
  comm_->broadcast(&status, sizeof status, 0);
  if (status == 0) return;
  if (comm_->rank() == 0) std::cerr << "lockstep: error: " << message << std::endl;
  throw AgreedFailure(exit_code::checkpoint_failed);
}

std::string Checkpointer::save(const CheckpointData& ck, bool best, const char* reason) {
  const std::string path = dir_ + "/" + checkpoint_file_name(ck.trainer.global_step);
  int status = 0;
  std::string message;
  if (comm_->rank() == 0) {
    try {
      ensure_directory(dir_, "checkpoint directory");
      write_checkpoint(path, ck);
      write_file_atomic(dir_ + "/latest", fs::path(path).filename().string() + "\n");
      if (best) place_best(path, dir_ + "/best.h5");
      const auto all = list_checkpoints(dir_);
      for (size_t i = static_cast<size_t>(keep_); i < all.size(); ++i) {
        std::error_code ec;
        if (!fs::equivalent(all[i], path, ec)) fs::remove(all[i], ec);
      }
      if (log_) *log_ << "checkpoint: " << path << " (" << reason << (best ? ", best" : "") << ")" << std::endl;
    } catch (const std::exception& e) {
      status = 1;
      message = fmt("checkpoint ", path, " could not be written: ", e.what(),
                    "; the previous checkpoint is untouched");
    }
  }
  agree(status, message);
  return path;
}

void Checkpointer::save_best(const CheckpointData& ck) {
  int status = 0;
  std::string message;
  if (comm_->rank() == 0) {
    try {
      ensure_directory(dir_, "checkpoint directory");
      write_checkpoint(dir_ + "/best.h5", ck);
      if (log_) *log_ << "checkpoint: " << dir_ << "/best.h5 (best so far)" << std::endl;
    } catch (const std::exception& e) {
      status = 1;
      message = fmt("checkpoint ", dir_, "/best.h5 could not be written: ", e.what());
    }
  }
  agree(status, message);
}

}  // namespace lockstep
