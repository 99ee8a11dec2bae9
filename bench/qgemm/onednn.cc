// qgemm_bench's oneDNN 2.6 comparisons: its INT8 matmul at the same shapes,
// with weights in its own layout or reading our N16K4 bytes in place
// (API notes: /work/shared/NOTES-int8.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/qgemm/common.h"
#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "runtime/parallel.h"

namespace qgemm_bench {

namespace {

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

}  // namespace

void BM_onednn_int8_matmul(benchmark::State& st) { onednn_int8(st, OnednnVariant::kRuntime); }
void BM_onednn_int8_matmul_static(benchmark::State& st) { onednn_int8(st, OnednnVariant::kStatic); }
void BM_onednn_int8_n16k4(benchmark::State& st) { onednn_int8(st, OnednnVariant::kN16K4); }
void BM_onednn_int8_n16k4_blocking_desc(benchmark::State& st) {
  onednn_int8(st, OnednnVariant::kN16K4BlockingDesc);
}

}  // namespace qgemm_bench
