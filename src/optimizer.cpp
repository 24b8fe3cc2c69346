// Optimizer state and the per-step scalars of the fused update (see optimizer.hpp).
#include "lockstep/optimizer.hpp"

#include <cmath>

#include "lockstep/check.hpp"
#include "lockstep/memory_plan.hpp"

namespace lockstep {

Optimizer::Optimizer(Backend& backend, const OptimizerConfig& cfg, size_t n_params)
    : Optimizer(backend, cfg, std::vector<ParamRange>{{0, n_params}}) {}

Optimizer::Optimizer(Backend& backend, const OptimizerConfig& cfg, std::vector<ParamRange> ranges)
    : backend_(&backend), cfg_(cfg), ranges_(std::move(ranges)), n_(0) {
  for (const ParamRange& r : ranges_) {
    LOCKSTEP_CHECK(r.begin <= r.end, "parameter range [", r.begin, ", ", r.end, ")");
    n_ += r.size();
  }
  allocating(fmt("the optimizer state (", to_string(cfg_.name), ": ", state_count(), " x ", n_, " floats)"), [&] {
    for (int i = 0; i < state_count(); ++i) {
      state_[i] = Buffer<float>(backend, n_);
      backend.fill(state_[i].data(), n_, 0.0f);
    }
  });
}

StepStats clip_stats(double sum_sq_of_sums, int64_t batch_samples, double clip_norm) {
  StepStats s;
  s.grad_norm = std::sqrt(sum_sq_of_sums) / static_cast<double>(batch_samples);
  if (clip_norm > 0.0) {
    const double coef = clip_norm / (s.grad_norm + 1e-6);
    if (coef < 1.0) s.clip_coef = coef;
  }
  return s;
}

OptimStep Optimizer::make_step(double lr, double grad_scale) const {
  OptimStep s;
  const auto t = static_cast<double>(steps_ + 1);
  s.lr = static_cast<float>(lr);
  s.grad_scale = static_cast<float>(grad_scale);
  s.weight_decay = static_cast<float>(cfg_.weight_decay);
  s.momentum = static_cast<float>(cfg_.momentum);
  s.nesterov = cfg_.nesterov ? 1 : 0;
  s.beta1 = static_cast<float>(cfg_.beta1);
  s.beta2 = static_cast<float>(cfg_.beta2);
  s.eps = static_cast<float>(cfg_.eps);
  s.alpha = static_cast<float>(cfg_.alpha);
  s.step_size = static_cast<float>(lr / (1.0 - std::pow(cfg_.beta1, t)));
  s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(cfg_.beta2, t)));
  return s;
}

StepStats Optimizer::measure(const float* grads, int64_t batch_samples) const {
  LOCKSTEP_CHECK(batch_samples > 0, "optimizer step over an empty batch");
  double sum_sq = 0.0;
  for (const ParamRange& r : ranges_) sum_sq += backend_->sum_squares(grads + r.begin, r.size());
  return clip_stats(sum_sq, batch_samples, cfg_.clip_norm);
}

void Optimizer::apply(float* params, const float* grads, double lr, int64_t batch_samples, const StepStats& st) {
  const OptimStep s = make_step(lr, st.clip_coef / static_cast<double>(batch_samples));
  size_t packed = 0;  // where the range's state starts in the state buffers
  for (const ParamRange& r : ranges_) {
    float* s0 = state_[0].data() ? state_[0].data() + packed : nullptr;
    float* s1 = state_[1].data() ? state_[1].data() + packed : nullptr;
    backend_->optimizer_step(cfg_.name, s, params + r.begin, grads + r.begin, s0, s1, r.size());
    packed += r.size();
  }
  ++steps_;
}

StepStats Optimizer::step(float* params, const float* grads, double lr, int64_t batch_samples) {
  const StepStats st = measure(grads, batch_samples);
  apply(params, grads, lr, batch_samples, st);
  return st;
}

std::vector<float> Optimizer::get_state(int i) const {
  LOCKSTEP_CHECK(i >= 0 && i < state_count(), "optimizer state index ", i);
  std::vector<float> host(n_);
  backend_->to_host(host.data(), state_[i].data(), n_ * sizeof(float));
  return host;
}

void Optimizer::set_state(int i, const std::vector<float>& host) {
  LOCKSTEP_CHECK(i >= 0 && i < state_count() && host.size() == n_, "optimizer state ", i, " size ", host.size());
  backend_->to_device(state_[i].data(), host.data(), n_ * sizeof(float));
}

}  // namespace lockstep
