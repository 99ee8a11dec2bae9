// The INT8 GEMM (kernels/cpu/qgemm.h) at the audio encoders' shapes, against
// the machine's measured limits, our FP32 GEMM and oneDNN 2.6. See
// bench/README.md for how to run it and read it.
//
//   BM_peak_<isa>            the achievable multiply-accumulate rate of one core
//   BM_peak_avx2_madd16      the exact AVX2 kernel's vpmaddwd + vpaddd core
//   BM_peak_avx2_s8s8_sign   the s8 x s8 route (vpsignb, vpmaddubsw, vpmaddwd)
//   BM_peak_fp32_fma_<reg>   the same for FP32 FMA
//   BM_memory_bandwidth      one thread streaming a buffer >= 4x the LLC
//   BM_qgemm                 qgemm_u8s8 + epilogue (comp, cscale, bias)
//   BM_sgemm                 kernels::fp32_gemm (what MatMul/Gemm run)
//   BM_onednn_int8_matmul    oneDNN u8s8->f32 matmul as a dynamic-quantization
//                            runtime needs it (runtime scales, runtime src
//                            zero point, bias), weights in oneDNN's layout
//   BM_onednn_int8_matmul_static   the same with scales fixed at creation and
//                            no zero point: oneDNN 2.6's brgemm matmul declines
//                            runtime output scales (it then runs gemm:jit)
//   BM_onednn_int8_n16k4     oneDNN's brgemm reading OUR N16K4 bytes in place,
//                            described as format_tag::BA16a16b4a (the same
//                            bytes when K % 64 == 0); static scales, no zero
//                            point (with a runtime src zero point, or runtime
//                            scales, oneDNN only has ref_int8 for this layout)
//   BM_onednn_int8_n16k4_blocking_desc   the N16K4 layout described as a
//                            2-level blocking (= BA16b4a): oneDNN only has
//                            ref_int8 for it (~0.15 GOPS); one small shape
//
// GEMM arguments: M, K, N, nthr (threads, sarai::set_num_threads), cold
// (0: one weight buffer reused; 1: rotate through >= 2x LLC of distinct
// weight buffers, so each call reads its weights from DRAM).
//
// Peak (the formula the "peak_frac" counters divide by):
//
//   peak(isa, nthr) = nthr * ops_per_instr(isa) * instr_per_cycle(isa) * clock
//
// measured rather than taken from a datasheet: BM_peak_<isa> runs an
// unrolled loop of independent multiply-accumulates (16 accumulators for
// zmm, 12 for ymm: more than latency x throughput on any current core) and
// reports ops/s directly; that product is what one core achieves. The
// benchmark also measures the clock (a chain of dependent 1-cycle adds) so
// instr_per_cycle can be read off. One "op" is a multiply or an add, so a
// MAC is 2 ops:
//   avx512_vnni  vpdpbusd zmm: 16 lanes x 4 u8*s8 MACs = 64 MACs = 128 ops
//   avx2_vnni    {vex} vpdpbusd ymm: 32 MACs = 64 ops
//   avx2         vpmaddubsw + vpmaddwd(ones) + vpaddd ymm: the 32 useful u8*s8
//                MACs of the sequence = 64 ops per triple (the int16 pair
//                sums saturate; an exact kernel does less per instruction)
//   fp32 FMA     vfmadd231ps zmm: 16 lanes x 2 = 32 flops; ymm: 16 flops
// The probes run once (lazily, 1 thread, best of 40 trials of ~2 ms) and
// are cached; multi-thread runs divide by nthr x the 1-thread peak. The memory
// bandwidth used by "bw_frac" (M = 1 cold runs: weight bytes read per
// second / bandwidth) is measured the same way, once, 1 thread.
//
// The parts: bench/qgemm/probes.cc (peaks, clock, bandwidth), onednn.cc
// (oneDNN's INT8 matmul), conv1d.cc (QConv/Conv through a Session),
// common.{h,cc} (buffers, weight sets, reporting); this file holds the
// QGEMM/SGEMM benchmarks, every registration (in the order listed) and main().
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "bench/qgemm/common.h"
#include "kernels/fp32_gemm.h"
#include "kernels/cpu/qgemm.h"
#include "runtime/cpu_isa.h"
#include "runtime/parallel.h"

