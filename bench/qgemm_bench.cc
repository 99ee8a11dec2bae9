// The INT8 GEMM (kernels/cpu/qgemm.h) at the audio encoders' shapes, against
// the machine's measured limits, our FP32 GEMM and oneDNN 2.6. See
// bench/README.md for how to run it and read it.
//
//   BM_peak_<isa>            the achievable multiply-accumulate rate of one core
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
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernels/fp32_gemm.h"
#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "kernels/cpu/qgemm.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "runtime/cpu_isa.h"
#include "runtime/graph.h"
#include "runtime/model.h"
#include "runtime/parallel.h"
#include "runtime/session.h"

namespace {

using benchmark::Counter;
using sarai::Isa;
namespace kn = sarai::kernels;
namespace int8 = sarai::int8;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------------------
// Peak probes. Each function runs `iters` iterations of an asm block of
// independent multiply-accumulates (asm volatile: the compiler can neither
// fold nor drop them), accumulators living in registers across iterations.

#define SARAI_X16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define SARAI_X8_LO(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define SARAI_X8_HI(M) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
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

// ---------------------------------------------------------------------------
// Buffers and caches.

struct Buf {
  uint8_t* p = nullptr;
  size_t n = 0;
  Buf() = default;
  explicit Buf(size_t bytes) : n(bytes) {
    const size_t rounded = (bytes + 4095) / 4096 * 4096;
    p = static_cast<uint8_t*>(std::aligned_alloc(4096, rounded == 0 ? 4096 : rounded));
    if (p == nullptr) std::abort();
  }
  Buf(Buf&& o) noexcept : p(std::exchange(o.p, nullptr)), n(o.n) {}
  Buf& operator=(Buf&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  ~Buf() { std::free(p); }
  template <class T>
  T* as() const {
    return reinterpret_cast<T*>(p);
  }
};

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void fill_u8(uint8_t* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t r = splitmix(seed);
    std::memcpy(p + i, &r, std::min<size_t>(8, n - i));
  }
}

// s8 weights in [-127, 127] (the quantizer's symmetric range).
void fill_s8(int8_t* p, size_t n, uint64_t seed) {
  fill_u8(reinterpret_cast<uint8_t*>(p), n, seed);
  for (size_t i = 0; i < n; ++i)
    if (p[i] == -128) p[i] = -127;
}

void fill_f32(float* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<float>(static_cast<int64_t>(splitmix(seed) >> 40) - (1 << 23)) * (1.f / (1 << 23));
}

// The last-level cache of cpu0 in bytes: sysfs first (it describes what this
// CPU shares), then sysconf, then 32 MB; SARAI_BENCH_LLC_MB overrides. (On
// this project's KVM machine sysconf reports 384 MB, the host's total, and
// sysfs 32 MB, what lscpu shows.)
int64_t llc_bytes() {
  static const int64_t v = []() -> int64_t {
    if (const char* e = std::getenv("SARAI_BENCH_LLC_MB"); e != nullptr && std::atoll(e) > 0)
      return std::atoll(e) << 20;
    for (int i = 0; i < 16; ++i) {
      const std::string d = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
      std::ifstream lv(d + "level"), sz(d + "size");
      int level = 0;
      std::string s;
      if (!(lv >> level) || !(sz >> s) || level != 3) continue;
      int64_t bytes = std::atoll(s.c_str());
      const char unit = s.empty() ? 0 : s.back();
      if (unit == 'K') bytes <<= 10;
      if (unit == 'M') bytes <<= 20;
      if (unit == 'G') bytes <<= 30;
      if (bytes > 0) return bytes;
    }
    const long sc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return sc > 0 ? static_cast<int64_t>(sc) : int64_t{32} << 20;
  }();
  return v;
}

constexpr int64_t kSetCap = int64_t{1} << 30;  // bound on one cold weight set

// How many distinct buffers of `bytes` make >= 2x LLC (at least 2; capped so
// the set stays <= 1 GB).
int64_t cold_count(int64_t bytes) {
  const int64_t want = (2 * llc_bytes() + bytes - 1) / bytes;
  return std::max<int64_t>(2, std::min(want, kSetCap / bytes));
}

// One object at a time, shared by every benchmark: the weight set of the last
// (family, K, N) used. Registration walks K x N outermost, so a set is built
// once per shape and family and memory stays bounded to one set.
struct Slot {
  std::string key;
  std::shared_ptr<void> obj;
};
Slot& slot() {
  static Slot s;
  return s;
}
template <class T, class Make>
T& cached(const std::string& key, Make&& make) {
  Slot& s = slot();
  if (s.key != key || !s.obj) {
    s.obj.reset();  // free the previous set before building the next
    s.key.clear();
    s.obj = std::make_shared<T>(make());
    s.key = key;
  }
  return *static_cast<T*>(s.obj.get());
}

// `count` copies of one random weight matrix at distinct, page-aligned
// addresses. Buffer 0 is the "warm" one.
struct WeightSet {
  int64_t bytes = 0, stride = 0, count = 0;
  Buf data;
  const uint8_t* at(int64_t i) const { return data.p + i * stride; }
  static WeightSet make(int64_t bytes, uint64_t seed, bool f32) {
    WeightSet s;
    s.bytes = bytes;
    s.stride = (bytes + 4095) / 4096 * 4096;
    s.count = cold_count(bytes);
    s.data = Buf(static_cast<size_t>(s.stride * s.count));
    if (f32)
      fill_f32(s.data.as<float>(), static_cast<size_t>(bytes / 4), seed);
    else
      fill_s8(s.data.as<int8_t>(), static_cast<size_t>(bytes), seed);
    for (int64_t i = 1; i < s.count; ++i) std::memcpy(s.data.p + i * s.stride, s.data.p, static_cast<size_t>(bytes));
    return s;
  }
  double total_mb() const { return static_cast<double>(stride * count) / (1 << 20); }
};

// N16K4-packed s8 weights plus their per-channel sums.
struct Int8Weights {
  WeightSet set;
  std::vector<int32_t> wsum;
};

Int8Weights& int8_weights(int64_t k, int64_t n) {
  return cached<Int8Weights>("n16k4:" + std::to_string(k) + "x" + std::to_string(n), [&] {
    Int8Weights w;
    w.set = WeightSet::make(int8::packed_size(k, n), 42 + k * 131 + n, /*f32=*/false);
    // Zero the padding (none at the benchmark's shapes; kept for other shapes).
    int8_t* p = reinterpret_cast<int8_t*>(w.set.data.p);
    const int64_t kp = int8::round_up(k, 4), np = int8::round_up(n, 16);
    w.wsum.assign(static_cast<size_t>(n), 0);
    for (int64_t kk = 0; kk < kp; ++kk)
      for (int64_t nn = 0; nn < np; ++nn) {
        int8_t& b = p[int8::packed_index(kk, nn, k)];
        if (kk >= k || nn >= n) b = 0;
        else w.wsum[static_cast<size_t>(nn)] += b;
      }
    for (int64_t i = 1; i < w.set.count; ++i)
      std::memcpy(w.set.data.p + i * w.set.stride, p, static_cast<size_t>(w.set.bytes));
    return w;
  });
}

WeightSet& f32_weights(int64_t k, int64_t n) {
  return cached<WeightSet>("f32:" + std::to_string(k) + "x" + std::to_string(n),
                           [&] { return WeightSet::make(k * n * 4, 7 + k * 131 + n, /*f32=*/true); });
}

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

// ---------------------------------------------------------------------------
// Reporting.

struct GemmArgs {
  int64_t m, k, n;
  int nthr;
  bool cold;
  explicit GemmArgs(const benchmark::State& s)
      : m(s.range(0)), k(s.range(1)), n(s.range(2)), nthr(static_cast<int>(s.range(3))), cold(s.range(4) != 0) {}
};

// `rate_name` (GOPS/GFLOPS) as an iteration-invariant rate in 1000 units,
// peak_frac = achieved / (nthr x 1-thread peak) when there is a peak, and for
// M = 1 the weight stream: bytes_per_second, and bw_frac when cold.
void report(benchmark::State& st, const GemmArgs& g, const char* rate_name, double seconds,
            double peak_1t, double weight_bytes) {
  const double ops = 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
  const double iters = static_cast<double>(st.iterations());
  st.counters[rate_name] = Counter(ops, Counter::kIsIterationInvariantRate, Counter::kIs1000);
  if (seconds <= 0 || iters <= 0) return;
  if (peak_1t > 0) st.counters["peak_frac"] = ops * iters / seconds / (peak_1t * g.nthr);
  if (g.m == 1) {
    st.SetBytesProcessed(static_cast<int64_t>(weight_bytes * iters));
    if (g.cold) st.counters["bw_frac"] = weight_bytes * iters / seconds / memory_bandwidth();
  }
}

std::string set_label(const std::string& what, const GemmArgs& g, int64_t count, double mb) {
  if (!g.cold) return what;
  char buf[96];
  std::snprintf(buf, sizeof buf, ", cold: %lld bufs, %.0f MB", static_cast<long long>(count), mb);
  return what + buf;
}

// ---------------------------------------------------------------------------
// Benchmarks.

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

void BM_peak_avx512_vnni(benchmark::State& st) { run_peak(st, kProbeVnniZmm); }
void BM_peak_avx2_vnni(benchmark::State& st) { run_peak(st, kProbeVnniYmm); }
void BM_peak_avx2(benchmark::State& st) { run_peak(st, kProbeAvx2Pair); }
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

// --- The Conv1d front end of the audio encoders, through the ops themselves
// (a one-node graph in a Session, as `sarai-rt run` executes it): INT8 QConv
// (quantize + im2col + GEMM + epilogue) against the FP32 Conv (oneDNN
// sgemm). Whisper's two convolutions over 30 s of audio (3000 mel frames):
//   conv:1  80 -> 512 channels, k3, pad 1, stride 1 (d_model 512: base)
//   conv:2  512 -> 512, k3, pad 1, stride 2 (-> 1500 positions)
// GOPS counts 2 * M * C * 3 * out_positions (the useful multiply-adds).

struct ConvShape {
  int64_t c, m, t, stride;
  int64_t out() const { return (t + 2 - 3) / stride + 1; }
  double ops() const { return 2.0 * static_cast<double>(m * c * 3 * out()); }
};
constexpr ConvShape kConvs[] = {{80, 512, 3000, 1}, {512, 512, 3000, 2}};

sarai::Attribute ints_attr(std::vector<int64_t> v) {
  sarai::Attribute a;
  a.kind = sarai::Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

int add_initializer(sarai::Graph& g, const std::string& name, sarai::Tensor t) {
  const int id = g.add_value(name);
  g.values[static_cast<size_t>(id)].is_initializer = true;
  g.values[static_cast<size_t>(id)].dtype = t.dtype();
  g.values[static_cast<size_t>(id)].initializer = std::move(t);
  return id;
}

// A model with one Conv (int8 = false) or QConv node over X [1, c, t].
std::shared_ptr<sarai::Model> conv_model(const ConvShape& cs, bool int8) {
  auto model = std::make_shared<sarai::Model>();
  model->path = int8 ? "qconv" : "conv";
  sarai::Graph& g = model->graph;
  g.opset = 17;
  const int x = g.add_value("X");
  g.values[static_cast<size_t>(x)].dtype = sarai::DType::kFloat32;
  g.inputs = {x};
  const int64_t k = cs.c * 3;
  sarai::Node n;
  n.name = "conv";
  n.attrs["kernel_shape"] = ints_attr({3});
  n.attrs["pads"] = ints_attr({1, 1});
  n.attrs["strides"] = ints_attr({cs.stride});
  sarai::Tensor bias = sarai::Tensor::allocate(sarai::DType::kFloat32, {cs.m});
  for (int64_t j = 0; j < cs.m; ++j) bias.mutable_data<float>()[j] = 0.01f * static_cast<float>(j % 7);
  if (int8) {
    sarai::Tensor w = sarai::Tensor::allocate(sarai::DType::kInt8, {sarai::int8::packed_size(k, cs.m)});
    sarai::Tensor wsum = sarai::Tensor::allocate(sarai::DType::kInt32, {cs.m});
    sarai::Tensor scale = sarai::Tensor::allocate(sarai::DType::kFloat32, {cs.m});
    std::memset(w.mutable_raw(), 0, w.nbytes());
    std::memset(wsum.mutable_raw(), 0, wsum.nbytes());
    uint32_t r = 7;
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = 0; j < cs.m; ++j) {
        r = r * 1664525u + 1013904223u;
        const int8_t v = static_cast<int8_t>(static_cast<int>(r >> 24) % 255 - 127);
        w.mutable_data<int8_t>()[sarai::int8::packed_index(kk, j, k)] = v;
        wsum.mutable_data<int32_t>()[j] += v;
      }
    for (int64_t j = 0; j < cs.m; ++j) scale.mutable_data<float>()[j] = 1e-3f;
    n.op_type = "QConv";
    n.domain = "sarai";
    n.attrs["weight_shape"] = ints_attr({cs.m, cs.c, 3});
    n.inputs = {x, add_initializer(g, "W", std::move(w)), add_initializer(g, "scale", std::move(scale)),
                add_initializer(g, "wsum", std::move(wsum)), add_initializer(g, "B", std::move(bias))};
  } else {
    sarai::Tensor w = sarai::Tensor::allocate(sarai::DType::kFloat32, {cs.m, cs.c, 3});
    fill_f32(w.mutable_data<float>(), static_cast<size_t>(w.numel()), 5);
    n.op_type = "Conv";
    n.inputs = {x, add_initializer(g, "W", std::move(w)), add_initializer(g, "B", std::move(bias))};
  }
  const int y = g.add_value("Y");
  n.outputs = {y};
  g.values[static_cast<size_t>(y)].producer = 0;
  g.nodes.push_back(std::move(n));
  g.outputs = {y};
  return model;
}

void run_conv(benchmark::State& st, bool int8) {
  const ConvShape& cs = kConvs[st.range(0) - 1];
  const int nthr = static_cast<int>(st.range(1));
  sarai::max_isa();
  sarai::KernelTable table;
  sarai::register_kernels(table);
  auto session = sarai::Session::create(conv_model(cs, int8), table, sarai::SessionOptions{nthr});
  if (!session) {
    st.SkipWithError(session.message().c_str());
    return;
  }
  sarai::set_num_threads(nthr);
  sarai::Tensor x = sarai::Tensor::allocate(sarai::DType::kFloat32, {1, cs.c, cs.t});
  fill_f32(x.mutable_data<float>(), static_cast<size_t>(x.numel()), 9);
  const double peak = int8 ? int8_peak(kn::qgemm_default_ukernel().isa) : fp32_peak();
  const auto t0 = Clock::now();
  for (auto _ : st) {
    auto y = (*session)->run({{"X", x}});
    if (!y) {
      st.SkipWithError(y.message().c_str());
      return;
    }
    benchmark::DoNotOptimize(y->front().tensor.raw());
  }
  const double s = seconds_since(t0);
  const double iters = static_cast<double>(st.iterations());
  st.counters[int8 ? "GOPS" : "GFLOPS"] = Counter(cs.ops(), Counter::kIsIterationInvariantRate, Counter::kIs1000);
  if (s > 0 && peak > 0) st.counters["peak_frac"] = cs.ops() * iters / s / (peak * nthr);
  st.SetLabel(int8 ? std::string("QConv, ") + sarai::isa_name(kn::qgemm_default_ukernel().isa)
                   : std::string("Conv (dnnl_sgemm), oneDNN cap ") + sarai::onednn_isa_name());
}

void BM_qconv1d(benchmark::State& st) { run_conv(st, true); }
void BM_conv1d_fp32(benchmark::State& st) { run_conv(st, false); }

// --- oneDNN 2.6 (API notes: /work/shared/NOTES-int8.md).

dnnl::engine& dnnl_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// oneDNN-owned weight buffers in the layout a primitive asked for, each
// reordered once (outside any timed loop) from the same random plain matrix.
struct OnednnWeights {
  dnnl::memory::desc desc;
  std::vector<dnnl::memory> bufs;
  double total_mb = 0;
};

OnednnWeights& onednn_weights(int64_t k, int64_t n, const dnnl::memory::desc& desc) {
  const std::string key = "onednn:" + std::to_string(k) + "x" + std::to_string(n);
  Slot& s = slot();
  if (s.key == key && s.obj) {
    auto* w = static_cast<OnednnWeights*>(s.obj.get());
    if (w->desc == desc) return *w;
  }
  s.obj.reset();  // another shape or layout: rebuild
  s.key.clear();
  return cached<OnednnWeights>(key, [&] {
    using namespace dnnl;
    OnednnWeights o;
    o.desc = desc;
    const size_t bytes = desc.get_size();
    const int64_t count = cold_count(static_cast<int64_t>(bytes));
    Buf plain(static_cast<size_t>(k * n));
    fill_s8(plain.as<int8_t>(), plain.n, 42 + k * 131 + n);
    memory src({{k, n}, memory::data_type::s8, memory::format_tag::ab}, dnnl_engine(), plain.p);
    stream strm(dnnl_engine());
    for (int64_t i = 0; i < count; ++i) {
      memory dst(desc, dnnl_engine());
      reorder(src, dst).execute(strm, src, dst);
      o.bufs.push_back(dst);
    }
    strm.wait();
    o.total_mb = static_cast<double>(bytes * count) / (1 << 20);
    return o;
  });
}

enum class OnednnVariant {
  kRuntime,  // weights `any`, runtime per-channel output scales + runtime src zero point, bias
  kStatic,   // weights `any`, per-channel output scales fixed at creation, no zero point, bias
  kN16K4,    // like kStatic, weights = our N16K4 buffers in place as BA16a16b4a
  kN16K4BlockingDesc,  // kN16K4 with the layout spelled as a 2-level blocking (BA16b4a)
};

// N16K4 as the brief spells it: dims {K, N}, inner blocks 16 on N then 4 on
// K, outer strides 64 (per 4-k group) and Kp * 16 (per 16 channels). This is
// exactly what format_tag::BA16b4a builds.
dnnl::memory::desc n16k4_blocking_desc(int64_t k, int64_t n) {
  dnnl_memory_desc_t d;
  std::memset(&d, 0, sizeof d);
  const int64_t kp = int8::round_up(k, 4), np = int8::round_up(n, 16);
  d.ndims = 2;
  d.dims[0] = k;
  d.dims[1] = n;
  d.data_type = dnnl_s8;
  d.padded_dims[0] = kp;
  d.padded_dims[1] = np;
  d.format_kind = dnnl_blocked;
  dnnl_blocking_desc_t& b = d.format_desc.blocking;
  b.strides[0] = 64;
  b.strides[1] = kp * 16;
  b.inner_nblks = 2;
  b.inner_blks[0] = 16;
  b.inner_idxs[0] = 1;
  b.inner_blks[1] = 4;
  b.inner_idxs[1] = 0;
  return dnnl::memory::desc(d);
}

void onednn_int8(benchmark::State& st, OnednnVariant v) {
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  const GemmArgs g(st);
  sarai::max_isa();  // sets oneDNN's ISA cap before its first primitive
  sarai::set_num_threads(g.nthr);
  const Isa isa = std::min(sarai::max_isa(), Isa::kAvx512Vnni);
  const double peak = int8_peak(isa);
  if (g.m == 1 && g.cold) memory_bandwidth();
  const bool n16k4 = v == OnednnVariant::kN16K4 || v == OnednnVariant::kN16K4BlockingDesc;
  // BA16a16b4a: outer blocks B (16 channels) then A (64 k = 16 groups of 4),
  // inside a block [k/4 % 16][n % 16][k % 4], K padded to 64. With K % 64 == 0
  // its bytes are N16K4's:
  //   ((n/16)(K/64) + k/64) 1024 + ((k%64)/4) 64 + (n%16) 4 + k%4
  //   = (n/16) K 16 + (k/4) 64 + (n%16) 4 + k%4 = byte(k, n)
  // (checked numerically against qgemm_u8s8 below, once per shape).
  if (v == OnednnVariant::kN16K4 && g.k % 64 != 0) {
    st.SkipWithError("BA16a16b4a equals N16K4 only when K % 64 == 0");
    return;
  }
  // oneDNN 2.x int8 computes dst = output_scale * (acc + bias): the bias is
  // added before the scales, so ours (acc * cscale + bias) is passed as
  // bias / cscale (equal up to rounding).
  std::vector<float> cscale(static_cast<size_t>(g.n)), bias(static_cast<size_t>(g.n)),
      dnnl_bias(static_cast<size_t>(g.n));
  for (int64_t j = 0; j < g.n; ++j) {
    const size_t u = static_cast<size_t>(j);
    cscale[u] = 1e-4f * static_cast<float>(1 + j % 7);
    bias[u] = 0.01f * static_cast<float>(j % 5);
    dnnl_bias[u] = bias[u] / cscale[u];
  }
  try {
    engine& eng = dnnl_engine();
    const memory::desc src_md({g.m, g.k}, dt::u8, tag::ab), dst_md({g.m, g.n}, dt::f32, tag::ab),
        bias_md({1, g.n}, dt::f32, tag::ab);
    memory::desc wei_md;
    switch (v) {
      case OnednnVariant::kRuntime:
      case OnednnVariant::kStatic: wei_md = memory::desc({g.k, g.n}, dt::s8, tag::any); break;
      case OnednnVariant::kN16K4: wei_md = memory::desc({g.k, g.n}, dt::s8, tag::BA16a16b4a); break;
      case OnednnVariant::kN16K4BlockingDesc: wei_md = n16k4_blocking_desc(g.k, g.n); break;
    }
    primitive_attr attr;
    if (v == OnednnVariant::kRuntime) {
      attr.set_output_scales(1 << 1, {DNNL_RUNTIME_F32_VAL});
      attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    } else {
      attr.set_output_scales(1 << 1, cscale);
    }
    const matmul::primitive_desc pd(matmul::desc(src_md, wei_md, bias_md, dst_md), attr, eng);
    const std::string impl = pd.impl_info_str();
    if (impl.rfind("ref", 0) == 0 && v != OnednnVariant::kN16K4BlockingDesc) {
      st.SkipWithError(("oneDNN picked its reference kernel " + impl).c_str());
      return;
    }
    const matmul prim(pd);
    stream strm(eng);
    Buf a(static_cast<size_t>(g.m * g.k)), y(static_cast<size_t>(g.m * g.n * 4));
    fill_u8(a.p, a.n, 1);
    std::memset(y.p, 0, y.n);
    memory src(src_md, eng, a.p), dst(dst_md, eng, y.p), bmem(bias_md, eng, dnnl_bias.data());
    memory scales({{g.n}, dt::f32, tag::a}, eng, cscale.data());
    int32_t zp = 131;
    memory zpm({{1}, dt::s32, tag::a}, eng, &zp);

    std::vector<memory> wbufs;
    double total_mb = 0;
    if (n16k4) {
      const Int8Weights& w = int8_weights(g.k, g.n);
      if (pd.weights_desc().get_size() != static_cast<size_t>(w.set.bytes)) {
        st.SkipWithError("oneDNN's size of the N16K4 descriptor differs from packed_size");
        return;
      }
      const int64_t count = g.cold ? w.set.count : 1;
      for (int64_t i = 0; i < count; ++i)
        wbufs.emplace_back(pd.weights_desc(), eng, const_cast<uint8_t*>(w.set.at(i)));
      total_mb = w.set.total_mb();
      // Once per shape: oneDNN on our bytes must equal our GEMM (same
      // weights, scales and bias, no zero point).
      static std::set<std::string> checked;
      const std::string key = std::to_string(g.m) + "x" + std::to_string(g.k) + "x" + std::to_string(g.n);
      if (v == OnednnVariant::kN16K4 && checked.insert(key).second) {
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wbufs[0]},
                                             {DNNL_ARG_BIAS, bmem}, {DNNL_ARG_DST, dst}};
        prim.execute(strm, args);
        strm.wait();
        std::vector<float> ref(static_cast<size_t>(g.m * g.n));
        kn::QgemmEpilogue ep;
        ep.cscale = cscale.data();
        ep.bias = bias.data();
        ep.y = ref.data();
        ep.ldy_m = g.n;
        kn::qgemm_u8s8(a.p, g.m, g.k, g.k, reinterpret_cast<const int8_t*>(w.set.at(0)), g.n, ep);
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i)
          worst = std::max(worst, std::fabs(static_cast<double>(ref[i]) - y.as<float>()[i]) /
                                      (1e-3 + std::fabs(static_cast<double>(ref[i]))));
        if (worst > 1e-5) {
          st.SkipWithError(("oneDNN on N16K4 in place disagrees with qgemm_u8s8: rel. error " +
                            std::to_string(worst)).c_str());
          return;
        }
      }
    } else {
      OnednnWeights& w = onednn_weights(g.k, g.n, pd.weights_desc());
      const int64_t count = g.cold ? static_cast<int64_t>(w.bufs.size()) : 1;
      wbufs.assign(w.bufs.begin(), w.bufs.begin() + count);
      total_mb = w.total_mb;
    }
    std::vector<std::unordered_map<int, memory>> args(wbufs.size());
    for (size_t i = 0; i < wbufs.size(); ++i) {
      args[i] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wbufs[i]}, {DNNL_ARG_BIAS, bmem}, {DNNL_ARG_DST, dst}};
      if (v == OnednnVariant::kRuntime) {
        args[i][DNNL_ARG_ATTR_OUTPUT_SCALES] = scales;
        args[i][DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] = zpm;
      }
    }
    size_t i = 0;
    const auto t0 = Clock::now();
    for (auto _ : st) {
      prim.execute(strm, args[i]);
      strm.wait();
      if (++i == args.size()) i = 0;
    }
    report(st, g, "GOPS", seconds_since(t0), peak, static_cast<double>(pd.weights_desc().get_size()));
    st.SetLabel(set_label(impl, g, static_cast<int64_t>(wbufs.size()), g.cold ? total_mb : 0));
  } catch (const dnnl::error& e) {
    st.SkipWithError((std::string("oneDNN: ") + e.what() + " (status " + std::to_string(static_cast<int>(e.status)) + ")").c_str());
  }
}

void BM_onednn_int8_matmul(benchmark::State& st) { onednn_int8(st, OnednnVariant::kRuntime); }
void BM_onednn_int8_matmul_static(benchmark::State& st) { onednn_int8(st, OnednnVariant::kStatic); }
void BM_onednn_int8_n16k4(benchmark::State& st) { onednn_int8(st, OnednnVariant::kN16K4); }
void BM_onednn_int8_n16k4_blocking_desc(benchmark::State& st) {
  onednn_int8(st, OnednnVariant::kN16K4BlockingDesc);
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
