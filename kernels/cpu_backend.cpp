// The CPU backend: OpenBLAS for GEMM, plain loops around the shared element math for the rest.
// Each loop reads and writes every buffer once (bias+activation and its gradient are fused).
// Built with -fno-math-errno -fno-trapping-math (CMakeLists.txt): errno and FP traps are never
// used here, and without them GCC keeps a scalar sqrtf call path (the optimizer loops) and a
// branch per element (the ReLU gradient) instead of vectorising. Results are unchanged: vector
// sqrt/div/mul round exactly like their scalar forms and no sum is reordered.
#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/distill_loss.hpp"
#include "kernels/softmax_xent.hpp"
#include "lockstep/backend.hpp"
#include "lockstep/check.hpp"

namespace lockstep {
namespace {

// The buffers a loop writes never overlap the ones it reads (except y == z, read-only, in the
// backward pass of the last layer), which the compiler cannot prove: this lets it vectorise.
#if defined(__clang__)
#define LOCKSTEP_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define LOCKSTEP_IVDEP _Pragma("GCC ivdep")
#else
#define LOCKSTEP_IVDEP
#endif

template <Activation A>
void bias_act_forward_loop(int rows, int cols, const float* bias, float* z, float* y) {
  if (A == Activation::none && y == z) {  // the logits: the bias only
    for (int r = 0; r < rows; ++r) {
      float* zr = z + static_cast<size_t>(r) * cols;
      LOCKSTEP_IVDEP for (int j = 0; j < cols; ++j) zr[j] += bias[j];
    }
    return;
  }
  for (int r = 0; r < rows; ++r) {
    float* zr = z + static_cast<size_t>(r) * cols;
    float* yr = y + static_cast<size_t>(r) * cols;
    LOCKSTEP_IVDEP for (int j = 0; j < cols; ++j) {
      const float v = zr[j] + bias[j];
      zr[j] = v;
      yr[j] = act_forward<A>(v);
    }
  }
}

// Row by row, so dy, z and y stream through once; dbias (cols) stays in L1 and takes each row's
// dL/dz as one vector add per 8 columns (a fixed order: rows in sequence, as before).
template <Activation A>
void bias_act_backward_loop(int rows, int cols, const float* z, const float* y, float* dy,
                            float* dbias, bool accumulate) {
  if (!accumulate) std::memset(dbias, 0, sizeof(float) * cols);
  for (int r = 0; r < rows; ++r) {
    const size_t o = static_cast<size_t>(r) * cols;
    const float* zr = z + o;
    const float* yr = y + o;
    float* dyr = dy + o;
    LOCKSTEP_IVDEP for (int j = 0; j < cols; ++j) {
      const float d = dyr[j] * act_grad<A, float>(zr[j], yr[j]);
      dyr[j] = d;
      dbias[j] += d;
    }
  }
}

// One loop per number of state buffers, with no per-element null checks, so each vectorizes.
// A state the optimizer does not keep is a fresh local per element that nothing reads.
template <OptimizerKind K>
void optimizer_loop(const OptimStep& s, float* __restrict p, const float* __restrict g,
                    float* __restrict s0, float* __restrict s1, size_t n) {
  constexpr int states = optimizer_state_count(K);
  if constexpr (states == 0) {
    for (size_t i = 0; i < n; ++i) {
      float unused0 = 0.0f, unused1 = 0.0f;
      optimizer_update<K>(s, p[i], g[i], unused0, unused1);
    }
  } else if constexpr (states == 1) {
    LOCKSTEP_CHECK(s0, "optimizer ", static_cast<int>(K), " needs its state buffer");
    for (size_t i = 0; i < n; ++i) {
      float unused1 = 0.0f;
      optimizer_update<K>(s, p[i], g[i], s0[i], unused1);
    }
  } else {
    LOCKSTEP_CHECK(s0 && s1, "optimizer ", static_cast<int>(K), " needs two state buffers");
    for (size_t i = 0; i < n; ++i) optimizer_update<K>(s, p[i], g[i], s0[i], s1[i]);
  }
}

}  // namespace

// The default host memory: 64-byte aligned (whole cache lines and full AVX-512 vectors).
void* Backend::allocate_host(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = rounded < bytes ? nullptr : std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw OutOfMemory(bytes, "host memory");
  return p;
}
void Backend::release_host(void* p) noexcept { std::free(p); }

namespace {

class CpuBackend final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::cpu; }
  std::string describe() const override { return "cpu (OpenBLAS)"; }

