// The kernels under the three memory modes of runtime/kernel.h: every heavy
// kernel runs on the heap (the reference), in the planning pass (shape-only:
// outputs in untouched pages, big float work skipped) and then planned, its
// outputs and workspace at the offsets the planning pass recorded in one
// arena filled with 0xFF bytes (NaN as float). The planned run must fit
// its plan (no plan miss: the kernel asked for the same workspace in both
// passes, at 1 and 2 threads) and give the heap run's results, so a kernel
// that sizes a workspace differently when skipping, reads scratch it never
// wrote, or writes past what it asked for shows up here.
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "runtime/memory_plan.h"
#include "runtime/parallel.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_int;
using test::attr_ints;
using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::random_tensor;


// Runs fn once in the given NodeMemory; the outputs, or the kernel's error.
Expected<std::vector<Tensor>> run_with(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs,
                                       int64_t opset, int threads, NodeMemory* mem) {
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : inputs) ptrs.push_back(t.defined() ? &t : nullptr);
  std::vector<Tensor> outs(node.outputs.size());
  KernelContext ctx(node, opset, ptrs, outs, threads, mem);
  Status s = invoke_kernel(fn, ctx);
  if (!s.is_ok()) return s;
  return outs;
}

void check_memory_modes(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs,
                        int64_t opset = 17) {
  for (int threads : {1, 2}) {
    SCOPED_TRACE(node.op_type + ", " + std::to_string(threads) + " thread(s)");
    set_num_threads(threads);
    auto ref = run_with(fn, node, inputs, opset, threads, nullptr);
    ASSERT_TRUE(ref.has_value()) << ref.message();

    NodeMemory shape_only;
    shape_only.mode = NodeMemory::Mode::kShapeOnly;
    auto planned_shapes = run_with(fn, node, inputs, opset, threads, &shape_only);
    ASSERT_TRUE(planned_shapes.has_value()) << planned_shapes.message();
    ASSERT_EQ(planned_shapes->size(), ref->size());

    // One arena: each output, then the workspace, all poisoned.
    std::vector<int64_t> offsets;
    std::vector<uint64_t> capacity;
    uint64_t size = 0;
    for (size_t i = 0; i < ref->size(); ++i) {
      const Tensor& p = (*planned_shapes)[i];
      EXPECT_EQ(p.shape(), (*ref)[i].shape()) << "output " << i;
      EXPECT_EQ(p.dtype(), (*ref)[i].dtype()) << "output " << i;
      offsets.push_back(static_cast<int64_t>(size));
      capacity.push_back(align_up(p.nbytes(), 64));
      size += align_up(p.nbytes(), 64);
    }
    const uint64_t ws_offset = size;
    size += shape_only.workspace_used;
    void* arena = std::aligned_alloc(64, align_up(size ? size : 1, 64));
    std::memset(arena, 0xff, align_up(size ? size : 1, 64));
    NodeMemory planned;
    planned.mode = NodeMemory::Mode::kPlanned;
    planned.arena = static_cast<uint8_t*>(arena);
    planned.output_offset = offsets.data();
    planned.output_capacity = capacity.data();
    planned.workspace_offset = static_cast<int64_t>(ws_offset);
    planned.workspace_capacity = shape_only.workspace_used;
    auto got = run_with(fn, node, inputs, opset, threads, &planned);
    ASSERT_TRUE(got.has_value()) << got.message();
    EXPECT_FALSE(planned.plan_miss) << "workspace " << planned.workspace_used << " planned "
                                    << shape_only.workspace_used;
    EXPECT_EQ(planned.workspace_used, shape_only.workspace_used);
    for (size_t i = 0; i < ref->size(); ++i) {
      if (!(*ref)[i].defined()) continue;
      if ((*ref)[i].dtype() == DType::kFloat32)
        EXPECT_TRUE(test::tensors_near((*got)[i], (*ref)[i], 1e-6, 1e-6)) << "output " << i;
      else
        EXPECT_TRUE(test::tensors_equal((*got)[i], (*ref)[i])) << "output " << i;
    }
    std::free(arena);
  }
  set_num_threads(1);
}

Node with(Node n, const std::string& name, Attribute a) {
  n.attrs[name] = std::move(a);
  return n;
}

// ------------------------------------------------------------ FP32 kernels

