// lockstep against values computed independently by PyTorch in float64 (tests/reference):
// forward activations, loss and gradients for each activation; three steps of every optimizer
// with clipping and schedules; softmax cross-entropy on extreme logits.
// Tolerance: our float32 path against float64 truth. A forward/backward element of this tiny
// net is a sum of <= 6 products through 3 layers (~30 roundings of 6e-8 each, ~2e-6 worst case),
// so 1e-5 relative, with an absolute floor of 1e-6 x the tensor's largest magnitude for values
// that are small only through cancellation.
#include <gtest/gtest.h>

#include "lockstep/backend.hpp"
#include "lockstep/model.hpp"
#include "lockstep/optimizer.hpp"
#include "lockstep/schedule.hpp"
#include "support/test_support.hpp"

namespace lockstep {
namespace {

using test::all_close;
using test::load_fixture;
using test::to_doubles;
using test::to_floats;

constexpr double kRtol = 1e-5;
constexpr double kAtolScale = 1e-6;

Activation activation_named(const std::string& n) {
  if (n == "relu") return Activation::relu;
  if (n == "tanh") return Activation::tanh;
  if (n == "sigmoid") return Activation::sigmoid;
  return Activation::gelu;
}

std::vector<int64_t> layers_of(const nlohmann::json& j) { return j["layers"].get<std::vector<int64_t>>(); }

// Flat parameter vector [W0 b0 W1 b1 ...] from the fixture's per-layer lists.
std::vector<float> flat_params(const nlohmann::json& params) {
  std::vector<float> out;
  for (const auto& layer : params) {
    for (float v : to_floats(layer["W"])) out.push_back(v);
    for (float v : to_floats(layer["b"])) out.push_back(v);
  }
  return out;
}
std::vector<double> flat_params_d(const nlohmann::json& params) {
  std::vector<double> out;
  for (const auto& layer : params) {
    for (double v : to_doubles(layer["W"])) out.push_back(v);
    for (double v : to_doubles(layer["b"])) out.push_back(v);
  }
  return out;
}

std::vector<float> slice(const float* p, size_t off, size_t n) { return std::vector<float>(p + off, p + off + n); }

// Runs forward + loss + backward on the fixture's batch; returns the loss sum.
double forward_backward(Mlp& model, Workspace& ws, Backend& be, const nlohmann::json& fx, LossSums* sums_out = nullptr) {
  const std::vector<float> X = to_floats(fx["X"]);
  const std::vector<int32_t> y = fx["labels"].get<std::vector<int32_t>>();
  const int64_t n = static_cast<int64_t>(y.size());
  const float* logits = forward(model, ws, X.data(), n);
  const LossSums s = be.softmax_xent(static_cast<int>(n), static_cast<int>(model.output_dim()), logits, y.data(), ws.dlogits());
  backward(model, ws, X.data(), n, false);
  if (sums_out) *sums_out = s;
  return s.loss;
}

class ForwardBackwardReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardBackwardReference, MatchesPyTorch) {
  const auto fx = load_fixture("forward_backward_" + GetParam() + ".json");
  auto be = make_cpu_backend();
  Mlp model(*be, layers_of(fx), activation_named(fx["activation"]));
  model.set_params(flat_params(fx["params"]));
  Workspace ws(model, 4);
  const std::vector<float> X = to_floats(fx["X"]);
  const std::vector<int32_t> y = fx["labels"].get<std::vector<int32_t>>();
  const float* logits = forward(model, ws, X.data(), 4);
  EXPECT_TRUE(all_close(slice(logits, 0, 12), to_doubles(fx["logits"]), kRtol, kAtolScale));
  const LossSums s = be->softmax_xent(4, 3, logits, y.data(), ws.dlogits());
  EXPECT_NEAR(s.loss, fx["loss_sum"].get<double>(), kRtol * fx["loss_sum"].get<double>());
  EXPECT_TRUE(all_close(slice(ws.dlogits(), 0, 12), to_doubles(fx["dlogits"]), kRtol, kAtolScale));
  backward(model, ws, X.data(), 4, false);
  const auto& layers = model.layers();
  for (size_t l = 0; l < layers.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    EXPECT_TRUE(all_close(slice(model.grads(), layers[l].w_offset, layers[l].w_size()),
                          to_doubles(fx["grads"][l]["W"]), kRtol, kAtolScale));
    EXPECT_TRUE(all_close(slice(model.grads(), layers[l].b_offset, static_cast<size_t>(layers[l].out)),
                          to_doubles(fx["grads"][l]["b"]), kRtol, kAtolScale));
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, ForwardBackwardReference, ::testing::Values("relu", "tanh", "sigmoid", "gelu"));

// Hidden activations of the forward pass, checked through a two-layer prefix model: the fixture
// stores A for every layer, and a model cut after layer l outputs Z_l (linear last layer).
TEST(ForwardBackwardReference, HiddenActivationsMatch) {
  for (const std::string act : {"relu", "tanh", "sigmoid", "gelu"}) {
    SCOPED_TRACE(act);
    const auto fx = load_fixture("forward_backward_" + act + ".json");
    auto be = make_cpu_backend();
    const auto layers = layers_of(fx);
    // Model with only the first layer: its (linear) output is Z_0.
    Mlp first(*be, {layers[0], layers[1]}, activation_named(act));
    std::vector<float> p = to_floats(fx["params"][0]["W"]);
    for (float v : to_floats(fx["params"][0]["b"])) p.push_back(v);
    first.set_params(p);
    Workspace ws(first, 4);
    const std::vector<float> X = to_floats(fx["X"]);
    const float* z0 = forward(first, ws, X.data(), 4);
    EXPECT_TRUE(all_close(slice(z0, 0, 4 * static_cast<size_t>(layers[1])), to_doubles(fx["Z"][0]), kRtol, kAtolScale));
    // The activation applied by the backend's fused kernel to Z_0 gives A_0.
    std::vector<float> z(z0, z0 + 4 * layers[1]), a(z.size());
    std::vector<float> zero_bias(static_cast<size_t>(layers[1]), 0.0f);
    be->bias_act_forward(activation_named(act), 4, static_cast<int>(layers[1]), zero_bias.data(), z.data(), a.data());
    EXPECT_TRUE(all_close(a, to_doubles(fx["A"][0]), kRtol, kAtolScale));
  }
}

OptimizerConfig optimizer_config(const nlohmann::json& c) {
  const auto& h = c["hyperparameters"];
  OptimizerConfig o;
  const std::string name = c["optimizer"];
  o.lr = h["lr"];
  o.weight_decay = h.value("weight_decay", 0.0);
  if (name == "sgd") {
    o.momentum = h.value("momentum", 0.0);
    o.nesterov = h.value("nesterov", false);
    o.name = o.momentum > 0.0 ? OptimizerKind::momentum : OptimizerKind::sgd;
  } else if (name == "adam" || name == "adamw") {
    o.name = name == "adam" ? OptimizerKind::adam : OptimizerKind::adamw;
    o.beta1 = h["beta1"];
    o.beta2 = h["beta2"];
    o.eps = h["eps"];
  } else if (name == "adagrad") {
    o.name = OptimizerKind::adagrad;
    o.eps = h["eps"];
  } else {
    o.name = OptimizerKind::rmsprop;
    o.alpha = h["alpha"];
    o.eps = h["eps"];
  }
  if (!c["max_norm"].is_null()) o.clip_norm = c["max_norm"];
  return o;
}

ScheduleConfig schedule_config(const nlohmann::json& s) {
  ScheduleConfig sc;
  const std::string t = s["type"];
  sc.kind = t == "step" ? ScheduleKind::step
            : t == "exponential" ? ScheduleKind::exponential
            : t == "cosine" ? ScheduleKind::cosine
                            : ScheduleKind::constant;
  sc.warmup_steps = s["warmup_steps"];
  sc.gamma = s["gamma"];
  sc.step_size = s["step_size"];
  sc.decay_steps = s["decay_steps"];
  sc.min_lr = s["min_lr"];
  return sc;
}

TEST(OptimizerReference, ThreeStepsOfEveryOptimizerMatchPyTorch) {
  const auto fx = load_fixture("optimizers.json");
  ASSERT_GE(fx["cases"].size(), 9u);
  for (const auto& c : fx["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto be = make_cpu_backend();
    Mlp model(*be, layers_of(fx), activation_named(fx["activation"]));
    model.set_params(flat_params(fx["initial_params"]));
    Workspace ws(model, 4);
    Optimizer opt(*be, optimizer_config(c), model.num_params());
    const ScheduleConfig sched = schedule_config(c["schedule"]);
    const double base_lr = c["schedule"]["base_lr"];
    const int64_t total = c["schedule"]["total_steps"];
    for (size_t t = 0; t < c["steps"].size(); ++t) {
      SCOPED_TRACE("step " + std::to_string(t));
      const auto& st = c["steps"][t];
      const double lr = learning_rate(sched, base_lr, static_cast<int64_t>(t), total);
      EXPECT_NEAR(lr, st["lr"].get<double>(), 1e-12 * base_lr);
      const double loss = forward_backward(model, ws, *be, fx);
      EXPECT_NEAR(loss / 4.0, st["loss_mean"].get<double>(), kRtol * st["loss_mean"].get<double>());
      const StepStats stats = opt.step(model.params(), model.grads(), lr, 4);
      EXPECT_NEAR(stats.grad_norm, st["grad_norm"].get<double>(), kRtol * st["grad_norm"].get<double>());
      EXPECT_EQ(stats.clip_coef < 1.0, st["clipped"].get<bool>());
      EXPECT_TRUE(all_close(model.get_params(), flat_params_d(st["params"]), kRtol, kAtolScale));
    }
    EXPECT_EQ(opt.step_count(), 3);
  }
}

TEST(SoftmaxXentReference, ExtremeLogitsGiveFiniteCorrectValues) {
  const auto fx = load_fixture("softmax_xent_extreme.json");
  auto be = make_cpu_backend();
  const int cols = fx["num_classes"];
  for (const auto& row : fx["rows"]) {
    const std::vector<float> z = to_floats(row["logits"]);
    const int32_t label = row["label"];
    std::vector<float> dz(static_cast<size_t>(cols));
    const LossSums s = be->softmax_xent(1, cols, z.data(), &label, dz.data());
    const double expected = row["loss"];
    ASSERT_TRUE(std::isfinite(s.loss));
    // log(s) is computed in float: its rounding (~1e-7 absolute) dominates for small losses.
    EXPECT_NEAR(s.loss, expected, kRtol * std::fabs(expected) + 1e-6);
    for (float g : dz) EXPECT_TRUE(std::isfinite(g));
    EXPECT_TRUE(all_close(dz, to_doubles(row["grad"]), kRtol, kAtolScale));
  }
}

}  // namespace
}  // namespace lockstep
