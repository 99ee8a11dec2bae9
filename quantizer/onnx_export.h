// ONNX model -> quantized ONNX model that ONNX Runtime runs: the library
// side of `sarai-rt convert --to onnx`. Same plan (quantizer/plan.h) and the
// same symmetric per-output-channel INT8 math (quantizer/quantize.h) as the
// .sarai converter, written with standard ONNX ops, weights in external data:
//
//   MatMul(X, W[K, N]) and Gemm(X, W, C) with transA = 0 (alpha folded into
//   the scales, transB = 1 weights stored transposed as [K, N]):
//     DynamicQuantizeLinear(X) -> Xq (u8), xs, xzp       (one per X, shared)
//     MatMulInteger(Xq, W.q [K, N], xzp[, wzp]) -> int32
//     Cast(float) ; Mul(Y, Mul(xs, W.scale [N])) ; Add(beta * C) for a Gemm
//   Conv(X, W[M, C/g, k...], B):
//     ConvInteger(Xq, W.q, xzp[, wzp]) (same attributes) ; Cast ; Mul(Y, xs *
//     W.scale [1, M, 1...]) ; Add(B as [1, M, 1...])
//   W.q and wzp as the weight encoding below says (default: W.q uint8,
//   wzp = 128).
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
// Weight encodings (OnnxWeights, `convert --to onnx --onnx-weights`). All
// three run the same per-channel symmetric scales and u8 activations; they
// differ in what ONNX Runtime's MLAS does with them on x86:
//
//   u8 (default): W.q = w8 + 128 as uint8 with a uint8 zero point 128, one
//       scalar initializer read as MatMulInteger's b_zero_point / ConvInteger's
//       w_zero_point. (Xq - xzp)(W.q - 128) is exactly the s8 product, so the
//       integers are the s8 encoding's, bit for bit, on every CPU: MLAS runs
//       u8 x u8 through its U8U8 kernels, which widen to 16 bits and multiply
//       with vpmaddwd (AVX2 and AVX-512), exact; AVX-VNNI-INT8 and ARM's
//       udot/ummla are exact too (ARM: the same kernels as for s8). The cost: x86
//       CPUs with VNNI do not use vpdpbusd (or AMX) for u8 x u8, only for
//       u8 x s8, so the integer GEMMs run at the 16-bit vpmaddwd rate
//       there, about half of vpdpbusd's (MLAS: platform.cpp, qgemm.h).
//       On an AVX2-only Zen 3, u8 took 1.06-1.12x s8's time end to end on
//       a Whisper-base-size encoder, 1.2x on a bare GEMM (docs/BENCHMARKS.md).
//   s8: W.q = w8 as int8, no weight zero point: the u8 x s8 form MLAS runs
//       with vpdpbusd on AVX-512 VNNI / AVX-VNNI / AMX, exact and fastest.
//       On x86 CPUs without VNNI (AVX2-only, AVX-512 without VNNI) MLAS
//       uses vpmaddubsw, which adds pairs of u8 x s8 products into int16 with
//       saturation (255 * 127 * 2 = 64770 > 32767): wrong results there.
//   s7: W.q = w7 in [-63, 63] as int8 (scale = the 8-bit scale * 127 / 63):
//       vpmaddubsw cannot saturate (255 * 63 * 2 = 32130 <= 32767), so the
//       fast u8 x s8 kernels are exact on every CPU, at one bit less of
//       weight precision (ONNX Runtime's reduce_range for weights).
//
// The choice is MatMulInteger's (MatMul, Gemm). ConvInteger's weights are
// u8 under every choice: ONNX Runtime's ConvInteger multiplies the weights
// as the GEMM's left matrix, so int8 weights make it an s8 x u8 GEMM, which
// MLAS runs on its portable C++ kernel on x86 without AVX-VNNI-INT8 and on
// ARM (exact, but small_cnn ran 2.6x slower than with u8 weights on an
// AVX2-only CPU; docs/BENCHMARKS.md). ConvTranspose weights are dequantized
// to float in the graph, so they stay int8 (8 bits) under every choice.
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

enum class OnnxWeights { kU8, kS8, kS7 };

// "u8", "s8", "s7"; parse_onnx_weights() is the inverse, with an error that
// names the option and the accepted values.
const char* onnx_weights_name(OnnxWeights w);
Expected<OnnxWeights> parse_onnx_weights(const std::string& s);

struct OnnxExportOptions {
  OnnxWeights weights = OnnxWeights::kU8;
};

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
                                                  const ConvertOptions& opt, const OnnxExportOptions& onnx = {});

}  // namespace sarai::quant
