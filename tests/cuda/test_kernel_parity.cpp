// Parity of every CUDA kernel with its CPU reference (the CPU backend), on random inputs of 1, 7,
// 1023 and 1025 elements and a few matrix shapes. GPU outputs are poisoned with NaN before each
// run, so an element a kernel forgets to write fails the comparison. Compiled in every CUDA build;
// skipped (with the reason) where no GPU is visible.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "lockstep/cuda_backend.hpp"
#include "lockstep/device.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// The same fp32 formula evaluated in another order, or with CUDA's libm (tanhf, erff, expf are
// within 2 ulp), agrees to a few ulps: 1e-5 relative leaves a wide margin. Values small by
// cancellation (1 - tanh^2 near saturation, p - 1 for a confident row) carry the absolute error of
// the large terms they come from, so they are held to 1e-6 of the largest magnitude instead.
constexpr double kRtol = 1e-5;
constexpr double kFloor = 1e-6;

struct Shape {
  int rows, cols;
};
// Element counts 1, 7, 1023 and 1025 in several layouts, and the layer shapes of real models.
const std::vector<Shape> kShapes{{1, 1},   {1, 7},     {7, 1},    {1, 1023}, {1023, 1}, {1, 1025}, {1025, 1},
                                 {33, 31}, {41, 25},   {128, 256}, {1025, 10}, {3, 2049}, {700, 33}};
const std::vector<Activation> kActivations{Activation::none, Activation::relu, Activation::tanh, Activation::sigmoid,
                                           Activation::gelu};

std::vector<float> random_floats(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

class CudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const GpuProbe probe = probe_gpus();
    if (probe.gpus.empty()) GTEST_SKIP() << "no GPU, CUDA parity tests skipped: " << probe.reason;
    gpu_ = make_cuda_backend(0, /*tf32=*/false);
    cpu_ = make_cpu_backend();
  }

  Buffer<float> upload(const std::vector<float>& host) {
    Buffer<float> b(*gpu_, host.size());
    gpu_->to_device(b.data(), host.data(), host.size() * sizeof(float));
    return b;
  }
  Buffer<int32_t> upload(const std::vector<int32_t>& host) {
    Buffer<int32_t> b(*gpu_, host.size());
    gpu_->to_device(b.data(), host.data(), host.size() * sizeof(int32_t));
    return b;
  }
  Buffer<float> poisoned(size_t n) {
    Buffer<float> b(*gpu_, n);
    gpu_->fill(b.data(), n, kNaN);
    return b;
  }
  std::vector<float> download(const Buffer<float>& b) {
    std::vector<float> host(b.size());
    gpu_->to_host(host.data(), b.data(), host.size() * sizeof(float));
    return host;
  }

  std::unique_ptr<Backend> gpu_, cpu_;
};

TEST_F(CudaParity, FillAndCopiesRoundTrip) {
  for (size_t n : {size_t{1}, size_t{7}, size_t{1023}, size_t{1025}}) {
    Buffer<float> a = poisoned(n);
    gpu_->fill(a.data(), n, 2.5f);
    EXPECT_EQ(download(a), std::vector<float>(n, 2.5f));
    gpu_->fill(a.data(), n, 0.0f);
    EXPECT_EQ(download(a), std::vector<float>(n, 0.0f));
    const std::vector<float> x = random_floats(n, -1, 1, 1);
    Buffer<float> b = upload(x), c = poisoned(n);
    gpu_->copy(c.data(), b.data(), n * sizeof(float));
    EXPECT_EQ(download(c), x);
  }
}

TEST_F(CudaParity, BiasActivationForward) {
  uint32_t seed = 10;
  for (Activation act : kActivations) {
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(::testing::Message() << to_string(act) << " " << s.rows << "x" << s.cols);
      const size_t n = static_cast<size_t>(s.rows) * static_cast<size_t>(s.cols);
      const std::vector<float> z0 = random_floats(n, -3, 3, ++seed);
      const std::vector<float> bias = random_floats(static_cast<size_t>(s.cols), -1, 1, ++seed);
      const bool in_place = act == Activation::none;  // how the model runs its linear last layer
      std::vector<float> z = z0, y(n, kNaN);
      cpu_->bias_act_forward(act, s.rows, s.cols, bias.data(), z.data(), in_place ? z.data() : y.data());

      Buffer<float> gz = upload(z0), gb = upload(bias), gy = poisoned(n);
      gpu_->bias_act_forward(act, s.rows, s.cols, gb.data(), gz.data(), in_place ? gz.data() : gy.data());
      EXPECT_TRUE(test::all_close(download(gz), widen(z), kRtol, kFloor)) << "z";
      if (!in_place) EXPECT_TRUE(test::all_close(download(gy), widen(y), kRtol, kFloor)) << "y";
    }
  }
}

