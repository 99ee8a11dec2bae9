// Graph rewrites that fold FP32 element-wise work into the epilogue of the
// quantized ops (QMatMul, QConv of domain "sarai"), so their output is
// written once, in its final form, straight from the INT8 GEMM's tiles
// (kernels/cpu/qgemm.h). Run by Session::create unless SessionOptions::fuse is
// off. Each fold keeps the float arithmetic of the unfused graph exactly
// (the epilogue adds in the same order), so outputs are bit-identical with
// and without it.
//
// A node P (QMatMul/QConv) absorbs its output's only consumer C when P's
// output is not a graph output and C is:
//   Add(y, b), b a float32 initializer of shape [N] and P a QMatMul without
//     bias: b becomes P's bias (input 4). Exact: float(acc)*s + 0 + b equals
//     float(acc)*s + b for every b.
//   Add(y, r) or Add(r, y), P without residual or activation: r becomes P's
//     input 5. If at run time r's shape is not y's, the op falls back to a
//     broadcasting add after the GEMM (kernels/qmatmul_qconv.cc).
//   Relu(y) or sarai::Gelu(y) (see fuse_gelu), P without activation:
//     attribute activation = "Relu" / "Gelu" (the Gelu op's own vector
//     function, applied to the finished rows: bit-identical too).
// Then P takes over C's output and C is removed. r cannot depend on y (y's
// only consumer is C), so the graph stays acyclic.
#pragma once

#include <string>
#include <vector>

#include "runtime/graph.h"

namespace sarai {

// Rewrites g in place; returns how many nodes were folded away.
int fuse_quantized_epilogues(Graph& g);

// The exact GELU as exporters write it before opset 20,
//   Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)   (operands in either order)
// with every intermediate used once, becomes one node Gelu of domain
// "sarai" (the opset-20 Gelu kernel, approximate = "none"): one pass over
// the data instead of five. Not bit-identical to the chain (it rounds
// once, not five times); within float rounding of it. Run before
// fuse_quantized_epilogues so a quantized op can absorb the Gelu as its
// activation. Returns how many chains were replaced.
int fuse_gelu(Graph& g);

// Softmax(Div(x, c), axis = -1), c a one-element float constant and the
// Div's output used only there (attention's scores / sqrt(d)), becomes
// ScaledSoftmax(x, divisor = c) of domain "sarai": each row divided and
// normalized in one pass, with the same float operations as the pair
// (bit-identical). Returns how many pairs were replaced.
int fuse_scaled_softmax(Graph& g);

// MatMul(Q, KT) -> ScaledSoftmax -> MatMul(·, V), the intermediates used
// once, becomes Attention(Q, KT, V, divisor) of domain "sarai"
// (kernels/attention.cc): the scores are computed, normalized and consumed
// a block of rows at a time in cache instead of going through memory as two
// [..., T, S] tensors. Equal to the chain up to sgemm's rounding (not bit
// for bit). Run after fuse_scaled_softmax. `precision` ("fp32", "int8" or
// "int8-per-tensor") becomes each op's attribute of that name (written only
// when not fp32). Returns how many were fused.
int fuse_attention(Graph& g, const std::string& precision = "fp32");

// Pre-quantized ONNX models in operator form, as ONNX Runtime's
// quantize_dynamic writes them (runtime/fuse_integer.cc):
//   DynamicQuantizeLinear(x) -> (xq, x_scale, x_zp)
//   ConvInteger(xq, Wq, x_zp, w_zp) -> Cast(to = FLOAT) -> Mul(·, s),
//   s = Mul(x_scale, w_scale)                        (operands in either order)
// (MatMulInteger likewise) becomes sarai::QConv (QMatMul) reading x itself:
// those ops quantize x exactly as DynamicQuantizeLinear does. Wq (uint8 or
// int8) and w_zp are initializers, w_zp per tensor or per output channel;
// w_scale a float initializer, per tensor or per output channel (Conv: shape
// [M, 1, ...] or [1, M, 1, ...] so that the Mul broadcasts it over channels,
// or a vector [M] whose product s is put there by a Reshape (constant
// shape) or Unsqueeze (constant axes) between the two Muls; MatMul: [N]).
// A Conv's [M] product multiplied without such a view broadcasts over the
// last axis, not the channels, and is left to the plain ops.
// The weight (Wq - w_zp) * w_scale is requantized once, here, to the s8
// per-channel symmetric form `sarai-rt convert` writes (int8_layout.h),
// into new heap initializers (counted as heap weights). A channel whose
// Wq - w_zp fit in ±127 (int8 weights, or uint8 ones with a zero point near
// 128 and a narrow range) keeps its integers exactly; wider ones (uint8
// weights with zero point 210 reach -210) are rounded to 127 levels, so
// results are within that rounding of the plain ops, not bit-identical. A Conv's following bias Add, when the
// bias is Reshape(float initializer [M], [1, -1, 1, ...]), becomes the
// QConv's bias input (exact: the epilogue adds it as the Add did). The
// DynamicQuantizeLinear, Reshape and scale Mul go when nothing else reads
// them. Anything not matching exactly (other readers of the intermediates,
// non-constant weights, a Cast to another type, another DQL's scale) is
// left to the plain ops. Run before fuse_quantized_epilogues (which then
// folds a Relu or residual Add). Returns how many ops were rewritten.
int fuse_integer_ops(Graph& g);

// Pre-quantized ONNX models in QDQ form, as ONNX Runtime's quantize_static
// (quant_format=QDQ) writes them (runtime/fuse_integer.cc):
//   Conv / MatMul / Gemm(DequantizeLinear(QuantizeLinear(x, s, z), s, z),
//                        DequantizeLinear(Wq, w_scale, w_zp) [, bias])
// with s, z one constant value (uint8 or int8) on both activation nodes,
// Wq, w_scale and w_zp initializers (per tensor, or per axis on the output
// channel axis: Conv 0, MatMul 1, Gemm transB ? 0 : 1), the bias a float
// initializer or DequantizeLinear of an int32 one, becomes sarai::QConv /
// QMatMul reading x with the static activation range x_min / x_max whose
// u8 parameters are (s, z) (an int8 grid shifted by 128: the same
// integers), exactly where some float range gives them, else within an ulp
// or two of s (runtime/fuse_integer.cc: range_for). Weights are requantized as in fuse_integer_ops (int8 weights
// with zero point 0 in [-127, 127] stay exact). A QuantizeLinear ->
// DequantizeLinear pair on the output stays as it is (two cheap element-wise
// ops that keep the model's output rounding). Gemm needs transA = 0,
// alpha = 1 and beta = 1. Also the operator form with quantized outputs:
//   QLinearConv / QLinearMatMul(QuantizeLinear(x, s, z), s, z, Wq, w_scale,
//                               w_zp, y_scale, y_zp [, B])
// with the same constants and a constant weight becomes QConv / QMatMul on
// x (B as the float bias B * s * w_scale[m]) followed by a new
// QuantizeLinear(·, y_scale, y_zp) that writes the op's output: the same
// integers up to the float epilogue's rounding (an output may move by one
// step). The Q/DQ nodes go when nothing else reads them. Returns how many
// ops were rewritten.
int fuse_qdq_ops(Graph& g);

// Drops the nodes marked dead (kept nodes keep their order) and recomputes
// every value's producer: the passes above end with it.
void remove_nodes(Graph& g, const std::vector<bool>& dead);

}  // namespace sarai
