// A Backend that passes every call on to another (the CPU backend unless given one), for tests
// that watch what a component asks of its backend: derive, override the calls to observe, and
// call ForwardingBackend's version to do the work.
#pragma once
#include <memory>
#include <string>
#include <utility>

#include "lockstep/backend.hpp"

namespace lockstep::test {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner = make_cpu_backend()) : be_(std::move(inner)) {}
  DeviceKind kind() const override { return be_->kind(); }
  std::string describe() const override { return be_->describe(); }
  void* allocate(size_t bytes) override { return be_->allocate(bytes); }
  void release(void* p) noexcept override { be_->release(p); }
  void to_device(void* d, const void* s, size_t b) override { be_->to_device(d, s, b); }
  void to_host(void* d, const void* s, size_t b) override { be_->to_host(d, s, b); }
  void copy(void* d, const void* s, size_t b) override { be_->copy(d, s, b); }
  void fill(float* x, size_t n, float v) override { be_->fill(x, n, v); }
  void synchronize() override { be_->synchronize(); }
  size_t memory_bytes() const override { return be_->memory_bytes(); }
  void* allocate_host(size_t bytes) override { return be_->allocate_host(bytes); }
  void release_host(void* p) noexcept override { be_->release_host(p); }
  void to_device_async(void* d, const void* s, size_t b) override { be_->to_device_async(d, s, b); }
  void gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) override {
    be_->gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void bias_act_forward(Activation a, int r, int c, const float* b, float* z, float* y) override {
    be_->bias_act_forward(a, r, c, b, z, y);
  }
  void bias_act_backward(Activation a, int r, int c, const float* z, const float* y, float* dy, float* db,
                         bool acc) override {
    be_->bias_act_backward(a, r, c, z, y, dy, db, acc);
  }
  LossSums softmax_xent(int r, int c, const float* l, const int32_t* y, float* d) override {
    return be_->softmax_xent(r, c, l, y, d);
  }
  LossSums distill_xent(int r, int c, const float* s, const float* t, const int32_t* y, const DistillCoef& k,
                        float* d) override {
    return be_->distill_xent(r, c, s, t, y, k, d);
  }
  double sum_squares(const float* x, size_t n) override { return be_->sum_squares(x, n); }
  void optimizer_step(OptimizerKind k, const OptimStep& s, float* p, const float* g, float* s0, float* s1,
                      size_t n) override {
    be_->optimizer_step(k, s, p, g, s0, s1, n);
  }

 private:
  std::unique_ptr<Backend> be_;
};

}  // namespace lockstep::test
