// qgemm_bench's machine probes: the peak multiply-accumulate rate of one
// core per ISA (INT8 and FP32), its clock, and one thread's memory
// bandwidth; the limits the GEMM benchmarks' peak_frac and bw_frac divide
// by (bench/qgemm_bench.cc's header explains the formula).
#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <unordered_map>

#include "bench/qgemm/common.h"

namespace qgemm_bench {

namespace {

// Peak probes. Each function runs `iters` iterations of an asm block of
// independent multiply-accumulates (asm volatile: the compiler can neither
// fold nor drop them), accumulators living in registers across iterations.

#define SARAI_X16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define SARAI_X8_LO(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define SARAI_X8_HI(M) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define SARAI_X11(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10)
#define SARAI_X12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#define SARAI_ACC_OUT(i) [c##i] "+v"(c##i),
#define SARAI_ACC_OUTX(i) [c##i] "+x"(c##i),

// Each spin/sum function gets its ISA from a target attribute of its own
// (clang has no `#pragma GCC target`); only the benchmarks that checked
// the CPU call them.
#define SARAI_BENCH_AVX512 __attribute__((noinline, target("avx512f,avx512bw,avx512vnni")))
#define SARAI_BENCH_AVX_VNNI __attribute__((noinline, target("avx2,avxvnni")))
#define SARAI_BENCH_AVX2 __attribute__((noinline, target("avx2,fma")))

// 16 x vpdpbusd zmm per iteration: 16 * 128 ops.
SARAI_BENCH_AVX512 void spin_vnni_zmm(int64_t iters) {
  __m512i x = _mm512_set1_epi32(0x01010101);
  const __m512i w = _mm512_set1_epi32(0x01ff0102);
#define SARAI_DECL(i) __m512i c##i = _mm512_set1_epi32(i);
  SARAI_X16(SARAI_DECL)
#undef SARAI_DECL
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_INS(i) "vpdpbusd %[w], %[x], %[c" #i "]\n\t"
    // Two statements: an asm takes at most 30 operands ("+" counts twice).
    asm volatile(SARAI_X8_LO(SARAI_INS) : SARAI_X8_LO(SARAI_ACC_OUT)[x] "+v"(x) : [w] "v"(w));
    asm volatile(SARAI_X8_HI(SARAI_INS) : SARAI_X8_HI(SARAI_ACC_OUT)[x] "+v"(x) : [w] "v"(w));
#undef SARAI_INS
  }
  // No sink: asm volatile cannot be dropped, and a DoNotOptimize here would
  // make the accumulators addressable (GCC then stores them every iteration).
}

// 16 x vfmadd231ps zmm per iteration: 16 * 32 flops.
SARAI_BENCH_AVX512 void spin_fma_zmm(int64_t iters) {
  __m512 a = _mm512_set1_ps(1.0000001f);
  const __m512 b = _mm512_set1_ps(0.9999999f);
#define SARAI_DECL(i) __m512 c##i = _mm512_set1_ps(static_cast<float>(i));
  SARAI_X16(SARAI_DECL)
#undef SARAI_DECL
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_INS(i) "vfmadd231ps %[b], %[a], %[c" #i "]\n\t"
    asm volatile(SARAI_X8_LO(SARAI_INS) : SARAI_X8_LO(SARAI_ACC_OUT)[a] "+v"(a) : [b] "v"(b));
    asm volatile(SARAI_X8_HI(SARAI_INS) : SARAI_X8_HI(SARAI_ACC_OUT)[a] "+v"(a) : [b] "v"(b));
#undef SARAI_INS
  }
}