namespace {

using namespace qgemm_bench;

void BM_qgemm(benchmark::State& st) {
  const GemmArgs g(st);
  sarai::max_isa();
  sarai::set_num_threads(g.nthr);
  const kn::QgemmUkernel& uk = kn::qgemm_default_ukernel();
  const double peak = int8_peak(uk.isa);
  if (g.m == 1 && g.cold) memory_bandwidth();
  const Int8Weights& w = int8_weights(g.k, g.n);
  Buf a(static_cast<size_t>(g.m * g.k)), y(static_cast<size_t>(g.m * g.n * 4));
  fill_u8(a.p, a.n, 1);
  std::memset(y.p, 0, y.n);
  // The epilogue of a real QMatMul: z_x = 131, s_x * scale[n], bias.
  std::vector<int32_t> comp(static_cast<size_t>(g.n));
  std::vector<float> cscale(static_cast<size_t>(g.n)), bias(static_cast<size_t>(g.n));
  for (int64_t j = 0; j < g.n; ++j) {
    comp[static_cast<size_t>(j)] = 131 * w.wsum[static_cast<size_t>(j)];
    cscale[static_cast<size_t>(j)] = 1e-4f * (1 + j % 7);
    bias[static_cast<size_t>(j)] = 0.01f * static_cast<float>(j % 5);
  }
  kn::QgemmEpilogue ep;
  ep.comp = comp.data();
  ep.cscale = cscale.data();
  ep.bias = bias.data();
  ep.y = y.as<float>();
  ep.ldy_m = g.n;
  const int64_t nbuf = g.cold ? w.set.count : 1;
  int64_t i = 0;
  const auto t0 = Clock::now();
  for (auto _ : st) {
    kn::qgemm_u8s8(a.p, g.m, g.k, g.k, reinterpret_cast<const int8_t*>(w.set.at(i)), g.n, ep, &uk);
    if (++i == nbuf) i = 0;
    benchmark::ClobberMemory();
  }
  report(st, g, "GOPS", seconds_since(t0), peak, static_cast<double>(w.set.bytes));
  st.SetLabel(set_label(sarai::isa_name(uk.isa), g, w.set.count, w.set.total_mb()));
}

void BM_sgemm(benchmark::State& st) {
  const GemmArgs g(st);
  sarai::max_isa();
  sarai::set_num_threads(g.nthr);
  const double peak = fp32_peak();
  if (g.m == 1 && g.cold) memory_bandwidth();
  const WeightSet& w = f32_weights(g.k, g.n);
  Buf a(static_cast<size_t>(g.m * g.k * 4)), c(static_cast<size_t>(g.m * g.n * 4));
  fill_f32(a.as<float>(), static_cast<size_t>(g.m * g.k), 3);
  std::memset(c.p, 0, c.n);
  const int64_t nbuf = g.cold ? w.count : 1;
  int64_t i = 0;
  const auto t0 = Clock::now();
  for (auto _ : st) {
    const sarai::Status s = kn::fp32_gemm(false, false, g.m, g.n, g.k, 1.f, a.as<float>(), g.k,
                                          reinterpret_cast<const float*>(w.at(i)), g.n, 0.f,
                                          c.as<float>(), g.n);
    if (!s) {
      st.SkipWithError(s.message().c_str());
      return;
    }
    if (++i == nbuf) i = 0;
    benchmark::ClobberMemory();
  }
  report(st, g, "GFLOPS", seconds_since(t0), peak, static_cast<double>(w.bytes));
  st.SetLabel(set_label(std::string("dnnl_sgemm, oneDNN cap ") + sarai::onednn_isa_name(), g, w.count,
                        w.total_mb()));
}

// --- Registration.

constexpr std::array<std::pair<int64_t, int64_t>, 6> kKN = {
    {{512, 512}, {512, 2048}, {2048, 512}, {2048, 2048}, {2048, 8192}, {8192, 2048}}};

// Every shape x {1, 2} threads, warm; cold for every M (all_cold) or for
// M = 1 only (where it matters most: GEMV reads each weight once).
void shapes(benchmark::internal::Benchmark* b, bool all_cold) {
  b->ArgNames({"M", "K", "N", "nthr", "cold"});
  for (const auto& [k, n] : kKN)
    for (int64_t m : {1, 150, 1500})
      for (int64_t t : {1, 2})
        for (int64_t cold : {0, 1})
          if (cold == 0 || all_cold || m == 1) b->Args({m, k, n, t, cold});
}
void shapes_all_cold(benchmark::internal::Benchmark* b) { shapes(b, true); }
void shapes_m1_cold(benchmark::internal::Benchmark* b) { shapes(b, false); }

BENCHMARK(BM_peak_avx512_vnni);
BENCHMARK(BM_peak_avx2_vnni);
BENCHMARK(BM_peak_avx2);
BENCHMARK(BM_peak_avx2_madd16);
BENCHMARK(BM_peak_avx2_s8s8_sign);
BENCHMARK(BM_peak_fp32_fma_zmm);
BENCHMARK(BM_peak_fp32_fma_ymm);
BENCHMARK(BM_memory_bandwidth)->ArgName("streams")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_qgemm)->Apply(shapes_all_cold)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_sgemm)->Apply(shapes_m1_cold)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_onednn_int8_matmul)->Apply(shapes_m1_cold)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_onednn_int8_matmul_static)->Apply(shapes_m1_cold)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_onednn_int8_n16k4)->Apply(shapes_m1_cold)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_qconv1d)->ArgNames({"conv", "nthr"})->ArgsProduct({{1, 2}, {1, 2}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_conv1d_fp32)->ArgNames({"conv", "nthr"})->ArgsProduct({{1, 2}, {1, 2}})->Unit(benchmark::kMicrosecond)->UseRealTime();
// The reference kernel runs ~0.1 GOPS: one small shape documents the outcome.
BENCHMARK(BM_onednn_int8_n16k4_blocking_desc)
    ->ArgNames({"M", "K", "N", "nthr", "cold"})
    ->Args({1, 512, 512, 1, 0})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

// Like benchmark_main, with a default --benchmark_min_time of 0.2 s (the
// whole suite then runs in about three minutes); pass your own to override.
int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  static char kDefaultMinTime[] = "--benchmark_min_time=0.2";
  const bool has_min_time = std::any_of(args.begin(), args.end(), [](const char* a) {
    return std::strncmp(a, "--benchmark_min_time", 20) == 0;
  });
  if (!has_min_time) args.insert(args.begin() + 1, kDefaultMinTime);
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
