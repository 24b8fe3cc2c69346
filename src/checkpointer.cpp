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
#include <regex>

#include "lockstep/check.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/run_dir.hpp"

namespace fs = std::filesystem;

namespace lockstep {
namespace {

constexpr const char* kPrefix = "step-";
constexpr const char* kSuffix = ".h5";


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

int64_t checkpoint_step_of(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  const size_t p = std::strlen(kPrefix), s = std::strlen(kSuffix);
  if (name.size() <= p + s || name.rfind(kPrefix, 0) != 0 || name.compare(name.size() - s, s, kSuffix) != 0) return -1;
  // The names a save writes: the step in 9 digits or more, zero-padded (step-7.h5 is a user's,
  // and so is step-000000200-keep.h5); 18 at most, which int64 holds.
  const std::string digits = name.substr(p, name.size() - p - s);
  if (digits.size() < 9 || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) {
        return c >= '0' && c <= '9';
      }))
    return -1;
  return std::stoll(digits);
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const int64_t step = checkpoint_step_of(e.path().string());
    if (e.is_regular_file() && step >= 0) found.emplace_back(step, e.path().string());
  }
  // Newest first, by step number.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

LatestPointer read_latest(const std::string& dir) {
  LatestPointer p;
  const std::string file = dir + "/latest";
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) return p;
  if (!fs::is_regular_file(file, ec)) {
    p.state = LatestPointer::State::not_a_name;
    p.name = "(not a regular file)";
    return p;
  }
  std::ifstream f(file);
  std::getline(f, p.name);
  const auto first = p.name.find_first_not_of(" \t\r");
  const auto last = p.name.find_last_not_of(" \t\r");
  p.name = first == std::string::npos ? "" : p.name.substr(first, last - first + 1);
  if (p.name.empty()) p.state = LatestPointer::State::empty;
  else if (p.name.find('/') != std::string::npos || p.name == "." || p.name == "..") p.state = LatestPointer::State::not_a_name;
  else if (!fs::is_regular_file(dir + "/" + p.name, ec)) p.state = LatestPointer::State::dangling;
  else {
    p.state = LatestPointer::State::ok;
    p.path = dir + "/" + p.name;
  }
  return p;
}

bool is_checkpoint_temporary(const std::string& name) {
  // What a save writes before its rename: step-N.h5.tmp-<pid>, best.h5.tmp-<pid> and latest.tmp.
  // Anything else in the directory is somebody's file and stays.
  static const std::regex pattern(R"((step-[0-9]+\.h5|best\.h5)\.tmp-[0-9]+|latest\.tmp)");
  return std::regex_match(name, pattern);
}

int remove_checkpoint_temporaries(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec) && is_checkpoint_temporary(e.path().filename().string()) && fs::remove(e.path(), ec))
      ++n;
  }
  return n;
}

ResumePoint find_resume_point(const std::string& dir, const std::string& what) {
  using State = LatestPointer::State;
  const LatestPointer latest = read_latest(dir);
  if (latest.state == State::ok) return {latest.path, ""};
  std::string why;
  switch (latest.state) {
    case State::missing: why = fmt(dir, "/latest is missing"); break;
    case State::empty: why = fmt(dir, "/latest is empty"); break;
    case State::not_a_name:
      why = fmt(dir, "/latest holds \"", latest.name, "\", which is not the name of a file in the directory");
      break;
    case State::dangling: why = fmt(dir, "/latest names ", latest.name, ", which does not exist"); break;
    case State::ok: break;
  }
  const std::vector<std::string> steps = list_checkpoints(dir);
  if (steps.empty()) {
    LOCKSTEP_REQUIRE(latest.state == State::missing, what, ": ", why,
                     ", and the directory holds no step-*.h5 checkpoint to fall back on");
    return {};
  }
  // A lost or damaged pointer must not make the run start afresh over its checkpoints.
  std::string first_error;
  for (const std::string& path : steps) {
    try {
      read_checkpoint(path);
      return {path, fmt(why, "; continuing from the newest checkpoint that reads: ", path)};
    } catch (const UserError& e) {
      if (first_error.empty()) first_error = e.what();
    }
  }
  throw UserError(fmt(what, ": ", why, ", and none of the ", steps.size(),
                      " step-*.h5 checkpoint(s) in the directory reads (the newest: ", first_error, ")"));
}

ResumePoint resolve_checkpoint_arg(const std::string& arg, const std::string& dir, const std::string& flag) {
  if (arg == "auto") return fs::exists(dir) ? find_resume_point(dir, fmt(flag, " auto: checkpoint directory ", dir)) : ResumePoint{};
  LOCKSTEP_REQUIRE(fs::exists(arg), flag, " ", arg, ": no such file or directory");
  if (!fs::is_directory(arg)) return {arg, ""};
  ResumePoint p = find_resume_point(arg, fmt(flag, " ", arg));
  const std::string best = arg + "/best.h5";
  LOCKSTEP_REQUIRE(!p.path.empty(), flag, " ", arg, ": the directory holds no checkpoint (no `latest`, no step-*.h5)",
                   fs::exists(best) ? fmt("; it holds best.h5: name it, ", best) : std::string());
  return p;
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

CheckpointData read_checkpoint_or_offer_previous(const std::string& path, const std::string& how) {
  try {
    return read_checkpoint(path);
  } catch (const UserError& e) {
    const std::string offer = previous_readable(path);
    if (offer.empty()) throw;
    throw UserError(fmt(e.what(), "\n  the previous checkpoint ", offer, " reads fine: ", how, offer));
  }
}

std::vector<std::string> existing_run_files(const std::string& run_dir, const std::string& checkpoint_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  auto present = [&](const std::string& p) { return fs::exists(fs::symlink_status(p, ec)); };
  if (present(run_dir + "/metrics.jsonl")) out.push_back(run_dir + "/metrics.jsonl");
  if (present(checkpoint_dir + "/latest")) out.push_back(checkpoint_dir + "/latest");
  if (const size_t n = list_checkpoints(checkpoint_dir).size(); n > 0)
    out.push_back(fmt(n, " step-*.h5 checkpoint", n == 1 ? "" : "s", " in ", checkpoint_dir));
  if (present(checkpoint_dir + "/best.h5")) out.push_back(checkpoint_dir + "/best.h5");
  return out;
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