TEST_F(CudaParity, BiasActivationBackwardWithColumnSums) {
  uint32_t seed = 100;
  for (Activation act : kActivations) {
    for (const Shape& s : kShapes) {
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(::testing::Message() << to_string(act) << " " << s.rows << "x" << s.cols
                                          << (accumulate ? " accumulate" : ""));
        const size_t n = static_cast<size_t>(s.rows) * static_cast<size_t>(s.cols);
        const auto cols = static_cast<size_t>(s.cols);
        // y = act(z) as the forward pass leaves it.
        std::vector<float> z = random_floats(n, -3, 3, ++seed), y(n);
        const std::vector<float> zero_bias(cols, 0.0f);
        if (act == Activation::none) {
          y = z;
        } else {
          cpu_->bias_act_forward(act, s.rows, s.cols, zero_bias.data(), z.data(), y.data());
        }
        // Positive upstream gradients: the column sums do not cancel, so 1e-5 relative is meaningful.
        const std::vector<float> dy0 = random_floats(n, 0.5f, 1.5f, ++seed);
        const std::vector<float> db0 = accumulate ? random_floats(cols, -1, 1, ++seed) : std::vector<float>(cols, kNaN);
        std::vector<float> dy = dy0, db = db0;
        cpu_->bias_act_backward(act, s.rows, s.cols, z.data(), y.data(), dy.data(), db.data(), accumulate);

        Buffer<float> gz = upload(z), gy = upload(y), gdy = upload(dy0);
        Buffer<float> gdb = accumulate ? upload(db0) : poisoned(cols);
        gpu_->bias_act_backward(act, s.rows, s.cols, gz.data(), gy.data(), gdy.data(), gdb.data(), accumulate);
        EXPECT_TRUE(test::all_close(download(gdy), widen(dy), kRtol, kFloor)) << "dL/dz";
        EXPECT_TRUE(test::all_close(download(gdb), widen(db), kRtol, kFloor)) << "dbias";
      }
    }
  }
}

void expect_same_sums(const LossSums& gpu, const LossSums& cpu) {
  EXPECT_NEAR(gpu.loss, cpu.loss, kRtol * std::max(1.0, std::abs(cpu.loss)));
  EXPECT_EQ(gpu.correct, cpu.correct);
}

TEST_F(CudaParity, SoftmaxCrossEntropy) {
  const std::vector<Shape> shapes{{1, 1},   {1, 7},     {7, 10},     {1, 1023}, {1, 1025}, {3, 1023},
                                  {1023, 10}, {1025, 10}, {64, 1025}, {128, 10}, {5, 4000}};
  uint32_t seed = 1000;
  for (const Shape& s : shapes) {
    for (bool with_grad : {true, false}) {
      SCOPED_TRACE(::testing::Message() << s.rows << "x" << s.cols << (with_grad ? "" : " no gradient"));
      const size_t n = static_cast<size_t>(s.rows) * static_cast<size_t>(s.cols);
      const std::vector<float> z = random_floats(n, -5, 5, ++seed);
      std::mt19937 gen(++seed);
      std::uniform_int_distribution<int32_t> pick(0, s.cols - 1);
      std::vector<int32_t> labels(static_cast<size_t>(s.rows));
      for (auto& l : labels) l = pick(gen);
      // Make a few rows correct, so the accuracy count is exercised both ways.
      for (size_t r = 0; r < labels.size(); r += 3) {
        const float* row = z.data() + r * static_cast<size_t>(s.cols);
        labels[r] = static_cast<int32_t>(std::max_element(row, row + s.cols) - row);
      }
      std::vector<float> dz(n, kNaN);
      const LossSums cpu = cpu_->softmax_xent(s.rows, s.cols, z.data(), labels.data(), with_grad ? dz.data() : nullptr);

      Buffer<float> gz = upload(z), gdz = poisoned(n);
      Buffer<int32_t> gl = upload(labels);
      const LossSums gpu = gpu_->softmax_xent(s.rows, s.cols, gz.data(), gl.data(), with_grad ? gdz.data() : nullptr);
      expect_same_sums(gpu, cpu);
      if (with_grad) EXPECT_TRUE(test::all_close(download(gdz), widen(dz), kRtol, kFloor)) << "dlogits";
    }
  }
}

