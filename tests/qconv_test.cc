// Tests for kernels/cpu/qconv.h: the fast QConv / QConvTranspose cores and the
// ops built on them must equal the scalar references of kernels/cpu/qref.h
// (qref::conv_u8s8, qref::conv_transpose_u8s8) exactly:
//   - the integer cores, ASSERT_EQ on every int32, at every ISA level this
//     CPU/OS has (scalar, avx2, avx2_vnni, avx512_vnni; others skipped),
//     swept over 1-D and 2-D (and one 3-D) geometries: kernels 1, 2, 3, 5,
//     symmetric and asymmetric pads, strides 1-3, dilations 1-2, group 1,
//     2 and depthwise, channel tails (1, 3, 15, 16, 17, 33), zero points
//     0, 1, 127, 128, 255, batch 1 and 2, output lengths around the im2col
//     block boundaries, and the extreme data 255 x ±127 / -128;
//   - the fused float epilogue (bias, per-tensor scale, residual, Relu,
//     Gelu), bit for bit (memcmp) against the reference accumulators
//     followed by the reference epilogue's float operations;
//   - the ops QConv (incl. a fused residual + Relu, of y's shape or
//     broadcast) and QConvTranspose, bit for bit against quantize_u8 + the
//     reference core + that epilogue;
//   - results independent of the thread count.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/conv_geometry.h"
#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "kernels/cpu/qconv.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/qref.h"
#include "kernels/cpu/quantize_activations.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/cpu_isa.h"
#include "runtime/parallel.h"
#include "tests/int8_reference.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using kernels::QconvEpilogue;
using kernels::QgemmActivation;
using kernels::QgemmUkernel;
using kernels::qref::ConvProblem;
using test::attr_ints;
using test::attr_string;
using test::make_node;
using test::make_tensor;
using Ints = std::vector<int64_t>;

// One convolution, run as QConv and as QConvTranspose: the geometry
// (test::ConvCase) with W in QConv's layout [M, C/group, k...] (w_shape()
// gives QConvTranspose's), and the activations' zero point.
struct Case : test::ConvCase {
  int zp = 0;
  bool extreme = false;  // x_q = 255 everywhere, w in {127, -127, -128}
  std::vector<uint8_t> zp_c;  // depthwise only: a zero point per input channel (x_per_channel), zp unused
  const uint8_t* zps() const { return zp_c.empty() ? nullptr : zp_c.data(); }

  int64_t batch() const { return x[0]; }
  int64_t C() const { return x[1]; }
  int64_t M() const { return w[0]; }
  // X [batch, C, in...] and W [M, C/group, k...] at the current group.
  void shape(int64_t batch, int64_t C, int64_t M, const Ints& in, const Ints& k) {
    x = {batch, C};
    x.insert(x.end(), in.begin(), in.end());
    w = {M, C / group};
    w.insert(w.end(), k.begin(), k.end());
  }
  std::string str() const {
    return ConvCase::str() + (zp_c.empty() ? " zp " + std::to_string(zp) : std::string(" zp per channel")) +
           (extreme ? " (255 x ±127/-128)" : "");
  }
};

Node conv_node(const char* op, const Case& c, int num_inputs = 5) {
  Node node = make_node(op, num_inputs);
  node.domain = "sarai";
  c.set_attrs(node);
  return node;
}

const Shape& x_shape(const Case& c) { return c.x; }

// The ONNX weight shape.
Shape w_shape(const Case& c, bool transpose) {
  if (!transpose) return c.w;
  Shape s = {c.C(), c.M() / c.group};
  s.insert(s.end(), c.w.begin() + 2, c.w.end());
  return s;
}

ConvProblem problem(const Case& c, bool transpose) {
  ConvProblem p;
  p.batch = c.batch();
  p.C = c.C();
  p.M = c.M();
  p.group = c.group;
  p.packed = !transpose && c.group == 1;
  const Node node = conv_node(transpose ? "QConvTranspose" : "QConv", c);
  const Status st = transpose ? kernels::convgeo::resolve_conv_transpose(node, x_shape(c), w_shape(c, true), c.group, &p.g)
                              : kernels::convgeo::resolve_conv(node, x_shape(c), w_shape(c, false), c.group, &p.g);
  EXPECT_TRUE(st.is_ok()) << st.message() << " for " << c.str();
  return p;
}

struct Data {
  std::vector<uint8_t> xq;
  std::vector<int8_t> w;       // ONNX layout
  std::vector<int8_t> packed;  // N16K4 [K = C*taps, N = M] for group-1 QConv
};

Data make_data(const Case& c, bool transpose, uint32_t seed) {
  std::mt19937 rng(seed);
  Data d;
  d.xq.resize(static_cast<size_t>(numel_of(x_shape(c))));
  d.w.resize(static_cast<size_t>(numel_of(w_shape(c, transpose))));
  for (auto& v : d.xq) v = c.extreme ? 255 : static_cast<uint8_t>(rng() & 255);
  for (auto& v : d.w)
    v = c.extreme ? static_cast<int8_t>(rng() % 3 == 0 ? -128 : rng() & 1 ? 127 : -127)
                  : static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  if (!transpose && c.group == 1) {
    const int64_t K = static_cast<int64_t>(d.w.size()) / c.M();
    d.packed.assign(static_cast<size_t>(int8::packed_size(K, c.M())), 0);
    for (int64_t m = 0; m < c.M(); ++m)
      for (int64_t k = 0; k < K; ++k)
        d.packed[static_cast<size_t>(int8::packed_index(k, m, K))] = d.w[static_cast<size_t>(m * K + k)];
  }
  return d;
}

const int8_t* weights(const Case& c, const Data& d, bool transpose) {
  return !transpose && c.group == 1 ? d.packed.data() : d.w.data();
}

std::vector<int32_t> reference_acc(const ConvProblem& p, const Case& c, const Data& d, bool transpose) {
  std::vector<int32_t> acc(static_cast<size_t>(p.batch * p.M * p.g.out_size()));
  if (transpose)
    kernels::qref::conv_transpose_u8s8(p, d.xq.data(), static_cast<uint8_t>(c.zp), d.w.data(), acc.data());
  else
    kernels::qref::conv_u8s8(p, d.xq.data(), static_cast<uint8_t>(c.zp), weights(c, d, false), acc.data(), c.zps());
  return acc;
}

