// ONNX model -> quantized ONNX model that ONNX Runtime runs: the library
// side of `sarai-rt convert --to onnx`. Same plan (quantizer/plan.h) and the
// same symmetric per-output-channel INT8 math (quantizer/quantize.h) as the
// .sarai converter, written with standard ONNX ops, weights in external data:
//
//   MatMul(X, W[K, N]) and Gemm(X, W, C) with transA = 0 (alpha folded into
//   the scales, transB = 1 weights stored transposed as [K, N]):
//     DynamicQuantizeLinear(X) -> Xq (u8), xs, xzp       (one per X, shared)
//     MatMulInteger(Xq, W.q int8 [K, N], xzp) -> int32
//     Cast(float) ; Mul(Y, Mul(xs, W.scale [N])) ; Add(beta * C) for a Gemm
//   Conv(X, W[M, C/g, k...], B):
//     ConvInteger(Xq, W.q, xzp) (same attributes) ; Cast ; Mul(Y, xs * W.scale
//     [1, M, 1...]) ; Add(B as [1, M, 1...])
//   ConvTranspose(X, W[C, M/g, k...], B): weight-only:
//     ConvTranspose(X, Mul(Cast(W.q), W.scale), B), the scale table shaped
//     [1, M, 1...] (group 1), [1] (per tensor) or [C, M/g, 1...] (grouped
//     per-channel, which the plan currently keeps in FP32: channel
//     g * (M/g) + m varies along both axes, which DequantizeLinear's single
//     axis could not express either); Cast + Mul instead of
//     DequantizeLinear(axis=1) also needs no opset 13. ONNX Runtime folds it
//     into an FP32 weight when it loads the model, so only the file shrinks.
//
// This is the pattern onnxruntime's quantize_dynamic writes; ONNX Runtime
// fuses it into DynamicQuantizeMatMul. Only float32 weights are quantized
// (DynamicQuantizeLinear takes float32 only); the default-domain opset is
// raised to 11 when it is lower and no op in the graph changed meaning
// in between. Every other node and tensor is written as it is.
//
// Tensors of 1 KB or more go to one external data file, out_path + ".data",
// each at a 4096-byte-aligned offset (ONNX Runtime maps such tensors in place);
// smaller ones are inline. Streaming: tensors are read in place from the
// source's mapping one at a time and its pages released after each, so peak
// memory is a constant plus at most 1.5x the largest weight (its mapped
// pages, its int8 copy and, for Gemm transB = 1, an int8 transposition
// buffer). Measured on the 4.5 GB encoder of tools/scripts/make_big_encoder.py:
// 100 MB peak RSS.
#pragma once

#include <cstdint>
#include <string>

#include "quantizer/convert.h"
#include "runtime/model.h"
#include "runtime/status.h"

namespace sarai::quant {

struct OnnxExportSummary {
  int quantized = 0;       // weight tensors stored as INT8
  int kept_fp32 = 0;       // MatMul/Gemm/Conv/ConvTranspose weights left as they were
  uint64_t bytes_in = 0;   // the source: .onnx file + its external data files
  uint64_t bytes_out = 0;  // the written .onnx + .onnx.data
  double seconds = 0;
};

// Writes out_path (the .onnx) and out_path + ".data" (the external data),
// each through a temp file in the same folder (".tmp-<pid>") that is fsynced
// and renamed at the end; on error or cancel both temp files are removed and
// nothing is renamed. Refuses to overwrite the source model or its data.
// `model.graph` is rewritten in place (promote_constants). Errors are one
// line naming the file, tensor or node.
Expected<OnnxExportSummary> export_quantized_onnx(Model& model, const std::string& out_path,
                                                  const ConvertOptions& opt);

}  // namespace sarai::quant
