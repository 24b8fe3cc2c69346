// The multilayer perceptron: parameters in one flat buffer [W0 b0 W1 b1 ...] and gradients in
// another with the same layout, so the allreduce and the optimizer each make one pass over one
// buffer. W_l is (out, in) row-major; layer l computes y = act(x W_l^T + b_l); the last layer is
// linear (its outputs are the logits). Forward/backward run through a Backend on a Workspace
// sized once for the largest batch, so neither allocates.
#pragma once
#include <cstdint>
#include <vector>

#include "lockstep/backend.hpp"
#include "lockstep/config.hpp"

namespace lockstep {

struct LayerShape {
  int64_t in = 0, out = 0;
  Activation act = Activation::none;
  size_t w_offset = 0;  // into the flat buffers
  size_t b_offset = 0;
  size_t w_size() const { return static_cast<size_t>(in * out); }
};

class Mlp {
 public:
  Mlp(Backend& backend, const std::vector<int64_t>& widths, Activation hidden);

  Backend& backend() const { return *backend_; }
  const std::vector<LayerShape>& layers() const { return layers_; }
  size_t num_params() const { return params_.size(); }
  int64_t input_dim() const { return layers_.front().in; }
  int64_t output_dim() const { return layers_.back().out; }
  int64_t max_width() const;

  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  float* grads() { return grads_ptr_; }
  const float* grads() const { return grads_ptr_; }
  // Keeps the gradients in memory the caller owns from now on (num_params() floats in this
  // backend's space, outliving the model), e.g. a communicator's ReduceBuffer, so the gradient
  // allreduce needs no copy. The current gradients move there.
  void use_gradient_memory(float* p);

  // Host copies of the parameters (for initialisation, checkpoints, tests).
  std::vector<float> get_params() const;
  void set_params(const std::vector<float>& host);

 private:
  Backend* backend_;
  std::vector<LayerShape> layers_;
  Buffer<float> params_, grads_;
  float* grads_ptr_ = nullptr;  // grads_ or the caller's memory
};

// Initial parameters on the host: weights from (seed, layer), biases zero.
// auto: He-normal for relu/gelu hidden layers, Xavier-uniform for tanh/sigmoid and the output.
std::vector<float> initial_params(const Mlp& model, uint64_t seed, InitKind init);

// Activations of one forward pass and the scratch of its backward pass, for up to max_rows rows.
class Workspace {
 public:
  Workspace(const Mlp& model, int64_t max_rows);
  int64_t max_rows() const { return max_rows_; }
  float* logits() { return z_.back().data(); }
  float* dlogits() { return dlogits_.data(); }

 private:
  friend const float* forward(const Mlp&, Workspace&, const float*, int64_t);
  friend void backward(Mlp&, Workspace&, const float*, int64_t, bool, const std::vector<bool>&);
  int64_t max_rows_;
  std::vector<Buffer<float>> z_, y_;  // per layer (rows, out); the last layer has no y
  Buffer<float> dy_[2];               // ping-pong dL/dy of hidden layers
  Buffer<float> dlogits_;
  Buffer<float> frozen_dbias_;        // (max width) the unused bias sums of frozen layers
};

// X (n, in) -> logits (n, classes), returned pointer into the workspace. n <= ws.max_rows().
const float* forward(const Mlp& model, Workspace& ws, const float* X, int64_t n);

// Given ws.dlogits() = dL/dlogits for the n rows of the last forward, computes the gradients:
// added to model.grads() when accumulate, stored otherwise. Layers marked in `frozen` (one flag
// per layer; empty: none) get no gradient: their weight GEMM is skipped, their part of
// model.grads() is left as it was, and nothing propagates below the lowest layer that trains.
void backward(Mlp& model, Workspace& ws, const float* X, int64_t n, bool accumulate,
              const std::vector<bool>& frozen = {});

}  // namespace lockstep