// The fast core's raw accumulators equal the reference's.
void check_core(const QgemmUkernel* uk, const Case& c, bool transpose, uint32_t seed) {
  const ConvProblem p = problem(c, transpose);
  const Data d = make_data(c, transpose, seed);
  const std::vector<int32_t> want = reference_acc(p, c, d, transpose);
  std::vector<int32_t> got(want.size(), -12345);
  if (transpose)
    kernels::qconv_transpose_u8s8_s32(p, d.xq.data(), static_cast<uint8_t>(c.zp), d.w.data(), got.data(), uk);
  else
    kernels::qconv_u8s8_s32(p, d.xq.data(), static_cast<uint8_t>(c.zp), weights(c, d, false), got.data(), uk,
                            nullptr, c.zps());
  const int64_t os = p.g.out_size();
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(got[i], want[i]) << "@ [b " << static_cast<int64_t>(i) / (p.M * os) << ", m "
                               << static_cast<int64_t>(i) / os % p.M << ", o " << static_cast<int64_t>(i) % os << "] "
                               << (transpose ? "QConvTranspose " : "QConv ") << c.str() << " isa " << isa_name(uk->isa);
}

// The epilogue's inputs; reference_y applies the reference epilogue
// (test::epilogue_ref, then GELU per row) to the reference accumulators.
struct Epi {
  std::vector<int32_t> comp;
  std::vector<float> cscale, bias, residual;
  bool with_comp = true, with_bias = true, with_residual = false;
  QgemmActivation act = QgemmActivation::kNone;

  QconvEpilogue view(float* y) const {
    QconvEpilogue e;
    e.comp = with_comp ? comp.data() : nullptr;
    e.cscale = cscale.data();
    e.bias = with_bias ? bias.data() : nullptr;
    e.residual = with_residual ? residual.data() : nullptr;
    e.act = act;
    e.y = y;
    return e;
  }
};

std::vector<float> reference_y(const std::vector<int32_t>& acc, int64_t M, int64_t os, const Epi& e) {
  std::vector<float> y(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) {
    const size_t m = static_cast<size_t>(static_cast<int64_t>(i) / os % M);
    y[i] = test::epilogue_ref(acc[i], e.with_comp ? e.comp[m] : 0, e.cscale[m], e.with_bias ? e.bias[m] : 0.f,
                              e.with_residual ? &e.residual[i] : nullptr, e.act);
  }
  if (e.act == QgemmActivation::kGelu)
    for (size_t r = 0; r < acc.size(); r += static_cast<size_t>(os))
      kernels::vec_kernels().gelu(y.data() + r, y.data() + r, os);
  return y;
}

::testing::AssertionResult bits_equal(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "at " << i << ": " << got[i] << " vs " << want[i];
  return ::testing::AssertionSuccess();
}

// Every ISA level; the test body skips the ones this CPU/OS lacks.
using QconvIsa = test::QgemmUkernelTest;

INSTANTIATE_TEST_SUITE_P(Levels, QconvIsa,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512Vnni),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

const int kZps[] = {0, 1, 127, 128, 255};
const int64_t kChannels[] = {1, 3, 15, 16, 17, 33};

// 1-D: every kernel x stride x dilation x pads, five times, with channels,
// group, zero point, batch and length cycled through their lists.
std::vector<Case> sweep_1d() {
  std::vector<Case> cases;
  const Ints pads[] = {{0, 0}, {1, 1}, {2, 0}, {0, 3}};
  int i = 0;
  for (int pass = 0; pass < 5; ++pass, i += 7)  // each pass pairs the lists differently
  for (int64_t k : {1, 2, 3, 5})
    for (int64_t s : {1, 2, 3})
      for (int64_t dil : {1, 2})
        for (const Ints& pd : pads) {
          Case c;
          c.strides = {s};
          c.dilations = {dil};
          c.pads = pd;
          c.zp = kZps[i % 5];
          const int64_t batch = 1 + (i / 3) % 2;
          const int64_t ek = (k - 1) * dil + 1;
          const Ints in = {std::max<int64_t>(ek - pd[0] - pd[1], 1) + (i * 7) % 23};
          const int kind = i % 3;  // group 1, 2, depthwise
          const int64_t ch = kChannels[(i / 2) % 6];
          if (kind == 0) {
            c.shape(batch, ch, kChannels[(i + 3) % 6], in, {k});
          } else if (kind == 1) {
            c.group = 2;
            c.shape(batch, 2 * ((ch + 1) / 2), 2 * ((kChannels[(i + 1) % 6] + 1) / 2), in, {k});
          } else {
            c.group = ch;
            c.shape(batch, ch, ch * (1 + i % 2), in, {k});  // depthwise, multiplier 1 or 2
          }
          cases.push_back(c);
          ++i;
        }
  return cases;
}

// 2-D (and one 3-D) geometries.
std::vector<Case> sweep_2d() {
  std::vector<Case> cases;
  struct G {
    Ints in, k, s, d, pads;
  };
  const G geos[] = {
      {{9, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}},
      {{7, 10}, {3, 3}, {2, 2}, {1, 1}, {0, 1, 2, 0}},
      {{6, 6}, {1, 1}, {1, 1}, {1, 1}, {}},
      {{8, 9}, {2, 3}, {1, 2}, {2, 1}, {1, 0, 0, 1}},
      {{11, 7}, {5, 5}, {3, 1}, {1, 1}, {2, 2, 2, 2}},
      {{5, 13}, {1, 3}, {1, 3}, {1, 2}, {0, 2, 0, 1}},
      {{4, 4}, {3, 3}, {1, 1}, {2, 2}, {2, 2, 2, 2}},
      {{5, 6, 4}, {3, 2, 2}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1, 0, 1, 0}},
      {{20, 9}, {17, 3}, {1, 2}, {1, 1}, {8, 1, 0, 1}},  // > 16 kernel lines: im2col's generic path
      {{9, 30}, {2, 11}, {2, 1}, {1, 1}, {1, 5, 0, 5}},   // kernel lines wider than 8 bytes
  };
  int i = 0;
  for (int pass = 0; pass < 3; ++pass, i += 5)  // each pass pairs the lists differently
  for (const G& g : geos)
    for (int kind = 0; kind < 3; ++kind) {
      Case c;
      c.strides = g.s;
      c.dilations = g.d;
      c.pads = g.pads;
      c.zp = kZps[i % 5];
      const int64_t batch = 1 + i % 2;
      const int64_t ch = kChannels[(i * 5) % 6];
      if (kind == 0) {
        c.shape(batch, ch, kChannels[(i + 2) % 6], g.in, g.k);
      } else if (kind == 1) {
        c.group = 2;
        c.shape(batch, 2 * ((ch + 1) / 2), 2 * ((kChannels[(i + 4) % 6] + 1) / 2), g.in, g.k);
      } else {
        c.group = ch;
        c.shape(batch, ch, ch, g.in, g.k);
      }
      cases.push_back(c);
      ++i;
    }
  return cases;
}