// One thread summing a buffer with 512-bit loads, as one sequential stream
// or as two (its halves, side by side); n a multiple of 256.
SARAI_BENCH_AVX512 uint64_t sum_bytes_avx512(const uint8_t* p, size_t n, int streams) {
  __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
  const size_t step = streams == 2 ? 128 : 256, end = streams == 2 ? n / 2 : n;
  const size_t o2 = streams == 2 ? n / 2 : 128;  // the third and fourth loads
  for (size_t i = 0; i < end; i += step) {
    s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
    s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 64));
    s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + i + o2));
    s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + i + o2 + 64));
  }
  alignas(64) uint64_t l[8];
  _mm512_store_si512(l, _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
  return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

// 12 x {vex} vpdpbusd ymm per iteration (VEX: ymm0-15 only, so 12
// accumulators + 2 sources): 12 * 64 ops.
SARAI_BENCH_AVX_VNNI void spin_vnni_ymm(int64_t iters) {
  __m256i x = _mm256_set1_epi32(0x01010101);
  const __m256i w = _mm256_set1_epi32(0x01ff0102);
#define SARAI_DECL(i) __m256i c##i = _mm256_set1_epi32(i);
  SARAI_X12(SARAI_DECL)
#undef SARAI_DECL
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_INS(i) "%{vex%} vpdpbusd %[w], %[x], %[c" #i "]\n\t"
    asm volatile(SARAI_X12(SARAI_INS) : SARAI_X12(SARAI_ACC_OUTX)[x] "+x"(x) : [w] "x"(w));
#undef SARAI_INS
  }
}

// 12 x (vpmaddubsw, vpmaddwd with ones, vpaddd) ymm per iteration: 12 * 64
// ops. The temporary t is rewritten from scratch each time (no loop-carried
// dependency through it: the core renames it); only the vpaddd chains carry.
SARAI_BENCH_AVX2 void spin_avx2_pair(int64_t iters) {
  __m256i t = _mm256_setzero_si256();
  const __m256i x = _mm256_set1_epi8(1);
  const __m256i w = _mm256_set1_epi8(2), one = _mm256_set1_epi16(1);
#define SARAI_DECL(i) __m256i c##i = _mm256_set1_epi32(i);
  SARAI_X12(SARAI_DECL)
#undef SARAI_DECL
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_INS(i)                  \
  "vpmaddubsw %[w], %[x], %[t]\n\t"   \
  "vpmaddwd %[one], %[t], %[t]\n\t"   \
  "vpaddd %[t], %[c" #i "], %[c" #i "]\n\t"
    asm volatile(SARAI_X12(SARAI_INS)
                 : SARAI_X12(SARAI_ACC_OUTX)[t] "+x"(t)
                 : [x] "x"(x), [w] "x"(w), [one] "x"(one));
#undef SARAI_INS
  }
}

// The exact AVX2 kernel's core (qgemm_u8s8_4x16c4__avx2.cc): 12 x (vpmaddwd
// on int16 pairs, vpaddd) ymm per iteration: 12 * 32 ops.
SARAI_BENCH_AVX2 void spin_avx2_madd16(int64_t iters) {
  __m256i t = _mm256_setzero_si256();
  const __m256i x = _mm256_set1_epi32(0x00030001), w = _mm256_set1_epi16(-2);
#define SARAI_DECL(i) __m256i c##i = _mm256_set1_epi32(i);
  SARAI_X12(SARAI_DECL)
#undef SARAI_DECL
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_INS(i)                \
  "vpmaddwd %[w], %[x], %[t]\n\t"   \
  "vpaddd %[t], %[c" #i "], %[c" #i "]\n\t"
    asm volatile(SARAI_X12(SARAI_INS) : SARAI_X12(SARAI_ACC_OUTX)[t] "+x"(t) : [x] "x"(x), [w] "x"(w));
#undef SARAI_INS
  }
}

