// Learning-rate schedules: the rate for 0-based optimizer step t is a pure function of t and the
// config, so resuming needs only the step count. Warmup scales by (t+1)/W for t < W; the decay
// runs on t' = max(0, t - W): constant, step (gamma^floor(t'/step_size)), exponential
// (gamma^(t'/decay_steps)) or cosine (to min_lr at total_steps).
#pragma once
#include <cstdint>

#include "lockstep/config.hpp"

namespace lockstep {

double learning_rate(const ScheduleConfig& s, double base_lr, int64_t step, int64_t total_steps);

}  // namespace lockstep
