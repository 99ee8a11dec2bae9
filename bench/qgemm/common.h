// What the parts of qgemm_bench share (bench/qgemm_bench.cc lists them):
// page-aligned buffers and their random fill, the one-at-a-time cache of
// weight sets, the machine's measured limits (probes.cc), and the GEMM
// arguments and counters every GEMM benchmark reports.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"
#include "runtime/cpu_isa.h"

namespace qgemm_bench {

using benchmark::Counter;
using sarai::Isa;
namespace kn = sarai::kernels;
namespace int8 = sarai::int8;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0);

// ---------------------------------------------------------------------------
// The machine's limits (probes.cc), each measured once on first use, 1 thread.

// The INT8 peak in ops/s for the micro-kernel that ran (0 for scalar: no peak).
double int8_peak(Isa isa);
// The FP32 peak in flops/s for what oneDNN's sgemm may use under max_isa().
double fp32_peak();
// One thread's streaming read bandwidth in bytes/s.
double memory_bandwidth();

// ---------------------------------------------------------------------------
// Buffers and caches (common.cc).

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

void fill_u8(uint8_t* p, size_t n, uint64_t seed);
// s8 weights in [-127, 127] (the quantizer's symmetric range).
void fill_s8(int8_t* p, size_t n, uint64_t seed);
void fill_f32(float* p, size_t n, uint64_t seed);

// The last-level cache of cpu0 in bytes: sysfs first (it describes what this
// CPU shares), then sysconf, then 32 MB; SARAI_BENCH_LLC_MB overrides. (On
// this project's KVM machine sysconf reports 384 MB, the host's total, and
// sysfs 32 MB, what lscpu shows.)
int64_t llc_bytes();

constexpr int64_t kSetCap = int64_t{1} << 30;  // bound on one cold weight set

// How many distinct buffers of `bytes` make >= 2x LLC (at least 2; capped so
// the set stays <= 1 GB).
int64_t cold_count(int64_t bytes);

// One object at a time, shared by every benchmark: the weight set of the last
// (family, K, N) used. Registration walks K x N outermost, so a set is built
// once per shape and family and memory stays bounded to one set.
struct Slot {
  std::string key;
  std::shared_ptr<void> obj;
};
Slot& slot();
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

Int8Weights& int8_weights(int64_t k, int64_t n);
WeightSet& f32_weights(int64_t k, int64_t n);

// ---------------------------------------------------------------------------
// Reporting (common.cc).

struct GemmArgs {
  int64_t m, k, n;
  int nthr;
  bool cold;
  explicit GemmArgs(const benchmark::State& s)
      : m(s.range(0)), k(s.range(1)), n(s.range(2)), nthr(static_cast<int>(s.range(3))), cold(s.range(4) != 0) {}
};

// `rate_name` (GOPS/GFLOPS) as an iteration-invariant rate in 1000 units,
// peak_frac = achieved / (nthr x 1-thread peak) when there is a peak, and for
void report(benchmark::State& st, const GemmArgs& g, const char* rate_name, double seconds,
            double peak_1t, double weight_bytes);

// ", cold: <count> bufs, <mb> MB" after `what` for a cold run.
std::string set_label(const std::string& what, const GemmArgs& g, int64_t count, double mb);

// ---------------------------------------------------------------------------
// The benchmarks of the other parts, registered in qgemm_bench.cc.

// probes.cc
void BM_peak_avx512_vnni(benchmark::State& st);
void BM_peak_avx2_vnni(benchmark::State& st);
void BM_peak_avx2(benchmark::State& st);
void BM_peak_avx2_madd16(benchmark::State& st);
void BM_peak_avx2_s8s8_sign(benchmark::State& st);
void BM_peak_fp32_fma_zmm(benchmark::State& st);
void BM_peak_fp32_fma_ymm(benchmark::State& st);
void BM_memory_bandwidth(benchmark::State& st);
// conv1d.cc
void BM_qconv1d(benchmark::State& st);
void BM_conv1d_fp32(benchmark::State& st);
// onednn.cc
void BM_onednn_int8_matmul(benchmark::State& st);
void BM_onednn_int8_matmul_static(benchmark::State& st);
void BM_onednn_int8_n16k4(benchmark::State& st);
void BM_onednn_int8_n16k4_blocking_desc(benchmark::State& st);

}  // namespace qgemm_bench
