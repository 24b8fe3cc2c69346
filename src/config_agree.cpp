// Start-up agreement on the command, the resolved config and the data (see config_agree.hpp). Only
// fixed-size allgathers and broadcasts whose sequence every rank derives from the same gathered
// values: a mismatch is reported, never turned into a mismatched collective.
#include "lockstep/config_agree.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <ostream>
#include <sstream>

#include "lockstep/check.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/exit_codes.hpp"

namespace lockstep {
namespace {

// "0-3, 5, 7-8": ranks in ascending order, runs collapsed.
std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    out += (out.empty() ? "" : ", ") + std::to_string(ranks[i]);
    if (j > i) out += (j == i + 1 ? ", " : "-") + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

std::string ranks_phrase(const std::vector<int>& ranks) {
  return (ranks.size() == 1 ? "rank " : "ranks ") + rank_list(ranks);
}

// "host a" or "hosts a, b": the hosts of some ranks, each once, at most 4 named.
std::string hosts_phrase(const std::vector<int>& ranks, const std::vector<std::string>& host) {
  std::vector<std::string> names;
  for (int r : ranks)
    if (std::find(names.begin(), names.end(), host[static_cast<size_t>(r)]) == names.end())
      names.push_back(host[static_cast<size_t>(r)]);
  std::string s = names.size() == 1 ? "host " : "hosts ";
  for (size_t i = 0; i < names.size() && i < 4; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 4) s += fmt(" and ", names.size() - 4, " more");
  return s;
}

// "key = value" lines of an invocation text, in order (a repeated key keeps its last value).
std::vector<std::pair<std::string, std::string>> parse_lines(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    out.emplace_back(line.substr(0, eq), line.substr(eq + 3));
  }
  return out;
}

}  // namespace

void agree_on_command(Comm& comm, const std::string& command, const std::string& parse_error, std::ostream& err) {
  struct Entry {
    char name[48];
    int32_t parsed;
  };
  Entry mine{};
  std::strncpy(mine.name, command.c_str(), sizeof mine.name - 1);
  mine.parsed = command.empty() ? 0 : 1;
  std::vector<Entry> all(static_cast<size_t>(comm.size()));
  comm.allgather(&mine, sizeof mine, all.data());

  std::vector<int> failed;
  std::vector<std::pair<std::string, std::vector<int>>> by_command;  // in order of their lowest rank
  for (int r = 0; r < comm.size(); ++r) {
    const Entry& e = all[static_cast<size_t>(r)];
    if (!e.parsed) {
      failed.push_back(r);
      continue;
    }
    auto it = std::find_if(by_command.begin(), by_command.end(), [&](const auto& g) { return g.first == e.name; });
    if (it == by_command.end()) by_command.push_back({e.name, {r}});
    else it->second.push_back(r);
  }
  if (by_command.empty()) return;                         // no rank parsed: the usual parse error
  if (failed.empty() && by_command.size() == 1) return;   // the same command everywhere
  std::string runs;
  for (const auto& [name, ranks] : by_command)
    runs += fmt(runs.empty() ? "" : ", ", ranks_phrase(ranks), ranks.size() == 1 ? " runs `" : " run `", name, "`");
  // The rank that speaks: the first one whose command line did not parse (it alone knows why), else rank 0.
  const int speaker = failed.empty() ? 0 : failed.front();
  if (comm.rank() == speaker) {
    err << "lockstep: error: the ranks were not started with the same command line: ";
    if (!failed.empty())
      err << ranks_phrase(failed) << " could not parse theirs"
          << (parse_error.empty() ? std::string(" (help or version requested)") : " (" + parse_error + ")")
          << ", while " << runs;
    else
      err << runs;
    err << ". Every rank of a job must run the same command (check the mpirun or srun line: an MPMD "
           "launch with `:` gives ranks different arguments)"
        << std::endl;
  }
  throw AgreedFailure(exit_code::bad_input);
}

std::string invocation_text(const Config& cfg, const CommandArgs& args) {
  std::string out;
  for (const auto& [k, v] : args) out += k + " = " + v + "\n";
  // config_to_toml's sections and keys, flattened to section.key lines.
  std::istringstream in(config_to_toml(cfg));
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    out += section + "." + line + "\n";
  }
  return out;
}

