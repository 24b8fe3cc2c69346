// IDX reading and validation (see idx.hpp). zlib inflates gzip input; a truncated or corrupt
// stream is reported as such rather than as a short file.
#include "lockstep/idx.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "lockstep/check.hpp"

namespace lockstep {
namespace {

size_t element_size(IdxType t) {
  switch (t) {
    case IdxType::u8: case IdxType::i8: return 1;
    case IdxType::i16: return 2;
    case IdxType::i32: case IdxType::f32: return 4;
    case IdxType::f64: return 8;
  }
  return 0;
}

bool valid_type(uint8_t b) {
  return b == 0x08 || b == 0x09 || b == 0x0B || b == 0x0C || b == 0x0D || b == 0x0E;
}

std::vector<uint8_t> gunzip(const std::vector<uint8_t>& in, const std::string& path) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  // 16 + MAX_WBITS: expect a gzip wrapper (and check its CRC and length trailer).
  LOCKSTEP_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "zlib inflateInit2 failed");
  std::vector<uint8_t> out(in.size() * 4 + 1024);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (true) {
    if (zs.total_out == out.size()) out.resize(out.size() * 2);
    zs.next_out = out.data() + zs.total_out;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - zs.total_out, 1u << 30));
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended before the stream did
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
  }
  const size_t produced = zs.total_out;
  const size_t unread = zs.avail_in;
  const std::string zmsg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  LOCKSTEP_REQUIRE(rc != Z_DATA_ERROR, path, ": corrupt gzip data (", zmsg.empty() ? "bad stream" : zmsg, ")");
  LOCKSTEP_REQUIRE(rc == Z_STREAM_END, path, ": truncated gzip file (the compressed stream ends early, after ",
                   produced, " uncompressed bytes)");
  LOCKSTEP_REQUIRE(unread == 0, path, ": ", unread, " bytes of unexpected data after the end of the gzip stream");
  out.resize(produced);
  return out;
}

}  // namespace

int64_t IdxArray::item_size() const {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  struct stat st{};
  LOCKSTEP_REQUIRE(::stat(path.c_str(), &st) == 0, path, ": cannot open (", std::strerror(errno), ")");
  LOCKSTEP_REQUIRE(S_ISREG(st.st_mode), path, ": not a regular file",
                   S_ISDIR(st.st_mode) ? " (it is a directory)" : "");
  std::ifstream f(path, std::ios::binary);
  LOCKSTEP_REQUIRE(f.good(), path, ": cannot open for reading (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  LOCKSTEP_REQUIRE(static_cast<size_t>(f.gcount()) == bytes.size(), path, ": read error");
  LOCKSTEP_REQUIRE(!bytes.empty(), path, ": empty file");
  return inflate_if_gzip(std::move(bytes), path);
}

std::vector<uint8_t> inflate_if_gzip(std::vector<uint8_t> bytes, const std::string& path) {
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) return gunzip(bytes, path);
  return bytes;
}

IdxArray parse_idx(const std::vector<uint8_t>& b, const std::string& path) {
  LOCKSTEP_REQUIRE(b.size() >= 4, path, ": too short for an IDX header (", b.size(), " bytes)");
  LOCKSTEP_REQUIRE(b[0] == 0 && b[1] == 0, path, ": not an IDX file (magic number starts with ",
                   int(b[0]), ",", int(b[1]), " instead of 0,0)");
  LOCKSTEP_REQUIRE(valid_type(b[2]), path, ": unknown IDX element type byte 0x", std::hex, int(b[2]),
                   std::dec, " (expected 0x08 ubyte, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
  const int ndim = b[3];
  LOCKSTEP_REQUIRE(ndim >= 1 && ndim <= 4, path, ": IDX dimension count ", ndim, " is not in 1..4");
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  LOCKSTEP_REQUIRE(b.size() >= header, path, ": header incomplete (", b.size(), " bytes, the header of a ",
                   ndim, "-dimensional IDX file needs ", header, ")");
  IdxArray a;
  a.type = static_cast<IdxType>(b[2]);
  int64_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    const uint8_t* p = b.data() + 4 + 4 * d;
    const int64_t dim = (int64_t(p[0]) << 24) | (int64_t(p[1]) << 16) | (int64_t(p[2]) << 8) | int64_t(p[3]);
    LOCKSTEP_REQUIRE(dim > 0, path, ": dimension ", d, " is ", dim, " (must be positive)");
    a.dims.push_back(dim);
    // Checked before multiplying: three 32-bit dimensions can overflow int64 (found by fuzz_idx).
    constexpr int64_t kMaxElements = int64_t(1) << 40;
    LOCKSTEP_REQUIRE(dim <= kMaxElements / count, path, ": dimensions are implausibly large (more than 2^40 elements)");
    count *= dim;
  }
  const size_t expected = header + static_cast<size_t>(count) * element_size(a.type);
  const size_t whole = (b.size() - header) / (element_size(a.type) * static_cast<size_t>(a.item_size()));
  LOCKSTEP_REQUIRE(b.size() >= expected, path, ": truncated: the header promises ", a.dims[0], " items (",
                   expected, " bytes with the ", header, "-byte header) but there are ", b.size(),
                   " bytes, the header and ", b.size() - header, " bytes of data: enough for ", whole,
                   whole == 1 ? " item" : " items");
  LOCKSTEP_REQUIRE(b.size() == expected, path, ": ", b.size() - expected,
                   " trailing bytes after the data the header describes (", expected, " bytes)");
  a.data.assign(b.begin() + static_cast<std::ptrdiff_t>(header), b.end());
  return a;
}

IdxArray read_idx(const std::string& path) { return parse_idx(read_file_bytes(path), path); }

double idx_value(const IdxArray& a, int64_t i) {
  const uint8_t* p = a.data.data() + static_cast<size_t>(i) * element_size(a.type);
  auto be32 = [](const uint8_t* q) {
    return (uint32_t(q[0]) << 24) | (uint32_t(q[1]) << 16) | (uint32_t(q[2]) << 8) | uint32_t(q[3]);
  };
  switch (a.type) {
    case IdxType::u8: return p[0];
    case IdxType::i8: return static_cast<int8_t>(p[0]);
    case IdxType::i16: return static_cast<int16_t>((uint16_t(p[0]) << 8) | p[1]);
    case IdxType::i32: return static_cast<int32_t>(be32(p));
    case IdxType::f32: {
      const uint32_t u = be32(p);
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    case IdxType::f64: {
      const uint64_t u = (uint64_t(be32(p)) << 32) | be32(p + 4);
      double d;
      std::memcpy(&d, &u, 8);
      return d;
    }
  }
  return 0.0;
}

}  // namespace lockstep