// Issue 15's exact s8 x s8 route (llama.cpp's q8 dot product): |x| and w
// with x's sign (vpsignb), then vpmaddubsw, which cannot saturate with
// |x| <= 128 and |w| <= 127, widened by vpmaddwd with ones: 11 x (vpsignb,
// vpmaddubsw, vpmaddwd, vpaddd) ymm per iteration, 11 * 64 ops (|x| is per
// activation row, shared by all channels, so it is left out). 11
// accumulators: with x, |x|, w, ones and the temporary, 16 ymm.
SARAI_BENCH_AVX2 void spin_avx2_sign(int64_t iters) {
  __m256i t = _mm256_setzero_si256();
  const __m256i ax = _mm256_set1_epi8(3), x = _mm256_set1_epi8(-3);
  const __m256i w = _mm256_set1_epi8(2), one = _mm256_set1_epi16(1);
#define SARAI_DECL(i) __m256i c##i = _mm256_set1_epi32(i);
  SARAI_X11(SARAI_DECL)
#undef SARAI_DECL
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_INS(i)                  \
  "vpsignb %[x], %[w], %[t]\n\t"      \
  "vpmaddubsw %[t], %[ax], %[t]\n\t"  \
  "vpmaddwd %[one], %[t], %[t]\n\t"   \
  "vpaddd %[t], %[c" #i "], %[c" #i "]\n\t"
    asm volatile(SARAI_X11(SARAI_INS)
                 : SARAI_X11(SARAI_ACC_OUTX)[t] "+x"(t)
                 : [x] "x"(x), [ax] "x"(ax), [w] "x"(w), [one] "x"(one));
#undef SARAI_INS
  }
}

// 12 x vfmadd231ps ymm per iteration: 12 * 16 flops.
SARAI_BENCH_AVX2 void spin_fma_ymm(int64_t iters) {
  __m256 a = _mm256_set1_ps(1.0000001f);
  const __m256 b = _mm256_set1_ps(0.9999999f);
#define SARAI_DECL(i) __m256 c##i = _mm256_set1_ps(static_cast<float>(i));
  SARAI_X12(SARAI_DECL)
#undef SARAI_DECL
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_INS(i) "vfmadd231ps %[b], %[a], %[c" #i "]\n\t"
    asm volatile(SARAI_X12(SARAI_INS) : SARAI_X12(SARAI_ACC_OUTX)[a] "+x"(a) : [b] "x"(b));
#undef SARAI_INS
  }
}

SARAI_BENCH_AVX2 uint64_t sum_bytes_avx2(const uint8_t* p, size_t n, int streams) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  const size_t step = streams == 2 ? 64 : 128, end = streams == 2 ? n / 2 : n;
  const size_t o2 = streams == 2 ? n / 2 : 64;
  for (size_t i = 0; i < end; i += step) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + o2)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + o2 + 32)));
  }
  alignas(32) uint64_t l[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l),
                     _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)));
  return l[0] + l[1] + l[2] + l[3];
}

// 64 dependent 1-cycle integer adds per iteration: iterations * 64 / s is
// the core clock (the loop's own increment and branch run alongside).
__attribute__((noinline)) void spin_add_chain(int64_t iters) {
  uint64_t x = 0, y = 1;
  for (int64_t it = 0; it < iters; ++it) {
#define SARAI_ADD8 "add %[y], %[x]\n\tadd %[y], %[x]\n\tadd %[y], %[x]\n\tadd %[y], %[x]\n\t" \
                   "add %[y], %[x]\n\tadd %[y], %[x]\n\tadd %[y], %[x]\n\tadd %[y], %[x]\n\t"
    asm volatile(SARAI_ADD8 SARAI_ADD8 SARAI_ADD8 SARAI_ADD8 SARAI_ADD8 SARAI_ADD8 SARAI_ADD8
                     SARAI_ADD8
                 : [x] "+r"(x)
                 : [y] "r"(y));
#undef SARAI_ADD8
  }
  benchmark::DoNotOptimize(x);
}

// Best rate over 40 trials of ~2 ms of fn, in `units_per_iter` per second.
// Short trials and the best of many: on a shared machine most trials are
// cut by a scheduler time slice, some are not.
double best_rate(void (*fn)(int64_t), double units_per_iter) {
  fn(10000);  // wake the core up
  int64_t iters = 1 << 10;
  double t = 0;
  for (;;) {
    const auto t0 = Clock::now();
    fn(iters);
    t = seconds_since(t0);
    if (t > 0.002) break;
    iters *= 2;
  }
  double best = units_per_iter * static_cast<double>(iters) / t;
  for (int trial = 0; trial < 40; ++trial) {
    const auto t0 = Clock::now();
    fn(iters);
    best = std::max(best, units_per_iter * static_cast<double>(iters) / seconds_since(t0));
  }
  return best;
}

