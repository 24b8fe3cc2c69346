// CUDA softmax cross-entropy: one block per row reduces the row's maximum (with its first
// column, the CPU's argmax), then the shifted exp-sum, and applies xent_loss/xent_grad from
// kernels/softmax_xent.hpp; a second kernel sums the per-row losses and correct flags (the
// accuracy count) in a fixed order (sum_row_losses, shared with the distillation kernel). The CPU
// reference is xent_row in the same header.
#include "kernels/cuda_kernels.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/softmax_xent.hpp"
#include "lockstep/cuda_check.hpp"

namespace lockstep::cuda {
namespace {

constexpr int kSumThreads = 1024;

// Stable for any finite logits: exp only sees z - max <= 0. A label outside [0, cols) gives a
// NaN loss (and no out-of-bounds read) so that it cannot pass unnoticed.
__global__ void xent_rows_kernel(int cols, const float* __restrict__ logits, const int32_t* __restrict__ labels,
                                 float* __restrict__ dlogits, float* __restrict__ row_loss,
                                 int32_t* __restrict__ row_correct) {
  const size_t row = blockIdx.x;
  const float* z = logits + row * static_cast<size_t>(cols);
  MaxAt best{-CUDART_INF_F, 0x7fffffff};
  for (int j = static_cast<int>(threadIdx.x); j < cols; j += static_cast<int>(blockDim.x))
    best = better(best, MaxAt{z[j], j});
  best = block_max(best);
  const float m = best.value;
  float s = 0.0f;
  for (int j = static_cast<int>(threadIdx.x); j < cols; j += static_cast<int>(blockDim.x)) s += math_exp(z[j] - m);
  s = block_sum(s);
  const int label = labels[row];
  const bool valid = label >= 0 && label < cols;
  if (dlogits) {
    float* dz = dlogits + row * static_cast<size_t>(cols);
    for (int j = static_cast<int>(threadIdx.x); j < cols; j += static_cast<int>(blockDim.x))
      dz[j] = xent_grad(z[j], m, s, j == label);
  }
  if (threadIdx.x == 0) {
    row_loss[row] = valid ? xent_loss(m, s, z[label]) : CUDART_NAN_F;
    row_correct[row] = (valid && best.index == label) ? 1 : 0;
  }
}

__global__ void xent_sum_kernel(int rows, const float* __restrict__ row_loss, const int32_t* __restrict__ row_correct,
                                XentSums* __restrict__ sums, bool accumulate) {
  double loss = 0.0;
  long long correct = 0;
  for (int i = static_cast<int>(threadIdx.x); i < rows; i += static_cast<int>(blockDim.x)) {
    loss += static_cast<double>(row_loss[i]);
    correct += row_correct[i];
  }
  loss = block_sum(loss);
  correct = block_sum(correct);
  if (threadIdx.x == 0) {
    sums->loss = accumulate ? sums->loss + loss : loss;
    sums->correct = accumulate ? sums->correct + correct : correct;
  }
}

}  // namespace

int xent_threads_for(int cols) {
  int t = 32;
  while (t < cols && t < 256) t *= 2;
  return t;
}

void sum_row_losses(int rows, const float* row_loss, const int32_t* row_correct, XentSums* sums, bool accumulate,
                    cudaStream_t stream) {
  xent_sum_kernel<<<1, kSumThreads, 0, stream>>>(rows, row_loss, row_correct, sums, accumulate);
  LOCKSTEP_CUDA_CHECK_LAUNCH();
}

void softmax_xent(int rows, int cols, const float* logits, const int32_t* labels, float* dlogits, float* row_loss,
                  int32_t* row_correct, XentSums* sums, cudaStream_t stream) {
  LOCKSTEP_CHECK(cols > 0, "softmax_xent needs at least one column");
  if (rows <= 0) {
    LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(XentSums), stream));
    return;
  }
  const int threads = xent_threads_for(cols);
  const size_t stride = static_cast<size_t>(cols);
  for (int begin = 0; begin < rows; begin += kXentRowsPerPass) {
    const int n = rows - begin < kXentRowsPerPass ? rows - begin : kXentRowsPerPass;
    const size_t offset = static_cast<size_t>(begin) * stride;
    xent_rows_kernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(
        cols, logits + offset, labels + begin, dlogits ? dlogits + offset : nullptr, row_loss, row_correct);
    LOCKSTEP_CUDA_CHECK_LAUNCH();
    sum_row_losses(n, row_loss, row_correct, sums, begin > 0, stream);
  }
}

}  // namespace lockstep::cuda
