// SelfComm and MpiComm (see comm.hpp). MPI calls are confined to this file and the MPI session.
#include "lockstep/comm.hpp"

#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "lockstep/check.hpp"
#include "mpi_check.hpp"
#include "node_reducer.hpp"


namespace lockstep {

bool Comm::all_true(bool local) {
  int64_t v = local ? 0 : 1;
  allreduce_sum(&v, 1);
  return v == 0;
}

bool Comm::any_true(bool local) {
  int64_t v = local ? 1 : 0;
  allreduce_sum(&v, 1);
  return v > 0;
}

void Comm::broadcast_string(std::string& s, int root) {
  int64_t n = static_cast<int64_t>(s.size());
  broadcast(&n, sizeof n, root);
  s.resize(static_cast<size_t>(n));
  if (n > 0) broadcast(s.data(), static_cast<size_t>(n), root);
}

namespace {

std::string hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

class SelfComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string host() const override { return hostname(); }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  void allreduce_sum(int64_t*, size_t) override {}
  void allreduce_max(double*, size_t) override {}
  void allreduce_min(double*, size_t) override {}
  void broadcast(void*, size_t, int) override {}
  void allgather(const void* in, size_t bytes, void* out) override { std::memcpy(out, in, bytes); }
  void barrier() override {}
};

// MPI counts are int: large buffers go in chunks.
constexpr size_t kChunk = static_cast<size_t>(INT_MAX) / 2;

class MpiComm final : public Comm {
 public:
  explicit MpiComm(int ranks_per_node) {
    LOCKSTEP_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    LOCKSTEP_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    LOCKSTEP_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    LOCKSTEP_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    if (ranks_per_node > 0)
      LOCKSTEP_MPI_CHECK(MPI_Comm_split(comm_, rank_ / ranks_per_node, rank_, &node_));
    else
      LOCKSTEP_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_));
    LOCKSTEP_MPI_CHECK(MPI_Comm_rank(node_, &local_rank_));
    LOCKSTEP_MPI_CHECK(MPI_Comm_size(node_, &local_size_));
    host_ = hostname();
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    reducer_.reset();
    if (!finalized) {
      if (cross_ != MPI_COMM_NULL) MPI_Comm_free(&cross_);
      MPI_Comm_free(&node_);
      MPI_Comm_free(&comm_);
    }
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string host() const override { return host_; }

  void allreduce_sum(float* x, size_t n) override {
    if (reducer_)
      if (detail::NodeSegments* s = reducer_->owner_of(x, n)) return reducer_->allreduce(*s, x, n);
    reduce(x, n, MPI_FLOAT, MPI_SUM);
  }
  void allreduce_sum(double* x, size_t n) override { reduce(x, n, MPI_DOUBLE, MPI_SUM); }
  void allreduce_sum(int64_t* x, size_t n) override { reduce(x, n, MPI_INT64_T, MPI_SUM); }
  void allreduce_max(double* x, size_t n) override { reduce(x, n, MPI_DOUBLE, MPI_MAX); }
  void allreduce_min(double* x, size_t n) override { reduce(x, n, MPI_DOUBLE, MPI_MIN); }

  void broadcast(void* data, size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (size_t off = 0; off < bytes; off += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, bytes - off));
      LOCKSTEP_MPI_CHECK(MPI_Bcast(p + off, count, MPI_BYTE, root, comm_));
    }
  }
  void allgather(const void* in, size_t bytes, void* out) override {
    LOCKSTEP_CHECK(bytes <= kChunk, "allgather of ", bytes, " bytes is too large");
    LOCKSTEP_MPI_CHECK(MPI_Allgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes),
                                     MPI_BYTE, comm_));
  }
  void barrier() override { LOCKSTEP_MPI_CHECK(MPI_Barrier(comm_)); }

  std::unique_ptr<ReduceBuffer> make_reduce_buffer(size_t n, std::string* why) override {
    if (size_ == 1) return nullptr;
    // Only where nodes hold several ranks, and the same number each: the ranks of one share
    // then find their peers on every other node.
    int widest[2] = {local_size_, -local_size_};
    LOCKSTEP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, widest, 2, MPI_INT, MPI_MAX, comm_));
    if (widest[0] == 1 || widest[0] != -widest[1]) return nullptr;
    if (!reducer_) {
      if (size_ > local_size_) LOCKSTEP_MPI_CHECK(MPI_Comm_split(comm_, local_rank_, rank_, &cross_));
      reducer_ = std::make_unique<detail::NodeReducer>(node_, cross_);
    }
    std::string reason;
    detail::NodeSegments* s = reducer_->map(n, &reason);
    // The lowest rank that could not map its node's memory tells everyone why.
    int first_failed = s ? size_ : rank_;
    LOCKSTEP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &first_failed, 1, MPI_INT, MPI_MIN, comm_));
    if (first_failed < size_) {
      if (s) reducer_->unmap(s);
      if (rank_ == first_failed) reason = host_ + ": " + reason;
      broadcast_string(reason, first_failed);
      if (why) *why = fmt("rank ", first_failed, " on ", reason);
      return nullptr;
    }
    return std::make_unique<SharedSegment>(*reducer_, s);
  }

 private:
  // This rank's segment of a node-shared mapping.
  class SharedSegment final : public ReduceBuffer {
   public:
    SharedSegment(detail::NodeReducer& r, detail::NodeSegments* s) : reducer_(&r), segments_(s) {}
    ~SharedSegment() override { reducer_->unmap(segments_); }
    float* data() override { return segments_->mine(); }
    size_t size() const override { return segments_->capacity; }

   private:
    detail::NodeReducer* reducer_;
    detail::NodeSegments* segments_;
  };

  template <typename T>
  void reduce(T* x, size_t n, MPI_Datatype type, MPI_Op op) {
    if (size_ == 1) return;
    for (size_t off = 0; off < n; off += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, n - off));
      LOCKSTEP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x + off, count, type, op, comm_));
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL, node_ = MPI_COMM_NULL;
  MPI_Comm cross_ = MPI_COMM_NULL;  // the ranks of this local rank on every node (several nodes only)
  std::unique_ptr<detail::NodeReducer> reducer_;  // made by the first make_reduce_buffer
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string host_;
};

}  // namespace

std::unique_ptr<Comm> make_self_comm() { return std::make_unique<SelfComm>(); }
std::unique_ptr<Comm> make_mpi_comm(int ranks_per_node) { return std::make_unique<MpiComm>(ranks_per_node); }

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  LOCKSTEP_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // Failures of MPI calls on the world communicator come back as codes, not silent aborts.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiSession::abort_all(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace lockstep
