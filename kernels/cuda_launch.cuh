// Device-side helpers shared by the CUDA kernels: launch shapes for grid-stride loops and
// warp/block reductions (sum, max-with-first-index). Reductions combine values in a fixed
// order for a given block size, so their results are the same on every run.
#pragma once
#include <cuda_runtime.h>
#include <math_constants.h>

#include <cstddef>

namespace lockstep::cuda {

constexpr int kThreads = 256;           // block size of the element-wise kernels
constexpr unsigned kFullMask = 0xffffffffu;

// Blocks for a grid-stride loop over n elements: one thread per element up to a cap that keeps
// every SM of the largest current GPUs busy; beyond it each thread loops.
inline unsigned grid_for(size_t n, int threads = kThreads) {
  constexpr size_t kMaxBlocks = 4096;
  const size_t blocks = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// First index and stride of a grid-stride loop.
__device__ __forceinline__ size_t grid_start() {
  return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ size_t grid_stride() { return static_cast<size_t>(gridDim.x) * blockDim.x; }

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
  return v;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 (<= 1024).
// Every thread of the block must call it (it synchronises).
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T part[32];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (blockDim.x >> 5) ? part[lane] : T(0);
    v = warp_sum(v);
    if (lane == 0) part[0] = v;
  }
  __syncthreads();
  const T total = part[0];
  __syncthreads();  // part may be reused by the next call
  return total;
}

// A candidate maximum and its column; ties go to the lower column (the CPU's first argmax).
struct MaxAt {
  float value;
  int index;
};

__device__ __forceinline__ MaxAt better(MaxAt a, MaxAt b) {
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

__device__ __forceinline__ MaxAt warp_max(MaxAt v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    MaxAt o;
    o.value = __shfl_down_sync(kFullMask, v.value, offset);
    o.index = __shfl_down_sync(kFullMask, v.index, offset);
    v = better(v, o);
  }
  return v;
}

// Maximum over the block and its first column, returned to every thread (same rules as block_sum).
__device__ inline MaxAt block_max(MaxAt v) {
  __shared__ MaxAt part[32];
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  v = warp_max(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (blockDim.x >> 5) ? part[lane] : MaxAt{-CUDART_INF_F, 0x7fffffff};
    v = warp_max(v);
    if (lane == 0) part[0] = v;
  }
  __syncthreads();
  const MaxAt best = part[0];
  __syncthreads();
  return best;
}

}  // namespace lockstep::cuda
