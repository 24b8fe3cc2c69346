// SGEMM timing at an MLP step's shapes (see sgemm_rate.hpp). Buffers mirror the model's:
// one weight and one weight-gradient matrix per layer, one activation matrix per layer and two
// ping-pong input-gradient matrices, so cache behaviour is that of the real step.
#include "bench/common/sgemm_rate.hpp"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "lockstep/check.hpp"

namespace lockstep::bench {

std::vector<GemmCall> mlp_step_gemms(const std::vector<int64_t>& widths, int rows) {
  std::vector<GemmCall> calls;
  const size_t L = widths.size() - 1;
  for (size_t l = 0; l < L; ++l) {  // forward: z (n, out) = in (n, in) * W^T
    calls.push_back({false, true, rows, static_cast<int>(widths[l + 1]), static_cast<int>(widths[l])});
  }
  for (size_t l = L; l-- > 0;) {
    const int out = static_cast<int>(widths[l + 1]), in = static_cast<int>(widths[l]);
    calls.push_back({true, false, out, in, rows});      // dW (out, in) = dz^T (out, n) * x (n, in)
    if (l > 0) calls.push_back({false, false, rows, in, out});  // dx (n, in) = dz (n, out) * W (out, in)
  }
  return calls;
}

double total_flops(const std::vector<GemmCall>& calls) {
  double f = 0.0;
  for (const auto& c : calls) f += c.flops();
  return f;
}

namespace {

using Mat = std::vector<float>;

Mat random_matrix(size_t n, std::mt19937& gen) {
  std::uniform_real_distribution<float> d(-0.5f, 0.5f);
  Mat m(n);
  for (float& v : m) v = d(gen);
  return m;
}

struct StepBuffers {
  std::vector<Mat> w, dw, act;  // act[l]: input of layer l (rows, widths[l]); act[L]: logits
  Mat dy[2];
};

void run_step(const std::vector<int64_t>& widths, int n, StepBuffers& b) {
  const size_t L = widths.size() - 1;
  for (size_t l = 0; l < L; ++l) {
    const int out = static_cast<int>(widths[l + 1]), in = static_cast<int>(widths[l]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, b.act[l].data(), in, b.w[l].data(), in,
                0.0f, b.act[l + 1].data(), out);
  }
  int ping = 0;
  const float* dz = b.dy[1].data();  // stands in for dlogits
  for (size_t l = L; l-- > 0;) {
    const int out = static_cast<int>(widths[l + 1]), in = static_cast<int>(widths[l]);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dz, out, b.act[l].data(), in, 0.0f,
                b.dw[l].data(), in);
    if (l == 0) break;
    float* next = b.dy[ping].data();
    ping ^= 1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dz, out, b.w[l].data(), in, 0.0f, next,
                in);
    dz = next;
  }
}

}  // namespace

SgemmRate measure_mlp_sgemm(const std::vector<int64_t>& widths, int rows, double min_seconds) {
  LOCKSTEP_CHECK(widths.size() >= 2 && rows > 0, "bad GEMM benchmark shape");
  std::mt19937 gen(1234);
  StepBuffers b;
  const size_t n = static_cast<size_t>(rows);
  const int64_t widest = *std::max_element(widths.begin(), widths.end());
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    const auto sz = static_cast<size_t>(widths[l] * widths[l + 1]);
    b.w.push_back(random_matrix(sz, gen));
    b.dw.emplace_back(sz, 0.0f);
  }
  for (int64_t w : widths) b.act.push_back(random_matrix(n * static_cast<size_t>(w), gen));
  b.dy[0] = random_matrix(n * static_cast<size_t>(widest), gen);
  b.dy[1] = random_matrix(n * static_cast<size_t>(widest), gen);

  run_step(widths, rows, b);  // warm-up: OpenBLAS buffers, page faults
  using Clock = std::chrono::steady_clock;
  SgemmRate r;
  const auto start = Clock::now();
  do {
    run_step(widths, rows, b);
    ++r.repeats;
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  } while (r.seconds < min_seconds || r.repeats < 3);
  r.gflops = total_flops(mlp_step_gemms(widths, rows)) * r.repeats / r.seconds * 1e-9;
  return r;
}

}  // namespace lockstep::bench
