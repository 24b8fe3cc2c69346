// The set-up memory plan: it equals, byte for byte, what a Trainer and an Evaluator allocate from
// their backend (counted by a wrapping backend); check_memory_plan names the key and the bytes
// when a run cannot fit; an allocation that fails anyway says what it was for.
#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <new>
#include <string>

#include "lockstep/backend.hpp"
#include "lockstep/batch_stager.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/evaluate.hpp"
#include "lockstep/memory_plan.hpp"
#include "lockstep/model.hpp"
#include "lockstep/optimizer.hpp"
#include "lockstep/trainer.hpp"
#include "support/forwarding_backend.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

using test::throws_user_error;

// The CPU backend, counting the bytes asked of allocate() and allocate_host().
class CountingBackend final : public test::ForwardingBackend {
 public:
  uint64_t device = 0, host = 0;
  void* allocate(size_t bytes) override {
    device += bytes;
    return ForwardingBackend::allocate(bytes);
  }
  void* allocate_host(size_t bytes) override {
    host += bytes;
    return ForwardingBackend::allocate_host(bytes);
  }
};

TEST(MemoryPlan, EqualsWhatTheTrainerAllocatesFromItsBackend) {
  // Odd sizes, several ranks' worth of batch, gradient accumulation and a frozen layer.
  struct Case {
    std::vector<int64_t> layers;
    int64_t batch, accum;
    OptimizerKind opt;
    std::vector<int64_t> freeze;
  };
  for (const Case& k : {Case{{13, 7, 5, 3}, 20, 1, OptimizerKind::adam, {}},
                        Case{{13, 9, 3}, 17, 2, OptimizerKind::momentum, {}},
                        Case{{13, 11, 6, 3}, 9, 3, OptimizerKind::sgd, {}},
                        Case{{13, 7, 5, 3}, 20, 1, OptimizerKind::rmsprop, {0}}}) {
    Config c = test::small_config(k.layers, k.batch, 1);
    c.train.grad_accum = k.accum;
    c.optimizer.name = k.opt;
    c.init.freeze = k.freeze;
    c.data.eval_batch = 37;
    c.data.train_images = "unused";  // validate_config asks for a name; the data are synthetic
    c.data.train_labels = "unused";
    c.data.test_images = "";
    c.data.test_labels = "";
    auto comm = make_self_comm();
    CountingBackend be;
    Datasets data;
    data.train = test::synthetic_data(60, 13, 3, 5);
    { Trainer t(c, *comm, be, data); }
    const MemoryPlan plan = plan_memory(c, 1, MemoryUse::train);
    EXPECT_EQ(be.device, plan.bytes(MemorySpace::device)) << "layers " << k.layers.size() << ", batch " << k.batch;
    EXPECT_GT(be.device, 1000u);
    EXPECT_EQ(be.host, 0u);  // the CPU backend stages nothing through host buffers

    CountingBackend eval_be;
    {
      Mlp model(eval_be, c.model.layers, c.model.activation);
      Evaluator ev(model, c.data.eval_batch);
    }
    EXPECT_EQ(eval_be.device, plan_memory(c, 1, MemoryUse::eval).bytes(MemorySpace::device));
  }
}

TEST(MemoryPlan, TheRowsPerRankFollowTheWorldSizeAndAccumulation) {
  Config c = test::small_config({784, 256, 10}, 1000, 1);
  c.train.grad_accum = 3;
  const MemoryPlan plan = plan_memory(c, 4, MemoryUse::train);
  bool found = false;
  for (const MemoryPart& p : plan.parts) {
    if (p.key != "train.batch_size" || p.what.rfind("training activations", 0) != 0) continue;
    found = true;
    EXPECT_EQ(p.what, "training activations for 84 rows per rank");  // ceil(ceil(1000 / 4) / 3)
    // z (256 + 10) + y (256) + two dL/dy of the widest layer (784) + dlogits (10), per row; bias scratch.
    EXPECT_EQ(p.bytes, 4u * (84u * (266 + 256 + 2 * 784 + 10) + 784));
  }
  EXPECT_TRUE(found);
}