TEST_P(QconvIsa, CoreEqualsReference1D) {
  uint32_t seed = 1;
  for (const Case& c : sweep_1d()) ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
}

TEST_P(QconvIsa, CoreEqualsReference2D) {
  uint32_t seed = 100;
  for (const Case& c : sweep_2d()) ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
}

// Group 1 over every channel tail pair and zero point, 1-D k3 pad 1.
TEST_P(QconvIsa, CoreEqualsReferenceOverChannelTails) {
  uint32_t seed = 200;
  for (int64_t C : kChannels)
    for (int64_t M : kChannels) {
      Case c;
      c.shape(1, C, M, {19}, {3});
      c.pads = {1, 1};
      c.zp = kZps[seed % 5];
      ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
    }
}

// Depthwise on lines long enough for several of dw_row's 16-output tiles
// and their tails: the recognizer's and detector's kernels and strides
// (3x3 and 5x5, strides (1,1), (2,1), (1,2), (2,2)), a dilated 7x7 and a
// channel multiplier of 2.
TEST_P(QconvIsa, DepthwiseCoreEqualsReferenceOnWideLines) {
  struct G {
    Ints in, k, s, d, pads;
    int64_t mult;
  };
  const G geos[] = {
      {{12, 80}, {5, 5}, {1, 1}, {1, 1}, {2, 2, 2, 2}, 1},
      {{12, 80}, {5, 5}, {2, 1}, {1, 1}, {2, 2, 2, 2}, 1},
      {{24, 67}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1},
      {{12, 161}, {3, 3}, {1, 2}, {1, 1}, {1, 1, 1, 1}, 2},
      {{17, 49}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 1},
      {{13, 40}, {7, 7}, {1, 1}, {2, 2}, {6, 6, 6, 6}, 1},
      {{5, 33}, {3, 3}, {1, 3}, {1, 1}, {0, 1, 0, 1}, 1},
  };
  uint32_t seed = 300;
  int i = 0;
  for (const G& g : geos) {
    Case c;
    c.strides = g.s;
    c.dilations = g.d;
    c.pads = g.pads;
    c.zp = kZps[i % 5];
    c.group = 6 + i % 3;
    c.shape(1 + i % 2, c.group, c.group * g.mult, g.in, g.k);
    ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
    ++i;
  }
}

// Every zero point at group 1, 2 and depthwise, padded on both sides.
TEST_P(QconvIsa, CoreEqualsReferenceForEveryZeroPoint) {
  uint32_t seed = 300;
  for (int zp : kZps)
    for (int64_t group : {1, 2, 16}) {
      Case c;
      c.group = group;
      c.shape(2, 16, group == 16 ? 16 : 17 + (group == 2), {7, 9}, {3, 3});
      c.pads = {2, 1, 0, 2};
      c.zp = zp;
      ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
    }
}

// Output lengths around the im2col block sizes: 1536 rows when K and M are
// small, 192 (the minimum) when K = C * taps is large (here 2048 * 3).
TEST_P(QconvIsa, CoreEqualsReferenceAroundBlockBoundaries) {
  uint32_t seed = 400;
  for (int64_t out : {1535, 1536, 1537, 3073}) {
    Case c;
    c.shape(out == 1537 ? 2 : 1, 5, 17, {out}, {3});
    c.pads = {1, 1};
    c.zp = 128;
    ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
  }
  for (int64_t out : {191, 192, 193, 385}) {
    Case c;
    c.shape(1, 2048, 3, {2 * out}, {3});
    c.strides = {2};
    c.pads = {1, 0};
    c.zp = 1;
    ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
  }
}

// Depthwise with a zero point per input channel (QConv's x_per_channel):
// every depthwise case of the 1-D and 2-D sweeps and the wide lines, each
// channel padding with its own zero point (0 and 255 among them), then the
// extreme data with 255 everywhere; and the reference itself reads
// channel c's zero point at channel c's padded taps (a hand-made case).
TEST_P(QconvIsa, DepthwisePerChannelZeroPointsEqualReference) {
  std::vector<Case> cases;
  for (const std::vector<Case>& sweep : {sweep_1d(), sweep_2d()})
    for (const Case& c : sweep)
      if (c.group > 1 && c.group == c.C()) cases.push_back(c);
  Case wide;
  wide.group = 24;
  wide.shape(1, 24, 48, {12, 80}, {5, 5});
  wide.strides = {2, 1};
  wide.pads = {2, 2, 2, 2};
  cases.push_back(wide);
  ASSERT_GT(cases.size(), 30u);
  uint32_t seed = 1200;
  for (Case& c : cases) {
    c.zp_c.resize(static_cast<size_t>(c.C()));
    for (size_t i = 0; i < c.zp_c.size(); ++i) c.zp_c[i] = static_cast<uint8_t>(i == 0 ? 255 : i == 1 ? 0 : (seed * 7 + i * 97) % 256);
    ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
  }
  Case x;
  x.group = 34;
  x.shape(2, 34, 34, {40}, {5});
  x.pads = {2, 2};
  x.extreme = true;
  x.zp_c.assign(34, 255);
  x.zp_c[3] = 0;
  ASSERT_NO_FATAL_FAILURE(check_core(uk_, x, false, seed++));

  Case two;  // 2 channels, k3 pad 1 over 2 inputs, weights 1: out[o] = sum of the 3 taps
  two.group = 2;
  two.shape(1, 2, 2, {2}, {3});
  two.pads = {1, 1};
  two.zp_c = {10, 200};
  const ConvProblem p = problem(two, false);
  const std::vector<uint8_t> xq = {1, 2, 3, 4};
  const std::vector<int8_t> w(6, 1);
  std::vector<int32_t> acc(4);
  kernels::qref::conv_u8s8(p, xq.data(), 0, w.data(), acc.data(), two.zps());
  EXPECT_EQ(acc, (std::vector<int32_t>{10 + 1 + 2, 1 + 2 + 10, 200 + 3 + 4, 3 + 4 + 200}));
}

