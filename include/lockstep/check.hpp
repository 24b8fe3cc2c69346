// Errors and the checking macros. Two kinds of failure: UserError (bad input a person can
// fix: config, files, arguments; the message names the key or file) and Error (a broken
// invariant or a failed library call; the message carries the expression and file:line).
// main() adds rank and host when it prints, so no global state is needed here.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace lockstep {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input from the user: the message alone is enough, no source location.
class UserError : public Error {
 public:
  using Error::Error;
};

// An allocation that failed: how many bytes (0: not known) of which memory ("host memory", "GPU
// memory") and, once allocating() (memory_plan.hpp) has added it, what they were for. Bad input
// in effect: the remedy is a smaller model or batch, or more memory.
class OutOfMemory : public UserError {
 public:
  OutOfMemory(uint64_t bytes, std::string memory, std::string purpose = "");
  bool has_purpose() const { return !purpose_.empty(); }
  OutOfMemory for_purpose(const std::string& what) const { return OutOfMemory(bytes_, memory_, what); }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t bytes_;
  std::string memory_, purpose_;
};

[[noreturn]] void throw_check_failure(const char* expr, const char* file, int line, const std::string& msg);

// Builds a message from stream-able pieces: fmt("key ", k, " is ", v).
template <typename... Args>
std::string fmt(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace lockstep

#define LOCKSTEP_CHECK(cond, ...)                                                              \
  do {                                                                                         \
    if (!(cond)) ::lockstep::throw_check_failure(#cond, __FILE__, __LINE__, ::lockstep::fmt(__VA_ARGS__)); \
  } while (0)

// For input a person supplied: throws UserError with just the message.
#define LOCKSTEP_REQUIRE(cond, ...)                                          \
  do {                                                                       \
    if (!(cond)) throw ::lockstep::UserError(::lockstep::fmt(__VA_ARGS__));  \
  } while (0)