// Issue 17's ops with workspaces or large float outputs.
TEST(KernelMemory, IndexNormalizationEinsumAndSignalOps) {
  check_memory_modes(kernels::Einsum, with(make_node("Einsum", 2), "equation", attr_string("bij,bjk->bik")),
                     {random_tensor({8, 64, 32}, 1), random_tensor({8, 32, 64}, 2)}, 12);
  check_memory_modes(kernels::Einsum, with(make_node("Einsum", 2), "equation", attr_string("...ii,i...->i")),
                     {random_tensor({3, 64, 64}, 3), random_tensor({64, 3}, 4)}, 12);
  check_memory_modes(kernels::DFT, with(make_node("DFT", 1), "onesided", attr_int(1)), {random_tensor({64, 400, 1}, 5)});
  check_memory_modes(kernels::STFT, make_node("STFT", 4),
                     {random_tensor({2, 16000, 1}, 6), make_tensor<int64_t>({}, {160}), Tensor(), make_tensor<int64_t>({}, {512})});
  check_memory_modes(kernels::MeanVarianceNormalization, make_node("MeanVarianceNormalization", 1), {random_tensor({2, 16, 40, 50}, 7)});
  check_memory_modes(kernels::InstanceNormalization, make_node("InstanceNormalization", 3),
                     {random_tensor({2, 16, 40, 50}, 8), random_tensor({16}, 9), random_tensor({16}, 10)});
  check_memory_modes(kernels::GroupNormalization, with(make_node("GroupNormalization", 3), "num_groups", attr_int(4)),
                     {random_tensor({2, 16, 40, 50}, 11), random_tensor({4}, 12), random_tensor({4}, 13)}, 18);
  check_memory_modes(kernels::LRN, with(make_node("LRN", 1), "size", attr_int(3)), {random_tensor({2, 16, 40, 50}, 14)});
  check_memory_modes(kernels::DepthToSpace, with(make_node("DepthToSpace", 1), "blocksize", attr_int(2)), {random_tensor({2, 16, 40, 50}, 15)});
  check_memory_modes(kernels::Tile, make_node("Tile", 2), {random_tensor({16, 40, 50}, 16), make_tensor<int64_t>({3}, {2, 1, 2})});
  check_memory_modes(kernels::ScatterND, make_node("ScatterND", 3),
                     {random_tensor({16, 40, 50}, 17), make_tensor<int64_t>({2, 1}, {3, -1}), random_tensor({2, 40, 50}, 18)});
  check_memory_modes(kernels::GatherElements, with(make_node("GatherElements", 2), "axis", attr_int(1)),
                     {random_tensor({16, 40, 50}, 19), make_tensor<int64_t>({16, 1, 50}, std::vector<int64_t>(800, 7))});
}

TEST(KernelMemory, Conv) {
  // im2col, pointwise (no col), depthwise (accumulates into y), no bias.
  Node conv = with(make_node("Conv", 3), "pads", attr_ints({1, 1, 1, 1}));
  check_memory_modes(kernels::Conv, conv,
                     {random_tensor({1, 4, 20, 24}, 1), random_tensor({6, 4, 3, 3}, 2), random_tensor({6}, 3)});
  check_memory_modes(kernels::Conv, make_node("Conv", 2),
                     {random_tensor({2, 8, 16, 16}, 4), random_tensor({12, 8, 1, 1}, 5)});
  Node dw = with(with(make_node("Conv", 2), "group", attr_int(8)), "pads", attr_ints({1, 1, 1, 1}));
  check_memory_modes(kernels::Conv, dw, {random_tensor({1, 8, 30, 40}, 6), random_tensor({8, 1, 3, 3}, 7)});
  Node c1d = with(with(make_node("Conv", 2), "strides", attr_ints({2})), "pads", attr_ints({1, 1}));
  check_memory_modes(kernels::Conv, c1d, {random_tensor({1, 16, 400}, 8), random_tensor({32, 16, 3}, 9)});
}

TEST(KernelMemory, ConvTranspose) {
  Node ct = with(make_node("ConvTranspose", 2), "strides", attr_ints({2, 2}));
  check_memory_modes(kernels::ConvTranspose, ct, {random_tensor({1, 6, 16, 20}, 1), random_tensor({6, 4, 3, 3}, 2)});
}

TEST(KernelMemory, MatMulGemmAttention) {
  // Broadcast batch: per-entry offsets in the workspace.
  check_memory_modes(kernels::MatMul, make_node("MatMul", 2),
                     {random_tensor({2, 3, 40, 16}, 1), random_tensor({1, 3, 16, 24}, 2)});
  check_memory_modes(kernels::MatMul, make_node("MatMul", 2), {random_tensor({4, 50, 32}, 3), random_tensor({32, 40}, 4)});
  Node gemm = with(make_node("Gemm", 3), "transB", attr_int(1));
  check_memory_modes(kernels::Gemm, gemm, {random_tensor({40, 32}, 5), random_tensor({48, 32}, 6), random_tensor({48}, 7)});
  Node att = with(make_node("Attention", 3), "divisor", attr_float(4.f));
  check_memory_modes(kernels::Attention, att,
                     {random_tensor({1, 4, 70, 16}, 8), random_tensor({1, 4, 16, 70}, 9), random_tensor({1, 4, 70, 16}, 10)});
}

