// IDX files (the MNIST format), raw or gzip-compressed; compression is detected from the
// first bytes, not the name. The reader checks the magic number, element type, dimensions and
// that the payload is exactly as long as the header promises; every message names the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lockstep {

enum class IdxType : uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

struct IdxArray {
  IdxType type = IdxType::u8;
  std::vector<int64_t> dims;   // dims[0] is the item count
  std::vector<uint8_t> data;   // payload in file (big-endian) byte order
  int64_t items() const { return dims.empty() ? 0 : dims[0]; }
  int64_t item_size() const;   // elements per item (product of dims[1:])
};

// Reads the whole file, gunzipping it when it starts with the gzip magic bytes.
std::vector<uint8_t> read_file_bytes(const std::string& path);
// The bytes themselves, inflated when they start with the gzip magic bytes (path names them in
// messages). read_file_bytes = reading + this; the fuzz target calls it on raw input.
std::vector<uint8_t> inflate_if_gzip(std::vector<uint8_t> bytes, const std::string& path);

// Parses and validates an IDX file. Throws UserError naming the file and the cause.
IdxArray read_idx(const std::string& path);
IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& path);

// Element i of a validated array, converted to double.
double idx_value(const IdxArray& a, int64_t i);

}  // namespace lockstep
