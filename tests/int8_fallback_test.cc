// FP32 where INT8 cannot win (runtime/session_fallback.h): the rule, the
// rewrite's exactness (the fallback's output is the float op's on the
// dequantized weight, bit for bit, at every thread count), its closeness to
// the INT8 path, the memory bound, the overrides and what stays INT8.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/conv_geometry.h"
#include "kernels/kernels.h"
#include "loader/model_file.h"
#include "runtime/cpu_isa.h"
#include "runtime/quantized_op.h"
#include "runtime/session.h"
#include "runtime/session_fallback.h"
#include "test_util.h"

namespace sarai {
namespace {

using Attrs = std::map<std::string, Attribute>;

// One quantized convolution's weight: int8 q in the float op's layout
// (Conv [M, C, k...], ConvTranspose [C, M, k...]), per-channel scales, and
// the float weight W = scale[ch] * q written out here independently of
// the runtime (ch = dim 0 for Conv, dim 1 for ConvTranspose; group 1).
struct QWeight {
  bool transpose = false;
  Shape ws;
  std::vector<int8_t> q;
  std::vector<float> scale;
  int64_t channels() const { return transpose ? ws[1] : ws[0]; }
  Tensor dequantized() const {
    Tensor t = Tensor::allocate(DType::kFloat32, ws);
    float* w = t.mutable_data<float>();
    const int64_t inner = numel_of(ws) / (ws[0] * ws[1]);
    for (int64_t a = 0; a < ws[0]; ++a)
      for (int64_t b = 0; b < ws[1]; ++b)
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t idx = (a * ws[1] + b) * inner + i;
          w[idx] = scale[static_cast<size_t>(transpose ? b : a)] * static_cast<float>(q[static_cast<size_t>(idx)]);
        }
    return t;
  }
};

QWeight make_weight(bool transpose, Shape ws, uint32_t seed) {
  QWeight w;
  w.transpose = transpose;
  w.ws = ws;
  const Tensor r = test::random_tensor(ws, seed, -127.f, 128.f);
  for (int64_t i = 0; i < r.numel(); ++i) w.q.push_back(static_cast<int8_t>(std::clamp(std::floor(r.data<float>()[i]), -127.f, 127.f)));
  w.q[0] = 127;  // the extremes
  w.q[1] = -127;
  for (int64_t c = 0; c < w.channels(); ++c) w.scale.push_back(0.01f + 0.003f * static_cast<float>(c % 7));
  return w;
}

// The quantized op's inputs W, scale, wsum as `sarai-rt convert` writes
// them: QConv group 1 packed N16K4 [K = C*k..., N = M], QConvTranspose plain.
std::vector<int> add_quantized_weight(Graph& g, const QWeight& w, const std::string& prefix = "") {
  const int64_t M = w.channels();
  std::vector<int32_t> wsum(static_cast<size_t>(M), 0);
  Tensor qt;
  if (w.transpose) {
    const int64_t inner = numel_of(w.ws) / (w.ws[0] * w.ws[1]);
    for (size_t i = 0; i < w.q.size(); ++i) wsum[(i / static_cast<size_t>(inner)) % static_cast<size_t>(M)] += w.q[i];
    qt = test::make_tensor<int8_t>(w.ws, w.q);
  } else {
    const int64_t K = numel_of(w.ws) / M;
    std::vector<int8_t> kn(w.q.size());
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) {
        kn[static_cast<size_t>(k * M + m)] = w.q[static_cast<size_t>(m * K + k)];
        wsum[static_cast<size_t>(m)] += w.q[static_cast<size_t>(m * K + k)];
      }
    const std::vector<int8_t> packed = test::pack_n16k4(kn, K, M);
    qt = test::make_tensor<int8_t>({static_cast<int64_t>(packed.size())}, packed);
  }
  return {test::add_init(g, prefix + "w", std::move(qt)),
          test::add_init(g, prefix + "scale", test::make_tensor<float>({M}, w.scale)),
          test::add_init(g, prefix + "wsum", test::make_tensor<int32_t>({M}, wsum))};
}

Attrs conv_attrs(const QWeight& w, bool quantized) {
  Attrs a;
  if (w.transpose) a["strides"] = test::attr_ints({2, 2});
  else if (w.ws[2] > 1) a["pads"] = test::attr_ints({1, 1, 1, 1});
  if (quantized) a["weight_shape"] = test::attr_ints(std::vector<int64_t>(w.ws.begin(), w.ws.end()));
  return a;
}

// x -> conv(W, bias) -> Add(·, r) -> Relu -> y: quantized (QConv /
// QConvTranspose, which the session would fuse the Add and Relu into) or
// the float op on the dequantized weight.
std::shared_ptr<Model> conv_model(const QWeight& w, bool quantized) {
  auto m = std::make_shared<Model>();
  m->path = "fallback_test.sarai";
  Graph& g = m->graph;
  g.opset = 17;
  const int x = test::add_input(g, "x"), r = test::add_input(g, "r");
  std::vector<float> bias;
  for (int64_t c = 0; c < w.channels(); ++c) bias.push_back(0.05f * static_cast<float>(c % 5) - 0.1f);
  std::vector<int> in = {x};
  if (quantized) {
    for (int v : add_quantized_weight(g, w)) in.push_back(v);
  } else {
    in.push_back(test::add_init(g, "w", w.dequantized()));
  }
  in.push_back(test::add_init(g, "bias", test::make_tensor<float>({w.channels()}, bias)));
  const std::string op = std::string(quantized ? "Q" : "") + (w.transpose ? "ConvTranspose" : "Conv");
  const int y0 = test::add_node(g, op, quantized ? "sarai" : "", in, "conv", conv_attrs(w, quantized));
  const int y1 = test::add_node(g, "Add", "", {y0, r}, "sum");
  g.outputs = {test::add_node(g, "Relu", "", {y1}, "y")};
  return m;
}

