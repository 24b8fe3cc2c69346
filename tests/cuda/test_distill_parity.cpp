// Parity of the CUDA distillation kernel (kernels/distill_cuda.cu) with its CPU reference
// (distill_row through the CPU backend): loss sums, correct counts and gradients for several
// shapes, temperatures and weights, extreme logits included; and alpha = 0 equal to the CUDA
// softmax cross-entropy. GPU gradients are poisoned with NaN first, so an element the kernel
// forgets to write fails. Skipped (with the reason) where no GPU is visible.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "lockstep/cuda_backend.hpp"
#include "lockstep/device.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// The same fp32 formulas summed in another order (block reductions) and with CUDA's expf/logf
// (within 2 ulp): a few ulps, so 1e-5 relative; values small through cancellation (q - p, r - 1)
// carry the absolute error of their terms, so they are held to 1e-6 of the largest magnitude.
constexpr double kRtol = 1e-5;
constexpr double kFloor = 1e-6;

struct Shape {
  int rows, cols;
};
const std::vector<Shape> kShapes{{1, 1}, {1, 10}, {7, 3}, {33, 31}, {1025, 10}, {3, 2049}, {64, 257}};

std::vector<float> random_floats(size_t n, float scale, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

class DistillParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const GpuProbe probe = probe_gpus();
    if (probe.gpus.empty()) GTEST_SKIP() << "no GPU, CUDA distillation parity skipped: " << probe.reason;
    gpu_ = make_cuda_backend(0, /*tf32=*/false);
    cpu_ = make_cpu_backend();
  }
  template <typename T>
  Buffer<T> upload(const std::vector<T>& host) {
    Buffer<T> b(*gpu_, host.size());
    gpu_->to_device(b.data(), host.data(), host.size() * sizeof(T));
    return b;
  }
  std::vector<float> download(const Buffer<float>& b) {
    std::vector<float> host(b.size());
    gpu_->to_host(host.data(), b.data(), host.size() * sizeof(float));
    return host;
  }
  std::unique_ptr<Backend> gpu_, cpu_;
};

TEST_F(DistillParity, MatchesTheCpuReference) {
  uint32_t seed = 1;
  for (const Shape& sh : kShapes) {
    for (double temperature : {1.0, 4.0}) {
      for (double alpha : {0.0, 0.5, 0.9, 1.0}) {
        SCOPED_TRACE(::testing::Message() << sh.rows << "x" << sh.cols << " T " << temperature << " alpha " << alpha);
        const size_t n = static_cast<size_t>(sh.rows) * static_cast<size_t>(sh.cols);
        std::vector<float> s = random_floats(n, 3.0f, ++seed), t = random_floats(n, 3.0f, ++seed);
        if (n >= 4) {  // extreme logits in the first rows
          s[0] = 1e30f;
          t[1] = -1e30f;
          s[n - 1] = 1e4f;
        }
        std::vector<int32_t> y(static_cast<size_t>(sh.rows));
        std::mt19937 gen(++seed);
        for (auto& v : y) v = static_cast<int32_t>(gen() % static_cast<uint32_t>(sh.cols));
        const DistillCoef c = make_distill_coef<float>(temperature, alpha);
        std::vector<float> g_cpu(n);
        const LossSums ref = cpu_->distill_xent(sh.rows, sh.cols, s.data(), t.data(), y.data(), c, g_cpu.data());

        Buffer<float> gs = upload(s), gt = upload(t), gg(*gpu_, n);
        Buffer<int32_t> gy = upload(y);
        gpu_->fill(gg.data(), n, std::numeric_limits<float>::quiet_NaN());
        const LossSums got = gpu_->distill_xent(sh.rows, sh.cols, gs.data(), gt.data(), gy.data(), c, gg.data());
        ASSERT_TRUE(std::isfinite(got.loss));
        EXPECT_NEAR(got.loss, ref.loss, kRtol * std::fabs(ref.loss) + 1e-6 * sh.rows);
        EXPECT_EQ(got.correct, ref.correct);
        EXPECT_TRUE(test::all_close(download(gg), std::vector<double>(g_cpu.begin(), g_cpu.end()), kRtol, kFloor));
        // Evaluation form: no gradient buffer.
        const LossSums no_grad = gpu_->distill_xent(sh.rows, sh.cols, gs.data(), gt.data(), gy.data(), c, nullptr);
        EXPECT_EQ(no_grad.loss, got.loss);
      }
    }
  }
}

TEST_F(DistillParity, AlphaZeroEqualsTheCudaCrossEntropy) {
  // Same block size, same reductions over the same values: the hard part is the same numbers.
  const Shape sh{300, 10};
  const size_t n = 3000;
  const std::vector<float> s = random_floats(n, 4.0f, 77), t = random_floats(n, 4.0f, 78);
  std::vector<int32_t> y(300);
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int32_t>(i % 10);
  Buffer<float> gs = upload(s), gt = upload(t), g1(*gpu_, n), g2(*gpu_, n);
  Buffer<int32_t> gy = upload(y);
  const LossSums xent = gpu_->softmax_xent(sh.rows, sh.cols, gs.data(), gy.data(), g1.data());
  const LossSums d =
      gpu_->distill_xent(sh.rows, sh.cols, gs.data(), gt.data(), gy.data(), make_distill_coef<float>(1.0, 0.0), g2.data());
  EXPECT_EQ(d.loss, xent.loss);
  EXPECT_EQ(d.correct, xent.correct);
  EXPECT_EQ(download(g2), download(g1));
}

}  // namespace
}  // namespace lockstep
