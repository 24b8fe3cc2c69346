// Gradient checks against central finite differences in double precision: the element math
// (each activation's derivative, the cross-entropy gradient) instantiated in double, and the
// float32 dense-layer backward of a whole MLP against differences of a double reference forward.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/activation.hpp"
#include "kernels/softmax_xent.hpp"
#include "lockstep/backend.hpp"
#include "lockstep/model.hpp"
#include "lockstep/rng.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

// Central difference in double: truncation error ~h^2 |f'''| ~ 1e-12 for h = 1e-6 and smooth
// f of unit scale, rounding ~ 1e-16 / 1e-6 = 1e-10; 1e-8 leaves a margin of 100.
constexpr double kH = 1e-6;
constexpr double kFdTol = 1e-8;

template <Activation A>
void check_activation() {
  for (double z : {-3.1, -1.2, -0.4, -0.05, 0.07, 0.5, 1.3, 2.9}) {
    const double y = act_forward<A, double>(z);
    const double analytic = act_grad<A, double>(z, y);
    const double fd = (act_forward<A, double>(z + kH) - act_forward<A, double>(z - kH)) / (2 * kH);
    EXPECT_NEAR(analytic, fd, kFdTol) << "z = " << z;
  }
}

TEST(GradCheck, ActivationDerivatives) {
  check_activation<Activation::none>();
  check_activation<Activation::relu>();
  check_activation<Activation::tanh>();
  check_activation<Activation::sigmoid>();
  check_activation<Activation::gelu>();
}

TEST(GradCheck, FloatActivationsAgreeWithDouble) {
  // The float instantiation used by the kernels against the double one: a few ulps.
  for (float z : {-4.0f, -1.5f, -0.3f, 0.0f, 0.2f, 1.1f, 3.7f}) {
    EXPECT_NEAR((act_forward<Activation::gelu, float>(z)), (act_forward<Activation::gelu, double>(z)), 4e-7 * (1 + std::fabs(z)));
    EXPECT_NEAR((act_forward<Activation::tanh, float>(z)), (act_forward<Activation::tanh, double>(z)), 4e-7);
    EXPECT_NEAR((act_forward<Activation::sigmoid, float>(z)), (act_forward<Activation::sigmoid, double>(z)), 4e-7);
  }
}

TEST(GradCheck, CrossEntropyGradient) {
  const double logits[5] = {0.3, -1.7, 2.2, 0.0, -0.4};
  for (int label = 0; label < 5; ++label) {
    double dz[5];
    int argmax = -1;
    xent_row<double>(logits, 5, label, dz, &argmax);
    EXPECT_EQ(argmax, 2);
    for (int j = 0; j < 5; ++j) {
      double plus[5], minus[5];
      std::copy(logits, logits + 5, plus);
      std::copy(logits, logits + 5, minus);
      plus[j] += kH;
      minus[j] -= kH;
      int a = 0;
      const double fd = (xent_row<double>(plus, 5, label, nullptr, &a) - xent_row<double>(minus, 5, label, nullptr, &a)) / (2 * kH);
      EXPECT_NEAR(dz[j], fd, kFdTol) << "label " << label << " logit " << j;
    }
  }
}

// A double-precision forward of the same MLP, written independently of the model code:
// plain loops over the fixed layout [W0 b0 W1 b1 ...], W (out, in).
double reference_loss(const std::vector<double>& p, const std::vector<int64_t>& widths, Activation act,
                      const std::vector<double>& X, const std::vector<int32_t>& y) {
  const size_t n = y.size();
  double total = 0.0;
  for (size_t r = 0; r < n; ++r) {
    std::vector<double> a(X.begin() + static_cast<long>(r * widths[0]), X.begin() + static_cast<long>((r + 1) * widths[0]));
    size_t off = 0;
    for (size_t l = 0; l + 1 < widths.size(); ++l) {
      const auto in = static_cast<size_t>(widths[l]), out = static_cast<size_t>(widths[l + 1]);
      std::vector<double> z(out);
      for (size_t o = 0; o < out; ++o) {
        double s = p[off + in * out + o];
        for (size_t i = 0; i < in; ++i) s += p[off + o * in + i] * a[i];
        const bool last = l + 2 == widths.size();
        z[o] = last ? s
               : act == Activation::relu ? act_forward<Activation::relu, double>(s)
               : act == Activation::tanh ? act_forward<Activation::tanh, double>(s)
               : act == Activation::sigmoid ? act_forward<Activation::sigmoid, double>(s)
                                            : act_forward<Activation::gelu, double>(s);
      }
      off += in * out + out;
      a = z;
    }
    int argmax = 0;
    total += xent_row<double>(a.data(), static_cast<int>(a.size()), y[r], nullptr, &argmax);
  }
  return total;
}