struct Case {
  const char* name;
  bool transpose;
  Shape ws, x, y;
};

// The det model's kinds: a pointwise conv with few output channels and a
// stride-2 ConvTranspose, both with C and M off the 16-channel panels.
// Each with output positions in one column block of the FP32 kernels.
const Case kCases[] = {
    {"pointwise", false, {12, 24, 1, 1}, {1, 24, 9, 13}, {1, 12, 9, 13}},
    {"conv_transpose", true, {8, 6, 2, 2}, {1, 8, 7, 5}, {1, 6, 14, 10}},
};

std::vector<NamedTensor> case_inputs(const Case& c) {
  return {{"x", test::random_tensor(c.x, 11, -2.f, 3.f)}, {"r", test::random_tensor(c.y, 12, -1.f, 1.f)}};
}

struct Ran {
  Tensor out;
  std::unique_ptr<Session> session;
};

Ran run_once(std::shared_ptr<const Model> m, SessionOptions o, const std::vector<NamedTensor>& in) {
  Ran r;
  r.session = test::session_on(std::move(m), o);
  if (!r.session) return r;
  auto out = r.session->run(in);
  EXPECT_TRUE(out.has_value()) << out.status().message();
  if (out) r.out = (*out)[0].tensor;
  return r;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

bool has_op(const Graph& g, const std::string& domain, const std::string& op) {
  return std::any_of(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.domain == domain && n.op_type == op; });
}

SessionOptions with(Fp32Fallback f, int threads = 1) {
  SessionOptions o;
  o.num_threads = threads;
  o.fp32_fallback = f;
  return o;
}

TEST(Int8Fallback, EqualsTheFloatOpOnTheDequantizedWeightAtEveryThreadCount) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const QWeight w = make_weight(c.transpose, c.ws, 3);
    const auto in = case_inputs(c);
    const Tensor want = run_once(conv_model(w, /*quantized=*/false), with(Fp32Fallback::kOff), in).out;
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(threads);
      const Ran ran = run_once(conv_model(w, true), with(Fp32Fallback::kForce, threads), in);
      const Tensor& got = ran.out;
      const Session* s = ran.session.get();
      EXPECT_TRUE(same_bytes(got, want));
      if (got.defined() && want.defined()) {
        EXPECT_TRUE(test::tensors_near(got, want, 0, 0));
      }
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->fp32_fallback_nodes(), 1);
      EXPECT_EQ(s->fp32_fallback_bytes(), static_cast<uint64_t>(numel_of(c.ws)) * sizeof(float));
      const std::string op = c.transpose ? "ConvTranspose" : "Conv";
      EXPECT_TRUE(has_op(s->graph(), "sarai", "Fp32" + op));
      EXPECT_FALSE(has_op(s->graph(), "sarai", "Q" + op));
      EXPECT_TRUE(has_op(s->graph(), "", "Add")) << "the Add stays a float op, not fused";
    }
  }
}

TEST(Int8Fallback, IsCloseToTheInt8Path) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const QWeight w = make_weight(c.transpose, c.ws, 5);
    const auto in = case_inputs(c);
    const Ran ran = run_once(conv_model(w, true), with(Fp32Fallback::kOff), in);
    const Tensor& int8 = ran.out;
    const Session* s = ran.session.get();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->fp32_fallback_nodes(), 0);
    EXPECT_TRUE(has_op(s->graph(), "sarai", c.transpose ? "QConvTranspose" : "QConv"));
    const Tensor fp32 = run_once(conv_model(w, true), with(Fp32Fallback::kForce), in).out;
    ASSERT_TRUE(int8.defined() && fp32.defined());
    // The INT8 path differs from the float op on the same weight only by
    // quantizing X to u8: at most half a step, (3 - -2) / 255 / 2, per
    // input, times Σ|w| over a channel's weights (a bound on the taps one
    // output reads); the bias, residual and Relu add no difference.
    const Tensor wf = w.dequantized();
    double wmax = 0;
    for (int64_t ch = 0; ch < w.channels(); ++ch) {
      double sum = 0;
      for (int64_t i = 0; i < wf.numel(); ++i) {
        const int64_t inner = numel_of(c.ws) / (c.ws[0] * c.ws[1]);
        if ((c.transpose ? (i / inner) % c.ws[1] : i / (wf.numel() / c.ws[0])) == ch) sum += std::fabs(wf.data<float>()[i]);
      }
      wmax = std::max(wmax, sum);
    }
    EXPECT_GT(test::cosine(int8, fp32), 0.9995);
    EXPECT_TRUE(test::tensors_near(int8, fp32, /*atol=*/wmax * 5.0 / 255 / 2 * 1.001, /*rtol=*/0));
  }
}

