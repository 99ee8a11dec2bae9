// FP32 where INT8 cannot win (issue 15): Session::create rewrites the
// quantized convolutions that run slower in INT8 than in FP32 on this
// machine into sarai::Fp32Conv / sarai::Fp32ConvTranspose
// (kernels/qmatmul_qconv.cc: oneDNN's sgemm, as Conv and ConvTranspose
// use it, in fixed column blocks so that the result is the same at every
// thread count) on their dequantized weights. `run --profile` lists them
// under those op types.
//
// The rule, from the ISA level (runtime/cpu_isa.h) and the node's weight
// shape, once per session, before the epilogue fusion (so a rewritten node
// keeps its Add/Relu as separate float ops, as in the .onnx):
//  - At every level: QConvTranspose with kernel = strides (no padding,
//    dilation 1, group 1: each output reached by one tap, as in upsampling
//    heads) -> Fp32ConvTranspose: the INT8 direct scatter kernel is 2.4-4x
//    slower than one sgemm and a copy without VNNI, and 3-8x with it
//    (PaddleOCR det's [24, 24, 2, 2] at avx512_vnni: 5.0-7.4 ms INT8
//    against 0.6-1.8 ms FP32, docs/BENCHMARKS.md).
//  - A level with VNNI (avx2_vnni, avx512_vnni, amx): vpdpbusd does 4
//    u8 x s8 MACs per 32-bit lane, about 4x FP32's FMA rate, so MACs as
//    well as bytes favour INT8, except for the small-K convs below and
//    1x1 convs (as below) with C x M <= kPointwiseMaxMacsVnni: measured per node at avx512_vnni
//    (docs/BENCHMARKS.md, "PaddleOCR det on AVX-512 VNNI"), det's and
//    rec's 12x48, 18x96, 96x12, 96x18 and 32x16 (C x M 512-1728) ran FP32
//    in 0.33-0.89x INT8's time at 1 and 2 threads; 1536-2304 (48x32,
//    rec's 64x32, 48x48) tied at one thread (INT8 0-10 % ahead) and lost
//    11-16 % at two; from 4096 up INT8 won (1.1-1.7x) except det's 96x42
//    (4032: 0.5-0.8x). The bound, 1728, takes the clear losers (and 48x32).
//  - Without VNNI (avx2, scalar), where the exact INT8 scheme (vpmaddwd)
//    has about FP32's MAC rate, so INT8 wins by bytes and loses by the
//    passes around the GEMM (quantizing X, transposing, the epilogue):
//      QConv 1x1, stride 1, unpadded, group 1, with C x M <= kPointwiseMaxMacs (input x output
//        channels: the MACs per output position) -> Fp32Conv: per position the
//        INT8 path quantizes and transposes C inputs and writes M outputs
//        around C x M MACs at FP32's rate; below ~9 K MACs those passes
//        cost more than INT8's bytes save. Measured per node on PaddleOCR
//        det and rec, INT8 against Fp32Conv, 1 and 2 threads
//        (docs/BENCHMARKS.md): C x M <= 9216 ran faster in FP32 (det
//        48->12: 0.57 -> 0.20 ms, 96->96: 0.59 -> 0.54 ms; rec 64->64:
//        0.57 -> 0.48 ms) or tied (rec 64->128), 128->128 ran 5-15 %
//        slower (0.80 -> 0.84 ms), and larger ones lose more. Tiny maps
//        (squeeze-excite convs on 1x1) lose ~15 us a node to oneDNN's
//        call overhead: the rule does not know the spatial size.
//  - At every level, any other group-1 QConv (strides, pads, dilations:
//    Fp32Conv runs them through Conv's im2col path) whose K = C x kernel
//    taps is at most kSmallKMaxKVnni with VNNI, kSmallKMaxK without: the
//    stem convs of image models ([16, 3, 3, 3], stride 2, pad 1 in
//    PaddleOCR det and rec). With so few MACs per output position,
//    quantizing X and its u8 im2col cost as much as the MACs, and the
//    INT8 im2col path gains little or nothing from a second thread here.
//    Measured per node (docs/BENCHMARKS.md, "Small-K convolutions in
//    FP32"), FP32 / INT8 time, two repeats, det, rec and single-conv
//    models:
//      avx512_vnni: K = 27 (M 16-64, 320x480 stride 2): 0.44-0.72 at 2
//        threads, 0.90-1.14 at 1 (det's stem: 1.09 -> 0.61 ms at 2, 1.04
//        tie at 1); K = 48 tied (0.88 / 1.15); K = 72-864 lost 1.14-2.4x
//        at 1 thread and mostly at 2. Bound 27.
//      avx2 (SARAI_MAX_ISA=avx2 on the same Zen 4, not an AVX2-only
//        CPU): K = 27-72 within 0.93-1.15 at 1 thread and 0.36-0.70 at
//        2 (INT8's 2-thread time is no better than its 1-thread one
//        there); K = 144-864 lost 1.08-1.5x at 1 thread. Bound 72.
//    Rec's stem (48x320 input, 3840 positions: one im2col block, so one
//    thread) ties at 2 threads and loses ~0.01 ms at 1.
//  - QMatMul and every other QConv stay INT8 (their weights are where the
//    bytes decide: Whisper's encoder, the wider 3x3 and the grouped and
//    depthwise convolutions).
//  - Bounded memory: a node falls back only when its FP32 weight is at
//    most kMaxNodeFp32Bytes, and a session holds at most kMaxFp32Bytes of
//    them (taken in node order; past it the rest stay INT8). The ops picked
//    are activation-bound, their weights small (a 1x1 picked holds at most
//    36 KiB in FP32; PaddleOCR det's 31 nodes take 296 KiB, rec's 6 114 KiB).
//
// Exact by construction: W = scale[n] * q (one float multiply per element)
// is the weight the INT8 path approximates; the float op computes with it
// as Conv / ConvTranspose do on one thread (tests/int8_fallback_test.cc
// checks bit-identity), at any thread count.
//
// Override: SessionOptions::fp32_fallback, or with kAuto the environment
// variable SARAI_FP32_FALLBACK = auto | off (INT8 everywhere: A/B runs,
// tests of the INT8 kernels) | force (the rule of a level without VNNI, on
// any level: tests, and A/B on a VNNI machine).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/cpu_isa.h"
#include "runtime/graph.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai {

