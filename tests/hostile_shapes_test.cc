// Shape arithmetic driven by hostile attributes or inputs (issue 16, class 1):
// every case below used to wrap an int64 and then write out of bounds or
// run with a nonsense shape. Each must now fail with one clear message,
// before anything is written; and any kernel that still asks for an output
// no tensor can have is stopped at allocate_output (invoke_kernel).
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "test_util.h"

namespace sarai {
namespace {

constexpr int64_t k2p62 = int64_t{1} << 62;

TEST(HostileShapes, ConvDilationsThatOverflow) {
  Node n = test::make_node("Conv", 2);
  n.attrs["dilations"] = test::attr_ints({k2p62, k2p62});
  const std::string msg = test::run_error(kernels::Conv, n,
                                          {test::random_tensor({1, 1, 8, 8}, 1), test::random_tensor({8, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "the dilated kernel along spatial dim 0 overflows 64-bit integers");
}

TEST(HostileShapes, ConvPadsThatOverflow) {
  Node n = test::make_node("Conv", 2);
  n.attrs["pads"] = test::attr_ints({INT64_MAX, 0, INT64_MAX, 0});
  const std::string msg = test::run_error(kernels::Conv, n,
                                          {test::random_tensor({1, 1, 8, 8}, 1), test::random_tensor({8, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "overflows 64-bit integers");
  // Large pads that do not overflow still give an output no machine holds.
  n.attrs["pads"] = test::attr_ints({int64_t{1} << 40, 0, int64_t{1} << 40, 0});
  EXPECT_HAS(test::run_error(kernels::Conv, n,
                             {test::random_tensor({1, 1, 8, 8}, 1), test::random_tensor({8, 1, 3, 3}, 2)}),
             "are too large");
}

TEST(HostileShapes, PoolExtentsThatOverflow) {
  const Tensor x = test::random_tensor({1, 1, 8, 8}, 1);
  Node n = test::make_node("MaxPool", 1);
  n.attrs["kernel_shape"] = test::attr_ints({3, 3});
  n.attrs["dilations"] = test::attr_ints({k2p62, 1});
  EXPECT_HAS(test::run_error(kernels::MaxPool, n, {x}, 12),
             "the dilated kernel along spatial dim 0 overflows 64-bit integers");
  Node a = test::make_node("AveragePool", 1);
  a.attrs["kernel_shape"] = test::attr_ints({3, 3});
  a.attrs["pads"] = test::attr_ints({0, INT64_MAX, 0, INT64_MAX});
  EXPECT_HAS(test::run_error(kernels::AveragePool, a, {x}), "the padded input along spatial dim 1 overflows");
  // ceil_mode with the largest stride: (span + s - 1) / s used to wrap.
  Node c = test::make_node("MaxPool", 1);
  c.attrs["kernel_shape"] = test::attr_ints({1, 1});
  c.attrs["strides"] = test::attr_ints({INT64_MAX, 1});
  c.attrs["ceil_mode"] = test::attr_int(1);
  const Tensor y = test::run1(kernels::MaxPool, c, {x});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 1, 8}));
}

TEST(HostileShapes, ConvTransposeOutputShapeThatWraps) {
  Node n = test::make_node("ConvTranspose", 2);
  n.attrs["output_shape"] = test::attr_ints({k2p62 + 1, 64});
  const std::string msg = test::run_error(
      kernels::ConvTranspose, n, {test::random_tensor({1, 1, 64, 64}, 1), test::random_tensor({1, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "are too large");
}

TEST(HostileShapes, ResizeScalesAndSizesTooLarge) {
  Node n = test::make_node("Resize", 3);
  const Tensor x = test::random_tensor({1, 1, 4, 4}, 1);
  const std::string by_scales = test::run_error(
      kernels::Resize, n, {x, Tensor(), test::make_tensor<float>({4}, {1.f, 1.f, 3e18f, 1.f})}, 13);
  EXPECT_HAS(by_scales, "larger than 2^40");
  Node s = test::make_node("Resize", 4);
  const std::string by_sizes = test::run_error(
      kernels::Resize, s,
      {x, Tensor(), Tensor(), test::make_tensor<int64_t>({4}, {1, 1, int64_t{1} << 32, int64_t{1} << 32})}, 13);
  EXPECT_HAS(by_sizes, "output 0 would have shape [1, 1, 4294967296, 4294967296]");  // allocate_output's guard
  // Below 1 TiB but past the machine's memory (412 GB): refused too, before
  // the planning pass could write lazily mapped pages into the OOM killer.
  const std::string past_memory = test::run_error(
      kernels::Resize, s, {x, Tensor(), Tensor(), test::make_tensor<int64_t>({4}, {1, 3, int64_t{1} << 32, 8})}, 13);
  if (machine_memory_bytes() < (uint64_t{3} << 37)) {
    EXPECT_HAS(past_memory, "output 0 would have shape [1, 3, 4294967296, 8] (412316860416 bytes, more than this machine's " +
                                std::to_string(machine_memory_bytes()) + " bytes of memory)");
  }
}

// The same guard stands behind every workspace: a negative or wrapping
// count, or more bytes than the machine has, stops the kernel.
Status AskWorkspace(KernelContext& ctx) {
  const int64_t n = ctx.input(0).data<int64_t>()[0];
  ctx.workspace<float>(n);
  return Status::ok();
}

TEST(HostileShapes, WorkspacesPastTheMachineAreRefused) {
  const Node n = test::make_node("AskWorkspace", 1);
  auto ask = [&](int64_t count) { return test::run_error(AskWorkspace, n, {test::make_tensor<int64_t>({1}, {count})}); };
  EXPECT_HAS(ask(-1), "a workspace of -1 x 4 bytes is asked for: shape arithmetic gone wrong");
  EXPECT_HAS(ask(k2p62), "a workspace of 4611686018427387904 x 4 bytes is asked for");
  if (machine_memory_bytes() < (uint64_t{1} << 40)) {
    EXPECT_HAS(ask(int64_t{1} << 38), "a workspace of 1099511627776 bytes is more than this machine's " +
                                          std::to_string(machine_memory_bytes()) + " bytes of memory");
  }
}

// Expand to a shape whose element count wraps (Expand's own check), and to
// one that is merely too large to exist (the guard at allocate_output, which
// stands behind every kernel).
TEST(HostileShapes, AllocateOutputRefusesImpossibleShapes) {
  Node n = test::make_node("Expand", 2);
  const Tensor x = test::make_tensor<float>({1}, {1.f});
  EXPECT_HAS(test::run_error(kernels::Expand, n,
                             {x, test::make_tensor<int64_t>({3}, {k2p62, k2p62, 4})}),
             "has more elements than fit in 64 bits");
  EXPECT_HAS(test::run_error(kernels::Expand, n,
                             {x, test::make_tensor<int64_t>({2}, {int64_t{1} << 30, int64_t{1} << 30})}),
             "more than any tensor may have");
}

}  // namespace
}  // namespace sarai
