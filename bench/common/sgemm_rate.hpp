// The machine's SGEMM rate at an MLP step's GEMM shapes: the same cblas_sgemm calls that
// forward() and backward() in src/model.cpp make for one micro-batch (kept in step with them),
// on buffers laid out like the model's, timed in a loop. It is the yardstick the throughput
// benchmark divides by; it measures OpenBLAS only, never lockstep's kernels.
#pragma once
#include <cstdint>
#include <vector>

namespace lockstep::bench {

struct GemmCall {
  bool ta = false, tb = false;  // row-major op(A), op(B)
  int m = 0, n = 0, k = 0;
  double flops() const { return 2.0 * m * n * k; }
};

// The GEMMs of one training step of an MLP with these widths on `rows` samples:
// forward z = x W^T per layer; backward dW = dz^T x per layer and dx = dz W above layer 0.
std::vector<GemmCall> mlp_step_gemms(const std::vector<int64_t>& widths, int rows);
double total_flops(const std::vector<GemmCall>& calls);

struct SgemmRate {
  double gflops = 0.0;   // flops of the calls / time
  double seconds = 0.0;  // time measured
  int repeats = 0;       // full step sequences timed
};

// Runs the step's GEMM sequence once to warm up, then repeatedly for at least min_seconds
// (and at least 3 times) in the calling thread with OpenBLAS's current thread count.
SgemmRate measure_mlp_sgemm(const std::vector<int64_t>& widths, int rows, double min_seconds);

}  // namespace lockstep::bench