TEST_F(CudaParity, SoftmaxCrossEntropyIsStableForExtremeLogitsAndBreaksTiesLikeTheCpu) {
  const int rows = 4, cols = 9;
  std::vector<float> z = random_floats(static_cast<size_t>(rows * cols), -1, 1, 7);
  for (int j = 0; j < cols; ++j) {
    z[static_cast<size_t>(j)] *= 3e37f;               // row 0: huge magnitudes of both signs
    z[static_cast<size_t>(cols + j)] = 1.0f;          // row 1: all tied, argmax is column 0
    z[static_cast<size_t>(2 * cols + j)] = -1e30f;    // row 2: all tied and very negative
  }
  z[static_cast<size_t>(3 * cols + 4)] = z[static_cast<size_t>(3 * cols + 7)] = 50.0f;  // row 3: tie at 4 and 7
  const std::vector<int32_t> labels{2, 0, 5, 4};
  std::vector<float> dz(z.size(), kNaN);
  const LossSums cpu = cpu_->softmax_xent(rows, cols, z.data(), labels.data(), dz.data());
  ASSERT_TRUE(std::isfinite(cpu.loss));

  Buffer<float> gz = upload(z), gdz = poisoned(z.size());
  Buffer<int32_t> gl = upload(labels);
  const LossSums gpu = gpu_->softmax_xent(rows, cols, gz.data(), gl.data(), gdz.data());
  EXPECT_TRUE(std::isfinite(gpu.loss));
  expect_same_sums(gpu, cpu);
  EXPECT_TRUE(test::all_close(download(gdz), widen(dz), kRtol, kFloor));
}

TEST_F(CudaParity, SumOfSquaresIsTheDoubleSum) {
  uint32_t seed = 5000;
  for (size_t n : {size_t{1}, size_t{7}, size_t{1023}, size_t{1025}, size_t{4097}, (size_t{1} << 20) + 3,
                   size_t{5000001}}) {
    SCOPED_TRACE(n);
    const std::vector<float> x = random_floats(n, -2, 2, ++seed);
    Buffer<float> g = upload(x);
    const double cpu = cpu_->sum_squares(x.data(), n);
    const double gpu = gpu_->sum_squares(g.data(), n);
    // Both add exact double products; only the order differs.
    EXPECT_NEAR(gpu, cpu, 1e-9 * cpu);
    EXPECT_EQ(gpu_->sum_squares(g.data(), n), gpu) << "not deterministic";
  }
}

OptimStep step_scalars(int t, bool nesterov) {
  OptimStep s;
  s.lr = 0.01f;
  s.grad_scale = 1.0f / 64.0f;
  s.weight_decay = 0.01f;
  s.momentum = 0.9f;
  s.nesterov = nesterov ? 1 : 0;
  s.step_size = static_cast<float>(0.01 / (1.0 - std::pow(0.9, t)));
  s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(0.999, t)));
  return s;
}