TEST(MemoryPlan, TooLargeForTheHostNamesTheKeyAndTheBytes) {
  Config c = test::small_config({784, 256, 10}, 100000000, 1);
  MemoryLimits lim;
  lim.host_bytes = uint64_t{16} << 30;
  const MemoryPlan plan = plan_memory(c, 1, MemoryUse::train);
  const uint64_t need = plan.total();
  EXPECT_GT(need, lim.host_bytes);
  EXPECT_TRUE(throws_user_error([&] { check_memory_plan(plan, c, lim); },
                                {"train.batch_size = 100000000: the run needs ", std::to_string(need) + " bytes",
                                 "of host memory per rank", "more than the 16.0 GiB there is (MemTotal in /proc/meminfo)",
                                 "training activations for 100000000 rows per rank"}));
  // Sixteen ranks of a small run share one host: together they do not fit.
  c = test::small_config({784, 4096, 4096, 10}, 128, 1);
  const MemoryPlan small = plan_memory(c, 16, MemoryUse::train);
  lim.host_bytes = small.total() * 15;
  lim.ranks_on_host = 1;
  EXPECT_NO_THROW(check_memory_plan(small, c, lim));
  lim.ranks_on_host = 16;
  EXPECT_TRUE(throws_user_error([&] { check_memory_plan(small, c, lim); },
                                {"model.layers = [784, 4096, 4096, 10]", std::to_string(small.total() * 16) + " bytes",
                                 "for the 16 ranks on this host"}));
  // On a GPU backend the device parts count against the GPU, the host parts against the host.
  lim = MemoryLimits{};
  lim.host_bytes = uint64_t{1} << 40;
  lim.device_bytes = 1000;
  lim.device_name = "GPU 0 (test)";
  const MemoryPlan gpu = plan_memory(c, 1, MemoryUse::train, /*gpu=*/true);
  EXPECT_TRUE(throws_user_error([&] { check_memory_plan(gpu, c, lim); },
                                {std::to_string(gpu.bytes(MemorySpace::device)) + " bytes", "of GPU memory per rank",
                                 "(GPU 0 (test))"}));
  lim.device_bytes = gpu.bytes(MemorySpace::device);
  EXPECT_NO_THROW(check_memory_plan(gpu, c, lim));
  // Unknown limits check nothing but overflow.
  EXPECT_NO_THROW(check_memory_plan(plan, c, MemoryLimits{}));
}

TEST(MemoryPlan, SizesBeyondSixtyFourBitsAreRejectedWhateverTheMachine) {
  Config c = test::small_config({2147483647, 2147483647, 2147483647, 2147483647, 10}, 128, 1);
  const MemoryPlan plan = plan_memory(c, 1, MemoryUse::train);
  EXPECT_EQ(plan.total(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(throws_user_error([&] { check_memory_plan(plan, c, MemoryLimits{}); },
                                {"model.layers = [2147483647,", "more than 2^64 bytes", "which no machine has"}));
}

TEST(MemoryPlan, HostMemoryIsReadFromProcMeminfo) {
  const uint64_t total = host_memory_bytes();
  EXPECT_GT(total, uint64_t{64} << 20);  // any machine that runs the tests has more than 64 MiB
  EXPECT_LE(host_memory_bytes("MemAvailable"), total);
  EXPECT_EQ(host_memory_bytes("NoSuchField"), 0u);
  EXPECT_EQ(human_bytes(512), "512 bytes");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(uint64_t{3} << 30), "3.0 GiB");
}

// An allocation the plan let through that fails anyway names what it was for.
TEST(MemoryPlan, FailedAllocationsSayWhatTheyWereFor) {
  auto be = make_cpu_backend();
  const size_t huge = size_t{1} << 60;  // floats: 4 EiB, beyond any address space
  OptimizerConfig oc;
  EXPECT_TRUE(throws_user_error([&] { Optimizer(*be, oc, huge); },
                                {"out of memory while allocating the optimizer state (adam: 2 x 1152921504606846976 "
                                 "floats)",
                                 "4.0 EiB (4611686018427387904 bytes) of host memory could not be allocated"}));
  EXPECT_TRUE(throws_user_error([&] { BatchStager(*be, int64_t{1} << 40, int64_t{1} << 20); },
                                {"out of memory while allocating the batch buffers for 1099511627776 rows of 1048576 "
                                 "features"}));
  Mlp model(*be, {4, 3, 2}, Activation::relu);
  EXPECT_TRUE(throws_user_error([&] { Evaluator(model, int64_t{1} << 58); },
                                {"out of memory while allocating the evaluation activations for 288230376151711744 "
                                 "rows (data.eval_batch)"}));
  // Any std::bad_alloc inside allocating() gets the purpose; an inner purpose is kept.
  EXPECT_TRUE(throws_user_error([] { allocating("the thing", [] { throw std::bad_alloc(); }); },
                                {"out of memory while allocating the thing: an allocation of host memory failed"}));
  EXPECT_TRUE(throws_user_error(
      [] { allocating("outer", [] { allocating("inner", [] { throw std::bad_alloc(); }); }); },
      {"while allocating inner"}));
  // Without a purpose the message still gives the size.
  EXPECT_TRUE(throws_user_error([&] { be->allocate(huge); }, {"out of memory: 1.0 EiB", "of host memory"}));
}

}  // namespace
}  // namespace lockstep