TEST(KernelMemory, NormalizationAndReduce) {
  // Softmax along a middle axis: per-thread running max and sum.
  check_memory_modes(kernels::Softmax, with(make_node("Softmax", 1), "axis", attr_int(1)),
                     {random_tensor({3, 40, 50}, 1)});
  check_memory_modes(kernels::Softmax, make_node("Softmax", 1), {random_tensor({30, 70}, 2)});
  Node ln = make_node("LayerNormalization", 3, 3);
  check_memory_modes(kernels::LayerNormalization, ln,
                     {random_tensor({4, 30, 64}, 3), random_tensor({64}, 4), random_tensor({64}, 5)});
  check_memory_modes(kernels::LayerNormalization, make_node("LayerNormalization", 2),
                     {random_tensor({4, 30, 64}, 6), random_tensor({1, 64}, 7)});
  check_memory_modes(kernels::BatchNormalization, make_node("BatchNormalization", 5),
                     {random_tensor({2, 8, 20, 20}, 8), random_tensor({8}, 9), random_tensor({8}, 10),
                      random_tensor({8}, 11), random_tensor({8}, 12, 0.5f, 2.f)});
  // Column sums (per-thread accumulators) and the general layout.
  check_memory_modes(kernels::ReduceMean, with(make_node("ReduceMean", 1), "axes", attr_ints({1})),
                     {random_tensor({3, 40, 1500}, 13)}, 13);
  check_memory_modes(kernels::ReduceMean, with(make_node("ReduceMean", 1), "axes", attr_ints({0, 2})),
                     {random_tensor({6, 40, 30}, 14)}, 13);
}

TEST(KernelMemory, PoolAndResize) {
  Node avg = with(with(make_node("AveragePool", 1), "kernel_shape", attr_ints({3, 3})), "pads", attr_ints({1, 1, 1, 1}));
  check_memory_modes(kernels::AveragePool, avg, {random_tensor({1, 8, 32, 40}, 1)});
  Node mx = with(with(make_node("MaxPool", 1, 2), "kernel_shape", attr_ints({2, 2})), "strides", attr_ints({2, 2}));
  check_memory_modes(kernels::MaxPool, mx, {random_tensor({1, 8, 32, 40}, 2)});
  check_memory_modes(kernels::GlobalAveragePool, make_node("GlobalAveragePool", 1), {random_tensor({2, 8, 32, 40}, 3)});
  for (const char* mode : {"nearest", "linear", "cubic"}) {
    Node r = with(make_node("Resize", 3), "mode", attr_string(mode));
    r.attrs["coordinate_transformation_mode"] = attr_string("half_pixel");
    check_memory_modes(kernels::Resize, r,
                       {random_tensor({1, 4, 16, 20}, 4), Tensor(), make_tensor<float>({4}, {1.f, 1.f, 2.f, 1.5f})}, 13);
  }
}

TEST(KernelMemory, DataMovementAndElementwise) {
  check_memory_modes(kernels::Transpose, with(make_node("Transpose", 1), "perm", attr_ints({0, 2, 1, 3})),
                     {random_tensor({2, 30, 6, 20}, 1)});
  check_memory_modes(kernels::Concat, with(make_node("Concat", 2), "axis", attr_int(1)),
                     {random_tensor({2, 30, 20}, 2), random_tensor({2, 10, 20}, 3)});
  check_memory_modes(kernels::Slice, make_node("Slice", 4),
                     {random_tensor({4, 60, 30}, 4), make_tensor<int64_t>({1}, {5}), make_tensor<int64_t>({1}, {55}),
                      make_tensor<int64_t>({1}, {1})});
  check_memory_modes(kernels::Gather, make_node("Gather", 2),
                     {random_tensor({100, 64}, 5), make_tensor<int64_t>({3, 10}, std::vector<int64_t>(30, -7))});
  check_memory_modes(kernels::Expand, make_node("Expand", 2),
                     {random_tensor({1, 64}, 6), make_tensor<int64_t>({2}, {40, 64})});
  check_memory_modes(kernels::Add, make_node("Add", 2), {random_tensor({4, 50, 64}, 7), random_tensor({64}, 8)});
  check_memory_modes(kernels::Pow, make_node("Pow", 2), {random_tensor({40, 64}, 9, 0.1f, 2.f), random_tensor({1}, 10)});
  check_memory_modes(kernels::Gelu, make_node("Gelu", 1), {random_tensor({40, 64}, 11)}, 20);
  check_memory_modes(kernels::Cast, with(make_node("Cast", 1), "to", attr_int(11)), {random_tensor({40, 64}, 12)});
}

// ------------------------------------------------------------ INT8 kernels

