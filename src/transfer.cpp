// Layer-wise initialisation from a checkpoint and the frozen-layer bookkeeping (see transfer.hpp).
#include "lockstep/transfer.hpp"

#include <algorithm>

#include "lockstep/check.hpp"

namespace lockstep {

std::vector<std::string> init_mismatches(const Mlp& model, const InitSource& src, bool reset_head) {
  std::vector<std::string> out;
  const auto& layers = model.layers();
  const size_t src_layers = src.widths.size() < 2 ? 0 : src.widths.size() - 1;
  // Hidden layers are always loaded, and their activation is part of what they compute.
  if (layers.size() > 1 && src.activation != layers.front().act)
    out.push_back(fmt("activation: checkpoint ", to_string(src.activation), ", model ", to_string(layers.front().act)));
  for (size_t l = 0; l < layers.size(); ++l) {
    if (reset_head && l + 1 == layers.size()) continue;
    const LayerShape& s = layers[l];
    if (l >= src_layers) {
      out.push_back(fmt("layer ", l, ": model weight [", s.out, ", ", s.in, "], the checkpoint has no layer ", l,
                        " (it has ", src_layers, ")"));
      continue;
    }
    const int64_t in = src.widths[l], o = src.widths[l + 1];
    if (in != s.in || o != s.out)
      out.push_back(fmt("layer ", l, ": checkpoint weight [", o, ", ", in, "], model weight [", s.out, ", ", s.in, "]"));
  }
  // Without reset_head the model's last layer must be the checkpoint's output layer too. (With
  // it, a model may keep only the lower layers of a deeper checkpoint under its new head.)
  if (!reset_head && src_layers > layers.size())
    out.push_back(fmt("the checkpoint has ", src_layers, " layers, the model ", layers.size(),
                      ": the model's output layer would be the checkpoint's hidden layer ", layers.size() - 1));
  return out;
}

void load_init_layers(const Mlp& model, const InitSource& src, bool reset_head, std::vector<float>& init) {
  LOCKSTEP_CHECK(src.params && init.size() == model.num_params(), "load_init_layers: parameter buffers");
  const std::vector<std::string> bad = init_mismatches(model, src, reset_head);
  if (!bad.empty()) {
    std::string msg = fmt("init.from = ", src.origin, ": the model cannot be initialised from this checkpoint; ",
                          bad.size(), " difference(s):");
    for (const auto& b : bad) msg += "\n  " + b;
    if (!reset_head) msg += "\n(a new output layer, e.g. another class count, needs init.reset_head = true)";
    throw UserError(msg);
  }
  const auto& layers = model.layers();
  size_t src_off = 0;  // the source's layout is the same as the model's up to the layers loaded
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerShape& s = layers[l];
    const size_t n = s.w_size() + static_cast<size_t>(s.out);
    if (!(reset_head && l + 1 == layers.size())) {
      LOCKSTEP_CHECK(src_off + n <= src.params->size(), "init source too short");
      std::copy_n(src.params->begin() + static_cast<std::ptrdiff_t>(src_off), n,
                  init.begin() + static_cast<std::ptrdiff_t>(s.w_offset));
    }
    src_off += n;
  }
}

std::vector<bool> frozen_flags(size_t n_layers, const std::vector<int64_t>& freeze) {
  std::vector<bool> f(n_layers, false);
  for (int64_t l : freeze) {
    LOCKSTEP_CHECK(l >= 0 && static_cast<size_t>(l) < n_layers, "frozen layer ", l, " of ", n_layers);
    f[static_cast<size_t>(l)] = true;
  }
  return f;
}

std::vector<ParamRange> trainable_ranges(const std::vector<LayerShape>& layers, const std::vector<bool>& frozen) {
  std::vector<ParamRange> out;
  for (size_t l = 0; l < layers.size(); ++l) {
    if (!frozen.empty() && frozen[l]) continue;
    const LayerShape& s = layers[l];
    const size_t begin = s.w_offset, end = s.b_offset + static_cast<size_t>(s.out);
    if (!out.empty() && out.back().end == begin) out.back().end = end;
    else out.push_back({begin, end});
  }
  return out;
}

size_t trainable_count(const std::vector<int64_t>& widths, const std::vector<int64_t>& freeze) {
  size_t n = 0;
  for (size_t l = 0; l + 1 < widths.size(); ++l)
    if (std::find(freeze.begin(), freeze.end(), static_cast<int64_t>(l)) == freeze.end())
      n += static_cast<size_t>(widths[l] * widths[l + 1] + widths[l + 1]);
  return n;
}

}  // namespace lockstep
