// The CUDA backend (see lockstep/cuda_backend.hpp): device memory, copies on the backend's
// stream, cuBLAS sgemm for the row-major GEMMs, and the launchers of kernels/*_cuda.cu. It owns
// the fixed scratch those kernels reduce into and the pinned words their results come back
// through, all sized once at construction, so no call after it allocates.
#include <cublas_v2.h>

#include <cmath>
#include <string>

#include "kernels/cuda_kernels.hpp"
#include "lockstep/cuda_backend.hpp"
#include "lockstep/cuda_check.hpp"

namespace lockstep {
namespace {

cublasOperation_t op_of(Trans t) { return t == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, bool tf32) : device_(device), tf32_(tf32) {
    try {
      init();
    } catch (...) {
      release_all();
      throw;
    }
  }
  ~CudaBackend() override { release_all(); }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  DeviceKind kind() const override { return DeviceKind::cuda; }
  std::string describe() const override {
    return fmt("cuda (GPU ", device_, ": ", name_, ", PCI ", bus_id_, "; cuBLAS ", tf32_ ? "TF32" : "fp32", ")");
  }
  int device() const { return device_; }
  size_t memory_bytes() const override { return memory_bytes_; }
  cudaStream_t stream() const { return stream_; }

  void* allocate(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t rc = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (rc == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw OutOfMemory(bytes, fmt("GPU memory (GPU ", device_, ": ", name_, ")"));
    }
    LOCKSTEP_CUDA_CHECK(rc);
    return p;
  }
  void release(void* p) noexcept override {
    // A failure here cannot be reported; clear it so that it is not blamed on a later launch.
    if (p && cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
  }
  // The copy is complete (and host_src reusable) on return, whatever kind of host memory it is.
  void to_device(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
    LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void* allocate_host(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t rc = cudaMallocHost(&p, bytes == 0 ? 1 : bytes);
    if (rc == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      throw OutOfMemory(bytes, "pinned host memory");
    }
    LOCKSTEP_CUDA_CHECK(rc);
    return p;
  }
  void release_host(void* p) noexcept override {
    if (p && cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
  }
  // Ordered after the queued kernels; from pinned memory the copy engine reads host_src
  // directly, so the caller keeps it unchanged until the next synchronize().
  void to_device_async(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void to_host(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill(float* x, size_t n, float value) override {
    if (n == 0) return;
    if (value == 0.0f && !std::signbit(value)) {
      LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof(float), stream_));
    } else {
      cuda::fill(x, n, value, stream_);
    }
  }
  void synchronize() override { LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  // cuBLAS is column-major: the row-major C (m,n) is the column-major C^T (n,m), and
  // C^T = op(B)^T op(A)^T, so the operands swap places and keep their own transposes.
  void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) override {
    if (m <= 0 || n <= 0) return;
    LOCKSTEP_CUBLAS_CHECK(cublasSgemm(blas_, op_of(tb), op_of(ta), n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
  }

  void bias_act_forward(Activation act, int rows, int cols, const float* bias, float* z, float* y) override {
    cuda::bias_act_forward(act, rows, cols, bias, z, y, stream_);
  }
  void bias_act_backward(Activation act, int rows, int cols, const float* z, const float* y, float* dy, float* dbias,
                         bool accumulate) override {
    cuda::bias_act_backward(act, rows, cols, z, y, dy, dbias, accumulate, column_scratch_, stream_);
  }

  LossSums softmax_xent(int rows, int cols, const float* logits, const int32_t* labels, float* dlogits) override {
    if (rows <= 0) return {};
    cuda::softmax_xent(rows, cols, logits, labels, dlogits, row_loss_, row_correct_, xent_dev_, stream_);
    return fetch_loss_sums();
  }

  LossSums distill_xent(int rows, int cols, const float* student, const float* teacher, const int32_t* labels,
                        const DistillCoef& coef, float* dlogits) override {
    if (rows <= 0) return {};
    cuda::distill_xent(rows, cols, student, teacher, labels, coef, dlogits, row_loss_, row_correct_, xent_dev_, stream_);
    return fetch_loss_sums();
  }

  double sum_squares(const float* x, size_t n) override {
    cuda::sum_squares(x, n, partial_, sum_dev_, stream_);
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(sum_host_, sum_dev_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return *sum_host_;
  }

  void optimizer_step(OptimizerKind kind, const OptimStep& step, float* params, const float* grads, float* state0,
                      float* state1, size_t n) override {
    cuda::optimizer_step(kind, step, params, grads, state0, state1, n, stream_);
  }

 private:
  // The sums a loss kernel left in xent_dev_, through the pinned word.
  LossSums fetch_loss_sums() {
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(xent_host_, xent_dev_, sizeof(cuda::XentSums), cudaMemcpyDeviceToHost, stream_));
    LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    LossSums s;
    s.loss = xent_host_->loss;
    s.correct = static_cast<int64_t>(xent_host_->correct);
    return s;
  }

  template <typename T>
  void device_alloc(T** p, size_t count) {
    LOCKSTEP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(p), count * sizeof(T)));
  }
  template <typename T>
  void host_alloc(T** p) {
    LOCKSTEP_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(p), sizeof(T)));
  }

  void init() {
    LOCKSTEP_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    LOCKSTEP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = prop.name;
    memory_bytes_ = prop.totalGlobalMem;
    char bus[32] = {0};
    LOCKSTEP_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, static_cast<int>(sizeof bus), device_));
    bus_id_ = bus;
    // Non-blocking: no implicit ordering with the legacy default stream of other libraries.
    LOCKSTEP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LOCKSTEP_CUBLAS_CHECK(cublasCreate(&blas_));
    LOCKSTEP_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    LOCKSTEP_CUBLAS_CHECK(cublasSetMathMode(blas_, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    device_alloc(&column_scratch_, cuda::kColumnScratch);
    device_alloc(&row_loss_, static_cast<size_t>(cuda::kXentRowsPerPass));
    device_alloc(&row_correct_, static_cast<size_t>(cuda::kXentRowsPerPass));
    device_alloc(&partial_, static_cast<size_t>(cuda::kMaxReduceBlocks));
    device_alloc(&sum_dev_, 1);
    device_alloc(&xent_dev_, 1);
    host_alloc(&sum_host_);
    host_alloc(&xent_host_);
  }

  // Never throws; safe on a partly constructed backend.
  void release_all() noexcept {
    if (stream_) (void)cudaStreamSynchronize(stream_);
    if (blas_) (void)cublasDestroy(blas_);
    release(column_scratch_);
    release(row_loss_);
    release(row_correct_);
    release(partial_);
    release(sum_dev_);
    release(xent_dev_);
    if (sum_host_) (void)cudaFreeHost(sum_host_);
    if (xent_host_) (void)cudaFreeHost(xent_host_);
    if (stream_) (void)cudaStreamDestroy(stream_);
    blas_ = nullptr;
    stream_ = nullptr;
    column_scratch_ = nullptr;
    row_loss_ = nullptr;
    row_correct_ = nullptr;
    partial_ = nullptr;
    sum_dev_ = nullptr;
    xent_dev_ = nullptr;
    sum_host_ = nullptr;
    xent_host_ = nullptr;
    (void)cudaGetLastError();
  }

  int device_;
  bool tf32_;
  std::string name_, bus_id_;
  size_t memory_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  float* column_scratch_ = nullptr;   // (kColumnScratch) per-chunk column sums
  float* row_loss_ = nullptr;         // (kXentRowsPerPass)
  int32_t* row_correct_ = nullptr;    // (kXentRowsPerPass)
  double* partial_ = nullptr;         // (kMaxReduceBlocks)
  double* sum_dev_ = nullptr;         // (1)
  cuda::XentSums* xent_dev_ = nullptr;
  double* sum_host_ = nullptr;        // pinned
  cuda::XentSums* xent_host_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, bool tf32) {
  return std::make_unique<CudaBackend>(device, tf32);
}

CudaContext cuda_context_of(Backend& backend) {
  auto* cb = dynamic_cast<CudaBackend*>(&backend);
  LOCKSTEP_CHECK(cb, "expected a CUDA backend, got ", backend.describe());
  CudaContext c;
  c.device = cb->device();
  c.stream = cb->stream();
  return c;
}

}  // namespace lockstep