double clock_hz() {
  static const double hz = best_rate(spin_add_chain, 64.0);
  return hz;
}

struct PeakProbe {
  const char* name;      // "avx512_vnni", "fp32_fma_zmm", ...
  Isa needs;             // the level whose instructions it uses
  void (*fn)(int64_t);
  int instrs;            // multiply-accumulate instructions (or sequences) per iteration
  double ops_per_instr;  // ops (MAC = 2) per instruction or sequence
};

const PeakProbe kProbeVnniZmm = {"avx512_vnni", Isa::kAvx512Vnni, spin_vnni_zmm, 16, 128};
const PeakProbe kProbeVnniYmm = {"avx2_vnni", Isa::kAvx2Vnni, spin_vnni_ymm, 12, 64};
const PeakProbe kProbeAvx2Pair = {"avx2", Isa::kAvx2, spin_avx2_pair, 12, 64};
const PeakProbe kProbeAvx2Madd16 = {"avx2_madd16", Isa::kAvx2, spin_avx2_madd16, 12, 32};
const PeakProbe kProbeAvx2Sign = {"avx2_s8s8_sign", Isa::kAvx2, spin_avx2_sign, 11, 64};
const PeakProbe kProbeFmaZmm = {"fp32_fma_zmm", Isa::kAvx512Vnni, spin_fma_zmm, 16, 32};
const PeakProbe kProbeFmaYmm = {"fp32_fma_ymm", Isa::kAvx2, spin_fma_ymm, 12, 16};

// Ops/s of one core for the probe, measured on first use and cached; 0 when
// the CPU lacks it.
double probe_peak(const PeakProbe& p) {
  static std::unordered_map<const PeakProbe*, double> cache;
  if (auto it = cache.find(&p); it != cache.end()) return it->second;
  double v = 0;
  if (sarai::isa_supported(p.needs)) {
    v = best_rate(p.fn, p.instrs * p.ops_per_instr);
    const double hz = clock_hz();
    std::fprintf(stderr,
                 "[peak] %-13s %7.1f G ops/s per thread = %.0f ops/instr x %.2f instr/cycle x "
                 "%.2f GHz (measured)\n",
                 p.name, v * 1e-9, p.ops_per_instr, v / (p.ops_per_instr * hz), hz * 1e-9);
  }
  cache[&p] = v;
  return v;
}


}  // namespace

// The INT8 peak for the micro-kernel that ran (0 for scalar: no peak).
double int8_peak(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Vnni:
    case Isa::kAmx: return probe_peak(kProbeVnniZmm);
    case Isa::kAvx2Vnni: return probe_peak(kProbeVnniYmm);
    case Isa::kAvx2: return probe_peak(kProbeAvx2Pair);
    case Isa::kScalar: return 0;
  }
  return 0;
}

// The FP32 peak for what oneDNN's sgemm may use under max_isa().
double fp32_peak() {
  const Isa isa = sarai::max_isa();
  if (isa >= Isa::kAvx512Vnni) return probe_peak(kProbeFmaZmm);
  if (isa >= Isa::kAvx2) return probe_peak(kProbeFmaYmm);
  return 0;
}

namespace {

// One thread's streaming read bandwidth in bytes/s over a buffer >= 4x LLC
// (and >= 64 MB, <= 1 GB): the best of 20 passes (after a warm-up pass), half
// as one sequential stream and half as two (a GEMV reads several panels at
// once; on this project's AMD EPYC two streams read ~10 % faster than one).
uint64_t sum_bytes(const uint8_t* p, size_t n, int streams) {
  if (sarai::isa_supported(Isa::kAvx512Vnni)) return sum_bytes_avx512(p, n, streams);
  if (sarai::isa_supported(Isa::kAvx2)) return sum_bytes_avx2(p, n, streams);
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s += v;
  }
  return s;
}