class DenseGradCheck : public ::testing::TestWithParam<Activation> {};

TEST_P(DenseGradCheck, BackwardMatchesFiniteDifferences) {
  const Activation act = GetParam();
  const std::vector<int64_t> widths{7, 6, 5, 4};
  auto be = make_cpu_backend();
  Mlp model(*be, widths, act);
  std::vector<float> p = initial_params(model, 11, InitKind::xavier);
  Rng rng(5, Stream::test);
  for (size_t i = 0; i < p.size(); ++i) p[i] += static_cast<float>(0.1 * rng.normal());  // non-zero biases too
  model.set_params(p);
  const int64_t n = 5;
  std::vector<float> X(static_cast<size_t>(n * widths[0]));
  for (auto& v : X) v = static_cast<float>(rng.normal());
  const std::vector<int32_t> y{0, 3, 1, 2, 3};

  Workspace ws(model, n);
  const float* logits = forward(model, ws, X.data(), n);
  be->softmax_xent(static_cast<int>(n), 4, logits, y.data(), ws.dlogits());
  backward(model, ws, X.data(), n, false);

  std::vector<double> pd(p.begin(), p.end()), Xd(X.begin(), X.end());
  std::vector<double> fd(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    std::vector<double> plus = pd, minus = pd;
    plus[i] += kH;
    minus[i] -= kH;
    fd[i] = (reference_loss(plus, widths, act, Xd, y) - reference_loss(minus, widths, act, Xd, y)) / (2 * kH);
  }
  // The analytic gradient is float32 (~50 roundings of 6e-8 along the longest path): 1e-5
  // relative, plus 1e-5 of the largest gradient for entries that are small through cancellation.
  // relu's kink is avoided: no pre-activation lies within kH of 0 for these inputs.
  std::vector<float> g(model.grads(), model.grads() + model.num_params());
  EXPECT_TRUE(test::all_close(g, fd, 1e-5, 1e-5));
}

TEST_P(DenseGradCheck, AccumulateAddsToExistingGradients) {
  const std::vector<int64_t> widths{3, 4, 2};
  auto be = make_cpu_backend();
  Mlp model(*be, widths, GetParam());
  model.set_params(initial_params(model, 3, InitKind::auto_));
  const std::vector<float> X{0.1f, -0.2f, 0.3f, 0.5f, 0.4f, -0.6f};
  const std::vector<int32_t> y{1, 0};
  Workspace ws(model, 2);
  // Both rows at once.
  be->softmax_xent(2, 2, forward(model, ws, X.data(), 2), y.data(), ws.dlogits());
  backward(model, ws, X.data(), 2, false);
  std::vector<float> both(model.grads(), model.grads() + model.num_params());
  // Row by row, accumulating.
  for (int r = 0; r < 2; ++r) {
    be->softmax_xent(1, 2, forward(model, ws, X.data() + 3 * r, 1), y.data() + r, ws.dlogits());
    backward(model, ws, X.data() + 3 * r, 1, r > 0);
  }
  std::vector<double> expected(both.begin(), both.end());
  std::vector<float> acc(model.grads(), model.grads() + model.num_params());
  EXPECT_TRUE(test::all_close(acc, expected, 1e-6, 1e-7));
}

INSTANTIATE_TEST_SUITE_P(Activations, DenseGradCheck,
                         ::testing::Values(Activation::relu, Activation::tanh, Activation::sigmoid, Activation::gelu));

}  // namespace
}  // namespace lockstep