std::string invocation_differences(const std::string& a, int rank_a, const std::string& b, int rank_b, size_t limit) {
  const auto la = parse_lines(a), lb = parse_lines(b);
  std::map<std::string, std::string> mb(lb.begin(), lb.end()), ma(la.begin(), la.end());
  // Keys in a's order, then those only b has.
  std::vector<std::string> keys;
  for (const auto& [k, v] : la) if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  for (const auto& [k, v] : lb) if (!ma.count(k) && std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::string out;
  size_t n = 0;
  for (const std::string& k : keys) {
    const auto ia = ma.find(k), ib = mb.find(k);
    const std::string va = ia == ma.end() ? "(absent)" : ia->second, vb = ib == mb.end() ? "(absent)" : ib->second;
    if (va == vb) continue;
    if (n++ < limit) out += fmt("\n    ", k, ": rank ", rank_a, " has ", va, ", rank ", rank_b, " has ", vb);
  }
  if (n > limit) out += fmt("\n    ... and ", n - limit, " more key(s)");
  return out;
}

void agree_on_config(Comm& comm, const Config& cfg, const CommandArgs& args, std::ostream& err) {
  const std::string text = invocation_text(cfg, args);
  const uint64_t mine = fnv1a64(text.data(), text.size());
  std::vector<uint64_t> all(static_cast<size_t>(comm.size()));
  comm.allgather(&mine, sizeof mine, all.data());
  // Groups of ranks by hash, in order of their lowest rank; the first group is rank 0's.
  std::vector<std::pair<uint64_t, std::vector<int>>> groups;
  for (int r = 0; r < comm.size(); ++r) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == all[static_cast<size_t>(r)]; });
    if (it == groups.end()) groups.push_back({all[static_cast<size_t>(r)], {r}});
    else it->second.push_back(r);
  }
  if (groups.size() == 1) return;
  // Each differing group's lowest rank sends its text to everyone (a broadcast: every rank takes
  // part in the same sequence, derived from the gathered hashes); rank 0 compares.
  std::string message = "the ranks resolved different configs (or command arguments):";
  for (size_t g = 1; g < groups.size(); ++g) {
    const int from = groups[g].second.front();
    std::string theirs = comm.rank() == from ? text : std::string();
    comm.broadcast_string(theirs, from);
    if (comm.rank() == 0)
      message += fmt("\n  ", ranks_phrase(groups[g].second), (groups[g].second.size() == 1 ? " differs" : " differ"),
                     " from rank 0 in:", invocation_differences(text, 0, theirs, from));
  }
  if (comm.rank() == 0)
    err << "lockstep: error: " << message
        << "\n  every rank must run the same command with the same config: check the mpirun/srun line (an MPMD "
           "launch with `:`) and that the config file is the same on every node"
        << std::endl;
  throw AgreedFailure(exit_code::bad_input);
}

