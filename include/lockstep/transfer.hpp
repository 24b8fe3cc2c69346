// Transfer learning (the [init] section): a model's initial weights taken layer by layer from
// another run's checkpoint, a re-initialised output layer, and frozen layers, which become the
// flags backward() skips and the parameter ranges the optimizer and the allreduce leave out.
// Deliberately not here: reading the checkpoint (the command does, on rank 0) and resuming.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lockstep/model.hpp"
#include "lockstep/optimizer.hpp"

namespace lockstep {

// The layers of a source checkpoint, as init.from provides them.
struct InitSource {
  std::string origin;                 // for messages: the checkpoint's path
  std::vector<int64_t> widths;        // its model.layers
  Activation activation = Activation::relu;
  const std::vector<float>* params = nullptr;  // flat [W0 b0 W1 b1 ...]
};

// One line per layer of `model` that cannot be loaded from `src` (shape or activation differs,
// or the source lacks it); the output layer is exempt when reset_head. Empty when all load.
std::vector<std::string> init_mismatches(const Mlp& model, const InitSource& src, bool reset_head);

// Overwrites the layers of `init` (the model's flat initial parameters) with the source's,
// except the output layer when reset_head (it keeps its fresh initialisation). Throws UserError
// listing every layer that differs, before anything is changed.
void load_init_layers(const Mlp& model, const InitSource& src, bool reset_head, std::vector<float>& init);

// frozen[l] for every layer of a model with n_layers layers, from init.freeze.
std::vector<bool> frozen_flags(size_t n_layers, const std::vector<int64_t>& freeze);

// The parameter ranges that train: every layer not frozen, adjacent layers merged, in buffer
// order. With nothing frozen this is one range over all parameters.
std::vector<ParamRange> trainable_ranges(const std::vector<LayerShape>& layers, const std::vector<bool>& frozen);

// Parameters in the trainable ranges of a model with these widths and frozen layers.
size_t trainable_count(const std::vector<int64_t>& widths, const std::vector<int64_t>& freeze);

}  // namespace lockstep
