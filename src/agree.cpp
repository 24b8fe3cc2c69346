// collectively(): setup errors agreed across ranks (see agree.hpp).
#include "lockstep/agree.hpp"

#include <ostream>
#include <vector>

#include "lockstep/check.hpp"
#include "lockstep/exit_codes.hpp"

namespace lockstep {

void collectively(Comm& comm, const std::function<void()>& fn, std::ostream& err) {
  std::string message;
  int failed = 0;  // 0: fine, 1: bad input (UserError), 2: anything else
  try {
    fn();
  } catch (const UserError& e) {
    message = e.what();
    failed = 1;
  } catch (const AgreedFailure&) {
    throw;
  } catch (const std::exception& e) {
    message = e.what();
    failed = 2;
  }
  std::vector<int> all(static_cast<size_t>(comm.size()));
  comm.allgather(&failed, sizeof failed, all.data());
  int first = -1;
  for (int r = 0; r < comm.size() && first < 0; ++r) if (all[r]) first = r;
  if (first < 0) return;
  const bool user_error = all[first] == 1;
  if (comm.rank() == first) {
    err << "lockstep: error: " << message;
    if (!user_error || comm.size() > 1) err << " [rank " << first << " on " << comm.host() << "]";
    err << std::endl;
  }
  // Every rank exits with the code of the failure that was printed.
  throw AgreedFailure(user_error ? exit_code::bad_input : exit_code::internal_error);
}

}  // namespace lockstep
