// Fuzz target bodies (see fuzz_bodies.hpp).
#include "fuzz_bodies.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "lockstep/check.hpp"
#include "lockstep/config.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/h5_dataset.hpp"
#include "lockstep/idx.hpp"

namespace lockstep::fuzz {
namespace {

void require(bool ok, const char* what) {
  if (!ok) throw std::logic_error(what);
}

// Open HDF5 identifiers by kind: lockstep's handles must close everything they open, on every
// path. (Leaks inside libhdf5 itself on malformed files are not lockstep's and are not counted:
// run.sh runs this target without LeakSanitizer; tests/fuzz/README.md says why.)
std::vector<int> open_h5_ids() {
  std::vector<int> counts;
  for (H5I_type_t t : {H5I_FILE, H5I_GROUP, H5I_DATATYPE, H5I_DATASPACE, H5I_DATASET, H5I_ATTR, H5I_GENPROP_LST}) {
    hsize_t n = 0;
    H5Inmembers(t, &n);
    counts.push_back(static_cast<int>(n));
  }
  return counts;
}

}  // namespace

void idx_bytes(const uint8_t* data, size_t size) {
  try {
    const std::vector<uint8_t> bytes = inflate_if_gzip(std::vector<uint8_t>(data, data + size), "fuzz.idx");
    const IdxArray a = parse_idx(bytes, "fuzz.idx");
    // What parse_idx promises: positive dimensions and a payload of exactly items x item_size values.
    int64_t count = 1;
    for (int64_t d : a.dims) {
      require(d > 0, "an accepted IDX array has a dimension <= 0");
      count *= d;
    }
    require(a.items() * a.item_size() == count, "items x item_size is not the element count");
    require(a.data.size() % static_cast<size_t>(count) == 0, "payload is not a whole number of elements");
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i) sum += idx_value(a, i);
    (void)sum;
  } catch (const UserError&) {
    // rejected with a message: the expected outcome for bad bytes
  }
}

void config_text(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string text = input;
  std::vector<std::string> sets;
  if (const auto cut = input.find("#--set\n"); cut != std::string::npos) {
    text = input.substr(0, cut);
    std::istringstream rest(input.substr(cut + 7));
    for (std::string line; std::getline(rest, line);) sets.push_back(line);
  }
  Config c;
  try {
    c = load_config_text(text, "fuzz.toml", sets);
  } catch (const UserError&) {
    return;
  }
  for (int world : {1, 2, 3}) {
    try {
      validate_config(c, world);
    } catch (const UserError&) {
    }
  }
  const std::string dumped = config_to_toml(c);
  Config again;
  try {
    again = parse_config_text(dumped, "round trip");
  } catch (const UserError& e) {
    throw std::logic_error(std::string("the resolved config does not load back: ") + e.what());
  }
  require(config_to_toml(again) == dumped, "the resolved config does not reproduce itself");
}

void h5_data_file(const uint8_t* data, size_t size) {
  // HDF5 opens paths: the bytes go to a file in memory-backed storage when there is some.
  static const std::string path =
      (std::filesystem::is_directory("/dev/shm") ? std::string("/dev/shm") : std::filesystem::temp_directory_path().string()) +
      "/lockstep-fuzz-h5-" + std::to_string(::getpid()) + ".h5";
  FILE* f = std::fopen(path.c_str(), "wb");
  require(f != nullptr, "cannot write the fuzz input file");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  H5open();
  const std::vector<int> ids_before = open_h5_ids();
  try {
    H5Data d(path, 10);
    // load_datasets rejects a width other than the model's before reading features; the seed
    // files have 4 or 16 features, so the model here takes either.
    if (d.dim() != 4 && d.dim() != 16) return;
    d.scan_features();
    const int64_t rows[4] = {0, d.size() - 1, d.size() / 2, 0};
    std::vector<float> x(static_cast<size_t>(4 * d.dim()));
    std::vector<int32_t> y(4);
    d.reserve(4);
    d.gather(rows, 4, x.data(), y.data());
    for (int32_t v : y) require(v >= 0 && v < 10, "a label outside [0, classes) was accepted");
  } catch (const UserError&) {
  }
  require(open_h5_ids() == ids_before, "an HDF5 identifier was left open");
}

}  // namespace lockstep::fuzz
