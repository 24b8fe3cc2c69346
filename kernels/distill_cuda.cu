// CUDA distillation loss: one block per row reduces the student's maximum (with its first column,
// the CPU's argmax), the teacher's maximum and the three exp-sums of DistillStats, then the row's
// KL, and applies distill_kl_term / distill_grad / distill_loss from kernels/distill_loss.hpp;
// sum_row_losses (softmax_xent_cuda.cu) adds up the rows. The CPU reference is distill_row.
#include "kernels/cuda_kernels.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/distill_loss.hpp"
#include "lockstep/cuda_check.hpp"

namespace lockstep::cuda {
namespace {

// Finite logits give a finite loss (see the header). A label outside [0, cols) gives a NaN loss
// (and no out-of-bounds read) so that it cannot pass unnoticed, as in softmax_xent.
__global__ void distill_rows_kernel(int cols, const float* __restrict__ student, const float* __restrict__ teacher,
                                    const int32_t* __restrict__ labels, DistillCoef c, float* __restrict__ dlogits,
                                    float* __restrict__ row_loss, int32_t* __restrict__ row_correct) {
  const size_t row = blockIdx.x;
  const float* s = student + row * static_cast<size_t>(cols);
  const float* t = teacher + row * static_cast<size_t>(cols);
  const int step = static_cast<int>(blockDim.x);
  MaxAt best{-CUDART_INF_F, 0x7fffffff}, tbest{-CUDART_INF_F, 0x7fffffff};
  for (int j = static_cast<int>(threadIdx.x); j < cols; j += step) {
    best = better(best, MaxAt{s[j], j});
    tbest = better(tbest, MaxAt{t[j], j});
  }
  best = block_max(best);
  tbest = block_max(tbest);
  DistillStats<float> r;
  r.ms = best.value;
  r.mt = tbest.value;
  float ss = 0.0f, su = 0.0f, st = 0.0f;
  for (int j = static_cast<int>(threadIdx.x); j < cols; j += step) {
    ss += math_exp(s[j] - r.ms);
    su += tempered_exp(s[j], r.ms, c.inv_t);
    st += tempered_exp(t[j], r.mt, c.inv_t);
  }
  r.ss = block_sum(ss);
  r.su = block_sum(su);
  r.st = block_sum(st);
  const float log_su = math_log(r.su), log_st = math_log(r.st);
  float kl = 0.0f;
  for (int j = static_cast<int>(threadIdx.x); j < cols; j += step)
    kl += distill_kl_term(s[j], t[j], r, log_su, log_st, c.inv_t);
  kl = block_sum(kl);
  const int label = labels[row];
  const bool valid = label >= 0 && label < cols;
  if (dlogits) {
    float* ds = dlogits + row * static_cast<size_t>(cols);
    for (int j = static_cast<int>(threadIdx.x); j < cols; j += step) ds[j] = distill_grad(s[j], t[j], r, c, j == label);
  }
  if (threadIdx.x == 0) {
    row_loss[row] = valid ? distill_loss(kl, xent_loss(r.ms, r.ss, s[label]), c) : CUDART_NAN_F;
    row_correct[row] = (valid && best.index == label) ? 1 : 0;
  }
}

}  // namespace

void distill_xent(int rows, int cols, const float* student, const float* teacher, const int32_t* labels,
                  const DistillCoef& coef, float* dlogits, float* row_loss, int32_t* row_correct, XentSums* sums,
                  cudaStream_t stream) {
  LOCKSTEP_CHECK(cols > 0, "distill_xent needs at least one column");
  if (rows <= 0) {
    LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(XentSums), stream));
    return;
  }
  const int threads = xent_threads_for(cols);
  const size_t stride = static_cast<size_t>(cols);
  for (int begin = 0; begin < rows; begin += kXentRowsPerPass) {
    const int n = rows - begin < kXentRowsPerPass ? rows - begin : kXentRowsPerPass;
    const size_t offset = static_cast<size_t>(begin) * stride;
    distill_rows_kernel<<<static_cast<unsigned>(n), threads, 0, stream>>>(
        cols, student + offset, teacher + offset, labels + begin, coef, dlogits ? dlogits + offset : nullptr, row_loss,
        row_correct);
    LOCKSTEP_CUDA_CHECK_LAUNCH();
    sum_row_losses(n, row_loss, row_correct, sums, begin > 0, stream);
  }
}

}  // namespace lockstep::cuda