TEST(Int8Fallback, RuleFollowsTheIsaLevelAndTheShape) {
  Node pw;
  pw.domain = "sarai";
  pw.op_type = "QConv";
  Node tr = pw;
  tr.op_type = "QConvTranspose";
  tr.attrs["strides"] = test::attr_ints({2, 2});
  // C x M at the bound and one channel past it.
  const Shape small = {96, 96, 1, 1}, wide = {97, 96, 1, 1};
  for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
    EXPECT_NE(fp32_fallback_reason(tr, {24, 24, 2, 2}, isa, false), "");
    EXPECT_NE(fp32_fallback_reason(pw, small, isa, false), "");
    EXPECT_EQ(fp32_fallback_reason(pw, wide, isa, false), "");
    EXPECT_EQ(fp32_fallback_reason(pw, {12, 24, 3, 3}, isa, false), "");  // not 1x1, K = 216
    Node grouped = pw;
    grouped.attrs["group"] = test::attr_int(2);
    EXPECT_EQ(fp32_fallback_reason(grouped, {12, 12, 1, 1}, isa, false), "");
    Node mm = pw;
    mm.op_type = "QMatMul";
    EXPECT_EQ(fp32_fallback_reason(mm, {12, 24, 1}, isa, true), "");
    // A strided or padded 1x1 is a small-K conv (K = C = 24), not a pointwise one.
    Node strided = pw;
    strided.attrs["strides"] = test::attr_ints({2, 2});
    EXPECT_EQ(fp32_fallback_reason(strided, {12, 24, 1, 1}, isa, false),
              "conv with K = C x taps = 24 <= 72: quantizing X and its im2col cost as much as the MACs");
    Node padded = pw;
    padded.attrs["pads"] = test::attr_ints({0, 1, 0, 1});
    EXPECT_NE(fp32_fallback_reason(padded, {12, 24, 1, 1}, isa, false), "");
    EXPECT_EQ(fp32_fallback_reason(padded, {12, 80, 1, 1}, isa, false), "");  // K = 80
    // What Fp32Conv / Fp32ConvTranspose do not run stays INT8.
    Node grouped3 = strided;
    grouped3.attrs["group"] = test::attr_int(3);
    EXPECT_EQ(fp32_fallback_reason(grouped3, {12, 1, 3, 3}, isa, false), "");
    EXPECT_EQ(fp32_fallback_reason(tr, {24, 24, 3, 3}, isa, false), "");  // taps overlap
    Node out_pad = tr;
    out_pad.attrs["output_padding"] = test::attr_ints({1, 1});
    EXPECT_EQ(fp32_fallback_reason(out_pad, {24, 24, 2, 2}, isa, false), "");
    Node no_strides = tr;
    no_strides.attrs.erase("strides");
    EXPECT_EQ(fp32_fallback_reason(no_strides, {24, 24, 2, 2}, isa, false), "");
  }
  for (Isa isa : {Isa::kAvx2Vnni, Isa::kAvx512Vnni, Isa::kAmx}) {
    // With VNNI only the smallest pointwise convs fall back: C x M at
    // kPointwiseMaxMacsVnni and one channel past it; forced, the bound of
    // a level without VNNI.
    SCOPED_TRACE(isa_name(isa));
    EXPECT_EQ(fp32_fallback_reason(pw, {18, 96, 1, 1}, isa, false),
              "1x1 conv with C x M = 1728 <= 1728 MACs per position: quantizing and transposing X cost as much as "
              "the MACs");
    EXPECT_EQ(fp32_fallback_reason(pw, {19, 96, 1, 1}, isa, false), "");
    EXPECT_NE(fp32_fallback_reason(pw, {12, 24, 1, 1}, isa, false), "");
    EXPECT_EQ(fp32_fallback_reason(pw, small, isa, false), "");
    EXPECT_EQ(fp32_fallback_reason(pw, {12, 24, 3, 3}, isa, false), "");  // not 1x1, K = 216
    EXPECT_NE(fp32_fallback_reason(pw, small, isa, /*force=*/true), "");
    EXPECT_EQ(fp32_fallback_reason(pw, wide, isa, /*force=*/true), "");
  }
  for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
    EXPECT_EQ(fp32_fallback_reason(pw, {19, 96, 1, 1}, isa, false),
              "1x1 conv with C x M = 1824 <= 9216 MACs per position: quantizing and transposing X cost as much as "
              "the MACs");
  }
}

