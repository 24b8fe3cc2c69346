// Communicators: the only place ranks talk to each other. One interface; implementations for a
// single process (SelfComm) and for MPI (MpiComm over a duplicate of MPI_COMM_WORLD). Every
// rank must make the same calls in the same order (invariant 1); the agreement helpers reduce
// a local decision so that control flow changes identically everywhere.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lockstep {

// Float memory that Comm::allreduce_sum adds up faster than any other (see make_reduce_buffer).
// Its destructor releases it locally, never collectively; the communicator must outlive it.
class ReduceBuffer {
 public:
  virtual ~ReduceBuffer() = default;
  virtual float* data() = 0;
  virtual size_t size() const = 0;  // floats
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank and count among the ranks on this node (from a shared-memory split).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual std::string host() const = 0;

  // In-place SUM across ranks.
  virtual void allreduce_sum(float* x, size_t n) = 0;
  virtual void allreduce_sum(double* x, size_t n) = 0;
  virtual void allreduce_sum(int64_t* x, size_t n) = 0;
  virtual void allreduce_max(double* x, size_t n) = 0;
  virtual void allreduce_min(double* x, size_t n) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Gathers `bytes` from every rank into out (size() * bytes), on every rank.
  virtual void allgather(const void* in, size_t bytes, void* out) = 0;
  virtual void barrier() = 0;

  // Collective: n floats (zeroed) whose allreduce_sum, or that of any range inside them, skips
  // copies. For MPI these are this rank's segment of a mapping shared by the ranks of its node:
  // they add each other's values in place, and MPI runs only between nodes. Null on every rank
  // when there is nothing to gain (one rank per node) or the memory cannot be had; in the latter
  // case *why (when given) says so, on every rank.
  virtual std::unique_ptr<ReduceBuffer> make_reduce_buffer(size_t n, std::string* why = nullptr) {
    (void)n;
    (void)why;
    return nullptr;
  }

  // Agreement helpers (collective).
  bool all_true(bool local);
  bool any_true(bool local);
  void broadcast_string(std::string& s, int root);
};

// One process, no MPI calls: collectives are identities.
std::unique_ptr<Comm> make_self_comm();

// MPI over a duplicate of MPI_COMM_WORLD, errors returned (and thrown) rather than fatal.
// MPI must already be initialised. ranks_per_node 0: nodes are what shares memory (an
// MPI_COMM_TYPE_SHARED split); k > 0: consecutive groups of k ranks act as the nodes, so tests
// on one machine reach the paths of a job spread over several.
std::unique_ptr<Comm> make_mpi_comm(int ranks_per_node = 0);

// Initialises MPI on construction, finalises on destruction (when initialised here).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  // Ends every rank of the job at once; used when one rank fails alone.
  [[noreturn]] static void abort_all(int code);
};

}  // namespace lockstep