std::vector<int8_t> random_i8(int64_t n, uint32_t seed) {
  std::vector<int8_t> v(static_cast<size_t>(n));
  uint32_t s = seed;
  for (int8_t& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<int8_t>(static_cast<int>(s >> 24) % 127);
  }
  return v;
}

// scale [n], wsum [n] of the row-major [K, N] weights, bias [n].
std::vector<Tensor> channel_inputs(const std::vector<int8_t>& kn, int64_t K, int64_t N, uint32_t seed) {
  std::vector<int32_t> wsum(static_cast<size_t>(N), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) wsum[static_cast<size_t>(n)] += kn[static_cast<size_t>(k * N + n)];
  return {random_tensor({N}, seed, 0.001f, 0.05f), make_tensor<int32_t>({N}, wsum), random_tensor({N}, seed + 1)};
}

TEST(KernelMemory, QMatMulWithResidualFusions) {
  const int64_t K = 48, N = 40;
  const std::vector<int8_t> w = random_i8(K * N, 1);
  std::vector<Tensor> in = {random_tensor({2, 30, K}, 2), make_tensor<int8_t>({int8::packed_size(K, N)}, test::pack_n16k4(w, K, N))};
  for (Tensor& t : channel_inputs(w, K, N, 3)) in.push_back(t);
  Node q = make_node("QMatMul", 5);
  q.domain = "sarai";
  q.attrs["K"] = attr_int(K);
  q.attrs["N"] = attr_int(N);
  check_memory_modes(kernels::QMatMul, q, in);
  // A residual of the output's shape (the epilogue adds it) and a broadcast
  // one (added after the GEMM, from the core's workspace), with Relu.
  Node fused = with(q, "activation", attr_string("Relu"));
  fused.inputs.push_back(5);
  fused.outputs[0] = 6;
  std::vector<Tensor> same = in, bcast = in;
  same.push_back(random_tensor({2, 30, N}, 4));
  bcast.push_back(random_tensor({1, N}, 5));
  check_memory_modes(kernels::QMatMul, fused, same);
  check_memory_modes(kernels::QMatMul, fused, bcast);
}

TEST(KernelMemory, QConvAndQConvTranspose) {
  // group 1: packed [K = C*k, N = M] and weight_shape.
  {
    const int64_t C = 6, M = 20, k = 3, K = C * k * k;
    const std::vector<int8_t> w = random_i8(M * K, 1);  // ONNX [M, C, k, k]
    std::vector<int8_t> kn(static_cast<size_t>(K * M));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t r = 0; r < K; ++r) kn[static_cast<size_t>(r * M + m)] = w[static_cast<size_t>(m * K + r)];
    std::vector<Tensor> in = {random_tensor({1, C, 30, 34}, 2), make_tensor<int8_t>({int8::packed_size(K, M)}, test::pack_n16k4(kn, K, M))};
    for (Tensor& t : channel_inputs(kn, K, M, 3)) in.push_back(t);
    Node q = make_node("QConv", 5);
    q.domain = "sarai";
    q.attrs["weight_shape"] = attr_ints({M, C, k, k});
    q.attrs["pads"] = attr_ints({1, 1, 1, 1});
    q.attrs["strides"] = attr_ints({2, 1});
    check_memory_modes(kernels::QConv, q, in);
  }
  // Depthwise: plain weights, a zero-point-padded input copy.
  {
    const int64_t C = 16, k = 3;
    const std::vector<int8_t> w = random_i8(C * k * k, 4);
    std::vector<Tensor> in = {random_tensor({1, C, 24, 28}, 5), make_tensor<int8_t>({C, 1, k, k}, w)};
    for (Tensor& t : channel_inputs(w, k * k, C, 6)) in.push_back(t);
    Node q = make_node("QConv", 5);
    q.domain = "sarai";
    q.attrs["group"] = attr_int(C);
    q.attrs["pads"] = attr_ints({1, 1, 1, 1});
    check_memory_modes(kernels::QConv, q, in);
  }
  // ConvTranspose, stride 2: per-thread rows split by stride phase.
  {
    const int64_t C = 8, M = 6, k = 3;
    const std::vector<int8_t> w = random_i8(C * M * k * k, 7);  // [C, M, k, k]
    std::vector<Tensor> in = {random_tensor({1, C, 12, 14}, 8), make_tensor<int8_t>({C, M, k, k}, w),
                              random_tensor({M}, 9, 0.001f, 0.05f), make_tensor<int32_t>({M}, std::vector<int32_t>(M, 0)),
                              random_tensor({M}, 10)};
    Node q = make_node("QConvTranspose", 5);
    q.domain = "sarai";
    q.attrs["strides"] = attr_ints({2, 2});
    q.attrs["pads"] = attr_ints({1, 1, 1, 1});
    check_memory_modes(kernels::QConvTranspose, q, in);
  }
}

}  // namespace
}  // namespace sarai
