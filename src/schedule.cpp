// Learning-rate schedules (see schedule.hpp).
#include "lockstep/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace lockstep {

double learning_rate(const ScheduleConfig& s, double base_lr, int64_t step, int64_t total_steps) {
  const double warm = step < s.warmup_steps ? static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps) : 1.0;
  const int64_t t = std::max<int64_t>(0, step - s.warmup_steps);
  double lr = base_lr;
  switch (s.kind) {
    case ScheduleKind::constant:
      break;
    case ScheduleKind::step:
      lr = base_lr * std::pow(s.gamma, static_cast<double>(t / s.step_size));
      break;
    case ScheduleKind::exponential:
      lr = base_lr * std::pow(s.gamma, static_cast<double>(t) / static_cast<double>(s.decay_steps));
      break;
    case ScheduleKind::cosine: {
      const int64_t span = std::max<int64_t>(1, total_steps - s.warmup_steps);
      const double frac = static_cast<double>(std::min(t, span)) / static_cast<double>(span);
      lr = s.min_lr + (base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * frac));
      break;
    }
  }
  return warm * lr;
}

}  // namespace lockstep
