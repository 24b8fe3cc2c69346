// CUDA reductions and fills over flat buffers: the global sum of squares (the gradient norm
// before clipping) in two deterministic passes, and fill. The CPU references are
// CpuBackend::sum_squares and CpuBackend::fill in kernels/cpu_backend.cpp.
#include "kernels/cuda_kernels.hpp"
#include "kernels/cuda_launch.cuh"
#include "lockstep/cuda_check.hpp"

namespace lockstep::cuda {
namespace {

constexpr int kReduceThreads = 256;
// Elements per thread before another block is worth starting.
constexpr size_t kPerThread = 16;

// Each block writes the double sum of its grid-stride share to partial[blockIdx.x].
__global__ void sum_squares_partial_kernel(const float* __restrict__ x, size_t n, double* __restrict__ partial) {
  double acc = 0.0;
  for (size_t i = grid_start(); i < n; i += grid_stride()) acc += static_cast<double>(x[i]) * x[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(const double* __restrict__ partial, int count, double* __restrict__ out) {
  double acc = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x)) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void fill_kernel(float* __restrict__ x, size_t n, float value) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) x[i] = value;
}

}  // namespace

void sum_squares(const float* x, size_t n, double* partial, double* out, cudaStream_t stream) {
  // The block count is a function of n alone (not of the GPU), so the summation order is too.
  const size_t per_block = kPerThread * static_cast<size_t>(kReduceThreads);
  size_t blocks = (n + per_block - 1) / per_block;
  if (blocks < 1) blocks = 1;
  if (blocks > static_cast<size_t>(kMaxReduceBlocks)) blocks = kMaxReduceBlocks;
  sum_squares_partial_kernel<<<static_cast<unsigned>(blocks), kReduceThreads, 0, stream>>>(x, n, partial);
  LOCKSTEP_CUDA_CHECK_LAUNCH();
  sum_partials_kernel<<<1, kReduceThreads, 0, stream>>>(partial, static_cast<int>(blocks), out);
  LOCKSTEP_CUDA_CHECK_LAUNCH();
}

void fill(float* x, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, n, value);
  LOCKSTEP_CUDA_CHECK_LAUNCH();
}

}  // namespace lockstep::cuda
