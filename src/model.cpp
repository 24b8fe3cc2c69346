// MLP layout, initialisation, forward and backward (see model.hpp).
#include "lockstep/model.hpp"

#include <algorithm>
#include <cmath>

#include "lockstep/check.hpp"
#include "lockstep/rng.hpp"

namespace lockstep {

Mlp::Mlp(Backend& backend, const std::vector<int64_t>& widths, Activation hidden) : backend_(&backend) {
  LOCKSTEP_CHECK(widths.size() >= 2, "an MLP needs at least two widths");
  size_t offset = 0;
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    LOCKSTEP_CHECK(widths[l] > 0 && widths[l + 1] > 0, "layer widths must be positive");
    LayerShape s;
    s.in = widths[l];
    s.out = widths[l + 1];
    s.act = (l + 2 == widths.size()) ? Activation::none : hidden;
    s.w_offset = offset;
    offset += s.w_size();
    s.b_offset = offset;
    offset += static_cast<size_t>(s.out);
    layers_.push_back(s);
  }
  params_ = Buffer<float>(backend, offset);
  grads_ = Buffer<float>(backend, offset);
  backend.fill(params_.data(), offset, 0.0f);
  backend.fill(grads_.data(), offset, 0.0f);
  grads_ptr_ = grads_.data();
}

void Mlp::use_gradient_memory(float* p) {
  LOCKSTEP_CHECK(p, "no gradient memory given");
  backend_->copy(p, grads_ptr_, num_params() * sizeof(float));
  grads_ptr_ = p;
  grads_ = Buffer<float>();  // the model's own buffer is no longer needed
}

int64_t Mlp::max_width() const {
  int64_t w = 0;
  for (const auto& l : layers_) w = std::max({w, l.in, l.out});
  return w;
}

std::vector<float> Mlp::get_params() const {
  std::vector<float> host(params_.size());
  backend_->to_host(host.data(), params_.data(), host.size() * sizeof(float));
  return host;
}

void Mlp::set_params(const std::vector<float>& host) {
  LOCKSTEP_CHECK(host.size() == params_.size(), "parameter count ", host.size(), " != ", params_.size());
  backend_->to_device(params_.data(), host.data(), host.size() * sizeof(float));
}

std::vector<float> initial_params(const Mlp& model, uint64_t seed, InitKind init) {
  std::vector<float> p(model.num_params(), 0.0f);
  const auto& layers = model.layers();
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerShape& s = layers[l];
    const bool rectifier = s.act == Activation::relu || s.act == Activation::gelu;
    const bool he = init == InitKind::he || (init == InitKind::auto_ && rectifier);
    Rng rng(seed, Stream::init, l);
    float* w = p.data() + s.w_offset;
    if (he) {
      const double sd = std::sqrt(2.0 / static_cast<double>(s.in));
      for (size_t i = 0; i < s.w_size(); ++i) w[i] = static_cast<float>(sd * rng.normal());
    } else {
      const double a = std::sqrt(6.0 / static_cast<double>(s.in + s.out));
      for (size_t i = 0; i < s.w_size(); ++i) w[i] = static_cast<float>(a * (2.0 * rng.uniform01() - 1.0));
    }
  }
  return p;
}

Workspace::Workspace(const Mlp& model, int64_t max_rows) : max_rows_(max_rows) {
  Backend& be = model.backend();
  const auto& layers = model.layers();
  const auto rows = static_cast<size_t>(max_rows);
  for (size_t l = 0; l < layers.size(); ++l) {
    z_.emplace_back(be, rows * static_cast<size_t>(layers[l].out));
    if (l + 1 < layers.size()) y_.emplace_back(be, rows * static_cast<size_t>(layers[l].out));
  }
  const auto hidden = static_cast<size_t>(model.max_width());
  dy_[0] = Buffer<float>(be, rows * hidden);
  dy_[1] = Buffer<float>(be, rows * hidden);
  dlogits_ = Buffer<float>(be, rows * static_cast<size_t>(model.output_dim()));
  frozen_dbias_ = Buffer<float>(be, hidden);
}

const float* forward(const Mlp& model, Workspace& ws, const float* X, int64_t n) {
  LOCKSTEP_CHECK(n <= ws.max_rows_, "batch of ", n, " rows exceeds the workspace (", ws.max_rows_, ")");
  Backend& be = model.backend();
  const auto& layers = model.layers();
  const float* in = X;
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerShape& s = layers[l];
    float* z = ws.z_[l].data();
    const int m = static_cast<int>(n), o = static_cast<int>(s.out), k = static_cast<int>(s.in);
    // z (n, out) = in (n, in) * W^T (in, out)
    be.gemm(Trans::no, Trans::yes, m, o, k, 1.0f, in, k, model.params() + s.w_offset, k, 0.0f, z, o);
    const bool last = l + 1 == layers.size();
    float* y = last ? z : ws.y_[l].data();
    be.bias_act_forward(s.act, m, o, model.params() + s.b_offset, z, y);
    in = y;
  }
  return ws.z_.back().data();
}

void backward(Mlp& model, Workspace& ws, const float* X, int64_t n, bool accumulate, const std::vector<bool>& frozen) {
  Backend& be = model.backend();
  const auto& layers = model.layers();
  LOCKSTEP_CHECK(frozen.empty() || frozen.size() == layers.size(), "frozen flags for ", frozen.size(), " of ",
                 layers.size(), " layers");
  auto is_frozen = [&](size_t l) { return !frozen.empty() && frozen[l]; };
  size_t lowest = 0;  // the lowest layer that trains: backward ends there
  while (lowest < layers.size() && is_frozen(lowest)) ++lowest;
  LOCKSTEP_CHECK(lowest < layers.size(), "every layer is frozen");
  const int m = static_cast<int>(n);
  const float beta = accumulate ? 1.0f : 0.0f;
  float* dy = ws.dlogits_.data();  // dL/dy of the current layer, becomes dL/dz in place
  int ping = 0;
  for (size_t l = layers.size(); l-- > lowest;) {
    const LayerShape& s = layers[l];
    const int o = static_cast<int>(s.out), k = static_cast<int>(s.in);
    const float* z = ws.z_[l].data();
    const float* y = (l + 1 == layers.size()) ? z : ws.y_[l].data();
    // A frozen layer above a trainable one still passes dL/dz down; its bias sums go to scratch.
    const bool train = !is_frozen(l);
    be.bias_act_backward(s.act, m, o, z, y, dy, train ? model.grads() + s.b_offset : ws.frozen_dbias_.data(),
                         train && accumulate);
    const float* below = l == 0 ? X : ws.y_[l - 1].data();
    // dW (out, in) = dz^T (out, n) * below (n, in)
    if (train) be.gemm(Trans::yes, Trans::no, o, k, m, 1.0f, dy, o, below, k, beta, model.grads() + s.w_offset, k);
    if (l == lowest) break;
    // dL/dy of the layer below (n, in) = dz (n, out) * W (out, in)
    float* next = ws.dy_[ping].data();
    ping ^= 1;
    be.gemm(Trans::no, Trans::no, m, k, o, 1.0f, dy, o, model.params() + s.w_offset, k, 0.0f, next, k);
    dy = next;
  }
}

}  // namespace lockstep