// The small-K rule (runtime/session_fallback.h): a group-1 QConv other
// than the plain 1x1 falls back when K = C x taps is at most
// kSmallKMaxKVnni (27: PaddleOCR's stem [16, 3, 3, 3]) with VNNI,
// kSmallKMaxK (72) without or forced; strides, pads and dilations do not
// matter, the group does.
TEST(Int8Fallback, SmallKConvsAtEveryIsaLevel) {
  Node stem;
  stem.domain = "sarai";
  stem.op_type = "QConv";
  stem.attrs["strides"] = test::attr_ints({2, 2});
  stem.attrs["pads"] = test::attr_ints({1, 1, 1, 1});
  Node dilated = stem;
  dilated.attrs.erase("strides");
  dilated.attrs["dilations"] = test::attr_ints({2, 2});
  Node one_d;
  one_d.domain = "sarai";
  one_d.op_type = "QConv";  // a 1-D kernel of 3 taps, unpadded, stride 1
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512Vnni, Isa::kAmx}) {
    SCOPED_TRACE(isa_name(isa));
    const bool vnni = isa == Isa::kAvx2Vnni || isa == Isa::kAvx512Vnni || isa == Isa::kAmx;
    for (bool force : {false, true}) {
      SCOPED_TRACE(force);
      const int64_t bound = vnni && !force ? kSmallKMaxKVnni : kSmallKMaxK;
      EXPECT_EQ(fp32_fallback_reason(stem, {16, 3, 3, 3}, isa, force),
                "conv with K = C x taps = 27 <= " + std::to_string(bound) +
                    ": quantizing X and its im2col cost as much as the MACs");
      EXPECT_NE(fp32_fallback_reason(dilated, {16, 3, 3, 3}, isa, force), "");
      // K at the bound and one channel (3 taps) past it.
      EXPECT_NE(fp32_fallback_reason(one_d, {8, bound / 3, 3}, isa, force), "");
      EXPECT_EQ(fp32_fallback_reason(one_d, {8, bound / 3 + 1, 3}, isa, force), "");
      EXPECT_EQ(fp32_fallback_reason(stem, {16, 16, 3, 3}, isa, force), "");  // K = 144
      Node grouped = stem;
      grouped.attrs["group"] = test::attr_int(3);
      EXPECT_EQ(fp32_fallback_reason(grouped, {3, 1, 3, 3}, isa, force), "");
      Node other = stem;
      other.domain = "";
      EXPECT_EQ(fp32_fallback_reason(other, {16, 3, 3, 3}, isa, force), "");
    }
  }
  static_assert(kSmallKMaxKVnni % 3 == 0 && kSmallKMaxK % 3 == 0, "the bound test steps K by 3 taps");
}

// The ConvTranspose with kernel = strides falls back at every level (its
// scatter kernel loses on VNNI too: PaddleOCR det's 2.7 ms INT8 against
// 0.57 ms FP32 at avx512_vnni), and only that shape.
TEST(Int8Fallback, ConvTransposeWithKernelEqualStridesAtEveryIsaLevel) {
  Node tr;
  tr.domain = "sarai";
  tr.op_type = "QConvTranspose";
  tr.attrs["strides"] = test::attr_ints({2, 2});
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512Vnni, Isa::kAmx}) {
    SCOPED_TRACE(isa_name(isa));
    for (bool force : {false, true}) {
      EXPECT_EQ(fp32_fallback_reason(tr, {24, 24, 2, 2}, isa, force),
                "ConvTranspose: the INT8 scatter kernel is slower than GEMM + copy");
      EXPECT_NE(fp32_fallback_reason(tr, {64, 32, 2, 2}, isa, force), "");
      EXPECT_EQ(fp32_fallback_reason(tr, {24, 24, 3, 3}, isa, force), "");  // taps overlap
      EXPECT_EQ(fp32_fallback_reason(tr, {24, 24, 2, 3}, isa, force), "");
      Node out_pad = tr;
      out_pad.attrs["output_padding"] = test::attr_ints({1, 1});
      EXPECT_EQ(fp32_fallback_reason(out_pad, {24, 24, 2, 2}, isa, force), "");
      Node grouped = tr;
      grouped.attrs["group"] = test::attr_int(2);
      EXPECT_EQ(fp32_fallback_reason(grouped, {24, 12, 2, 2}, isa, force), "");
      Node padded = tr;
      padded.attrs["pads"] = test::attr_ints({1, 1, 1, 1});
      EXPECT_EQ(fp32_fallback_reason(padded, {24, 24, 2, 2}, isa, force), "");
      Node dilated = tr;
      dilated.attrs["dilations"] = test::attr_ints({2, 2});
      EXPECT_EQ(fp32_fallback_reason(dilated, {24, 24, 2, 2}, isa, force), "");
      Node shaped = tr;
      shaped.attrs["output_shape"] = test::attr_ints({10, 10});
      EXPECT_EQ(fp32_fallback_reason(shaped, {24, 24, 2, 2}, isa, force), "");
      Node other = tr;
      other.domain = "";
      EXPECT_EQ(fp32_fallback_reason(other, {24, 24, 2, 2}, isa, force), "");
    }
  }
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

int fallback_nodes(Fp32Fallback option) {
  auto s = test::session_on(conv_model(make_weight(true, {8, 6, 2, 2}, 1), true), with(option));
  return s ? s->fp32_fallback_nodes() : -1;
}