// 1x1 convolutions (the pointwise path, qconv_pointwise.cc): channels over
// every K tail (K % 4) and past one micro-kernel call (K > 2048), outputs
// over panel tails and several panel groups, positions over block tails
// (blocks of <= 64), 1-D, 2-D and 3-D, batch 1 and 2, every zero point;
// then 255 x ±127 / -128 everywhere. And a 1x1 that is not pointwise
// (stride 2, padding) still through im2col.
TEST_P(QconvIsa, PointwiseCoreEqualsReference) {
  const Ints spatial[] = {{1}, {67}, {7, 9}, {12, 80}, {3, 5, 7}, {1, 1}};
  const int64_t cs[] = {1, 3, 17, 64, 131, 2050};
  const int64_t ms[] = {1, 16, 33, 80, 130};
  uint32_t seed = 800;
  int i = 0;
  for (const Ints& in : spatial)
    for (int64_t C : cs) {
      if (C > 200 && numel_of(in) > 100) continue;  // keep the reference's time small
      Case c;
      const Ints k(in.size(), 1);
      c.shape(1 + i % 2, C, ms[i % 5], in, k);
      c.zp = kZps[i % 5];
      ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
      ++i;
    }
  Case x;
  x.shape(2, 34, 50, {3, 70}, {1, 1});
  x.zp = 255;
  x.extreme = true;
  ASSERT_NO_FATAL_FAILURE(check_core(uk_, x, false, seed++));
  Case strided;
  strided.shape(1, 9, 20, {8, 30}, {1, 1});
  strided.strides = {2, 1};
  strided.pads = {0, 1, 0, 1};
  strided.zp = 3;
  ASSERT_NO_FATAL_FAILURE(check_core(uk_, strided, false, seed++));
}

// 255 x ±127 / -128 everywhere: the largest products, every group kind.
TEST_P(QconvIsa, CoreExactAt255AndExtremeWeights) {
  uint32_t seed = 500;
  for (int64_t group : {1, 2, 34}) {
    Case c;
    c.group = group;
    c.shape(1, 34, group == 34 ? 34 : 18, {40}, {5});
    c.pads = {2, 2};
    c.zp = 255;
    c.extreme = true;
    ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, false, seed++));
    ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, true, seed++));
  }
}

std::vector<Case> transpose_cases() {
  std::vector<Case> cases;
  int i = 0;
  for (int64_t k : {1, 2, 3, 5})
    for (int64_t s : {1, 2, 3})
      for (int64_t dil : {1, 2}) {
        Case c;
        c.strides = {s};
        c.dilations = {dil};
        const int64_t ek = (k - 1) * dil + 1;
        c.pads = {std::min<int64_t>(i % 3, ek - 1), std::min<int64_t>((i / 3) % 2, ek - 1)};
        if (s > 1 && i % 2) c.output_padding = {s - 1};
        c.zp = kZps[i % 5];
        const int64_t batch = 1 + i % 2;
        const Ints in = {3 + (i * 5) % 11};
        const int kind = i % 3;
        c.group = kind == 0 ? 1 : kind == 1 ? 2 : 0;
        const int64_t ch = kChannels[(i / 3) % 6];
        if (c.group == 0) {
          c.group = ch;
          c.shape(batch, ch, ch, in, {k});
        } else {
          c.shape(batch, c.group * ((ch + c.group - 1) / c.group),
                  c.group * ((kChannels[(i + 1) % 6] + c.group - 1) / c.group), in, {k});
        }
        cases.push_back(c);
        ++i;
      }
  // 2-D.
  Case a;
  a.shape(2, 17, 15, {5, 6}, {3, 3});
  a.strides = {2, 2};
  a.pads = {1, 0, 0, 1};
  a.output_padding = {1, 0};
  a.zp = 127;
  cases.push_back(a);
  Case b = a;
  b.strides = {1, 3};
  b.dilations = {2, 1};
  b.pads = {0, 2, 1, 0};
  b.output_padding = {0, 2};
  b.group = 3;
  b.shape(2, 6, 9, {5, 6}, {2, 3});
  b.zp = 1;
  cases.push_back(b);
  return cases;
}

TEST_P(QconvIsa, TransposeCoreEqualsReference) {
  uint32_t seed = 600;
  for (const Case& c : transpose_cases()) ASSERT_NO_FATAL_FAILURE(check_core(uk_, c, true, seed++));
}