size_t bandwidth_buffer_bytes() {
  const int64_t b = std::min(kSetCap, std::max<int64_t>(4 * llc_bytes(), int64_t{64} << 20));
  return static_cast<size_t>(b / 256 * 256);
}

void run_peak(benchmark::State& st, const PeakProbe& p) {
  if (!sarai::isa_supported(p.needs)) {
    st.SkipWithError((std::string("this CPU lacks ") + sarai::isa_name(p.needs)).c_str());
    return;
  }
  const double hz = clock_hz();
  constexpr int64_t kIters = 1 << 16;
  const double ops = kIters * p.instrs * p.ops_per_instr;
  const auto t0 = Clock::now();
  for (auto _ : st) p.fn(kIters);
  const double s = seconds_since(t0);
  st.counters["GOPS"] = Counter(ops, Counter::kIsIterationInvariantRate, Counter::kIs1000);
  st.counters["clock_GHz"] = hz * 1e-9;
  if (s > 0) st.counters["instr_per_cycle"] = ops * static_cast<double>(st.iterations()) / s / (p.ops_per_instr * hz);
  char label[64];
  std::snprintf(label, sizeof label, "%d acc, %.0f ops/instr", p.instrs, p.ops_per_instr);
  st.SetLabel(label);
}

}  // namespace

double memory_bandwidth() {
  static const double bw = [] {
    const size_t n = bandwidth_buffer_bytes();
    Buf b(n);
    std::memset(b.p, 1, n);  // fault the pages in
    benchmark::DoNotOptimize(sum_bytes(b.p, n, 1));
    double best = 0;
    for (int pass = 0; pass < 20; ++pass) {
      const auto t0 = Clock::now();
      benchmark::DoNotOptimize(sum_bytes(b.p, n, 1 + pass % 2));
      best = std::max(best, static_cast<double>(n) / seconds_since(t0));
    }
    std::fprintf(stderr, "[bandwidth] %.1f GB/s, 1 thread, %.0f MB buffer (LLC %.0f MB)\n", best * 1e-9,
                 static_cast<double>(n) / (1 << 20), static_cast<double>(llc_bytes()) / (1 << 20));
    return best;
  }();
  return bw;
}

void BM_peak_avx512_vnni(benchmark::State& st) { run_peak(st, kProbeVnniZmm); }
void BM_peak_avx2_vnni(benchmark::State& st) { run_peak(st, kProbeVnniYmm); }
void BM_peak_avx2(benchmark::State& st) { run_peak(st, kProbeAvx2Pair); }
void BM_peak_avx2_madd16(benchmark::State& st) { run_peak(st, kProbeAvx2Madd16); }
void BM_peak_avx2_s8s8_sign(benchmark::State& st) { run_peak(st, kProbeAvx2Sign); }
void BM_peak_fp32_fma_zmm(benchmark::State& st) { run_peak(st, kProbeFmaZmm); }
void BM_peak_fp32_fma_ymm(benchmark::State& st) { run_peak(st, kProbeFmaYmm); }

void BM_memory_bandwidth(benchmark::State& st) {
  const size_t n = bandwidth_buffer_bytes();
  Buf& b = cached<Buf>("bandwidth", [&] {
    Buf x(n);
    std::memset(x.p, 1, n);
    return x;
  });
  const int streams = static_cast<int>(st.range(0));
  for (auto _ : st) benchmark::DoNotOptimize(sum_bytes(b.p, n, streams));
  st.SetBytesProcessed(static_cast<int64_t>(n) * st.iterations());
  st.counters["GBps"] = Counter(static_cast<double>(n), Counter::kIsIterationInvariantRate, Counter::kIs1000);
  char label[64];
  std::snprintf(label, sizeof label, "%.0f MB, LLC %.0f MB", static_cast<double>(n) / (1 << 20),
                static_cast<double>(llc_bytes()) / (1 << 20));
  st.SetLabel(label);
}

}  // namespace qgemm_bench
