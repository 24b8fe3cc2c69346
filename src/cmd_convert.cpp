// `lockstep convert`: IDX images + labels to one HDF5 data file (docs/data.md). Rank 0 does the
// work; the other ranks only take part in the agreement, so under mpirun a bad input still ends
// every rank with exit code 2 and one message. The writing itself is convert_idx_to_h5.
#include <iostream>

#include "commands.hpp"
#include "lockstep/agree.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/h5_dataset.hpp"

namespace lockstep {
namespace {

struct ConvertArgs {
  ConvertOptions opts;
  std::string dtype = "float32";
};

int run_convert(Comm& comm, ConvertArgs& a) {
  ConvertSummary s;
  collectively(
      comm,
      [&] {
        if (comm.rank() != 0) return;
        a.opts.dtype = a.dtype == "uint8" ? H5FeatureType::uint8 : H5FeatureType::float32;
        s = convert_idx_to_h5(a.opts);
      },
      std::cerr);
  if (comm.rank() == 0)
    std::cout << "wrote " << a.opts.out << ": " << s.rows << " rows x " << s.dim << " features (" << a.dtype
              << "), " << s.classes << " classes, chunks of " << s.chunk_rows << " rows"
              << (a.opts.compress > 0 ? ", gzip level " + std::to_string(a.opts.compress) : std::string())
              << ", " << s.file_bytes << " bytes" << std::endl;
  return exit_code::ok;
}

}  // namespace

void add_convert_command(CLI::App& app, CommandTable& table) {
  auto args = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "convert IDX images + labels into one HDF5 data file (/features, /labels)");
  ConvertOptions& o = args->opts;
  cmd->add_option("--images", o.images, "IDX image file (raw or gzip)")->required();
  cmd->add_option("--labels", o.labels, "IDX label file (raw or gzip)")->required();
  cmd->add_option("--out", o.out, "HDF5 file to write (written to a temporary name, then renamed)")->required();
  cmd->add_option("--dtype", args->dtype, "stored feature type: float32 (scaled to [0,1]) or uint8 (raw bytes "
                                          "with a scale attribute of 1/255)")
      ->check(CLI::IsMember({"float32", "uint8"}))
      ->capture_default_str();
  cmd->add_option("--compress", o.compress, "gzip level 1-9 with byte shuffle; 0: uncompressed (fastest random reads)")
      ->check(CLI::Range(0, 9))
      ->capture_default_str();
  cmd->add_option("--classes", o.classes, "class count recorded in the file and checked against the labels; "
                                          "0: the largest label + 1")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--chunk-rows", o.chunk_rows, "rows per HDF5 chunk; 0: about 1 MiB per chunk")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  cmd->add_flag("--force", o.force, "replace an existing output file");
  table.add(cmd, [args](Comm& comm) { return run_convert(comm, *args); });
}

}  // namespace lockstep
