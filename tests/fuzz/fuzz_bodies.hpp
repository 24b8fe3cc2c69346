// The bodies of the fuzz targets, shared by the libFuzzer executables (fuzz_*.cpp) and the unit
// test that replays every committed crash input and seed (tests/unit/test_fuzz_regressions.cpp).
// Each takes arbitrary bytes; bad input must end in lockstep::UserError, which the body absorbs.
// A violated property throws std::logic_error; any other exception escapes too: both are findings.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lockstep::fuzz {

// The IDX reader: gzip sniffing and inflation, header and payload checks, every element read.
void idx_bytes(const uint8_t* data, size_t size);
// The TOML config loader: a file, then "--set" lines after a line "#--set"; an accepted config
// goes through validate_config and must round-trip through config_to_toml.
void config_text(const uint8_t* data, size_t size);
// The HDF5 data opener as load_datasets drives it: open, width check, NaN/inf scan, a gather.
void h5_data_file(const uint8_t* data, size_t size);

}  // namespace lockstep::fuzz