TEST(Int8Fallback, OptionAndEnvironmentOverride) {
  const bool vnni = isa_allowed(Isa::kAvx2Vnni) || isa_allowed(Isa::kAvx512Vnni);
  {
    ScopedEnv env("SARAI_FP32_FALLBACK", "off");
    EXPECT_EQ(fallback_nodes(Fp32Fallback::kAuto), 0);
    EXPECT_EQ(fallback_nodes(Fp32Fallback::kForce), 1) << "the option wins over the environment";
  }
  {
    ScopedEnv env("SARAI_FP32_FALLBACK", "force");
    EXPECT_EQ(fallback_nodes(Fp32Fallback::kAuto), 1);
    EXPECT_EQ(fallback_nodes(Fp32Fallback::kOff), 0);
  }
  {
    // The model's one node is a ConvTranspose with kernel = strides: FP32
    // at every level.
    ScopedEnv env("SARAI_FP32_FALLBACK", "auto");
    EXPECT_EQ(fallback_nodes(Fp32Fallback::kAuto), 1) << "at " << isa_name(max_isa());
  }
  {
    // A pointwise conv between the two bounds: FP32 only without VNNI.
    ScopedEnv env("SARAI_FP32_FALLBACK", "auto");
    auto s = test::session_on(conv_model(make_weight(false, {48, 48, 1, 1}, 1), true), with(Fp32Fallback::kAuto));
    ASSERT_TRUE(s);
    EXPECT_EQ(s->fp32_fallback_nodes(), vnni ? 0 : 1) << "at " << isa_name(max_isa());
  }
  ScopedEnv env("SARAI_FP32_FALLBACK", "fp32");
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(conv_model(make_weight(true, {8, 6, 2, 2}, 1), true), table, SessionOptions{});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.status().message(), "SARAI_FP32_FALLBACK='fp32' is not a mode (auto, off or force)");
}

// A chain of `n` QConvTranspose nodes [c, c, 1, 1] on x [1, c, 1, 1].
std::shared_ptr<Model> transpose_chain(int n, int64_t c) {
  auto m = std::make_shared<Model>();
  m->path = "chain.sarai";
  Graph& g = m->graph;
  g.opset = 17;
  int x = test::add_input(g, "x");
  const QWeight w = make_weight(true, {c, c, 1, 1}, 9);
  for (int i = 0; i < n; ++i) {
    std::vector<int> in = {x};
    for (int v : add_quantized_weight(g, w, test::numbered("n", static_cast<size_t>(i)))) in.push_back(v);
    x = test::add_node(g, "QConvTranspose", "sarai", in, test::numbered("t", static_cast<size_t>(i)),
                       {{"weight_shape", test::attr_ints({c, c, 1, 1})}, {"strides", test::attr_ints({1, 1})}});
  }
  g.outputs = {x};
  return m;
}

TEST(Int8Fallback, MemoryIsBoundedPerNodeAndPerSession) {
  // 512 x 512 weights are exactly kMaxNodeFp32Bytes in FP32; 513 x 513 pass it.
  static_assert(512 * 512 * sizeof(float) == kMaxNodeFp32Bytes);
  auto at_bound = test::session_on(transpose_chain(1, 512), with(Fp32Fallback::kForce));
  ASSERT_TRUE(at_bound);
  EXPECT_EQ(at_bound->fp32_fallback_nodes(), 1);
  auto past = test::session_on(transpose_chain(1, 513), with(Fp32Fallback::kForce));
  ASSERT_TRUE(past);
  EXPECT_EQ(past->fp32_fallback_nodes(), 0);
  EXPECT_TRUE(has_op(past->graph(), "sarai", "QConvTranspose"));
  // 17 such nodes: the first 16 fill kMaxFp32Bytes, the 17th stays INT8.
  const int per_session = static_cast<int>(kMaxFp32Bytes / kMaxNodeFp32Bytes);
  auto chain = test::session_on(transpose_chain(per_session + 1, 512), with(Fp32Fallback::kForce));
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->fp32_fallback_nodes(), per_session);
  EXPECT_EQ(chain->fp32_fallback_bytes(), kMaxFp32Bytes);
  EXPECT_EQ(chain->graph().nodes.back().op_type, "QConvTranspose");
  // Heap weights, as the memory report counts them.
  auto out = chain->prepare({{"x", test::random_tensor({1, 512, 1, 1}, 1)}});
  ASSERT_TRUE(out.has_value()) << out.status().message();
  EXPECT_GE(out->heap_weight_bytes, kMaxFp32Bytes);
}

TEST(Int8Fallback, NodesTheRewriteCannotTakeStayInt8) {
  const QWeight w = make_weight(false, {12, 24, 1, 1}, 4);
  // A fused activation or residual (written by the fusion pass, never by
  // convert, but a blob could carry them), and a bias of shape [1, M].
  for (int what = 0; what < 3; ++what) {
    SCOPED_TRACE(what);
    auto m = conv_model(w, true);
    Graph& g = m->graph;
    Node& n = g.nodes[0];
    if (what == 0) n.attrs["activation"] = test::attr_string("Relu");
    if (what == 1) n.inputs.push_back(g.find_value("r"));
    if (what == 2) {
      std::vector<float> b(12, 0.f);
      n.inputs[qop::kBias] = test::add_init(g, "bias2", test::make_tensor<float>({1, 12}, b));
    }
    auto s = test::session_on(m, with(Fp32Fallback::kForce));
    ASSERT_TRUE(s);
    EXPECT_EQ(s->fp32_fallback_nodes(), 0);
    EXPECT_TRUE(has_op(s->graph(), "sarai", "QConv"));
  }
}

