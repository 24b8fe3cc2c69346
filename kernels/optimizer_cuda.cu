// The fused CUDA optimizer pass: one launch per step over the flat parameter buffer, templated
// on the optimizer as the CPU loop is, each thread applying optimizer_update<K> from
// kernels/optimizer_update.hpp to its elements (gradient scaling and clipping included).
#include "kernels/cuda_kernels.hpp"
#include "kernels/cuda_launch.cuh"
#include "lockstep/cuda_check.hpp"

namespace lockstep::cuda {
namespace {

template <OptimizerKind K>
constexpr int kStates = optimizer_state_count(K);

// The step's scalars arrive by value (kernel parameter space); state the optimizer does not
// keep is neither read nor written.
template <OptimizerKind K>
__global__ void optimizer_kernel(OptimStep step, float* __restrict__ p, const float* __restrict__ g,
                                 float* __restrict__ s0, float* __restrict__ s1, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    float param = p[i];
    float a = 0.0f, b = 0.0f;
    if constexpr (kStates<K> >= 1) a = s0[i];
    if constexpr (kStates<K> >= 2) b = s1[i];
    optimizer_update<K>(step, param, g[i], a, b);
    p[i] = param;
    if constexpr (kStates<K> >= 1) s0[i] = a;
    if constexpr (kStates<K> >= 2) s1[i] = b;
  }
}

template <OptimizerKind K>
void launch(const OptimStep& step, float* p, const float* g, float* s0, float* s1, size_t n, cudaStream_t stream) {
  LOCKSTEP_CHECK(kStates<K> < 1 || s0, "optimizer needs its first state buffer");
  LOCKSTEP_CHECK(kStates<K> < 2 || s1, "optimizer needs its second state buffer");
  optimizer_kernel<K><<<grid_for(n), kThreads, 0, stream>>>(step, p, g, s0, s1, n);
  LOCKSTEP_CUDA_CHECK_LAUNCH();
}

}  // namespace

void optimizer_step(OptimizerKind kind, const OptimStep& step, float* p, const float* g, float* s0, float* s1,
                    size_t n, cudaStream_t stream) {
  if (n == 0) return;
  switch (kind) {
    case OptimizerKind::sgd: return launch<OptimizerKind::sgd>(step, p, g, s0, s1, n, stream);
    case OptimizerKind::momentum: return launch<OptimizerKind::momentum>(step, p, g, s0, s1, n, stream);
    case OptimizerKind::adam: return launch<OptimizerKind::adam>(step, p, g, s0, s1, n, stream);
    case OptimizerKind::adamw: return launch<OptimizerKind::adamw>(step, p, g, s0, s1, n, stream);
    case OptimizerKind::adagrad: return launch<OptimizerKind::adagrad>(step, p, g, s0, s1, n, stream);
    case OptimizerKind::rmsprop: return launch<OptimizerKind::rmsprop>(step, p, g, s0, s1, n, stream);
  }
  LOCKSTEP_CHECK(false, "unknown optimizer ", static_cast<int>(kind));
}

}  // namespace lockstep::cuda