// The fused float epilogue, bit for bit: bias or not, residual, Relu, Gelu.
TEST_P(QconvIsa, FusedEpilogueEqualsReferenceBitForBit) {
  std::vector<Case> cases;
  Case g1;
  g1.shape(2, 15, 33, {37}, {3});
  g1.pads = {1, 1};
  g1.zp = 128;
  cases.push_back(g1);
  Case dw = g1;
  dw.group = 16;
  dw.shape(2, 16, 16, {37}, {3});
  dw.strides = {2};
  cases.push_back(dw);
  Case g2;
  g2.group = 2;
  g2.shape(1, 6, 4, {6, 7}, {3, 2});
  g2.pads = {1, 0, 1, 1};
  g2.zp = 3;
  cases.push_back(g2);
  Case pw;  // 1x1: the pointwise path, two blocks and a tail, three panel groups
  pw.shape(2, 21, 40, {9, 17}, {1, 1});
  pw.zp = 77;
  cases.push_back(pw);
  uint32_t seed = 700;
  for (const Case& c : cases)
    for (bool transpose : {false, true})
      for (int variant = 0; variant < 4; ++variant) {
        SCOPED_TRACE(c.str() + (transpose ? " transpose" : "") + " variant " + std::to_string(variant) +
                     " isa " + isa_name(uk_->isa));
        const ConvProblem p = problem(c, transpose);
        const Data d = make_data(c, transpose, seed++);
        const std::vector<int32_t> acc = reference_acc(p, c, d, transpose);
        const int64_t os = p.g.out_size();
        std::mt19937 rng(seed);
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        Epi e;
        e.comp.resize(static_cast<size_t>(c.M()));
        e.cscale.resize(static_cast<size_t>(c.M()));
        e.bias.resize(static_cast<size_t>(c.M()));
        for (int64_t m = 0; m < c.M(); ++m) {
          e.comp[static_cast<size_t>(m)] = static_cast<int32_t>(rng() % 20001) - 10000;
          e.cscale[static_cast<size_t>(m)] = 1e-4f * (1.f + u(rng));
          e.bias[static_cast<size_t>(m)] = u(rng);
        }
        e.residual.resize(acc.size());
        for (float& r : e.residual) r = u(rng);
        e.with_comp = !transpose;
        e.with_bias = variant != 1;
        e.with_residual = variant >= 2;
        e.act = variant == 2 ? QgemmActivation::kRelu : variant == 3 ? QgemmActivation::kGelu : QgemmActivation::kNone;
        const std::vector<float> want = reference_y(acc, c.M(), os, e);
        std::vector<float> got(acc.size(), -7.f);
        if (transpose)
          kernels::qconv_transpose_u8s8(p, d.xq.data(), static_cast<uint8_t>(c.zp), d.w.data(), e.view(got.data()), uk_);
        else
          kernels::qconv_u8s8(p, d.xq.data(), static_cast<uint8_t>(c.zp), weights(c, d, false), e.view(got.data()), uk_);
        ASSERT_TRUE(bits_equal(got, want));
      }
}

TEST(Qconv, ResultsDoNotDependOnThreadCount) {
  const int saved = num_threads();
  std::vector<Case> cases;
  Case g1;
  g1.shape(2, 48, 40, {700}, {3});
  g1.strides = {2};
  g1.pads = {1, 1};
  g1.zp = 5;
  cases.push_back(g1);
  Case dw = g1;
  dw.group = 48;
  dw.shape(2, 48, 48, {700}, {3});
  cases.push_back(dw);
  Case dw2 = dw;  // 2-D, OCR-like, past the single-thread cutoff
  dw2.group = 40;
  dw2.shape(1, 40, 40, {12, 80}, {5, 5});
  dw2.strides = {1, 1};
  dw2.pads = {2, 2, 2, 2};
  cases.push_back(dw2);
  Case pw = g1;  // 1x1: the pointwise path's blocks split over the threads
  pw.shape(2, 40, 70, {7, 45}, {1, 1});
  pw.strides = {1, 1};
  pw.pads = {0, 0, 0, 0};
  cases.push_back(pw);
  for (const Case& c : cases)
    for (bool transpose : {false, true}) {
      const ConvProblem p = problem(c, transpose);
      const Data d = make_data(c, transpose, 9);
      std::vector<int32_t> first;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<int32_t> got(static_cast<size_t>(p.batch * p.M * p.g.out_size()));
        if (transpose)
          kernels::qconv_transpose_u8s8_s32(p, d.xq.data(), static_cast<uint8_t>(c.zp), d.w.data(), got.data());
        else
          kernels::qconv_u8s8_s32(p, d.xq.data(), static_cast<uint8_t>(c.zp), weights(c, d, false), got.data());
        if (first.empty()) {
          first = got;
          EXPECT_EQ(got, reference_acc(p, c, d, transpose)) << c.str();
        } else {
          EXPECT_EQ(got, first) << threads << " threads, " << c.str();
        }
      }
    }
  set_num_threads(saved);
}

// The group-1 im2col path with the fused float epilogue at 1, 2 and 3
// threads, bit for bit against the reference: a det-stem-like conv (K = 27)
// with seven blocks of output positions (each thread unfolds, multiplies
// and writes whole blocks), a big-K one with a single block and one with
// two blocks (fewer blocks than threads: the threads share each block),
// every epilogue variant (GELU included, whose rows follow the blocks).
TEST(Qconv, Im2colEpilogueDoesNotDependOnThreadCount) {
  const int saved = num_threads();
  std::vector<Case> cases;
  Case stem;  // 3x3 stride 2 over 160x240: 80x120 = 9600 positions, 7 blocks of <= 1536
  stem.shape(1, 3, 20, {160, 240}, {3, 3});
  stem.strides = {2, 2};
  stem.pads = {1, 1, 1, 1};
  stem.zp = 9;
  cases.push_back(stem);
  Case big;  // K = 512 * 3: one block of 150 positions
  big.shape(1, 512, 40, {300}, {3});
  big.strides = {2};
  big.pads = {1, 1};
  big.zp = 200;
  cases.push_back(big);
  Case two = big;  // two images, one block each
  two.shape(2, 512, 24, {300}, {3});
  cases.push_back(two);
  uint32_t seed = 900;
  for (const Case& c : cases)
    for (int variant = 0; variant < 4; ++variant) {
      SCOPED_TRACE(c.str() + " variant " + std::to_string(variant));
      const ConvProblem p = problem(c, false);
      const Data d = make_data(c, false, seed++);
      const std::vector<int32_t> acc = reference_acc(p, c, d, false);
      std::mt19937 rng(seed);
      std::uniform_real_distribution<float> u(-1.f, 1.f);
      Epi e;
      for (int64_t m = 0; m < c.M(); ++m) {
        e.comp.push_back(static_cast<int32_t>(rng() % 20001) - 10000);
        e.cscale.push_back(1e-4f * (1.f + u(rng)));
        e.bias.push_back(u(rng));
      }
      e.residual.resize(acc.size());
      for (float& r : e.residual) r = u(rng);
      e.with_bias = variant != 1;
      e.with_residual = variant >= 2;
      e.act = variant == 2 ? QgemmActivation::kRelu : variant == 3 ? QgemmActivation::kGelu : QgemmActivation::kNone;
      const std::vector<float> want = reference_y(acc, c.M(), p.g.out_size(), e);
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> got(acc.size(), -7.f);
        kernels::qconv_u8s8(p, d.xq.data(), static_cast<uint8_t>(c.zp), weights(c, d, false), e.view(got.data()));
        EXPECT_TRUE(bits_equal(got, want)) << threads << " threads";
        std::vector<int32_t> got_acc(acc.size());
        kernels::qconv_u8s8_s32(p, d.xq.data(), static_cast<uint8_t>(c.zp), weights(c, d, false), got_acc.data());
        EXPECT_EQ(got_acc, acc) << threads << " threads";
      }
    }
  set_num_threads(saved);
}

