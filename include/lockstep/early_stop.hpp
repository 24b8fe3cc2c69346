// Early stopping on a validation metric with patience and min_delta. Its inputs are reduced
// metrics (identical on every rank), and the trainer reduces the decision once more, so every
// rank stops at the same epoch.
#pragma once
#include <cstdint>

#include "lockstep/config.hpp"

namespace lockstep {

struct EarlyStopState {
  double best = 0.0;
  bool has_best = false;
  int64_t bad_epochs = 0;
};

class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStopConfig& cfg) : cfg_(cfg) {}
  // Records one epoch's metric; returns true when training should stop. improved() tells whether
  // this value became the new best.
  bool update(double val_loss, double val_accuracy);
  bool improved() const { return improved_; }
  const EarlyStopState& state() const { return state_; }
  void set_state(const EarlyStopState& s) { state_ = s; }

 private:
  EarlyStopConfig cfg_;
  EarlyStopState state_;
  bool improved_ = false;
};

}  // namespace lockstep
