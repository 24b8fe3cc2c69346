// Node-shared gradient segments and their in-place allreduce (see node_reducer.hpp).
#include "node_reducer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <climits>
#include <cstdio>
#include <cstring>
#include <random>

#include "lockstep/sharder.hpp"
#include "mpi_check.hpp"

namespace lockstep::detail {
namespace {

constexpr size_t kPage = 4096;
// MPI counts are int.
constexpr size_t kMpiChunk = static_cast<size_t>(INT_MAX) / 2;
// Elements summed per pass: a block of partial sums that stays in L1 while every segment's
// block is added to it.
constexpr size_t kBlock = 1024;

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

}  // namespace

NodeReducer::NodeReducer(MPI_Comm node, MPI_Comm cross) : node_(node), cross_(cross) {
  LOCKSTEP_MPI_CHECK(MPI_Comm_rank(node_, &local_rank_));
  LOCKSTEP_MPI_CHECK(MPI_Comm_size(node_, &local_size_));
}

NodeReducer::~NodeReducer() {
  while (!live_.empty()) unmap(live_.back().get());
}

NodeSegments* NodeReducer::map(size_t n, std::string* why) {
  const size_t seg_bytes = round_up(std::max<size_t>(n, 1) * sizeof(float), kPage);
  const size_t total = seg_bytes * static_cast<size_t>(local_size_);
  // Local rank 0 creates and sizes the object; every rank then reserves its own segment's pages
  // (posix_fallocate: a full /dev/shm fails here, not with SIGBUS at the first store, and the
  // pages come from the memory nearest the rank that fills them).
  char name[64] = {0};
  int err = 0;
  int fd = -1;
  if (local_rank_ == 0) {
    std::random_device rd;
    std::snprintf(name, sizeof name, "/lockstep-%d-%u-%08x", static_cast<int>(::getpid()), serial_, rd());
    fd = ::shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) err = errno;
    else if (::ftruncate(fd, static_cast<off_t>(total)) != 0) err = errno;
  }
  ++serial_;
  LOCKSTEP_MPI_CHECK(MPI_Bcast(name, sizeof name, MPI_CHAR, 0, node_));
  LOCKSTEP_MPI_CHECK(MPI_Bcast(&err, 1, MPI_INT, 0, node_));
  void* base = MAP_FAILED;
  if (err == 0) {
    if (local_rank_ != 0) fd = ::shm_open(name, O_RDWR, 0);
    if (fd < 0) err = errno;
    if (err == 0)
      err = ::posix_fallocate(fd, static_cast<off_t>(seg_bytes * static_cast<size_t>(local_rank_)),
                              static_cast<off_t>(seg_bytes));
    if (err == 0) {
      base = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED) err = errno;
    }
  }
  if (fd >= 0) ::close(fd);
  // Every rank of the node has opened the object once this returns: it can lose its name.
  int worst = 0;
  LOCKSTEP_MPI_CHECK(MPI_Allreduce(&err, &worst, 1, MPI_INT, MPI_MAX, node_));
  if (local_rank_ == 0 && name[0]) ::shm_unlink(name);
  if (worst != 0) {
    if (base != MAP_FAILED) ::munmap(base, total);
    if (why) *why = "cannot reserve " + std::to_string(total) + " bytes in /dev/shm: " + std::strerror(worst);
    return nullptr;
  }
  auto s = std::make_unique<NodeSegments>();
  s->name = name;
  s->base = base;
  s->map_bytes = total;
  s->capacity = seg_bytes / sizeof(float);
  s->local_rank = local_rank_;
  for (int q = 0; q < local_size_; ++q)
    s->segment.push_back(reinterpret_cast<float*>(static_cast<char*>(base) + seg_bytes * static_cast<size_t>(q)));
  live_.push_back(std::move(s));
  return live_.back().get();
}

void NodeReducer::unmap(NodeSegments* s) noexcept {
  const auto it = std::find_if(live_.begin(), live_.end(), [&](const auto& p) { return p.get() == s; });
  if (it == live_.end()) return;
  ::munmap((*it)->base, (*it)->map_bytes);
  live_.erase(it);
}

NodeSegments* NodeReducer::owner_of(const float* x, size_t n) const {
  const auto a = reinterpret_cast<uintptr_t>(x);
  for (const auto& s : live_) {
    const auto own = reinterpret_cast<uintptr_t>(s->mine());
    if (a >= own && a + n * sizeof(float) <= own + s->capacity * sizeof(float)) return s.get();
  }
  return nullptr;
}

void NodeReducer::allreduce(NodeSegments& s, float* x, size_t n) {
  const size_t off = static_cast<size_t>(x - s.mine());
  const size_t ranks = s.segment.size();
  const bool many_nodes = cross_ != MPI_COMM_NULL;
  // Every rank of the node has its values in place.
  LOCKSTEP_MPI_CHECK(MPI_Barrier(node_));
  // This rank's share: element i is summed here, in rank order, and nowhere else.
  const Range share = split_evenly(static_cast<int64_t>(n), local_rank_, local_size_);
  float* own = s.mine() + off;
  alignas(64) float acc[kBlock];
  for (auto b = static_cast<size_t>(share.begin); b < static_cast<size_t>(share.end); b += kBlock) {
    const size_t m = std::min(kBlock, static_cast<size_t>(share.end) - b);
    const float* first = s.segment[0] + off + b;
    for (size_t i = 0; i < m; ++i) acc[i] = first[i];
    for (size_t q = 1; q < ranks; ++q) {
      const float* next = s.segment[q] + off + b;
      for (size_t i = 0; i < m; ++i) acc[i] += next[i];
    }
    if (many_nodes) {
      std::memcpy(own + b, acc, m * sizeof(float));
    } else {
      for (size_t q = 0; q < ranks; ++q) std::memcpy(s.segment[q] + off + b, acc, m * sizeof(float));
    }
  }
  if (many_nodes) {
    // The node's sums of this share, added across nodes by the ranks holding the same share.
    float* mine = own + share.begin;
    const auto count = static_cast<size_t>(share.size());
    for (size_t o = 0; o < count; o += kMpiChunk) {
      const int c = static_cast<int>(std::min(kMpiChunk, count - o));
      LOCKSTEP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, mine + o, c, MPI_FLOAT, MPI_SUM, cross_));
    }
    for (size_t q = 0; q < ranks; ++q)
      if (static_cast<int>(q) != local_rank_) std::memcpy(s.segment[q] + off + share.begin, mine, count * sizeof(float));
  }
  // Every share is written into every segment.
  LOCKSTEP_MPI_CHECK(MPI_Barrier(node_));
}

}  // namespace lockstep::detail