// ---- The ops: quantize_u8 + core + epilogue, against the reference pieces.

struct OpInputs {
  std::vector<Tensor> inputs;
  std::vector<float> x, scale, bias, residual;
  std::vector<int32_t> wsum;
  Data d;
};

// residual: none (empty), y's shape, or [M, 1...] (broadcast by the op after its core).
OpInputs op_inputs(const Case& c, bool transpose, bool bias, bool per_tensor, const Shape& residual,
                   uint32_t seed) {
  OpInputs in;
  in.d = make_data(c, transpose, seed);
  std::mt19937 rng(seed + 1);
  std::uniform_real_distribution<float> u(-1.5f, 2.5f);
  in.x.resize(static_cast<size_t>(numel_of(x_shape(c))));
  for (float& v : in.x) v = u(rng);
  in.scale.resize(per_tensor ? 1 : static_cast<size_t>(c.M()));
  for (float& v : in.scale) v = 0.001f + 0.01f * (u(rng) + 1.5f);
  in.bias.resize(static_cast<size_t>(c.M()));
  for (float& v : in.bias) v = u(rng);
  in.wsum.assign(static_cast<size_t>(c.M()), 0);
  if (!transpose) {
    const size_t per = in.d.w.size() / static_cast<size_t>(c.M());
    for (size_t i = 0; i < in.d.w.size(); ++i) in.wsum[i / per] += in.d.w[i];
  }
  Tensor w = !transpose && c.group == 1 ? make_tensor<int8_t>({static_cast<int64_t>(in.d.packed.size())}, in.d.packed)
                                        : make_tensor<int8_t>(w_shape(c, transpose), in.d.w);
  in.inputs = {make_tensor<float>(x_shape(c), in.x), w,
               make_tensor<float>({static_cast<int64_t>(in.scale.size())}, in.scale),
               make_tensor<int32_t>({c.M()}, in.wsum)};
  in.inputs.push_back(bias ? make_tensor<float>({c.M()}, in.bias) : Tensor());
  if (!residual.empty()) {
    in.residual.resize(static_cast<size_t>(numel_of(residual)));
    for (float& v : in.residual) v = u(rng);
    in.inputs.push_back(make_tensor<float>(residual, in.residual));
  }
  return in;
}

enum class Fused { kNone, kResidualRelu, kBroadcastResidualRelu };

// x_per_channel: the QConv carries x_per_channel = 1 (depthwise), so X is
// quantized per channel (quantize_u8_per_channel) and each output channel's
// constants take its input channel's scale and zero point.
void check_op(const Case& c, bool transpose, bool bias, bool per_tensor, Fused fused, uint32_t seed,
              bool x_per_channel = false) {
  const bool residual_relu = fused != Fused::kNone;
  SCOPED_TRACE(c.str() + (transpose ? " QConvTranspose" : " QConv") + (bias ? " bias" : "") +
               (per_tensor ? " per-tensor" : "") + (residual_relu ? " residual+Relu" : "") +
               (fused == Fused::kBroadcastResidualRelu ? " (broadcast)" : "") + (x_per_channel ? " x per channel" : ""));
  const ConvProblem p0 = problem(c, transpose);
  Shape ys = {c.batch(), c.M()};
  ys.insert(ys.end(), p0.g.out.begin(), p0.g.out.end());
  Shape rs;
  if (fused == Fused::kResidualRelu) rs = ys;
  if (fused == Fused::kBroadcastResidualRelu) rs = Shape(ys.size() - 1, 1), rs[0] = c.M();  // [M, 1...]
  OpInputs in = op_inputs(c, transpose, bias, per_tensor, rs, seed);
  Node node = conv_node(transpose ? "QConvTranspose" : "QConv", c, residual_relu ? 6 : 5);
  node.attrs["weight_shape"] = attr_ints(w_shape(c, transpose));
  if (residual_relu) node.attrs["activation"] = attr_string("Relu");
  if (x_per_channel) node.attrs["x_per_channel"] = test::attr_int(1);
  auto out = test::run_kernel(transpose ? kernels::QConvTranspose : kernels::QConv, node, in.inputs);
  ASSERT_TRUE(out.has_value()) << out.message();
  const Tensor& y = (*out)[0];

  // The reference: the op's quantization, the scalar core, the epilogue.
  Case cq = c;
  in.d.xq.assign(in.x.size(), 0);
  std::vector<kernels::QuantParams> xps;  // per input channel, or the one per-tensor pair
  if (x_per_channel) {
    xps.resize(static_cast<size_t>(c.C()));
    kernels::quantize_u8_per_channel(in.x.data(), c.batch(), c.C(), numel_of(x_shape(c)) / (c.batch() * c.C()),
                                     in.d.xq.data(), xps.data());
    for (const kernels::QuantParams& q : xps) cq.zp_c.push_back(q.zero_point);
  } else {
    xps.push_back(kernels::quantize_u8(in.x.data(), static_cast<int64_t>(in.x.size()), in.d.xq.data()));
    cq.zp = xps[0].zero_point;
  }
  const ConvProblem p = problem(cq, transpose);
  const std::vector<int32_t> acc = reference_acc(p, cq, in.d, transpose);
  Epi e;
  for (int64_t m = 0; m < c.M(); ++m) {
    const kernels::QuantParams& xp = xps[x_per_channel ? static_cast<size_t>(m / (c.M() / c.C())) : 0];
    e.cscale.push_back(xp.scale * in.scale[per_tensor ? 0 : static_cast<size_t>(m)]);
    e.comp.push_back(static_cast<int32_t>(int64_t{xp.zero_point} * in.wsum[static_cast<size_t>(m)]));
  }
  e.bias = in.bias;
  e.residual = in.residual;
  if (fused == Fused::kBroadcastResidualRelu) {  // r[m] at every (b, m, o)
    e.residual.resize(acc.size());
    for (size_t i = 0; i < acc.size(); ++i)
      e.residual[i] = in.residual[static_cast<size_t>(static_cast<int64_t>(i) / p.g.out_size() % c.M())];
  }
  e.with_comp = !transpose;
  e.with_bias = bias;
  e.with_residual = residual_relu;
  e.act = residual_relu ? QgemmActivation::kRelu : QgemmActivation::kNone;
  const std::vector<float> want = reference_y(acc, c.M(), p.g.out_size(), e);
  ASSERT_EQ(y.shape(), ys);
  ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size()));
  const std::vector<float> got(y.data<float>(), y.data<float>() + y.numel());
  EXPECT_TRUE(bits_equal(got, want));
}

