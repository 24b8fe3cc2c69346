// Patience-based early stopping (see early_stop.hpp).
#include "lockstep/early_stop.hpp"

#include <cmath>

namespace lockstep {

bool EarlyStopping::update(double val_loss, double val_accuracy) {
  // Lower is better for the loss, higher for the accuracy: compare on a "higher is better" score.
  const double score = cfg_.metric == StopMetric::val_loss ? -val_loss : val_accuracy;
  // A non-finite metric (a diverged epoch) is never an improvement; a NaN kept as the best would
  // compare false against everything after it and stop the run however well it recovered.
  improved_ = std::isfinite(score) && (!state_.has_best || score > state_.best + cfg_.min_delta);
  if (improved_) {
    state_.best = score;
    state_.has_best = true;
    state_.bad_epochs = 0;
  } else {
    ++state_.bad_epochs;
  }
  return cfg_.enabled && state_.bad_epochs >= cfg_.patience;
}

}  // namespace lockstep
