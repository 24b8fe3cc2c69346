// Start-up agreement across ranks: before anything collective depends on them, every rank must
// run the same command (agree_on_command, the first collective of the program) on the same
// resolved config and arguments (agree_on_config), and read the same data (agree_on_data). An
// MPMD launch, a config file that differs between nodes or is edited while a job starts, a
// node-local copy of a data file that differs, ends every rank with exit code 2 and one message
// naming the ranks and the keys (or files) that differ, instead of a hang, a crash or a run that
// silently trains on two data sets.
#pragma once
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/comm.hpp"
#include "lockstep/config.hpp"
#include "lockstep/data_fingerprint.hpp"

namespace lockstep {

// Collective. command: the subcommand this rank parsed ("" when its command line did not parse,
// with parse_error the parser's message). Returns when every rank parsed the same command, or
// when none parsed (the caller reports the parse error as usual). Otherwise the lowest rank that
// can tell prints one message to err and every rank throws AgreedFailure(exit_code::bad_input).
void agree_on_command(Comm& comm, const std::string& command, const std::string& parse_error, std::ostream& err);

// Arguments of a command that are not config keys but change what the ranks do together
// (e.g. {"--resume", "auto"}), compared with the config.
using CommandArgs = std::vector<std::pair<std::string, std::string>>;

// The text the ranks compare: one "key = value" line per argument and per config key
// ("train.epochs = 4"), in a fixed order.
std::string invocation_text(const Config& cfg, const CommandArgs& args);

// "  key: rank A has X, rank B has Y" lines for every key whose value differs between two
// invocation texts (keys missing from one side show as "(absent)"); at most `limit` lines, then a
// count of the rest.
std::string invocation_differences(const std::string& a, int rank_a, const std::string& b, int rank_b,
                                   size_t limit = 20);

// Collective. Every rank hashes its invocation_text; when all hashes equal rank 0's this returns.
// Otherwise each distinct text is sent to rank 0, which prints one message naming, for every group
// of ranks that differ from rank 0, the keys and both values; every rank throws
// AgreedFailure(exit_code::bad_input).
void agree_on_config(Comm& comm, const Config& cfg, const CommandArgs& args, std::ostream& err);

// Data files compared by agree_on_data: at most this many per call.
inline constexpr size_t kMaxAgreedDataFiles = 4;

// The lines that say which data files differ between ranks: by_rank[r] is rank r's list (the
// same files in the same order on every rank; names are taken from rank 0's), host[r] its host.
// "" when every rank holds the same fingerprint for every file (a file some rank could not read,
// fingerprint "", is left to the check that reads it). Otherwise one line per differing file,
// "\n  data.train_images = tr.h5: rank 1 differs from the other 2 ranks: ranks 0, 2 (host a) read
// 8 samples with fingerprint X, rank 1 (host b) 8 samples with fingerprint Y", the group most
// ranks hold first; without a majority, "no majority among the 2 ranks: ..." and every group.
std::string data_differences(const std::vector<std::vector<DataFileFingerprint>>& by_rank,
                             const std::vector<std::string>& host);

// Collective, after the data are loaded and before anything is written: every rank gathers every
// rank's fingerprint of each file (files: this rank's list, the same files on every rank, at most
// kMaxAgreedDataFiles). When they agree this returns (one allgather). Otherwise the hosts are
// gathered too, rank 0 prints one message (data_differences) and every rank throws
// AgreedFailure(exit_code::bad_input).
void agree_on_data(Comm& comm, const std::vector<DataFileFingerprint>& files, std::ostream& err);

}  // namespace lockstep
