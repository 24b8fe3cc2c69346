// Formatting of internal check failures (see check.hpp).
#include "lockstep/check.hpp"

namespace lockstep {

void throw_check_failure(const char* expr, const char* file, int line, const std::string& msg) {
  std::string where = file;
  // Trim the build machine's absolute path so messages read the same everywhere.
  if (auto pos = where.rfind("/src/"); pos != std::string::npos) where = where.substr(pos + 1);
  else if (auto k = where.rfind("/kernels/"); k != std::string::npos) where = where.substr(k + 1);
  throw Error(fmt(msg.empty() ? "check failed" : msg, " [", expr, " at ", where, ":", line, "]"));
}

}  // namespace lockstep