TEST(Int8Fallback, MalformedWeightIsReportedByTheInt8Kernel) {
  // A packed W one byte short: the rewrite leaves the node to the INT8
  // kernel, whose error names the node and the tensor.
  const QWeight w = make_weight(false, {12, 24, 1, 1}, 4);
  auto m = conv_model(w, true);
  Graph& g = m->graph;
  const Tensor& full = g.values[static_cast<size_t>(g.find_value("w"))].initializer;
  std::vector<int8_t> shorter(full.data<int8_t>(), full.data<int8_t>() + full.numel() - 1);
  g.values[static_cast<size_t>(g.find_value("w"))].initializer = test::make_tensor<int8_t>({full.numel() - 1}, shorter);
  auto s = test::session_on(m, with(Fp32Fallback::kForce));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->fp32_fallback_nodes(), 0);
  auto out = s->run(case_inputs(kCases[0]));
  ASSERT_FALSE(out.has_value());
  EXPECT_HAS(out.status().message(), "node 'conv_node+sum_node+y_node' (QConv): packed W [383] must be [384]");
  EXPECT_EQ(out.status().message().find('\n'), std::string::npos);
}

TEST(Int8Fallback, Fp32KernelsRefuseWhatTheyDoNotRun) {
  const Tensor x = test::random_tensor({1, 4, 3, 3}, 1);
  Node conv = test::make_node("Fp32Conv", 3);
  Node grouped = conv;
  grouped.attrs["group"] = test::attr_int(2);
  EXPECT_EQ(test::run_error(kernels::Fp32Conv, grouped, {x, test::random_tensor({2, 2, 3, 3}, 2), Tensor()}),
            "group 2: Fp32Conv runs group 1 convolutions only");
  // Past the group check, the geometry's own checks (conv_geometry.h).
  EXPECT_EQ(test::run_error(kernels::Fp32Conv, conv, {x, test::random_tensor({2, 4, 5, 5}, 2), Tensor()}),
            "kernel_shape [5, 5] with dilations [1, 1] is larger than the padded input [1, 4, 3, 3] (pads [0, 0] + "
            "[0, 0]) along spatial dim 0");
  EXPECT_EQ(test::run_error(kernels::Fp32Conv, conv, {x, test::random_tensor({2, 4, 1, 1}, 2), test::random_tensor({3}, 3)}),
            "bias [3] must be [2] (one value per output channel)");
  EXPECT_EQ(test::run_error(kernels::Fp32Conv, conv, {x, test::make_tensor<int8_t>({2, 4, 1, 1}, std::vector<int8_t>(8, 1)), Tensor()}),
            "input W has dtype int8; Fp32Conv takes float32");
  EXPECT_EQ(test::run_error(kernels::Fp32Conv, conv, {x, test::random_tensor({2, 4}, 2), Tensor()}),
            "W [2, 4] must have the rank of X [1, 4, 3, 3]");
  Node tr = test::make_node("Fp32ConvTranspose", 3);
  tr.attrs["strides"] = test::attr_ints({2, 2});
  EXPECT_EQ(test::run_error(kernels::Fp32ConvTranspose, tr, {x, test::random_tensor({4, 2, 3, 3}, 2), Tensor()}),
            "W [4, 2, 3, 3] with these attributes is not a group 1, unpadded ConvTranspose whose kernel equals its "
            "strides, the only one Fp32ConvTranspose runs");
  EXPECT_EQ(test::run_error(kernels::Fp32ConvTranspose, tr, {test::random_tensor({4, 3}, 1), test::random_tensor({4, 2, 2, 2}, 2), Tensor()}),
            "input X [4, 3] must have rank >= 3 ([N, C, spatial...])");
}

// The det model's shapes at more positions than one column block (and a
// tail), through a session at 1, 2 and 3 threads: the same bytes, and the
// same as Conv / ConvTranspose on one thread.
TEST(Int8Fallback, ManyColumnBlocksAreThreadIndependent) {
  const Case big[] = {
      {"pointwise", false, {32, 16, 1, 1}, {1, 16, 37, 41}, {1, 32, 37, 41}},
      {"conv_transpose", true, {24, 24, 2, 2}, {1, 24, 19, 27}, {1, 24, 38, 54}},
  };
  for (const Case& c : big) {
    SCOPED_TRACE(c.name);
    const QWeight w = make_weight(c.transpose, c.ws, 8);
    const auto in = case_inputs(c);
    const Tensor want = run_once(conv_model(w, false), with(Fp32Fallback::kOff, 1), in).out;
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(threads);
      const Tensor got = run_once(conv_model(w, true), with(Fp32Fallback::kForce, threads), in).out;
      EXPECT_TRUE(same_bytes(got, want));
      if (got.defined() && want.defined()) {
        EXPECT_TRUE(test::tensors_near(got, want, 0, 0));
      }
    }
  }
}

// Fp32Conv beyond 1x1 (the small-K rule: PaddleOCR's 3x3 stride-2 stem
// conv and kin): strided, padded (asymmetric), dilated, batch > 1, 1-D and
// 2-D, with and without bias, and one with more output positions than one
// of Conv's im2col blocks (4096 columns at K = 27). Each runs as QConv
// rewritten to Fp32Conv (force), against
//  - a reference written here (double sums over the taps, the geometry
//    given by hand): within a float tolerance;
//  - the float Conv on the dequantized weight on one thread, and itself
//    at 1, 2 and 3 threads: the same bytes.
struct GeneralCase {
  const char* name;
  Shape ws, x;
  std::vector<int64_t> strides, pads, dilations;
  bool bias;
  Shape y;
};

