// Transfer learning pieces (transfer.hpp): layer-wise initialisation from a checkpoint's layers
// with and without a re-initialised head, the one message listing every layer that differs,
// the trainable ranges of frozen layers, backward skipping the work of frozen layers (counted
// GEMM calls, untouched gradient memory), and the optimizer leaving frozen ranges alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "lockstep/backend.hpp"
#include "lockstep/model.hpp"
#include "lockstep/optimizer.hpp"
#include "lockstep/rng.hpp"
#include "lockstep/transfer.hpp"
#include "support/forwarding_backend.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

// The CPU backend, counting the GEMMs it is asked for (to see which work backward skips).
class CountingBackend final : public test::ForwardingBackend {
 public:
  int gemms = 0;
  void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) override {
    ++gemms;
    ForwardingBackend::gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }
};

std::vector<float> numbered(size_t n, float base) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = base + static_cast<float>(i);
  return v;
}

TEST(Transfer, LoadsEveryLayerWhenShapesMatch) {
  auto be = make_cpu_backend();
  Mlp model(*be, {6, 5, 4, 3}, Activation::relu);
  const std::vector<float> src = numbered(model.num_params(), 1000.0f);
  std::vector<float> init(model.num_params(), -1.0f);
  load_init_layers(model, InitSource{"src.h5", {6, 5, 4, 3}, Activation::relu, &src}, false, init);
  EXPECT_EQ(init, src);
}

TEST(Transfer, ResetHeadKeepsTheFreshOutputLayer) {
  auto be = make_cpu_backend();
  Mlp model(*be, {6, 5, 4, 2}, Activation::relu);  // a new class count: 2 instead of 3
  Mlp source(*be, {6, 5, 4, 3}, Activation::relu);
  const std::vector<float> src = numbered(source.num_params(), 1000.0f);
  const std::vector<float> fresh = initial_params(model, 7, InitKind::auto_);
  std::vector<float> init = fresh;
  load_init_layers(model, InitSource{"src.h5", {6, 5, 4, 3}, Activation::relu, &src}, true, init);
  const auto& layers = model.layers();
  const size_t head = layers.back().w_offset;  // the body is everything before the head's weight
  EXPECT_TRUE(std::equal(init.begin(), init.begin() + static_cast<std::ptrdiff_t>(head), src.begin()));
  EXPECT_TRUE(std::equal(init.begin() + static_cast<std::ptrdiff_t>(head), init.end(),
                         fresh.begin() + static_cast<std::ptrdiff_t>(head)));
  // A deeper checkpoint: the model keeps its lower layers under the new head.
  const std::vector<float> deep = numbered(Mlp(*be, {6, 5, 4, 9, 3}, Activation::relu).num_params(), 5.0f);
  std::vector<float> init2 = fresh;
  load_init_layers(model, InitSource{"deep.h5", {6, 5, 4, 9, 3}, Activation::relu, &deep}, true, init2);
  EXPECT_TRUE(std::equal(init2.begin(), init2.begin() + static_cast<std::ptrdiff_t>(head), deep.begin()));
}

TEST(Transfer, MismatchesAreListedInOneMessageAndNothingChanges) {
  auto be = make_cpu_backend();
  Mlp model(*be, {6, 5, 4, 2}, Activation::relu);
  const std::vector<float> src = numbered(Mlp(*be, {6, 7, 4, 3}, Activation::tanh).num_params(), 1.0f);
  const InitSource s{"/runs/base/best.h5", {6, 7, 4, 3}, Activation::tanh, &src};
  std::vector<float> init(model.num_params(), -1.0f);
  const std::vector<float> before = init;
  EXPECT_TRUE(test::throws_user_error([&] { load_init_layers(model, s, false, init); },
                                      {"init.from = /runs/base/best.h5", "4 difference(s)",
                                       "activation: checkpoint tanh, model relu",
                                       "layer 0: checkpoint weight [7, 6], model weight [5, 6]",
                                       "layer 1: checkpoint weight [4, 7], model weight [4, 5]",
                                       "layer 2: checkpoint weight [3, 4], model weight [2, 4]", "init.reset_head"}));
  EXPECT_EQ(init, before);
  // With reset_head the head no longer counts; the body still does.
  const std::vector<std::string> rest = init_mismatches(model, s, true);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_NE(rest[1].find("layer 0"), std::string::npos);
  EXPECT_NE(rest[2].find("layer 1"), std::string::npos);
  // A shallower checkpoint lacks layers.
  const std::vector<std::string> missing = init_mismatches(model, InitSource{"x", {6, 5}, Activation::relu, &src}, true);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_NE(missing[0].find("the checkpoint has no layer 1"), std::string::npos) << missing[0];
}

TEST(Transfer, TrainableRangesSkipFrozenLayersAndMergeNeighbours) {
  auto be = make_cpu_backend();
  Mlp model(*be, {6, 5, 4, 3}, Activation::relu);
  const auto& L = model.layers();
  const size_t n0 = 6 * 5 + 5, n1 = 5 * 4 + 4, n2 = 4 * 3 + 3;
  ASSERT_EQ(model.num_params(), n0 + n1 + n2);
  auto ranges = [&](std::vector<int64_t> freeze) { return trainable_ranges(L, frozen_flags(3, freeze)); };
  auto r = ranges({});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].begin, 0u);
  EXPECT_EQ(r[0].end, model.num_params());
  r = ranges({0, 1});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].begin, n0 + n1);
  EXPECT_EQ(r[0].end, n0 + n1 + n2);
  r = ranges({1});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].end, n0);
  EXPECT_EQ(r[1].begin, n0 + n1);
  EXPECT_EQ(trainable_count({6, 5, 4, 3}, {1}), n0 + n2);
  EXPECT_EQ(trainable_count({6, 5, 4, 3}, {}), model.num_params());
}