TEST(QconvOp, QConvEqualsReferenceBitForBit) {
  Case whisper;  // the whisper front end, shrunk
  whisper.shape(1, 20, 33, {300}, {3});
  whisper.pads = {1, 1};
  Case down = whisper;
  down.strides = {2};
  down.shape(2, 33, 17, {300}, {3});
  Case img;
  img.shape(1, 3, 16, {9, 8}, {3, 3});
  img.strides = {2, 1};
  img.pads = {1, 0, 1, 2};
  Case dw = img;
  dw.group = 15;
  dw.shape(1, 15, 15, {9, 8}, {3, 3});
  dw.dilations = {2, 1};
  Case g2 = img;
  g2.group = 2;
  g2.shape(1, 6, 4, {9, 8}, {3, 3});
  uint32_t seed = 800;
  for (const Case& c : {whisper, down, img, dw, g2}) {
    ASSERT_NO_FATAL_FAILURE(check_op(c, false, true, false, Fused::kNone, seed++));
    ASSERT_NO_FATAL_FAILURE(check_op(c, false, false, true, Fused::kNone, seed++));
    ASSERT_NO_FATAL_FAILURE(check_op(c, false, true, false, Fused::kResidualRelu, seed++));
    ASSERT_NO_FATAL_FAILURE(check_op(c, false, false, false, Fused::kBroadcastResidualRelu, seed++));
  }
}

// x_per_channel = 1 on depthwise convs (multiplier 1 and 2, batch 1 and 2,
// 1-D and 2-D, with and without bias, per-tensor weight scale, fused
// residual + Relu), and on a one-channel conv (group 1: the per-tensor
// path, the same numbers).
TEST(QconvOp, QConvWithXPerChannelEqualsReferenceBitForBit) {
  Case dw;
  dw.group = 15;
  dw.shape(1, 15, 15, {9, 8}, {3, 3});
  dw.strides = {2, 1};
  dw.pads = {1, 0, 1, 2};
  dw.dilations = {2, 1};
  Case dw2;  // multiplier 2, two images, 1-D
  dw2.group = 6;
  dw2.shape(2, 6, 12, {40}, {5});
  dw2.pads = {2, 2};
  Case ocr;  // OCR-like, past the single-thread cutoff
  ocr.group = 40;
  ocr.shape(1, 40, 40, {12, 80}, {5, 5});
  ocr.pads = {2, 2, 2, 2};
  Case one;
  one.shape(1, 1, 1, {30}, {3});
  one.pads = {1, 1};
  uint32_t seed = 850;
  for (const Case& c : {dw, dw2, ocr, one}) {
    ASSERT_NO_FATAL_FAILURE(check_op(c, false, true, false, Fused::kNone, seed++, true));
    ASSERT_NO_FATAL_FAILURE(check_op(c, false, false, true, Fused::kNone, seed++, true));
    ASSERT_NO_FATAL_FAILURE(check_op(c, false, true, false, Fused::kResidualRelu, seed++, true));
  }
}

// Why per channel: a depthwise conv after a BatchNorm whose channels'
// ranges differ by 1000x. Per tensor, the narrow channel's inputs fall into
// a few u8 steps and its outputs lose their shape; per channel it keeps
// 256 levels. Against the FP32 conv, per output channel.
TEST(QconvOp, XPerChannelKeepsANarrowChannelsResolution) {
  Case c;
  c.group = 2;
  c.shape(1, 2, 2, {64}, {3});
  c.pads = {1, 1};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(128), wf = {0.5f, -0.25f, 0.75f, -0.5f, 1.f, 0.25f};
  for (int i = 0; i < 128; ++i) x[static_cast<size_t>(i)] = (i < 64 ? 5.f : 0.005f) * u(rng);
  // The FP32 reference, per output channel.
  std::vector<float> want(128);
  for (int ch = 0; ch < 2; ++ch)
    for (int o = 0; o < 64; ++o) {
      float s = 0.f;
      for (int r = 0; r < 3; ++r) {
        const int i = o + r - 1;
        if (i >= 0 && i < 64) s += x[static_cast<size_t>(ch * 64 + i)] * wf[static_cast<size_t>(ch * 3 + r)];
      }
      want[static_cast<size_t>(ch * 64 + o)] = s;
    }
  // Weights quantized per output channel (scale = max |w| / 127).
  std::vector<int8_t> wq(6);
  std::vector<float> scale(2);
  std::vector<int32_t> wsum(2, 0);
  for (int ch = 0; ch < 2; ++ch) {
    float mx = 0.f;
    for (int r = 0; r < 3; ++r) mx = std::max(mx, std::abs(wf[static_cast<size_t>(ch * 3 + r)]));
    scale[static_cast<size_t>(ch)] = mx / 127.f;
    for (int r = 0; r < 3; ++r) {
      const int8_t q = static_cast<int8_t>(std::nearbyint(wf[static_cast<size_t>(ch * 3 + r)] / scale[static_cast<size_t>(ch)]));
      wq[static_cast<size_t>(ch * 3 + r)] = q;
      wsum[static_cast<size_t>(ch)] += q;
    }
  }
  const std::vector<Tensor> inputs = {make_tensor<float>({1, 2, 64}, x), make_tensor<int8_t>({2, 1, 3}, wq),
                                      make_tensor<float>({2}, scale), make_tensor<int32_t>({2}, wsum)};
  double cos_narrow[2] = {0, 0};
  for (int per_channel = 0; per_channel < 2; ++per_channel) {
    Node node = conv_node("QConv", c, 4);
    node.attrs["weight_shape"] = attr_ints({2, 1, 3});
    if (per_channel) node.attrs["x_per_channel"] = test::attr_int(1);
    auto out = test::run_kernel(kernels::QConv, node, inputs);
    ASSERT_TRUE(out.has_value()) << out.message();
    const float* y = (*out)[0].data<float>();
    double dot = 0, ny = 0, nw = 0;
    for (int o = 64; o < 128; ++o) {  // the narrow channel
      dot += double{y[o]} * want[static_cast<size_t>(o)];
      ny += double{y[o]} * y[o];
      nw += double{want[static_cast<size_t>(o)]} * want[static_cast<size_t>(o)];
    }
    cos_narrow[per_channel] = ny > 0 ? dot / std::sqrt(ny * nw) : 0.0;
  }
  EXPECT_LT(cos_narrow[0], 0.9) << "per tensor";
  EXPECT_GT(cos_narrow[1], 0.9999) << "per channel";
}

