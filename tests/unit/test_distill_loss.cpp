// The distillation loss (kernels/distill_loss.hpp): its gradient against central finite
// differences in double; its value against an independent double formula (naive softmaxes);
// finite values for extreme logits, with the limits it must reach; and alpha = 0 giving plain
// softmax cross-entropy bit for bit (loss sums, correct counts and gradient), through the CPU
// backend the trainer uses.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/distill_loss.hpp"
#include "lockstep/backend.hpp"
#include "lockstep/rng.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// Central differences in double with h = 1e-6: truncation ~h^2 |f'''| (< 1e-11 here), rounding
// ~1e-16 |f| / h = 1e-10 |f|; 1e-8 (1 + |f|) leaves a margin of 100 for the T^2-scaled losses.
constexpr double kH = 1e-6;

struct Case {
  double temperature, alpha;
};
const std::vector<Case> kCases{{1, 0}, {1, 0.5}, {1, 1}, {2, 0.9}, {4, 0.9}, {4, 0.3}, {8, 1}, {0.5, 0.7}};

std::vector<double> random_logits(Rng& rng, int n, double scale) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

double row_loss(const std::vector<double>& s, const std::vector<double>& t, int label, const Case& c) {
  int argmax = 0;
  return distill_row<double>(s.data(), t.data(), static_cast<int>(s.size()), label,
                             make_distill_coef<double>(c.temperature, c.alpha), nullptr, &argmax);
}

TEST(DistillLoss, GradientMatchesFiniteDifferences) {
  Rng rng(3, Stream::test);
  const int cols = 7;
  for (const Case& c : kCases) {
    for (int trial = 0; trial < 4; ++trial) {
      const std::vector<double> s = random_logits(rng, cols, 2.0), t = random_logits(rng, cols, 3.0);
      const int label = trial % cols;
      std::vector<double> ds(static_cast<size_t>(cols));
      int argmax = 0;
      const double f = distill_row<double>(s.data(), t.data(), cols, label,
                                           make_distill_coef<double>(c.temperature, c.alpha), ds.data(), &argmax);
      double sum = 0.0;
      for (int j = 0; j < cols; ++j) {
        std::vector<double> plus = s, minus = s;
        plus[static_cast<size_t>(j)] += kH;
        minus[static_cast<size_t>(j)] -= kH;
        const double fd = (row_loss(plus, t, label, c) - row_loss(minus, t, label, c)) / (2 * kH);
        EXPECT_NEAR(ds[static_cast<size_t>(j)], fd, 1e-8 * (1 + std::fabs(f)))
            << "T " << c.temperature << " alpha " << c.alpha << " class " << j;
        sum += ds[static_cast<size_t>(j)];
      }
      // Both softmaxes sum to one, so the gradient sums to zero (shifting every logit changes nothing).
      EXPECT_NEAR(sum, 0.0, 1e-12 * (1 + c.temperature));
    }
  }
}

TEST(DistillLoss, ValueMatchesTheDefinition) {
  // alpha T^2 sum_j p_j log(p_j / q_j) + (1 - alpha) (-log softmax(s)_y), with naive softmaxes
  // (fine for logits of a few units) written independently of the kernel.
  Rng rng(4, Stream::test);
  const int cols = 5;
  for (const Case& c : kCases) {
    const std::vector<double> s = random_logits(rng, cols, 1.5), t = random_logits(rng, cols, 1.5);
    const int label = 2;
    auto softmax = [&](const std::vector<double>& z, double temp) {
      std::vector<double> p(z.size());
      double total = 0.0;
      for (size_t j = 0; j < z.size(); ++j) total += p[j] = std::exp(z[j] / temp);
      for (double& v : p) v /= total;
      return p;
    };
    const std::vector<double> p = softmax(t, c.temperature), q = softmax(s, c.temperature), r = softmax(s, 1.0);
    double kl = 0.0;
    for (int j = 0; j < cols; ++j) kl += p[static_cast<size_t>(j)] * std::log(p[static_cast<size_t>(j)] / q[static_cast<size_t>(j)]);
    const double expected =
        c.alpha * c.temperature * c.temperature * kl + (1 - c.alpha) * -std::log(r[static_cast<size_t>(label)]);
    EXPECT_NEAR(row_loss(s, t, label, c), expected, 1e-12 * (1 + std::fabs(expected)))
        << "T " << c.temperature << " alpha " << c.alpha;
  }
}

// The fp32 kernel through the CPU backend, one row at a time.
struct RowResult {
  LossSums sums;
  std::vector<float> grad;
};
RowResult cpu_row(const std::vector<float>& s, const std::vector<float>& t, int32_t label, double temperature,
                  double alpha) {
  auto be = make_cpu_backend();
  RowResult r;
  r.grad.assign(s.size(), std::numeric_limits<float>::quiet_NaN());
  r.sums = be->distill_xent(1, static_cast<int>(s.size()), s.data(), t.data(), &label,
                            make_distill_coef<float>(temperature, alpha), r.grad.data());
  return r;
}

