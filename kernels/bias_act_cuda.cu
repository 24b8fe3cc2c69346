// CUDA bias+activation: the forward pass (grid-stride over the elements) and the backward pass
// fused with the bias-gradient column sums. The element math is act_forward/act_grad from
// kernels/activation.hpp; the CPU reference is the loop pair in kernels/cpu_backend.cpp.
#include "kernels/cuda_kernels.hpp"
#include "kernels/cuda_launch.cuh"
#include "lockstep/cuda_check.hpp"

namespace lockstep::cuda {
namespace {

// z and y may alias (Activation::none), so neither is __restrict__.
template <Activation A>
__global__ void bias_act_forward_kernel(size_t total, int cols, const float* __restrict__ bias, float* z, float* y) {
  for (size_t i = grid_start(); i < total; i += grid_stride()) {
    const float v = z[i] + bias[i % static_cast<size_t>(cols)];
    z[i] = v;
    y[i] = act_forward<A>(v);
  }
}

// The backward tile: 32 columns by 8 row lanes. A block owns 32 columns of one chunk of rows;
// each thread walks its column down the chunk (coalesced across the warp), writes dL/dz and
// keeps a running sum; the 8 lanes' sums are then added in a fixed order.
constexpr int kTileCols = 32;
constexpr int kRowLanes = 8;
constexpr int kRowsPerChunk = 64;
constexpr int kMaxChunks = 65535;  // gridDim.y limit

template <Activation A>
__global__ void bias_act_backward_kernel(int rows, int cols, int rows_per_chunk, const float* __restrict__ z,
                                         const float* __restrict__ y, float* __restrict__ dy,
                                         float* __restrict__ dbias, float* __restrict__ partial, bool accumulate) {
  __shared__ float lanes[kRowLanes][kTileCols + 1];
  const int col = static_cast<int>(blockIdx.x) * kTileCols + static_cast<int>(threadIdx.x);
  const int chunk = static_cast<int>(blockIdx.y);
  const int r0 = chunk * rows_per_chunk;
  const int r1 = min(rows, r0 + rows_per_chunk);
  float acc = 0.0f;
  if (col < cols) {
    for (int r = r0 + static_cast<int>(threadIdx.y); r < r1; r += kRowLanes) {
      const size_t o = static_cast<size_t>(r) * static_cast<size_t>(cols) + static_cast<size_t>(col);
      const float d = dy[o] * act_grad<A, float>(z[o], y[o]);
      dy[o] = d;
      acc += d;
    }
  }
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || col >= cols) return;
  float sum = 0.0f;
  for (int l = 0; l < kRowLanes; ++l) sum += lanes[l][threadIdx.x];
  if (gridDim.y == 1) {
    dbias[col] = accumulate ? dbias[col] + sum : sum;
  } else {
    partial[static_cast<size_t>(chunk) * static_cast<size_t>(cols) + static_cast<size_t>(col)] = sum;
  }
}

// Second pass when the rows were split into chunks: per column, the chunks' sums in order.
__global__ void column_sum_kernel(int chunks, int cols, const float* __restrict__ partial, float* __restrict__ dbias,
                                  bool accumulate) {
  for (size_t c = grid_start(); c < static_cast<size_t>(cols); c += grid_stride()) {
    float sum = 0.0f;
    for (int k = 0; k < chunks; ++k) sum += partial[static_cast<size_t>(k) * static_cast<size_t>(cols) + c];
    dbias[c] = accumulate ? dbias[c] + sum : sum;
  }
}

template <Activation A>
void launch_forward(int rows, int cols, const float* bias, float* z, float* y, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  bias_act_forward_kernel<A><<<grid_for(total), kThreads, 0, stream>>>(total, cols, bias, z, y);
  LOCKSTEP_CUDA_CHECK_LAUNCH();
}

template <Activation A>
void launch_backward(int rows, int cols, const float* z, const float* y, float* dy, float* dbias, bool accumulate,
                     float* scratch, cudaStream_t stream) {
  // Chunks of 64 rows, fewer when their partial sums would not fit the scratch; the split
  // depends on the shape only, so the summation order (and the result) is reproducible.
  int chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  const auto fit = static_cast<int>(kColumnScratch / static_cast<size_t>(cols));
  if (chunks > fit) chunks = fit < 1 ? 1 : fit;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  const int rows_per_chunk = (rows + chunks - 1) / chunks;
  chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const dim3 grid(static_cast<unsigned>((cols + kTileCols - 1) / kTileCols), static_cast<unsigned>(chunks));
  const dim3 block(kTileCols, kRowLanes);
  bias_act_backward_kernel<A><<<grid, block, 0, stream>>>(rows, cols, rows_per_chunk, z, y, dy, dbias, scratch,
                                                          accumulate);
  LOCKSTEP_CUDA_CHECK_LAUNCH();
  if (chunks > 1) {
    column_sum_kernel<<<grid_for(static_cast<size_t>(cols)), kThreads, 0, stream>>>(chunks, cols, scratch, dbias,
                                                                                    accumulate);
    LOCKSTEP_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void bias_act_forward(Activation act, int rows, int cols, const float* bias, float* z, float* y, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  switch (act) {
    case Activation::none: return launch_forward<Activation::none>(rows, cols, bias, z, y, stream);
    case Activation::relu: return launch_forward<Activation::relu>(rows, cols, bias, z, y, stream);
    case Activation::tanh: return launch_forward<Activation::tanh>(rows, cols, bias, z, y, stream);
    case Activation::sigmoid: return launch_forward<Activation::sigmoid>(rows, cols, bias, z, y, stream);
    case Activation::gelu: return launch_forward<Activation::gelu>(rows, cols, bias, z, y, stream);
  }
  LOCKSTEP_CHECK(false, "unknown activation ", static_cast<int>(act));
}

void bias_act_backward(Activation act, int rows, int cols, const float* z, const float* y, float* dy, float* dbias,
                       bool accumulate, float* scratch, cudaStream_t stream) {
  if (cols <= 0) return;
  if (rows <= 0) {
    // No rows: the column sums are empty (zero), as on the CPU.
    if (!accumulate) LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(float) * static_cast<size_t>(cols), stream));
    return;
  }
  switch (act) {
    case Activation::none:
      return launch_backward<Activation::none>(rows, cols, z, y, dy, dbias, accumulate, scratch, stream);
    case Activation::relu:
      return launch_backward<Activation::relu>(rows, cols, z, y, dy, dbias, accumulate, scratch, stream);
    case Activation::tanh:
      return launch_backward<Activation::tanh>(rows, cols, z, y, dy, dbias, accumulate, scratch, stream);
    case Activation::sigmoid:
      return launch_backward<Activation::sigmoid>(rows, cols, z, y, dy, dbias, accumulate, scratch, stream);
    case Activation::gelu:
      return launch_backward<Activation::gelu>(rows, cols, z, y, dy, dbias, accumulate, scratch, stream);
  }
  LOCKSTEP_CHECK(false, "unknown activation ", static_cast<int>(act));
}

}  // namespace lockstep::cuda
