// Softmax cross-entropy, the element math. A row's loss is log(sum_j exp(z_j - m)) + m - z_y with
// m = max_j z_j, so exp never sees a positive argument: finite for any finite logits. The gradient
// of the row's loss is softmax(z) - onehot(y). The CPU path runs xent_row per row; the CUDA path
// computes m and s with block reductions and then uses the same xent_loss/xent_grad pieces.
#pragma once
#include "kernels/common.hpp"

namespace lockstep {

// Loss of one row from its max m, its shifted exp-sum s = sum exp(z_j - m) and its label's logit.
template <typename T>
LOCKSTEP_HD T xent_loss(T m, T s, T z_label) {
  return math_log(s) - (z_label - m);
}

// d loss / d z_j.
template <typename T>
LOCKSTEP_HD T xent_grad(T z_j, T m, T s, bool is_label) {
  return math_exp(z_j - m) / s - (is_label ? T(1) : T(0));
}

// One row: writes dz (may be null) and returns the loss; *argmax gets the first maximal index.
template <typename T>
LOCKSTEP_HD T xent_row(const T* z, int cols, int label, T* dz, int* argmax) {
  T m = z[0];
  int best = 0;
  for (int j = 1; j < cols; ++j) {
    if (z[j] > m) {
      m = z[j];
      best = j;
    }
  }
  T s = T(0);
  for (int j = 0; j < cols; ++j) s += math_exp(z[j] - m);
  if (dz) {
    for (int j = 0; j < cols; ++j) dz[j] = xent_grad(z[j], m, s, j == label);
  }
  *argmax = best;
  return xent_loss(m, s, z[label]);
}

}  // namespace lockstep