const GeneralCase kGeneral[] = {
    {"stem_3x3_s2_p1", {16, 3, 3, 3}, {1, 3, 20, 30}, {2, 2}, {1, 1, 1, 1}, {1, 1}, true, {1, 16, 10, 15}},
    {"asym_pads_batch2_no_bias", {5, 2, 3, 2}, {2, 2, 9, 7}, {1, 2}, {1, 0, 2, 1}, {1, 1}, false, {2, 5, 10, 4}},
    {"dilated", {6, 2, 3, 3}, {1, 2, 11, 12}, {1, 1}, {2, 2, 2, 2}, {2, 2}, true, {1, 6, 11, 12}},
    {"1d_batch3_no_bias", {7, 4, 5}, {3, 4, 40}, {3}, {2, 1}, {1}, false, {3, 7, 13}},
    {"1x1_strided", {8, 6, 1, 1}, {1, 6, 9, 11}, {2, 2}, {0, 0, 0, 0}, {1, 1}, true, {1, 8, 5, 6}},
    {"many_blocks", {16, 3, 3, 3}, {1, 3, 200, 180}, {2, 2}, {1, 1, 1, 1}, {1, 1}, true, {1, 16, 100, 90}},
};

std::vector<float> general_bias(int64_t m) {
  std::vector<float> b;
  for (int64_t c = 0; c < m; ++c) b.push_back(0.05f * static_cast<float>(c % 5) - 0.1f);
  return b;
}

// x -> conv -> y: QConv (sarai) or Conv on the dequantized weight.
std::shared_ptr<Model> general_model(const GeneralCase& c, const QWeight& w, bool quantized) {
  auto m = std::make_shared<Model>();
  m->path = "fallback_general.sarai";
  Graph& g = m->graph;
  g.opset = 17;
  const int x = test::add_input(g, "x");
  std::vector<int> in = {x};
  if (quantized) {
    for (int v : add_quantized_weight(g, w)) in.push_back(v);
  } else {
    in.push_back(test::add_init(g, "w", w.dequantized()));
  }
  if (c.bias) {
    in.push_back(test::add_init(g, "bias", test::make_tensor<float>({w.channels()}, general_bias(w.channels()))));
  }
  Attrs a;
  a["strides"] = test::attr_ints(c.strides);
  a["pads"] = test::attr_ints(c.pads);
  a["dilations"] = test::attr_ints(c.dilations);
  if (quantized) a["weight_shape"] = test::attr_ints(std::vector<int64_t>(c.ws.begin(), c.ws.end()));
  g.outputs = {test::add_node(g, quantized ? "QConv" : "Conv", quantized ? "sarai" : "", in, "y", a)};
  return m;
}

// Y = W * X (+ bias) by the definition, in double.
Tensor reference_conv(const GeneralCase& c, const Tensor& wf, const Tensor& x) {
  kernels::convgeo::ConvGeometry g;
  g.nsp = static_cast<int>(c.ws.size()) - 2;
  for (int d = 0; d < g.nsp; ++d) {
    const size_t i = static_cast<size_t>(d);
    g.in.push_back(c.x[i + 2]);
    g.out.push_back(c.y[i + 2]);
    g.kernel.push_back(c.ws[i + 2]);
    g.strides.push_back(c.strides[i]);
    g.dilations.push_back(c.dilations[i]);
    g.pad_begin.push_back(c.pads[i]);
    g.pad_end.push_back(c.pads[i + static_cast<size_t>(g.nsp)]);
  }
  const int64_t n = c.x[0], cin = c.x[1], m = c.ws[0], ks = g.kernel_size(), pin = g.in_size(), pout = g.out_size();
  const std::vector<float> bias = general_bias(m);
  std::vector<double> acc(static_cast<size_t>(n * m * pout), 0.0);
  kernels::convgeo::for_each_tap(g, [&](int64_t o, int64_t r, int64_t i) {
    if (i < 0) return;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t oc = 0; oc < m; ++oc)
        for (int64_t ic = 0; ic < cin; ++ic)
          acc[static_cast<size_t>((b * m + oc) * pout + o)] +=
              static_cast<double>(wf.data<float>()[(oc * cin + ic) * ks + r]) *
              static_cast<double>(x.data<float>()[(b * cin + ic) * pin + i]);
  });
  Tensor y = Tensor::allocate(DType::kFloat32, c.y);
  for (size_t i = 0; i < acc.size(); ++i)
    y.mutable_data<float>()[i] =
        static_cast<float>(acc[i] + (c.bias ? bias[(i / static_cast<size_t>(pout)) % static_cast<size_t>(m)] : 0.0));
  return y;
}