// Each bad use of x_per_channel is refused with a message naming it.
TEST(QconvOp, XPerChannelErrors) {
  Case g1;
  g1.shape(1, 4, 4, {10}, {3});
  Case g2;
  g2.group = 2;
  g2.shape(1, 4, 4, {10}, {3});
  for (const Case& c : {g1, g2}) {
    OpInputs in = op_inputs(c, false, true, false, {}, 3);
    Node node = conv_node("QConv", c);
    node.attrs["weight_shape"] = attr_ints(w_shape(c, false));
    node.attrs["x_per_channel"] = test::attr_int(1);
    auto out = test::run_kernel(kernels::QConv, node, in.inputs);
    ASSERT_FALSE(out.has_value()) << c.str();
    EXPECT_HAS(out.message(), "attribute x_per_channel = 1 needs a depthwise conv (group = C), got group " +
                                  std::to_string(c.group) + " over 4 input channels");
  }
  Case dw;
  dw.group = 4;
  dw.shape(1, 4, 4, {10}, {3});
  OpInputs in = op_inputs(dw, false, true, false, {}, 4);
  Node node = conv_node("QConv", dw);
  node.attrs["weight_shape"] = attr_ints(w_shape(dw, false));
  node.attrs["x_per_channel"] = test::attr_int(2);
  auto bad = test::run_kernel(kernels::QConv, node, in.inputs);
  ASSERT_FALSE(bad.has_value());
  EXPECT_HAS(bad.message(), "attribute 'x_per_channel' must be 0 or 1, got 2");
  node.attrs["x_per_channel"] = test::attr_int(1);
  node.attrs["x_min"] = test::attr_float(-1.f);
  node.attrs["x_max"] = test::attr_float(1.f);
  auto both = test::run_kernel(kernels::QConv, node, in.inputs);
  ASSERT_FALSE(both.has_value());
  EXPECT_HAS(both.message(), "attribute x_per_channel = 1 cannot go with a static range (x_min, x_max)");
}

TEST(QconvOp, QConvTransposeEqualsReferenceBitForBit) {
  uint32_t seed = 900;
  int i = 0;
  for (const Case& c : transpose_cases()) {
    if (i++ % 4 != 0) continue;  // a sample; the core sweep covers the rest
    ASSERT_NO_FATAL_FAILURE(check_op(c, true, true, false, Fused::kNone, seed++));
    ASSERT_NO_FATAL_FAILURE(check_op(c, true, false, true, Fused::kNone, seed++));
  }
}

// Timing, run by hand:
//   qconv_test --gtest_also_run_disabled_tests --gtest_filter='*Time*'
// The two convolutions of a whisper-base encoder (80 -> 512 k3 pad 1 over
// 3000 frames; 512 -> 512 k3 stride 2 pad 1): the fast op core (with its
// epilogue) on 1 and 2 threads, best of 20, and the reference core.
TEST(Qconv, DISABLED_TimeWhisperBaseFrontEnd) {
  auto seconds = [](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  Case c1;
  c1.shape(1, 80, 512, {3000}, {3});
  c1.pads = {1, 1};
  c1.zp = 100;
  Case c2 = c1;
  c2.shape(1, 512, 512, {3000}, {3});
  c2.strides = {2};
  for (const Case& c : {c1, c2}) {
    const ConvProblem p = problem(c, false);
    const Data d = make_data(c, false, 1);
    const int64_t n = p.batch * p.M * p.g.out_size();
    std::vector<float> y(static_cast<size_t>(n));
    std::vector<float> cs(static_cast<size_t>(c.M()), 1e-3f), bias(static_cast<size_t>(c.M()), 0.5f);
    std::vector<int32_t> comp(static_cast<size_t>(c.M()), 7);
    QconvEpilogue e;
    e.comp = comp.data();
    e.cscale = cs.data();
    e.bias = bias.data();
    e.y = y.data();
    const int saved = num_threads();
    double best[2] = {1e30, 1e30};
    for (int t = 0; t < 2; ++t) {
      set_num_threads(t + 1);
      for (int r = 0; r < 20; ++r)
        best[t] = std::min(best[t], seconds([&] {
          kernels::qconv_u8s8(p, d.xq.data(), static_cast<uint8_t>(c.zp), d.packed.data(), e);
        }));
    }
    std::vector<int32_t> want;
    const double ref = seconds([&] { want = reference_acc(p, c, d, false); });
    set_num_threads(saved);
    std::vector<int32_t> got(want.size());
    kernels::qconv_u8s8_s32(p, d.xq.data(), static_cast<uint8_t>(c.zp), d.packed.data(), got.data());
    const double macs = static_cast<double>(n) * p.C * p.g.kernel_size();
    std::printf("%s C %lld M %lld out %lld: 1 thread %.2f ms (%.0f GMAC/s), 2 threads %.2f ms; "
                "reference core (2 threads) %.1f ms\n",
                isa_name(kernels::qgemm_default_ukernel().isa), static_cast<long long>(c.C()),
                static_cast<long long>(c.M()), static_cast<long long>(p.g.out_size()), best[0] * 1e3,
                macs / best[0] * 1e-9, best[1] * 1e3, ref * 1e3);
    ASSERT_EQ(got, want);
  }
}

}  // namespace
}  // namespace sarai
