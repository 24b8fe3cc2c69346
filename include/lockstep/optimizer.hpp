// The optimizer: its state buffers (momentum, Adam's m and v, AdaGrad/RMSprop accumulators) with
// the same layout as the parameters, the step count, and one fused update pass per step. The
// gradient it is given is the raw SUM over the step's global batch; dividing by the batch size
// and clipping by the global L2 norm happen inside the same pass (through OptimStep.grad_scale).
#pragma once
#include <cstdint>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/config.hpp"

namespace lockstep {

// A contiguous run [begin, end) of the flat parameter buffer.
struct ParamRange {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

struct StepStats {
  double grad_norm = 0.0;   // L2 norm of the averaged gradient, before clipping
  double clip_coef = 1.0;   // factor applied (1 when not clipped)
};

// The optimizer updates only its ranges of the parameters (the trainable layers; frozen ones are
// left alone): its state buffers hold those ranges back to back, the gradient norm covers only
// them, and one fused pass runs per range.
class Optimizer {
 public:
  Optimizer(Backend& backend, const OptimizerConfig& cfg, size_t n_params);  // every parameter
  Optimizer(Backend& backend, const OptimizerConfig& cfg, std::vector<ParamRange> ranges);

  // Updates params[0..n) from grads (sums over batch_samples samples) at learning rate lr:
  // measure() then apply().
  StepStats step(float* params, const float* grads, double lr, int64_t batch_samples);
  // The gradient's norm and clipping coefficient (one read of the gradients). The trainer looks
  // at them before deciding to apply the step (a non-finite norm skips or stops it).
  StepStats measure(const float* grads, int64_t batch_samples) const;
  // The fused update with the scalars from measure().
  void apply(float* params, const float* grads, double lr, int64_t batch_samples, const StepStats& stats);

  // The per-step scalars for the next step (step_count()+1), exposed for tests and kernels.
  OptimStep make_step(double lr, double grad_scale) const;

  OptimizerKind kind() const { return cfg_.name; }
  const OptimizerConfig& config() const { return cfg_; }
  int64_t step_count() const { return steps_; }
  void set_step_count(int64_t s) { steps_ = s; }
  int state_count() const { return optimizer_state_count(cfg_.name); }
  const std::vector<ParamRange>& ranges() const { return ranges_; }
  size_t state_size() const { return n_; }  // parameters it updates: the sum of the ranges' sizes
  // State buffer i (0 <= i < state_count()) on the host (state_size() values), and back.
  std::vector<float> get_state(int i) const;
  void set_state(int i, const std::vector<float>& host);

 private:
  Backend* backend_;
  OptimizerConfig cfg_;
  std::vector<ParamRange> ranges_;
  size_t n_;
  Buffer<float> state_[2];
  int64_t steps_ = 0;
};

// L2 norm of the averaged gradient and the clipping coefficient for it (1 when no clipping is
// needed): coef = clip_norm / (norm + 1e-6), applied when below 1.
StepStats clip_stats(double sum_sq_of_sums, int64_t batch_samples, double clip_norm);

}  // namespace lockstep