TEST(Int8Fallback, GeneralConvsRunAsFp32ConvExactlyAtEveryThreadCount) {
  for (const GeneralCase& c : kGeneral) {
    SCOPED_TRACE(c.name);
    const QWeight w = make_weight(false, c.ws, 21);
    const std::vector<NamedTensor> in = {{"x", test::random_tensor(c.x, 22, -2.f, 3.f)}};
    const Tensor want = run_once(general_model(c, w, /*quantized=*/false), with(Fp32Fallback::kOff), in).out;
    ASSERT_TRUE(want.defined());
    EXPECT_EQ(want.shape(), c.y);
    // The float tolerance of this file's reference checks: 1e-5 relative
    // to the largest |Y|, from float sums of at most 27 products.
    const Tensor ref = reference_conv(c, w.dequantized(), in[0].tensor);
    float ymax = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) ymax = std::max(ymax, std::fabs(ref.data<float>()[i]));
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(threads);
      const Ran ran = run_once(general_model(c, w, true), with(Fp32Fallback::kForce, threads), in);
      ASSERT_NE(ran.session, nullptr);
      EXPECT_EQ(ran.session->fp32_fallback_nodes(), 1);
      EXPECT_TRUE(has_op(ran.session->graph(), "sarai", "Fp32Conv"));
      EXPECT_TRUE(same_bytes(ran.out, want));
      EXPECT_TRUE(test::tensors_near(ran.out, ref, 1e-5 * ymax, 0));
    }
  }
}

// Not a test: the per-node times behind the rule (docs/BENCHMARKS.md).
// SARAI_FALLBACK_PROFILE="A,B,x=1x3x320x480,THREADS,RUNS[,MODE_A,MODE_B]"
// times models A and B (e.g. an INT8 blob and its .onnx, or one blob
// twice with modes off and auto: SessionOptions::fp32_fallback, default
// off) in alternating runs and prints, per convolution node present in
// both (by name), its weight shape and both medians.
TEST(Int8Fallback, DISABLED_PerNodeProfile) {
  const char* spec = std::getenv("SARAI_FALLBACK_PROFILE");
  if (spec == nullptr) GTEST_SKIP() << "SARAI_FALLBACK_PROFILE not set";
  std::vector<std::string> f;
  for (std::string s = spec; !s.empty();) {
    const size_t c = s.find(',');
    f.push_back(s.substr(0, c));
    s = c == std::string::npos ? "" : s.substr(c + 1);
  }
  ASSERT_TRUE(f.size() == 5u || f.size() == 7u);
  const std::string name = f[2].substr(0, f[2].find('='));
  Shape shape;
  for (std::string d = f[2].substr(f[2].find('=') + 1); !d.empty();) {
    const size_t x = d.find('x');
    shape.push_back(std::stoll(d.substr(0, x)));
    d = x == std::string::npos ? "" : d.substr(x + 1);
  }
  const int threads = std::stoi(f[3]), runs = std::stoi(f[4]);
  std::unique_ptr<Session> s[2];
  for (int i = 0; i < 2; ++i) {
    auto model = open_model_file(f[static_cast<size_t>(i)]);
    ASSERT_TRUE(model.has_value()) << model.status().message();
    const std::string mode = f.size() == 7u ? f[static_cast<size_t>(5 + i)] : "off";
    SessionOptions o = with(mode == "auto" ? Fp32Fallback::kAuto : mode == "force" ? Fp32Fallback::kForce : Fp32Fallback::kOff, threads);
    o.profile = true;
    s[i] = test::session_on(std::move(*model), o);
    ASSERT_TRUE(s[i]);
  }
  const std::vector<NamedTensor> in = {{name, test::random_tensor(shape, 7, 0.f, 1.f)}};
  std::vector<std::vector<std::vector<double>>> per_run(2);  // [model][node][run]
  std::vector<double> prev[2];
  for (int r = -1; r < runs; ++r) {
    for (int k = 0; k < 2; ++k) {
      const int i = (r & 1) ? 1 - k : k;  // A,B then B,A
      ASSERT_TRUE(s[i]->run(in).has_value());
      const std::vector<double> now = s[i]->node_times_ms();
      if (r >= 0) {
        per_run[static_cast<size_t>(i)].resize(now.size());
        for (size_t n = 0; n < now.size(); ++n) per_run[static_cast<size_t>(i)][n].push_back(now[n] - prev[i][n]);
      }
      prev[i] = now;
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const Graph& g8 = s[0]->graph();
  const Graph& g32 = s[1]->graph();
  std::printf("node,a_op,weight,a_ms,b_ms\n");
  for (size_t a = 0; a < g8.nodes.size(); ++a) {
    const Node& n = g8.nodes[a];
    if (n.op_type.find("Conv") == std::string::npos) continue;
    if (n.op_type.find("Fp32") == std::string::npos && f.size() == 7u) {
      // Two modes of one blob: only the nodes that changed kind.
      bool changed = false;
      for (const Node& m2 : g32.nodes) changed = changed || (m2.name == n.name && m2.op_type != n.op_type);
      if (!changed) continue;
    }
    for (size_t b = 0; b < g32.nodes.size(); ++b) {
      if (g32.nodes[b].name != n.name) continue;
      const Value& wv = g8.values[static_cast<size_t>(n.inputs[1])];
      const std::vector<int64_t> ws = n.attr_ints("weight_shape");
      const std::string wshape = !ws.empty() ? shape_to_string(Shape(ws.begin(), ws.end()))
                                 : wv.is_initializer ? shape_to_string(wv.initializer.shape()) : "?";
      std::printf("%s,%s,%s,%.4f,%.4f\n", n.name.c_str(), n.op_type.c_str(), wshape.c_str(),
                  median(per_run[0][a]), median(per_run[1][b]));
    }
  }
}

}  // namespace
}  // namespace sarai