  // Device memory is host memory here.
  void* allocate(size_t bytes) override { return allocate_host(bytes); }
  void release(void* p) noexcept override { release_host(p); }
  void to_device(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void fill(float* x, size_t n, float value) override {
    for (size_t i = 0; i < n; ++i) x[i] = value;
  }

  void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc) override {
    if (beta == 0.0f) {
      // OpenBLAS implements beta = 0 as a separate zeroing pass over C (sgemm_beta, scalar
      // stores) before its kernel adds alpha*op(A)op(B) into C; memset does the same pass about
      // twice as fast (sgemm_beta was 6% of the small MLP's step). Bit-identical: the kernel
      // adds to zeros either way.
      if (ldc == n) {
        std::memset(C, 0, sizeof(float) * static_cast<size_t>(m) * static_cast<size_t>(n));
      } else {
        for (int r = 0; r < m; ++r) std::memset(C + static_cast<size_t>(r) * ldc, 0, sizeof(float) * n);
      }
      beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, ta == Trans::yes ? CblasTrans : CblasNoTrans,
                tb == Trans::yes ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  void bias_act_forward(Activation act, int rows, int cols, const float* bias, float* z, float* y) override {
    switch (act) {
      case Activation::none: return bias_act_forward_loop<Activation::none>(rows, cols, bias, z, y);
      case Activation::relu: return bias_act_forward_loop<Activation::relu>(rows, cols, bias, z, y);
      case Activation::tanh: return bias_act_forward_loop<Activation::tanh>(rows, cols, bias, z, y);
      case Activation::sigmoid: return bias_act_forward_loop<Activation::sigmoid>(rows, cols, bias, z, y);
      case Activation::gelu: return bias_act_forward_loop<Activation::gelu>(rows, cols, bias, z, y);
    }
    LOCKSTEP_CHECK(false, "unknown activation ", static_cast<int>(act));
  }

  void bias_act_backward(Activation act, int rows, int cols, const float* z, const float* y, float* dy,
                         float* dbias, bool accumulate) override {
    switch (act) {
      case Activation::none: return bias_act_backward_loop<Activation::none>(rows, cols, z, y, dy, dbias, accumulate);
      case Activation::relu: return bias_act_backward_loop<Activation::relu>(rows, cols, z, y, dy, dbias, accumulate);
      case Activation::tanh: return bias_act_backward_loop<Activation::tanh>(rows, cols, z, y, dy, dbias, accumulate);
      case Activation::sigmoid: return bias_act_backward_loop<Activation::sigmoid>(rows, cols, z, y, dy, dbias, accumulate);
      case Activation::gelu: return bias_act_backward_loop<Activation::gelu>(rows, cols, z, y, dy, dbias, accumulate);
    }
    LOCKSTEP_CHECK(false, "unknown activation ", static_cast<int>(act));
  }

  LossSums softmax_xent(int rows, int cols, const float* logits, const int32_t* labels, float* dlogits) override {
    LossSums sums;
    for (int r = 0; r < rows; ++r) {
      const size_t o = static_cast<size_t>(r) * cols;
      int argmax = 0;
      sums.loss += xent_row(logits + o, cols, labels[r], dlogits ? dlogits + o : nullptr, &argmax);
      sums.correct += (argmax == labels[r]) ? 1 : 0;
    }
    return sums;
  }

  LossSums distill_xent(int rows, int cols, const float* student, const float* teacher, const int32_t* labels,
                        const DistillCoef& coef, float* dlogits) override {
    LossSums sums;
    for (int r = 0; r < rows; ++r) {
      const size_t o = static_cast<size_t>(r) * cols;
      int argmax = 0;
      sums.loss += distill_row(student + o, teacher + o, cols, labels[r], coef, dlogits ? dlogits + o : nullptr, &argmax);
      sums.correct += (argmax == labels[r]) ? 1 : 0;
    }
    return sums;
  }

  double sum_squares(const float* x, size_t n) override {
    // Eight contiguous parts read side by side, each into eight double accumulators: a fixed
    // order (deterministic) that pipelines. One stream alone reads ~9 GB/s here; eight in flight
    // ~13 GB/s (a 147 MB gradient: 16 ms -> 11 ms; bench/results/README.md).
    constexpr size_t kStreams = 8, kLanes = 8;
    double acc[kStreams][kLanes] = {};
    const size_t part = n / (kStreams * kLanes) * kLanes;
    for (size_t i = 0; i < part; i += kLanes) {
      for (size_t s = 0; s < kStreams; ++s) {
        const float* y = x + s * part + i;
        for (size_t k = 0; k < kLanes; ++k) acc[s][k] += static_cast<double>(y[k]) * y[k];
      }
    }
    double tail = 0.0;
    for (size_t i = kStreams * part; i < n; ++i) tail += static_cast<double>(x[i]) * x[i];
    double total = 0.0;
    for (size_t s = 0; s < kStreams; ++s)
      for (size_t k = 0; k < kLanes; ++k) total += acc[s][k];
    return total + tail;
  }


  void optimizer_step(OptimizerKind kind, const OptimStep& s, float* p, const float* g, float* s0, float* s1,
                      size_t n) override {
    switch (kind) {
      case OptimizerKind::sgd: return optimizer_loop<OptimizerKind::sgd>(s, p, g, s0, s1, n);
      case OptimizerKind::momentum: return optimizer_loop<OptimizerKind::momentum>(s, p, g, s0, s1, n);
      case OptimizerKind::adagrad: return optimizer_loop<OptimizerKind::adagrad>(s, p, g, s0, s1, n);
      case OptimizerKind::rmsprop: return optimizer_loop<OptimizerKind::rmsprop>(s, p, g, s0, s1, n);
      case OptimizerKind::adam: return optimizer_loop<OptimizerKind::adam>(s, p, g, s0, s1, n);
      case OptimizerKind::adamw: return optimizer_loop<OptimizerKind::adamw>(s, p, g, s0, s1, n);
    }
    LOCKSTEP_CHECK(false, "unknown optimizer ", static_cast<int>(kind));
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace lockstep
