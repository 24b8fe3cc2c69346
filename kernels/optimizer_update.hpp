// Every optimizer's per-parameter update, the element math of the one fused optimizer pass.
// The pass reads the raw gradient SUM g_raw, scales it by s.grad_scale (1/global batch, times
// the clipping coefficient), applies weight decay and the optimizer's rule, and updates the
// parameter and its state in place. Semantics follow the usual published definitions (PyTorch's
// torch.optim as the reference implementation; tests/reference holds values computed by it).
#pragma once
#include <cmath>

#include "kernels/common.hpp"

namespace lockstep {

enum class OptimizerKind : int { sgd = 0, momentum = 1, adam = 2, adamw = 3, adagrad = 4, rmsprop = 5 };

// Number of per-parameter state buffers each optimizer keeps.
constexpr int optimizer_state_count(OptimizerKind k) {
  return k == OptimizerKind::sgd                                     ? 0
         : (k == OptimizerKind::adam || k == OptimizerKind::adamw)  ? 2
                                                                     : 1;
}

// The per-step scalars, identical on every rank (computed on the host from the step count).
struct OptimStep {
  float lr = 0.0f;
  float grad_scale = 1.0f;    // multiplies the raw gradient sum
  float weight_decay = 0.0f;
  float momentum = 0.0f;      // momentum: mu
  int nesterov = 0;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;
  float step_size = 0.0f;     // adam/adamw: lr / (1 - beta1^t)
  float inv_sqrt_bc2 = 1.0f;  // adam/adamw: 1 / sqrt(1 - beta2^t)
  float alpha = 0.99f;        // rmsprop smoothing
};

template <OptimizerKind K>
LOCKSTEP_HD void optimizer_update(const OptimStep& s, float& p, float g_raw, float& s0, float& s1) {
  float g = g_raw * s.grad_scale;
  if constexpr (K == OptimizerKind::adamw) {
    p *= 1.0f - s.lr * s.weight_decay;  // decoupled decay, before the Adam step
  } else {
    g += s.weight_decay * p;            // L2 decay folded into the gradient
  }
  if constexpr (K == OptimizerKind::sgd) {
    p -= s.lr * g;
    (void)s0; (void)s1;
  } else if constexpr (K == OptimizerKind::momentum) {
    s0 = s.momentum * s0 + g;           // buffer starts at 0, so step 1 gives buf = g
    const float d = s.nesterov ? g + s.momentum * s0 : s0;
    p -= s.lr * d;
    (void)s1;
  } else if constexpr (K == OptimizerKind::adam || K == OptimizerKind::adamw) {
    s0 = s.beta1 * s0 + (1.0f - s.beta1) * g;
    s1 = s.beta2 * s1 + (1.0f - s.beta2) * g * g;
    const float denom = math_sqrt(s1) * s.inv_sqrt_bc2 + s.eps;
    p -= s.step_size * (s0 / denom);
  } else if constexpr (K == OptimizerKind::adagrad) {
    s0 += g * g;
    p -= s.lr * (g / (math_sqrt(s0) + s.eps));
    (void)s1;
  } else {  // rmsprop
    s0 = s.alpha * s0 + (1.0f - s.alpha) * g * g;
    p -= s.lr * (g / (math_sqrt(s0) + s.eps));
    (void)s1;
  }
}

}  // namespace lockstep
