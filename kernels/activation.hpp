// Activation functions and their derivatives: the element math of the fused bias+activation
// forward and backward passes, shared by the CPU loops and the CUDA kernels (T = float) and
// instantiated in double by the gradient checks. act_grad takes both the pre-activation z and
// the output y so each function uses the cheaper one.
#pragma once
#include "kernels/common.hpp"

namespace lockstep {

enum class Activation : int { none = 0, relu = 1, tanh = 2, sigmoid = 3, gelu = 4 };

template <Activation A, typename T>
LOCKSTEP_HD T act_forward(T z) {
  if constexpr (A == Activation::none) {
    return z;
  } else if constexpr (A == Activation::relu) {
    return z > T(0) ? z : T(0);
  } else if constexpr (A == Activation::tanh) {
    return math_tanh(z);
  } else if constexpr (A == Activation::sigmoid) {
    // exp of a large positive -z overflows to inf and gives exactly 0: no NaN for any finite z.
    return T(1) / (T(1) + math_exp(-z));
  } else {  // gelu, exact erf form
    return T(0.5) * z * (T(1) + math_erf(z * T(0.70710678118654752440)));
  }
}

// d act / d z at z, given y = act(z).
template <Activation A, typename T>
LOCKSTEP_HD T act_grad(T z, T y) {
  if constexpr (A == Activation::none) {
    return T(1);
  } else if constexpr (A == Activation::relu) {
    return z > T(0) ? T(1) : T(0);
  } else if constexpr (A == Activation::tanh) {
    return T(1) - y * y;
  } else if constexpr (A == Activation::sigmoid) {
    return y * (T(1) - y);
  } else {  // gelu: Phi(z) + z * phi(z)
    const T cdf = T(0.5) * (T(1) + math_erf(z * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * math_exp(T(-0.5) * z * z);
    return cdf + z * pdf;
  }
}

}  // namespace lockstep