std::string data_differences(const std::vector<std::vector<DataFileFingerprint>>& by_rank,
                             const std::vector<std::string>& host) {
  const size_t ranks = by_rank.size();
  if (ranks == 0) return "";
  struct Group {
    int64_t samples;
    std::string fingerprint;
    std::vector<int> ranks;
  };
  std::string out;
  for (size_t f = 0; f < by_rank[0].size(); ++f) {
    std::vector<Group> groups;  // in order of their lowest rank
    bool unread = false;
    for (size_t r = 0; r < ranks && !unread; ++r) {
      if (f >= by_rank[r].size() || by_rank[r][f].fingerprint.empty()) {
        unread = true;  // that rank's own check says why it could not read the file
        break;
      }
      const DataFileFingerprint& d = by_rank[r][f];
      auto it = std::find_if(groups.begin(), groups.end(),
                             [&](const Group& g) { return g.samples == d.samples && g.fingerprint == d.fingerprint; });
      if (it == groups.end()) groups.push_back({d.samples, d.fingerprint, {static_cast<int>(r)}});
      else it->ranks.push_back(static_cast<int>(r));
    }
    if (unread || groups.size() <= 1) continue;
    // The contents most ranks read come first (the lowest rank's on a tie), as the replica-drift
    // message takes the checksum most ranks hold as the reference.
    size_t most = 0;
    for (size_t g = 1; g < groups.size(); ++g)
      if (groups[g].ranks.size() > groups[most].ranks.size()) most = g;
    std::rotate(groups.begin(), groups.begin() + static_cast<std::ptrdiff_t>(most),
                groups.begin() + static_cast<std::ptrdiff_t>(most) + 1);
    std::string lead;
    if (2 * groups.front().ranks.size() > ranks) {
      std::vector<int> odd;
      for (size_t g = 1; g < groups.size(); ++g) odd.insert(odd.end(), groups[g].ranks.begin(), groups[g].ranks.end());
      std::sort(odd.begin(), odd.end());
      lead = fmt(ranks_phrase(odd), odd.size() == 1 ? " differs" : " differ", " from the other ",
                 groups.front().ranks.size(), " ranks");
    } else {
      lead = fmt("no majority among the ", ranks, " ranks");
    }
    out += fmt("\n  ", by_rank[0][f].file, ": ", lead, ": ");
    for (size_t g = 0; g < groups.size(); ++g)
      out += fmt(g ? ", " : "", ranks_phrase(groups[g].ranks), " (", hosts_phrase(groups[g].ranks, host), ")",
                 groups[g].ranks.size() == 1 ? " reads " : " read ", groups[g].samples, " samples with fingerprint ",
                 groups[g].fingerprint);
  }
  return out;
}

void agree_on_data(Comm& comm, const std::vector<DataFileFingerprint>& files, std::ostream& err) {
  LOCKSTEP_CHECK(files.size() <= kMaxAgreedDataFiles, "agree_on_data: ", files.size(), " files, at most ",
                 kMaxAgreedDataFiles);
  // Fixed-size, so that one allgather carries every rank's fingerprints (16 hex digits each).
  struct Entry {
    int64_t samples;
    char fingerprint[24];
  };
  struct Wire {
    int32_t count;
    int32_t pad;
    Entry file[kMaxAgreedDataFiles];
  };
  Wire mine{};
  mine.count = static_cast<int32_t>(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    mine.file[i].samples = files[i].samples;
    std::strncpy(mine.file[i].fingerprint, files[i].fingerprint.c_str(), sizeof mine.file[i].fingerprint - 1);
  }
  std::vector<Wire> all(static_cast<size_t>(comm.size()));
  comm.allgather(&mine, sizeof mine, all.data());
  // Every rank decides from the same gathered values: all return here, or all go on to the hosts.
  std::vector<std::vector<DataFileFingerprint>> by_rank(all.size());
  for (size_t r = 0; r < all.size(); ++r) {
    const size_t n = std::min(static_cast<size_t>(std::max(all[r].count, 0)), kMaxAgreedDataFiles);
    for (size_t i = 0; i < n; ++i)
      by_rank[r].push_back({i < files.size() ? files[i].file : std::string(), all[r].file[i].samples,
                            std::string(all[r].file[i].fingerprint, strnlen(all[r].file[i].fingerprint,
                                                                            sizeof all[r].file[i].fingerprint))});
  }
  if (data_differences(by_rank, std::vector<std::string>(all.size())).empty()) return;
  char name[64] = {};
  std::strncpy(name, comm.host().c_str(), sizeof name - 1);
  std::vector<char> names(sizeof name * all.size());
  comm.allgather(name, sizeof name, names.data());
  if (comm.rank() == 0) {
    std::vector<std::string> hosts;
    for (size_t r = 0; r < all.size(); ++r) hosts.emplace_back(names.data() + sizeof name * r);
    err << "lockstep: error: the ranks read different data:" << data_differences(by_rank, hosts)
        << "\n  every rank must read the same data: check that the copies of these files on every node are the same "
           "(a relative path is read from each rank's working directory)"
        << std::endl;
  }
  throw AgreedFailure(exit_code::bad_input);
}

}  // namespace lockstep
