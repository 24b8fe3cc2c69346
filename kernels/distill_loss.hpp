// Knowledge-distillation loss, the element math. One row has student logits s, teacher logits t,
// a label y, a temperature T and a weight alpha:
//   loss_row   = alpha T^2 KL(p || q) + (1 - alpha) CE(s, y),   p = softmax(t/T), q = softmax(s/T)
//   d loss/ds_j = alpha T (q_j - p_j) + (1 - alpha) (softmax(s)_j - [j == y])
// Every exp sees a shifted argument <= 0 and every log-probability is a difference of finite
// numbers (never the log of a probability), so the loss and gradient are finite whenever the
// logits' spread (max - min) / T is finite in fp32 (|z| <= 1e30 with T >= 0.01, for example).
// The hard part is xent_loss/xent_grad of softmax_xent.hpp, evaluated from the same maximum and
// exp-sum in the same order: with alpha = 0 the result is plain cross-entropy, bit for bit. The
// CPU path runs distill_row per row; the CUDA path reduces the same DistillStats with block
// reductions and applies distill_kl_term / distill_grad / distill_loss.
#pragma once
#include "kernels/common.hpp"
#include "kernels/softmax_xent.hpp"

namespace lockstep {

// The per-call scalars: alpha T^2 (the KL weight), alpha T (its gradient's weight), 1 - alpha
// and 1/T. Built once on the host by make_distill_coef.
template <typename T>
struct DistillCoefT {
  T kl, soft, hard, inv_t;
};
using DistillCoef = DistillCoefT<float>;

template <typename T>
inline DistillCoefT<T> make_distill_coef(double temperature, double alpha) {
  return {static_cast<T>(alpha * temperature * temperature), static_cast<T>(alpha * temperature),
          static_cast<T>(1.0 - alpha), static_cast<T>(1.0 / temperature)};
}

// What one row reduces to before its loss and gradient can be formed.
template <typename T>
struct DistillStats {
  T ms;  // max_j s_j
  T ss;  // sum_j exp(s_j - ms)            (softmax of the student, as softmax_xent)
  T su;  // sum_j exp((s_j - ms) / T)      (the student at temperature T)
  T mt;  // max_j t_j
  T st;  // sum_j exp((t_j - mt) / T)      (the teacher at temperature T)
};

// exp((z - m) / T): one term of a tempered exp-sum.
template <typename T>
LOCKSTEP_HD T tempered_exp(T z, T m, T inv_t) {
  return math_exp((z - m) * inv_t);
}

// p_j (log p_j - log q_j): one class's share of KL(p || q). A class whose teacher probability
// underflows to 0 contributes 0 (the limit of p log p), never 0 * inf.
template <typename T>
LOCKSTEP_HD T distill_kl_term(T s_j, T t_j, const DistillStats<T>& r, T log_su, T log_st, T inv_t) {
  const T log_p = (t_j - r.mt) * inv_t - log_st;
  const T log_q = (s_j - r.ms) * inv_t - log_su;
  const T p = math_exp(log_p);
  return p > T(0) ? p * (log_p - log_q) : T(0);
}

// d loss_row / d s_j.
template <typename T>
LOCKSTEP_HD T distill_grad(T s_j, T t_j, const DistillStats<T>& r, const DistillCoefT<T>& c, bool is_label) {
  const T q = tempered_exp(s_j, r.ms, c.inv_t) / r.su;
  const T p = tempered_exp(t_j, r.mt, c.inv_t) / r.st;
  return c.soft * (q - p) + c.hard * xent_grad(s_j, r.ms, r.ss, is_label);
}

// loss_row from the row's KL and cross-entropy.
template <typename T>
LOCKSTEP_HD T distill_loss(T kl, T ce, const DistillCoefT<T>& c) {
  return c.kl * kl + c.hard * ce;
}

// One row: writes ds (may be null) and returns the loss; *argmax gets the student's first
// maximal index. The maximum and exp-sum of the student are formed exactly as in xent_row.
template <typename T>
LOCKSTEP_HD T distill_row(const T* s, const T* t, int cols, int label, const DistillCoefT<T>& c, T* ds, int* argmax) {
  DistillStats<T> r;
  r.ms = s[0];
  r.mt = t[0];
  int best = 0;
  for (int j = 1; j < cols; ++j) {
    if (s[j] > r.ms) {
      r.ms = s[j];
      best = j;
    }
    if (t[j] > r.mt) r.mt = t[j];
  }
  r.ss = T(0);
  r.su = T(0);
  r.st = T(0);
  for (int j = 0; j < cols; ++j) {
    r.ss += math_exp(s[j] - r.ms);
    r.su += tempered_exp(s[j], r.ms, c.inv_t);
    r.st += tempered_exp(t[j], r.mt, c.inv_t);
  }
  const T log_su = math_log(r.su), log_st = math_log(r.st);
  T kl = T(0);
  for (int j = 0; j < cols; ++j) kl += distill_kl_term(s[j], t[j], r, log_su, log_st, c.inv_t);
  if (ds) {
    for (int j = 0; j < cols; ++j) ds[j] = distill_grad(s[j], t[j], r, c, j == label);
  }
  *argmax = best;
  return distill_loss(kl, xent_loss(r.ms, r.ss, s[label]), c);
}

}  // namespace lockstep
