// The device-buffer communicator (see nccl_comm.hpp): NCCL set up from a unique id broadcast over
// MPI, the float allreduce on its own stream with asynchronous errors polled while it runs, and
// the host-staged fallback for ranks that share a GPU. Setup follows the agreement rule of
// agree.hpp: local steps record their failure instead of throwing before a collective, so every
// rank reaches the same collectives and then fails (or not) together.
#include "lockstep/nccl_comm.hpp"

#include "lockstep/check.hpp"

#ifdef LOCKSTEP_WITH_CUDA
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <ostream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "lockstep/cuda_backend.hpp"
#include "lockstep/cuda_check.hpp"

namespace lockstep {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Yield for the first polls (an allreduce of a small model takes tens of microseconds), then
// sleep briefly so a long wait does not burn a core.
void backoff(int polls) {
  if (polls < 2000) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

template <size_t N>
void put(char (&dst)[N], const std::string& src) {
  const size_t n = std::min(N - 1, src.size());
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

// What each rank tells the others before NCCL is set up.
struct RankSetup {
  int32_t ok = 0;
  char host[64] = {};
  char bus_id[32] = {};
  char error[320] = {};
};
static_assert(std::is_trivially_copyable_v<RankSetup>);

// Rank 0's unique id, with whether it could make one.
struct IdMessage {
  int32_t ok = 0;
  ncclUniqueId id{};
  char error[320] = {};
};
static_assert(std::is_trivially_copyable_v<IdMessage>);

class DeviceComm final : public Comm {
 public:
  DeviceComm(Comm& host, Backend& backend, std::ostream* log, double timeout_s) : host_(&host), timeout_s_(timeout_s) {
    try {
      setup(backend, log);
    } catch (...) {
      release(false);
      throw;
    }
  }
  ~DeviceComm() override { release(std::uncaught_exceptions() == 0); }
  DeviceComm(const DeviceComm&) = delete;
  DeviceComm& operator=(const DeviceComm&) = delete;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  std::string host() const override { return host_->host(); }

  // x is device memory of the backend's GPU.
  void allreduce_sum(float* x, size_t n) override {
    if (mode_ == Mode::single || n == 0) return;
    if (mode_ == Mode::staged) return staged_allreduce(x, n);
    LOCKSTEP_CHECK(nccl_, "the NCCL communicator was aborted after an earlier error");
    // The gradients are ready when the work queued so far on the backend's stream is done.
    LOCKSTEP_CUDA_CHECK(cudaEventRecord(ready_, ctx_.stream));
    LOCKSTEP_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    const ncclResult_t rc = ncclAllReduce(x, x, n, ncclFloat, ncclSum, nccl_, stream_);
    if (rc == ncclInProgress) {
      wait_until_idle("enqueueing the allreduce");
    } else if (rc != ncclSuccess) {
      fail(fmt("ncclAllReduce of ", n, " floats failed: ", detail::nccl_error_text(rc)));
    }
    LOCKSTEP_CUDA_CHECK(cudaEventRecord(done_, stream_));
    wait_for_event(n);
  }
  // Host memory, through the MPI communicator.
  void allreduce_sum(double* x, size_t n) override { host_->allreduce_sum(x, n); }
  void allreduce_sum(int64_t* x, size_t n) override { host_->allreduce_sum(x, n); }
  void allreduce_max(double* x, size_t n) override { host_->allreduce_max(x, n); }
  void allreduce_min(double* x, size_t n) override { host_->allreduce_min(x, n); }
  void broadcast(void* data, size_t bytes, int root) override { host_->broadcast(data, bytes, root); }
  void allgather(const void* in, size_t bytes, void* out) override { host_->allgather(in, bytes, out); }
  void barrier() override { host_->barrier(); }

 private:
  enum class Mode { single, nccl, staged };

  void setup(Backend& backend, std::ostream* log) {
    const int p = host_->size();
    // Local steps first; a failure is recorded, not thrown, until every rank has heard of it.
    RankSetup mine;
    put(mine.host, host_->host());
    try {
      ctx_ = cuda_context_of(backend);
      LOCKSTEP_CUDA_CHECK(cudaSetDevice(ctx_.device));
      LOCKSTEP_CUDA_CHECK(cudaDeviceGetPCIBusId(mine.bus_id, static_cast<int>(sizeof mine.bus_id), ctx_.device));
      LOCKSTEP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
      LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
      mine.ok = 1;
    } catch (const std::exception& e) {
      put(mine.error, e.what());
    }
    std::vector<RankSetup> all(static_cast<size_t>(p));
    host_->allgather(&mine, sizeof mine, all.data());
    bool shared = false;
    std::map<std::pair<std::string, std::string>, int> seen;
    for (int r = 0; r < p; ++r) {
      const RankSetup& s = all[static_cast<size_t>(r)];
      if (!s.ok) throw Error(fmt("setting up the gradient communicator failed on rank ", r, ": ", s.error));
      shared |= !seen.emplace(std::make_pair(std::string(s.host), std::string(s.bus_id)), r).second;
    }
    const bool root = host_->rank() == 0;
    if (p == 1) {
      mode_ = Mode::single;
      return;
    }
    if (shared) {
      mode_ = Mode::staged;
      if (root && log)
        *log << "lockstep: gradient allreduce through host memory over MPI (ranks share a GPU; NCCL needs one "
                "GPU per rank)" << std::endl;
      return;
    }
    mode_ = Mode::nccl;
    init_nccl();
    if (root && log) {
      int v = 0;
      (void)ncclGetVersion(&v);
      *log << "lockstep: gradient allreduce with NCCL " << v / 10000 << "." << (v % 10000) / 100 << "." << v % 100
           << " across " << p << " GPUs" << std::endl;
    }
  }

  void init_nccl() {
    IdMessage msg;
    if (host_->rank() == 0) {
      const ncclResult_t rc = ncclGetUniqueId(&msg.id);
      msg.ok = rc == ncclSuccess ? 1 : 0;
      if (!msg.ok) put(msg.error, detail::nccl_error_text(rc));
    }
    host_->broadcast(&msg, sizeof msg, 0);
    if (!msg.ok) throw Error(fmt("rank 0 could not create the NCCL unique id: ", msg.error));

    // Non-blocking, so that initialisation can be waited for with a timeout.
    std::string error;
    try {
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      const ncclResult_t rc = ncclCommInitRankConfig(&nccl_, host_->size(), msg.id, host_->rank(), &config);
      if (rc != ncclSuccess && rc != ncclInProgress)
        throw Error(fmt("ncclCommInitRankConfig failed: ", detail::nccl_error_text(rc)));
      wait_until_idle("initialising the NCCL communicator");
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!host_->all_true(error.empty())) {
      abort_nccl();
      throw Error(error.empty() ? std::string("NCCL initialisation failed on another rank") : error);
    }
  }

  // Polls the communicator's state until it leaves ncclInProgress.
  void wait_until_idle(const char* what) {
    const auto start = Clock::now();
    for (int polls = 0;; ++polls) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t rc = ncclCommGetAsyncError(nccl_, &state);
      if (rc != ncclSuccess) fail(fmt("ncclCommGetAsyncError failed while ", what, ": ", detail::nccl_error_text(rc)));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(fmt("NCCL failed while ", what, ": ", detail::nccl_error_text(state)));
      if (seconds_since(start) > timeout_s_)
        fail(fmt("NCCL did not finish ", what, " within ", timeout_s_, " s (a peer rank may have failed or hung)"));
      backoff(polls);
    }
  }

  // Waits for the allreduce to complete on the GPU, watching for NCCL errors and the timeout.
  void wait_for_event(size_t n) {
    const auto start = Clock::now();
    for (int polls = 0;; ++polls) {
      const cudaError_t q = cudaEventQuery(done_);
      if (q == cudaSuccess) {
        // "Not ready" is not an error; make sure no earlier poll left it behind for a launch check.
        if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
        return;
      }
      if (q != cudaErrorNotReady) {
        (void)cudaGetLastError();
        fail(fmt("CUDA error while waiting for the allreduce: ", cudaGetErrorName(q), ": ", cudaGetErrorString(q)));
      }
      ncclResult_t state = ncclSuccess;
      const ncclResult_t rc = ncclCommGetAsyncError(nccl_, &state);
      if (rc != ncclSuccess) fail(fmt("ncclCommGetAsyncError failed: ", detail::nccl_error_text(rc)));
      if (state != ncclSuccess && state != ncclInProgress)
        fail(fmt("NCCL reported an error during the allreduce of ", n, " floats: ", detail::nccl_error_text(state),
                 " (a peer rank may have failed)"));
      if (seconds_since(start) > timeout_s_)
        fail(fmt("the allreduce of ", n, " floats did not complete within ", timeout_s_,
                 " s (a peer rank may have stopped or hung)"));
      backoff(polls);
    }
  }

  // Ranks sharing a GPU: copy out, reduce over MPI, copy back. The pinned staging buffer is
  // allocated at the first call (the first step) and reused afterwards.
  void staged_allreduce(float* x, size_t n) {
    if (staging_n_ < n) {
      if (staging_) (void)cudaFreeHost(staging_);
      staging_ = nullptr;
      staging_n_ = 0;
      LOCKSTEP_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&staging_), n * sizeof(float)));
      staging_n_ = n;
    }
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(staging_, x, n * sizeof(float), cudaMemcpyDeviceToHost, ctx_.stream));
    LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    host_->allreduce_sum(staging_, n);
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(x, staging_, n * sizeof(float), cudaMemcpyHostToDevice, ctx_.stream));
    LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  void abort_nccl() noexcept {
    if (nccl_) (void)ncclCommAbort(nccl_);
    nccl_ = nullptr;
  }

  [[noreturn]] void fail(const std::string& msg) {
    abort_nccl();
    throw Error(fmt(msg, "; NCCL communicator aborted on rank ", host_->rank(), " of ", host_->size()));
  }

  // Never throws. A clean shutdown finalizes the communicator (bounded wait); on an error path
  // (or if finalizing fails) it is aborted, which never waits for peers.
  void release(bool clean) noexcept {
    if (nccl_ && clean) {
      const auto start = Clock::now();
      ncclResult_t state = ncclCommFinalize(nccl_);
      for (int polls = 0; state == ncclInProgress && seconds_since(start) < 30.0; ++polls) {
        if (ncclCommGetAsyncError(nccl_, &state) != ncclSuccess) break;
        backoff(polls);
      }
      if (state == ncclSuccess) {
        (void)ncclCommDestroy(nccl_);
        nccl_ = nullptr;
      }
    }
    abort_nccl();
    if (done_) (void)cudaEventDestroy(done_);
    if (ready_) (void)cudaEventDestroy(ready_);
    if (stream_) (void)cudaStreamDestroy(stream_);
    if (staging_) (void)cudaFreeHost(staging_);
    done_ = ready_ = nullptr;
    stream_ = nullptr;
    staging_ = nullptr;
    (void)cudaGetLastError();
  }

  Comm* host_;
  double timeout_s_;
  Mode mode_ = Mode::single;
  CudaContext ctx_;
  ncclComm_t nccl_ = nullptr;
  cudaStream_t stream_ = nullptr;   // the communicator's own stream
  cudaEvent_t ready_ = nullptr;     // recorded on the backend's stream before each allreduce
  cudaEvent_t done_ = nullptr;      // recorded on stream_ after it
  float* staging_ = nullptr;        // pinned, staged mode only
  size_t staging_n_ = 0;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(Comm& host_comm, Backend& backend, std::ostream* log, double timeout_s) {
  return std::make_unique<DeviceComm>(host_comm, backend, log, timeout_s);
}

}  // namespace lockstep

#else  // no CUDA backend in this build

namespace lockstep {

std::unique_ptr<Comm> make_nccl_comm(Comm&, Backend&, std::ostream*, double) {
  throw Error("this build has no CUDA backend, hence no NCCL communicator");
}

}  // namespace lockstep

#endif