// SessionOptions::fp32_fallback.
enum class Fp32Fallback {
  kAuto,   // the rule at this machine's ISA level (SARAI_FP32_FALLBACK may override)
  kOff,    // INT8 everywhere
  kForce,  // the shape rule whatever the ISA level
};

inline constexpr int64_t kPointwiseMaxMacs = 96 * 96;
inline constexpr int64_t kPointwiseMaxMacsVnni = 18 * 96;  // with VNNI
inline constexpr int64_t kSmallKMaxK = 72;      // K = C x taps, non-1x1 group-1 QConv
inline constexpr int64_t kSmallKMaxKVnni = 27;  // with VNNI: the 3x3 conv on 3 channels
inline constexpr uint64_t kMaxNodeFp32Bytes = uint64_t{1} << 20;  // 1 MiB: 256 Ki weights
inline constexpr uint64_t kMaxFp32Bytes = uint64_t{16} << 20;     // 16 MiB per session

// The mode in effect: `option` unless it is kAuto, then SARAI_FP32_FALLBACK
// when set; an error naming the variable for a value it does not know.
Expected<Fp32Fallback> fp32_fallback_mode(Fp32Fallback option);

// Why node `n` (a QConv or QConvTranspose with ONNX weight shape `ws`)
// runs in FP32 at `isa` ("" to stay INT8), ignoring the memory bound.
// `force`: as on a level without VNNI (the larger pointwise bound).
std::string fp32_fallback_reason(const Node& n, const Shape& ws, Isa isa, bool force);

// Rewrites every node the rule picks (mode kAuto at max_isa(), or kForce)
// into Fp32Conv / Fp32ConvTranspose with a dequantized weight, a new heap
// initializer named "<W>.fp32". Nodes whose inputs are not what the rewrite needs (W, scale
// not initializers, a fused residual or activation, a bias of shape [1, M])
// stay INT8, and malformed ones are left for the INT8 kernel to report.
// Returns how many nodes were rewritten; *fp32_bytes gets their weights' size.
int apply_fp32_fallback(Graph& g, Fp32Fallback mode, uint64_t* fp32_bytes);

}  // namespace sarai
