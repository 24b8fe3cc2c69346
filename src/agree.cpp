// collectively(): setup errors agreed across ranks (see agree.hpp), and where the one message
// says the failure happened: nowhere when every rank failed alike or the job is one rank (the
// ordinary case: a bad key or file seen by all), the ranks and hosts when only some failed (a
// file missing on one node) or the ranks disagree.
#include "lockstep/agree.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <ostream>
#include <set>
#include <vector>

#include "lockstep/check.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/exit_codes.hpp"

namespace lockstep {
namespace {

// What one rank reports to the others: fixed-size, so one allgather carries it.
struct Outcome {
  int32_t failed = 0;     // 0: fine, 1: bad input (UserError), 2: anything else
  int32_t pad = 0;
  uint64_t message = 0;   // hash of the message, to tell identical failures from different ones
};

// "0-3, 7, 9-10": rank numbers as ranges, at most 6 ranges, then "... (N ranks)".
std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  size_t ranges = 0;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (++ranges > 6) return s + ", ... (" + std::to_string(ranks.size()) + " ranks)";
    s += s.empty() ? "" : ", ";
    s += j > i ? fmt(ranks[i], "-", ranks[j]) : fmt(ranks[i]);
    i = j + 1;
  }
  return s;
}

std::string hosts_of(const std::vector<int>& ranks, const std::vector<std::string>& host) {
  std::vector<std::string> names;
  for (int r : ranks)
    if (std::find(names.begin(), names.end(), host[r]) == names.end()) names.push_back(host[r]);
  std::string s = names.size() == 1 ? "host " : "hosts ";
  for (size_t i = 0; i < names.size() && i < 4; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 4) s += fmt(" and ", names.size() - 4, " more");
  return s;
}

}  // namespace

std::string failure_location(const std::vector<int>& failed, const std::vector<uint64_t>& message,
                             const std::vector<std::string>& host) {
  const int size = static_cast<int>(failed.size());
  std::vector<int> same, other, fine;  // failed like the lowest failing rank, failed otherwise, no error
  int first = -1;
  for (int r = 0; r < size; ++r) {
    if (!failed[r]) {
      fine.push_back(r);
    } else if (first < 0 || message[r] == message[first]) {
      if (first < 0) first = r;
      same.push_back(r);
    } else {
      other.push_back(r);
    }
  }
  if (size <= 1 || first < 0) return "";
  // Every rank saw the same failure: where adds nothing.
  if (fine.empty() && other.empty()) return "";
  // Rank 0 alone, on one host: the work only rank 0 does (a checkpoint, a conversion), and were it
  // not, the host is the same for every rank.
  const std::set<std::string> hosts(host.begin(), host.end());
  if (same.size() == 1 && first == 0 && other.empty() && hosts.size() == 1) return "";
  std::string s = fmt(" [on rank", same.size() == 1 ? " " : "s ", rank_list(same), " of ", size, " (",
                      hosts_of(same, host), ")");
  if (!other.empty()) s += fmt("; rank", other.size() == 1 ? " " : "s ", rank_list(other), " failed otherwise");
  if (!fine.empty()) {
    s += "; rank" + std::string(fine.size() == 1 ? " " : "s ") + rank_list(fine);
    if (hosts.size() > 1) s += " (" + hosts_of(fine, host) + ")";
    s += " reported no error";
  }
  return s + "]";
}

void collectively(Comm& comm, const std::function<void()>& fn, std::ostream& err) {
  std::string message;
  Outcome mine;
  try {
    fn();
  } catch (const UserError& e) {
    message = e.what();
    mine.failed = 1;
  } catch (const AgreedFailure&) {
    throw;
  } catch (const std::bad_alloc& e) {
    // An allocation without a purpose attached (allocating() in memory_plan.hpp attaches one).
    message = fmt("out of memory (", e.what(), "); reduce model.layers, train.batch_size or data.eval_batch");
    mine.failed = 1;
  } catch (const std::exception& e) {
    message = e.what();
    mine.failed = 2;
  }
  if (mine.failed) mine.message = fnv1a64(message.data(), message.size());
  std::vector<Outcome> all(static_cast<size_t>(comm.size()));
  comm.allgather(&mine, sizeof mine, all.data());
  int first = -1;
  for (int r = 0; r < comm.size() && first < 0; ++r) if (all[r].failed) first = r;
  if (first < 0) return;
  const bool user_error = all[first].failed == 1;
  // Every rank takes part in gathering the hosts, so that the failing one can name them.
  char name[64] = {};
  std::strncpy(name, comm.host().c_str(), sizeof name - 1);
  std::vector<char> names(sizeof name * static_cast<size_t>(comm.size()));
  comm.allgather(name, sizeof name, names.data());
  if (comm.rank() == first) {
    std::vector<int> failed;
    std::vector<uint64_t> hashes;
    std::vector<std::string> hosts;
    for (int r = 0; r < comm.size(); ++r) {
      failed.push_back(all[r].failed);
      hashes.push_back(all[r].message);
      hosts.emplace_back(names.data() + sizeof name * static_cast<size_t>(r));
    }
    err << "lockstep: error: " << message << failure_location(failed, hashes, hosts) << std::endl;
  }
  // Every rank exits with the code of the failure that was printed.
  throw AgreedFailure(user_error ? exit_code::bad_input : exit_code::internal_error);
}

}  // namespace lockstep