TEST_F(CudaParity, FusedOptimizerStep) {
  const std::vector<OptimizerKind> kinds{OptimizerKind::sgd,  OptimizerKind::momentum, OptimizerKind::adam,
                                         OptimizerKind::adamw, OptimizerKind::adagrad, OptimizerKind::rmsprop};
  uint32_t seed = 9000;
  for (OptimizerKind kind : kinds) {
    for (size_t n : {size_t{1}, size_t{7}, size_t{1023}, size_t{1025}, size_t{100003}}) {
      SCOPED_TRACE(::testing::Message() << to_string(kind) << " n=" << n);
      const int states = optimizer_state_count(kind);
      std::vector<float> p = random_floats(n, -1, 1, ++seed);
      std::vector<float> s0 = states >= 1 ? random_floats(n, 0.0f, 0.01f, ++seed) : std::vector<float>();
      std::vector<float> s1 = states >= 2 ? random_floats(n, 0.0f, 0.01f, ++seed) : std::vector<float>();
      Buffer<float> gp = upload(p), gs0 = upload(s0), gs1 = upload(s1);
      for (int t = 1; t <= 3; ++t) {
        const std::vector<float> g = random_floats(n, -10, 10, ++seed);  // raw sums over a batch
        const OptimStep st = step_scalars(t, t == 2);
        cpu_->optimizer_step(kind, st, p.data(), g.data(), states >= 1 ? s0.data() : nullptr,
                             states >= 2 ? s1.data() : nullptr, n);
        Buffer<float> gg = upload(g);
        gpu_->optimizer_step(kind, st, gp.data(), gg.data(), gs0.data(), gs1.data(), n);
      }
      EXPECT_TRUE(test::all_close(download(gp), widen(p), kRtol, kFloor)) << "params";
      if (states >= 1) EXPECT_TRUE(test::all_close(download(gs0), widen(s0), kRtol, kFloor)) << "state 0";
      if (states >= 2) EXPECT_TRUE(test::all_close(download(gs1), widen(s1), kRtol, kFloor)) << "state 1";
    }
  }
}

struct GemmCase {
  int m, n, k;
  int pad;  // extra leading-dimension elements
};

TEST_F(CudaParity, RowMajorGemmAllTransposes) {
  const std::vector<GemmCase> cases{{1, 1, 1, 0},      {7, 1, 7, 0},     {1, 7, 1023, 0}, {1023, 7, 1, 0},
                                    {1025, 3, 5, 0},   {33, 31, 1025, 0}, {128, 256, 784, 0}, {64, 10, 128, 0},
                                    {17, 23, 29, 3}};
  uint32_t seed = 20000;
  for (const GemmCase& c : cases) {
    for (Trans ta : {Trans::no, Trans::yes}) {
      for (Trans tb : {Trans::no, Trans::yes}) {
        for (float beta : {0.0f, 1.0f}) {
          SCOPED_TRACE(::testing::Message() << c.m << "x" << c.n << "x" << c.k << " ta=" << (ta == Trans::yes)
                                            << " tb=" << (tb == Trans::yes) << " beta=" << beta << " pad=" << c.pad);
          // Row-major storage: op(A) is (m, k), op(B) is (k, n).
          const int a_rows = ta == Trans::no ? c.m : c.k, a_cols = ta == Trans::no ? c.k : c.m;
          const int b_rows = tb == Trans::no ? c.k : c.n, b_cols = tb == Trans::no ? c.n : c.k;
          const int lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
          // Positive entries: the products' sums do not cancel, so the relative error is meaningful.
          const std::vector<float> A = random_floats(static_cast<size_t>(a_rows) * lda, 0, 1, ++seed);
          const std::vector<float> B = random_floats(static_cast<size_t>(b_rows) * ldb, 0, 1, ++seed);
          const std::vector<float> C0 = random_floats(static_cast<size_t>(c.m) * ldc, 0, 1, ++seed);
          std::vector<float> C = C0;
          cpu_->gemm(ta, tb, c.m, c.n, c.k, 0.5f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);

          Buffer<float> gA = upload(A), gB = upload(B);
          // With beta = 0 the output starts as NaN: C must be overwritten, not scaled.
          Buffer<float> gC = beta == 0.0f ? poisoned(C0.size()) : upload(C0);
          gpu_->gemm(ta, tb, c.m, c.n, c.k, 0.5f, gA.data(), lda, gB.data(), ldb, beta, gC.data(), ldc);
          std::vector<float> got = download(gC);
          if (beta == 0.0f) {
            // Only the (m, n) block is written; the padding keeps its NaN poison.
            for (int r = 0; r < c.m; ++r)
              for (int j = c.n; j < ldc; ++j) got[static_cast<size_t>(r) * ldc + j] = C[static_cast<size_t>(r) * ldc + j];
          }
          EXPECT_TRUE(test::all_close(got, widen(C), kRtol, 0.0));
        }
      }
    }
  }
}

}  // namespace
}  // namespace lockstep
