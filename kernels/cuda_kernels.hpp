// Host-side launchers of the CUDA kernels (CUDA builds only), one group per kernels/*_cuda.cu.
// Each takes device pointers, sizes and a stream, enqueues its kernels, checks every launch and
// returns without synchronising. None allocates: the reductions write into scratch the caller
// owns, with the sizes given here. The element math is the LOCKSTEP_HD functions the CPU uses.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/activation.hpp"
#include "kernels/distill_loss.hpp"
#include "kernels/optimizer_update.hpp"

namespace lockstep::cuda {

// --- bias_act_cuda.cu ---------------------------------------------------------------------------
// z (rows, cols) += bias (cols) in place, then y = act(z). y may equal z only for Activation::none.
void bias_act_forward(Activation act, int rows, int cols, const float* bias, float* z, float* y, cudaStream_t stream);

// Floats of scratch bias_act_backward may use for its per-chunk column sums.
constexpr size_t kColumnScratch = size_t{1} << 20;
// dy (rows, cols) <- dy * act'(z); dbias (cols) = column sums of the new dy (+ dbias when
// accumulate). The sums run in a fixed order that depends on (rows, cols) only: deterministic.
void bias_act_backward(Activation act, int rows, int cols, const float* z, const float* y, float* dy, float* dbias,
                       bool accumulate, float* scratch, cudaStream_t stream);

// --- softmax_xent_cuda.cu -----------------------------------------------------------------------
// The sums of one softmax_xent call, in device memory.
struct XentSums {
  double loss;
  long long correct;
};
// Rows handled per pass; row_loss and row_correct hold this many entries.
constexpr int kXentRowsPerPass = 1 << 16;
// One block per row: loss = logsumexp(z) - z[label] and dlogits = softmax(z) - onehot (when
// dlogits is not null), then the per-row losses and correct flags are summed into *sums.
void softmax_xent(int rows, int cols, const float* logits, const int32_t* labels, float* dlogits, float* row_loss,
                  int32_t* row_correct, XentSums* sums, cudaStream_t stream);
// Threads per row block of the row-wise loss kernels: a warp for short rows (the 10 classes of the
// default model), up to 256 for long ones.
int xent_threads_for(int cols);
// *sums (+)= the sums of row_loss and row_correct over rows (<= kXentRowsPerPass), in a fixed order.
void sum_row_losses(int rows, const float* row_loss, const int32_t* row_correct, XentSums* sums, bool accumulate,
                    cudaStream_t stream);

// --- distill_cuda.cu ----------------------------------------------------------------------------
// One block per row: the distillation loss and gradient of kernels/distill_loss.hpp (dlogits may be
// null), then the per-row losses and the student's correct flags are summed into *sums.
void distill_xent(int rows, int cols, const float* student, const float* teacher, const int32_t* labels,
                  const DistillCoef& coef, float* dlogits, float* row_loss, int32_t* row_correct, XentSums* sums,
                  cudaStream_t stream);

// --- reduce_cuda.cu -----------------------------------------------------------------------------
// Doubles of scratch sum_squares uses for its per-block partial sums.
constexpr int kMaxReduceBlocks = 1024;
// *out = sum of x[i]^2 over n floats, accumulated in double; the block count depends on n only,
// so the result is the same on every run and every GPU.
void sum_squares(const float* x, size_t n, double* partial, double* out, cudaStream_t stream);

// x[0..n) = value.
void fill(float* x, size_t n, float value, cudaStream_t stream);

// --- optimizer_cuda.cu --------------------------------------------------------------------------
// One fused launch of optimizer K over n parameters (state buffers as the optimizer needs them).
void optimizer_step(OptimizerKind kind, const OptimStep& step, float* params, const float* grads, float* state0,
                    float* state1, size_t n, cudaStream_t stream);

}  // namespace lockstep::cuda
