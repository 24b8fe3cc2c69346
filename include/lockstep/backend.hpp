// The compute backend: memory and every kernel the trainer calls, behind one interface.
// CpuBackend (OpenBLAS + loops over the shared element math) is always built; a CUDA backend
// (cuBLAS + custom kernels) implements the same calls on device pointers. Kernels never
// allocate, log or communicate; pointers given to them belong to the backend's memory space.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "kernels/activation.hpp"
#include "kernels/distill_loss.hpp"
#include "kernels/optimizer_update.hpp"
#include "lockstep/check.hpp"

namespace lockstep {

enum class DeviceKind { cpu, cuda };

enum class Trans { no, yes };

// Sums over the rows of one softmax cross-entropy call.
struct LossSums {
  double loss = 0.0;     // sum of the rows' losses
  int64_t correct = 0;   // rows whose first argmax equals the label
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind kind() const = 0;
  virtual std::string describe() const = 0;

  // Memory in this backend's space. release never throws.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) noexcept = 0;
  virtual void to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill(float* x, size_t n, float value) = 0;
  virtual void synchronize() {}
  // The device's total memory in bytes; 0 on the CPU backend, whose memory is the host's.
  virtual size_t memory_bytes() const { return 0; }

  // Host memory that to_device_async copies from (pinned on a GPU, so the copy runs without a
  // staging bounce). release_host never throws.
  virtual void* allocate_host(size_t bytes);
  virtual void release_host(void* p) noexcept;
  // Enqueues a copy after the work already queued; host_src must stay unchanged until the next
  // synchronize(). The CPU backend copies at once.
  virtual void to_device_async(void* dst, const void* host_src, size_t bytes) { to_device(dst, host_src, bytes); }

  // Row-major C(m,n) = alpha * op(A)(m,k) * op(B)(k,n) + beta * C.
  virtual void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) = 0;

  // z (rows, cols) += bias (cols) in place, then y = act(z). y may equal z only for Activation::none.
  virtual void bias_act_forward(Activation act, int rows, int cols, const float* bias, float* z,
                                float* y) = 0;

  // In: dy = dL/dy (rows, cols). Out: dy overwritten with dL/dz = dy * act'(z);
  // dbias (cols) = column sums of dL/dz, added to dbias when accumulate, else stored.
  virtual void bias_act_backward(Activation act, int rows, int cols, const float* z, const float* y,
                                 float* dy, float* dbias, bool accumulate) = 0;

  // Per row: loss = logsumexp(z) - z[label], dlogits = softmax(z) - onehot (not divided by rows).
  // dlogits may be null (evaluation). Returns the sums over rows.
  virtual LossSums softmax_xent(int rows, int cols, const float* logits, const int32_t* labels,
                                float* dlogits) = 0;

  // Per row (kernels/distill_loss.hpp): loss = alpha T^2 KL(softmax(teacher/T) || softmax(student/T))
  // + (1 - alpha) CE(student, label), dlogits its gradient (not divided by rows); the correct count
  // is the student's. teacher is (rows, cols) like student. Returns the sums over rows.
  virtual LossSums distill_xent(int rows, int cols, const float* student, const float* teacher,
                                const int32_t* labels, const DistillCoef& coef, float* dlogits) = 0;

  // Sum of squares of x (n), accumulated in double.
  virtual double sum_squares(const float* x, size_t n) = 0;

  // One fused pass of optimizer K over n parameters. state0/state1 may be null when unused.
  virtual void optimizer_step(OptimizerKind kind, const OptimStep& step, float* params,
                              const float* grads, float* state0, float* state1, size_t n) = 0;
};

std::unique_ptr<Backend> make_cpu_backend();

// Owner of n elements of T in a backend's host memory (allocate_host). Movable, not copyable.
template <typename T>
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(Backend& be, size_t n) : be_(&be), n_(n) {
    if (n_ > std::numeric_limits<size_t>::max() / sizeof(T)) throw OutOfMemory(0, "host memory (over 2^64 bytes)");
    if (n_ > 0) p_ = static_cast<T*>(be.allocate_host(n_ * sizeof(T)));
  }
  ~HostBuffer() { reset(); }
  HostBuffer(HostBuffer&& o) noexcept
      : be_(o.be_), p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_;
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  void reset() noexcept {
    if (p_ && be_) be_->release_host(p_);
    p_ = nullptr;
    n_ = 0;
  }
  Backend* be_ = nullptr;
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Owner of n elements of T in a backend's memory. Movable, not copyable.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& be, size_t n) : be_(&be), n_(n) {
    if (n_ > std::numeric_limits<size_t>::max() / sizeof(T)) throw OutOfMemory(0, "memory (over 2^64 bytes)");
    if (n_ > 0) p_ = static_cast<T*>(be.allocate(n_ * sizeof(T)));
  }
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept : be_(o.be_), p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_;
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  Backend* backend() const { return be_; }

 private:
  void reset() noexcept {
    if (p_ && be_) be_->release(p_);
    p_ = nullptr;
    n_ = 0;
  }
  Backend* be_ = nullptr;
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace lockstep