// Backward of one batch with some layers frozen: GEMM count, gradient memory, values.
struct BackwardRun {
  int gemms = 0;
  std::vector<float> grads;
};
BackwardRun backward_with(const std::vector<int64_t>& freeze) {
  CountingBackend be;
  const std::vector<int64_t> widths{6, 5, 4, 3};
  Mlp model(be, widths, Activation::tanh);
  model.set_params(initial_params(model, 3, InitKind::auto_));
  Rng rng(8, Stream::test);
  const int64_t n = 9;
  std::vector<float> X(static_cast<size_t>(n * widths[0]));
  for (auto& v : X) v = static_cast<float>(rng.normal());
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (auto& v : y) v = static_cast<int32_t>(rng.uniform_below(3));
  // NaN sentinels: a gradient entry that backward writes no longer holds NaN.
  be.fill(model.grads(), model.num_params(), std::numeric_limits<float>::quiet_NaN());
  Workspace ws(model, n);
  be.softmax_xent(static_cast<int>(n), 3, forward(model, ws, X.data(), n), y.data(), ws.dlogits());
  be.gemms = 0;
  backward(model, ws, X.data(), n, false, frozen_flags(3, freeze));
  BackwardRun r;
  r.gemms = be.gemms;
  r.grads.assign(model.grads(), model.grads() + model.num_params());
  return r;
}

TEST(Transfer, BackwardSkipsTheWorkOfFrozenLayers) {
  const size_t n0 = 6 * 5 + 5, n1 = 5 * 4 + 4;
  const BackwardRun all = backward_with({});
  EXPECT_EQ(all.gemms, 5);  // three weight gradients, two propagations
  for (float g : all.grads) ASSERT_FALSE(std::isnan(g));

  // The body frozen: only the head's weight gradient, and nothing propagates below it.
  const BackwardRun body = backward_with({0, 1});
  EXPECT_EQ(body.gemms, 1);
  for (size_t i = 0; i < n0 + n1; ++i) ASSERT_TRUE(std::isnan(body.grads[i])) << "frozen gradient " << i << " was written";
  EXPECT_EQ(std::memcmp(body.grads.data() + n0 + n1, all.grads.data() + n0 + n1,
                        (all.grads.size() - n0 - n1) * sizeof(float)),
            0)
      << "the head's gradient must not depend on what is frozen below it";

  // Layer 1 frozen between two trainable ones: its weight GEMM is skipped, the signal still
  // passes through it to layer 0, whose gradient is the same as without freezing.
  const BackwardRun middle = backward_with({1});
  EXPECT_EQ(middle.gemms, 4);
  for (size_t i = n0; i < n0 + n1; ++i) ASSERT_TRUE(std::isnan(middle.grads[i]));
  EXPECT_EQ(std::memcmp(middle.grads.data(), all.grads.data(), n0 * sizeof(float)), 0);

  // The input layer frozen: backward ends at layer 1, so nothing propagates into layer 0.
  const BackwardRun bottom = backward_with({0});
  EXPECT_EQ(bottom.gemms, 3);  // the weight gradients of layers 2 and 1 and the propagation 2 -> 1
  for (size_t i = 0; i < n0; ++i) ASSERT_TRUE(std::isnan(bottom.grads[i]));
}

TEST(Transfer, OptimizerUpdatesOnlyItsRangesAndKeepsStateForThem) {
  auto be = make_cpu_backend();
  OptimizerConfig oc;
  oc.name = OptimizerKind::adam;
  oc.lr = 0.1;
  const std::vector<ParamRange> ranges{{2, 5}, {8, 10}};
  Optimizer opt(*be, oc, ranges);
  EXPECT_EQ(opt.state_size(), 5u);
  EXPECT_EQ(opt.get_state(0).size(), 5u);
  std::vector<float> p = numbered(12, 1.0f), g(12, 0.5f);
  const std::vector<float> before = p;
  opt.step(p.data(), g.data(), 0.1, 1);
  for (size_t i = 0; i < p.size(); ++i) {
    const bool inside = (i >= 2 && i < 5) || (i >= 8 && i < 10);
    if (inside) EXPECT_NE(p[i], before[i]) << i;
    else EXPECT_EQ(p[i], before[i]) << i;
  }
  // The same ranges updated by an optimizer over all of them together: identical values.
  Optimizer whole(*be, oc, 12);
  std::vector<float> q = before;
  std::vector<float> gm(12, 0.0f);
  for (const ParamRange& r : ranges)
    for (size_t i = r.begin; i < r.end; ++i) gm[i] = 0.5f;
  whole.step(q.data(), gm.data(), 0.1, 1);
  for (const ParamRange& r : ranges)
    for (size_t i = r.begin; i < r.end; ++i) EXPECT_EQ(q[i], p[i]) << i;
}

}  // namespace
}  // namespace lockstep
