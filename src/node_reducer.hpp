// The intra-node half of MpiComm's float allreduce: the ranks of a node keep their gradient
// buffers as segments of one shared mapping (POSIX shared memory), so each rank adds up its share
// of every segment in place and writes the sums back into all of them: no copy through MPI, each
// element summed once, in rank order, so every rank gets bitwise the same result. Across nodes,
// each local rank allreduces its share with its peers (same local rank) over MPI. Private to
// comm.cpp; the public face is Comm::make_reduce_buffer.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/comm.hpp"

namespace lockstep::detail {

// One mapping: L segments of `capacity` floats, segment q owned by local rank q.
struct NodeSegments {
  std::string name;               // the shared-memory object (unlinked once every rank mapped it)
  void* base = nullptr;
  size_t map_bytes = 0;
  size_t capacity = 0;            // floats per segment
  std::vector<float*> segment;    // (L) every local rank's segment, in this process's mapping
  float* mine() const { return segment[static_cast<size_t>(local_rank)]; }
  int local_rank = 0;
};

class NodeReducer {
 public:
  // node: the ranks of this node; cross: this rank and its peers of the same local rank on the
  // other nodes (MPI_COMM_NULL on a single node). Both must outlive the reducer.
  NodeReducer(MPI_Comm node, MPI_Comm cross);
  ~NodeReducer();
  NodeReducer(const NodeReducer&) = delete;
  NodeReducer& operator=(const NodeReducer&) = delete;

  // Collective over the node: maps a new set of segments of n floats (zeroed). Returns null, on
  // every rank of the node, when shared memory cannot be had here (the reason in *why).
  NodeSegments* map(size_t n, std::string* why);
  // Local: unmaps one set (the others of the node unmap theirs in their own time).
  void unmap(NodeSegments* s) noexcept;

  // The live set whose own segment holds x[0..n), or null.
  NodeSegments* owner_of(const float* x, size_t n) const;

  // In-place sum of x[0..n) (inside s's own segment) over every rank of the job. Collective.
  void allreduce(NodeSegments& s, float* x, size_t n);

 private:
  MPI_Comm node_, cross_;
  int local_rank_ = 0, local_size_ = 1;
  std::vector<std::unique_ptr<NodeSegments>> live_;
  unsigned serial_ = 0;           // names the next mapping
};

}  // namespace lockstep::detail