// The domain (see the header): logits whose spread (max - min) / T is finite in fp32, which
// |z| <= 1e30 keeps for every T >= 0.01 (the cross-entropy itself needs max - min finite).
TEST(DistillLoss, ExtremeLogitsStayFinite) {
  const float big = 1e30f;
  const std::vector<std::vector<float>> rows{
      {1e4f, -1e4f, 0.0f, 1.0f}, {-1e4f, -1e4f, -1e4f, -1e4f}, {big, 0.0f, -big, 5.0f},
      {-big, -big, big, 0.0f},   {0.0f, 0.0f, 0.0f, 0.0f}};
  for (double temperature : {0.25, 1.0, 4.0, 20.0}) {
    for (double alpha : {0.0, 0.5, 0.9, 1.0}) {
      for (const auto& s : rows) {
        for (const auto& t : rows) {
          for (int32_t label = 0; label < 4; label += 3) {
            const RowResult r = cpu_row(s, t, label, temperature, alpha);
            ASSERT_TRUE(std::isfinite(r.sums.loss)) << "T " << temperature << " alpha " << alpha;
            EXPECT_GE(r.sums.loss, 0.0);
            for (float g : r.grad) ASSERT_TRUE(std::isfinite(g)) << "T " << temperature << " alpha " << alpha;
          }
        }
      }
    }
  }
}

TEST(DistillLoss, ExtremeLogitsReachTheirLimits) {
  // A student identical to its teacher: no KL at all, and no soft gradient, exactly.
  const std::vector<float> z{1e30f, 0.0f, -1e30f, 5.0f};
  RowResult same = cpu_row(z, z, 0, 4.0, 1.0);
  EXPECT_EQ(same.sums.loss, 0.0);
  for (float g : same.grad) EXPECT_EQ(g, 0.0f);
  // Teacher sure of class 0, student sure of class 1 by a margin of 1e30: KL = 1e30 / T, so the
  // loss is alpha T 1e30 + (1 - alpha) * 1e30 (the cross-entropy of label 0), and the gradient is
  // alpha T (q - p) + (1 - alpha) (r - onehot) = (-(alpha T + 1 - alpha), alpha T + 1 - alpha, 0, 0).
  const std::vector<float> t{1e30f, 0.0f, 0.0f, 0.0f}, s{0.0f, 1e30f, 0.0f, 0.0f};
  const double temperature = 4.0, alpha = 0.75;
  const RowResult r = cpu_row(s, t, 0, temperature, alpha);
  const double expected = alpha * temperature * 1e30 + (1 - alpha) * 1e30;
  EXPECT_NEAR(r.sums.loss, expected, 1e-6 * expected);
  const double w = alpha * temperature + (1 - alpha);
  EXPECT_TRUE(test::all_close(r.grad, {-w, w, 0.0, 0.0}, 1e-6, 1e-7));
  EXPECT_EQ(r.sums.correct, 0);
}

TEST(DistillLoss, AlphaZeroIsCrossEntropyBitForBit) {
  // Random rows of several widths plus the extreme rows, at T = 1 (the case that must hold) and
  // T = 4 (alpha = 0 removes the teacher whatever T is).
  auto be = make_cpu_backend();
  Rng rng(9, Stream::test);
  for (int cols : {1, 2, 10, 33}) {
    const int rows = 37;
    std::vector<float> s(static_cast<size_t>(rows * cols)), t(s.size());
    for (auto& v : s) v = static_cast<float>(4.0 * rng.normal());
    for (auto& v : t) v = static_cast<float>(4.0 * rng.normal());
    if (cols >= 4) {
      s[0] = 1e30f;
      s[1] = -1e30f;
      s[static_cast<size_t>(cols)] = 1e4f;
      t[static_cast<size_t>(cols) + 1] = 3e38f;
    }
    std::vector<int32_t> y(static_cast<size_t>(rows));
    for (auto& v : y) v = static_cast<int32_t>(rng.uniform_below(static_cast<uint64_t>(cols)));
    std::vector<float> g_xent(s.size()), g_distill(s.size());
    const LossSums xent = be->softmax_xent(rows, cols, s.data(), y.data(), g_xent.data());
    for (double temperature : {1.0, 4.0}) {
      const LossSums d = be->distill_xent(rows, cols, s.data(), t.data(), y.data(),
                                          make_distill_coef<float>(temperature, 0.0), g_distill.data());
      EXPECT_EQ(std::memcmp(&d.loss, &xent.loss, sizeof(double)), 0)
          << cols << " classes, T " << temperature << ": loss " << d.loss << " vs " << xent.loss;
      EXPECT_EQ(d.correct, xent.correct);
      EXPECT_EQ(std::memcmp(g_distill.data(), g_xent.data(), g_xent.size() * sizeof(float)), 0)
          << cols << " classes, T " << temperature << ": gradient differs";
    }
  }
}

TEST(DistillLoss, FloatKernelAgreesWithDouble) {
  // The fp32 row (the kernels) against the double row: a few ulps of the loss scale.
  Rng rng(12, Stream::test);
  for (const Case& c : kCases) {
    const std::vector<double> sd = random_logits(rng, 10, 3.0), td = random_logits(rng, 10, 3.0);
    const std::vector<float> s(sd.begin(), sd.end()), t(td.begin(), td.end());
    const std::vector<double> s2(s.begin(), s.end()), t2(t.begin(), t.end());  // the same inputs, widened
    std::vector<double> gd(10);
    int argmax = 0;
    const double fd = distill_row<double>(s2.data(), t2.data(), 10, 4, make_distill_coef<double>(c.temperature, c.alpha),
                                          gd.data(), &argmax);
    const RowResult r = cpu_row(s, t, 4, c.temperature, c.alpha);
    EXPECT_NEAR(r.sums.loss, fd, 1e-5 * (1 + std::fabs(fd))) << "T " << c.temperature << " alpha " << c.alpha;
    EXPECT_TRUE(test::all_close(r.grad, gd, 1e-4, 1e-5)) << "T " << c.temperature << " alpha " << c.alpha;
  }
}

}  // namespace
}  // namespace lockstep
