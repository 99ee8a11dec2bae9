// qgemm_bench's buffers, weight-set cache and reporting (common.h).
#include "bench/qgemm/common.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "kernels/cpu/int8_layout.h"

namespace qgemm_bench {

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void fill_u8(uint8_t* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t r = splitmix(seed);
    std::memcpy(p + i, &r, std::min<size_t>(8, n - i));
  }
}

void fill_s8(int8_t* p, size_t n, uint64_t seed) {
  fill_u8(reinterpret_cast<uint8_t*>(p), n, seed);
  for (size_t i = 0; i < n; ++i)
    if (p[i] == -128) p[i] = -127;
}

void fill_f32(float* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<float>(static_cast<int64_t>(splitmix(seed) >> 40) - (1 << 23)) * (1.f / (1 << 23));
}

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

int64_t cold_count(int64_t bytes) {
  const int64_t want = (2 * llc_bytes() + bytes - 1) / bytes;
  return std::max<int64_t>(2, std::min(want, kSetCap / bytes));
}

Slot& slot() {
  static Slot s;
  return s;
}

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

}  // namespace qgemm_bench
