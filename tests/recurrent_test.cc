// LSTM, GRU and RNN (kernels/recurrent.cc) against a plain-loop reference
// in double that follows the ONNX equations one gate at a time: every
// direction, bias or none, sequence_lens (0 included), initial states,
// peepholes, clip, input_forget, linear_before_reset, layout = 1, every
// activation function; then omitted outputs, a planned session run, and
// every error message.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "runtime/session.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_floats;
using test::attr_int;
using test::attr_string;
using test::make_tensor;
using test::random_tensor;
using test::run_error;
using test::run_kernel;
using test::tensors_near;

struct ActSpec {
  std::string name;
  double alpha = 0, beta = 0;
};

bool takes_alpha(const std::string& n) {
  return n == "Affine" || n == "LeakyRelu" || n == "ThresholdedRelu" || n == "ScaledTanh" || n == "HardSigmoid" ||
         n == "Elu";
}
bool takes_beta(const std::string& n) { return n == "Affine" || n == "ScaledTanh" || n == "HardSigmoid"; }

double act(const ActSpec& a, double x) {
  const std::string& n = a.name;
  if (n == "Relu") return std::max(0.0, x);
  if (n == "Tanh") return std::tanh(x);
  if (n == "Sigmoid") return 1 / (1 + std::exp(-x));
  if (n == "Affine") return a.alpha * x + a.beta;
  if (n == "LeakyRelu") return x >= 0 ? x : a.alpha * x;
  if (n == "ThresholdedRelu") return x >= a.alpha ? x : 0;
  if (n == "ScaledTanh") return a.alpha * std::tanh(a.beta * x);
  if (n == "HardSigmoid") return std::min(std::max(a.alpha * x + a.beta, 0.0), 1.0);
  if (n == "Elu") return x >= 0 ? x : a.alpha * (std::exp(x) - 1);
  if (n == "Softsign") return x / (1 + std::fabs(x));
  if (n == "Softplus") return std::log(1 + std::exp(x));
  ADD_FAILURE() << "unknown activation " << n;
  return 0;
}

// One layer's configuration; acts empty = the defaults.
struct Cfg {
  std::string op = "LSTM";
  std::string direction = "forward";
  int64_t hidden = 0;
  float clip = 0;  // 0: none
  bool input_forget = false, lbr = false;
  bool layout1 = false;
  bool hidden_attr = true;
  std::vector<ActSpec> acts;  // all of them (both directions when bidirectional)
};

int gates_of(const std::string& op) { return op == "LSTM" ? 4 : op == "GRU" ? 3 : 1; }
int nacts_of(const std::string& op) { return op == "LSTM" ? 3 : op == "GRU" ? 2 : 1; }

Node node_of(const Cfg& c) {
  const int nin = c.op == "LSTM" ? 8 : 6, nout = c.op == "LSTM" ? 3 : 2;
  Node n = test::make_node(c.op, nin, nout);
  if (c.hidden_attr) n.attrs["hidden_size"] = attr_int(c.hidden);
  n.attrs["direction"] = attr_string(c.direction);
  if (c.clip > 0) n.attrs["clip"] = attr_float(c.clip);
  if (c.input_forget) n.attrs["input_forget"] = attr_int(1);
  if (c.op == "GRU") n.attrs["linear_before_reset"] = attr_int(c.lbr ? 1 : 0);
  if (c.layout1) n.attrs["layout"] = attr_int(1);
  if (!c.acts.empty()) {
    Attribute names;
    names.kind = Attribute::Kind::kStrings;
    std::vector<float> alphas, betas;
    for (const ActSpec& a : c.acts) {
      names.strings.push_back(a.name);
      if (takes_alpha(a.name)) alphas.push_back(static_cast<float>(a.alpha));
      if (takes_beta(a.name)) betas.push_back(static_cast<float>(a.beta));
    }
    n.attrs["activations"] = names;
    if (!alphas.empty()) n.attrs["activation_alpha"] = attr_floats(alphas);
    if (!betas.empty()) n.attrs["activation_beta"] = attr_floats(betas);
  }
  return n;
}

// Inputs in layout 0 (the reference's); X [seq, batch, in].
struct Inputs {
  Tensor x, w, r, b, lens, h0, c0, p;
};

float f32(const Tensor& t, int64_t i) { return t.data<float>()[i]; }

// The reference: outputs Y [seq, nd, batch, H], Y_h and Y_c [nd, batch, H].
std::vector<Tensor> reference(const Cfg& c, const Inputs& in) {
  const int64_t seq = in.x.dim(0), batch = in.x.dim(1), isz = in.x.dim(2), H = c.hidden;
  const int nd = c.direction == "bidirectional" ? 2 : 1, G = gates_of(c.op), na = nacts_of(c.op);
  std::vector<ActSpec> acts = c.acts;
  if (acts.empty()) {
    if (c.op == "LSTM") acts = {{"Sigmoid"}, {"Tanh"}, {"Tanh"}};
    if (c.op == "GRU") acts = {{"Sigmoid"}, {"Tanh"}};
    if (c.op == "RNN") acts = {{"Tanh"}};
  }
  if (static_cast<int>(acts.size()) < na * nd) {
    const std::vector<ActSpec> one = acts;
    acts.insert(acts.end(), one.begin(), one.end());
  }
  Tensor y = Tensor::allocate(DType::kFloat32, {seq, nd, batch, H});
  Tensor yh = Tensor::allocate(DType::kFloat32, {nd, batch, H});
  Tensor yc = Tensor::allocate(DType::kFloat32, {nd, batch, H});
  for (int64_t i = 0; i < y.numel(); ++i) y.mutable_data<float>()[i] = 0;
  auto clip = [&](double v) { return c.clip > 0 ? std::min(std::max(v, -double(c.clip)), double(c.clip)) : v; };
  for (int d = 0; d < nd; ++d) {
    const bool rev = c.direction == "reverse" || d == 1;
    const ActSpec* A = &acts[static_cast<size_t>(d * na)];
    const int64_t wo = d * G * H * isz, ro = d * G * H * H, bo = d * 2 * G * H;
    // x_t W_g^T + Wb_g, row j of gate g.
    auto xw = [&](int64_t t, int64_t b, int g, int64_t j) {
      double s = in.b.defined() ? f32(in.b, bo + g * H + j) : 0;
      for (int64_t k = 0; k < isz; ++k) s += double(f32(in.x, (t * batch + b) * isz + k)) * f32(in.w, wo + (g * H + j) * isz + k);
      return s;
    };
    auto hr = [&](const std::vector<double>& h, int g, int64_t j) {
      double s = 0;
      for (int64_t k = 0; k < H; ++k) s += h[size_t(k)] * f32(in.r, ro + (g * H + j) * H + k);
      return s;
    };
    auto rb = [&](int g, int64_t j) { return in.b.defined() ? double(f32(in.b, bo + G * H + g * H + j)) : 0.0; };
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = in.lens.defined() ? in.lens.data<int32_t>()[b] : seq;
      std::vector<double> h(static_cast<size_t>(H), 0), cs(static_cast<size_t>(H), 0);
      for (int64_t j = 0; j < H; ++j) {
        if (in.h0.defined()) h[size_t(j)] = f32(in.h0, (d * batch + b) * H + j);
        if (in.c0.defined()) cs[size_t(j)] = f32(in.c0, (d * batch + b) * H + j);
      }
      for (int64_t s = 0; s < len; ++s) {
        const int64_t t = rev ? len - 1 - s : s;
        std::vector<double> hn(static_cast<size_t>(H)), cn(static_cast<size_t>(H));
        for (int64_t j = 0; j < H; ++j) {
          const size_t u = size_t(j);
          if (c.op == "LSTM") {
            auto peep = [&](int k, double cell) { return in.p.defined() ? f32(in.p, d * 3 * H + k * H + j) * cell : 0.0; };
            const double i = act(A[0], clip(xw(t, b, 0, j) + hr(h, 0, j) + rb(0, j) + peep(0, cs[u])));
            const double f = c.input_forget ? 1 - i : act(A[0], clip(xw(t, b, 2, j) + hr(h, 2, j) + rb(2, j) + peep(2, cs[u])));
            const double g = act(A[1], clip(xw(t, b, 3, j) + hr(h, 3, j) + rb(3, j)));
            cn[u] = f * cs[u] + i * g;
            const double o = act(A[0], clip(xw(t, b, 1, j) + hr(h, 1, j) + rb(1, j) + peep(1, cn[u])));
            hn[u] = o * act(A[2], cn[u]);
          } else if (c.op == "GRU") {
            const double z = act(A[0], clip(xw(t, b, 0, j) + hr(h, 0, j) + rb(0, j)));
            double hh;
            if (c.lbr) {
              const double r = act(A[0], clip(xw(t, b, 1, j) + hr(h, 1, j) + rb(1, j)));
              hh = act(A[1], clip(xw(t, b, 2, j) + r * (hr(h, 2, j) + rb(2, j))));
            } else {
              std::vector<double> rh(static_cast<size_t>(H));
              for (int64_t k = 0; k < H; ++k)
                rh[size_t(k)] = act(A[0], clip(xw(t, b, 1, k) + hr(h, 1, k) + rb(1, k))) * h[size_t(k)];
              hh = act(A[1], clip(xw(t, b, 2, j) + hr(rh, 2, j) + rb(2, j)));
            }
            hn[u] = (1 - z) * hh + z * h[u];
          } else {
            hn[u] = act(A[0], clip(xw(t, b, 0, j) + hr(h, 0, j) + rb(0, j)));
          }
        }
        h = hn;
        if (c.op == "LSTM") cs = cn;
        for (int64_t j = 0; j < H; ++j) y.mutable_data<float>()[((t * nd + d) * batch + b) * H + j] = float(h[size_t(j)]);
      }
      for (int64_t j = 0; j < H; ++j) {
        yh.mutable_data<float>()[(d * batch + b) * H + j] = len == 0 ? 0.f : float(h[size_t(j)]);
        yc.mutable_data<float>()[(d * batch + b) * H + j] = len == 0 ? 0.f : float(cs[size_t(j)]);
      }
    }
  }
  return {y, yh, yc};
}

// Swaps the first two dims of a 3-D or 4-D tensor (layout 0 <-> 1 for X,
// Y [seq, nd, batch, H] <-> [batch, seq, nd, H] needs a rotation: see below).
Tensor swap01(const Tensor& t) {
  const int64_t a = t.dim(0), b = t.dim(1), rest = t.numel() / (a * b);
  Shape s = t.shape();
  std::swap(s[0], s[1]);
  Tensor o = Tensor::allocate(DType::kFloat32, s);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t k = 0; k < rest; ++k) o.mutable_data<float>()[(j * a + i) * rest + k] = f32(t, (i * b + j) * rest + k);
  return o;
}
// Y [seq, nd, batch, H] -> [batch, seq, nd, H].
Tensor y_to_layout1(const Tensor& y) {
  const int64_t seq = y.dim(0), nd = y.dim(1), batch = y.dim(2), H = y.dim(3);
  Tensor o = Tensor::allocate(DType::kFloat32, {batch, seq, nd, H});
  for (int64_t t = 0; t < seq; ++t)
    for (int64_t d = 0; d < nd; ++d)
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j < H; ++j)
          o.mutable_data<float>()[((b * seq + t) * nd + d) * H + j] = f32(y, ((t * nd + d) * batch + b) * H + j);
  return o;
}

struct Opts {
  bool bias = true, lens = false, h0 = false, c0 = false, peep = false;
  std::vector<int32_t> len_values;
};

Inputs make_inputs(const Cfg& c, int64_t seq, int64_t batch, int64_t isz, const Opts& o, uint32_t seed) {
  const int nd = c.direction == "bidirectional" ? 2 : 1, G = gates_of(c.op);
  const int64_t H = c.hidden;
  Inputs in;
  in.x = random_tensor({seq, batch, isz}, seed, -1.f, 1.f);
  in.w = random_tensor({nd, G * H, isz}, seed + 1, -0.6f, 0.6f);
  in.r = random_tensor({nd, G * H, H}, seed + 2, -0.6f, 0.6f);
  if (o.bias) in.b = random_tensor({nd, 2 * G * H}, seed + 3, -0.5f, 0.5f);
  if (o.lens) in.lens = make_tensor<int32_t>({batch}, o.len_values);
  if (o.h0) in.h0 = random_tensor({nd, batch, H}, seed + 4, -1.f, 1.f);
  if (o.c0) in.c0 = random_tensor({nd, batch, H}, seed + 5, -1.f, 1.f);
  if (o.peep) in.p = random_tensor({nd, 3 * H}, seed + 6, -0.5f, 0.5f);
  return in;
}

// Runs the kernel on `in` (converted to the node's layout) and compares
// every output with the reference.
void check(const Cfg& c, const Inputs& in, const std::string& what, int threads = 1) {
  SCOPED_TRACE(what);
  const bool lstm = c.op == "LSTM";
  std::vector<Tensor> args = {c.layout1 ? swap01(in.x) : in.x, in.w, in.r, in.b, in.lens,
                              in.h0.defined() && c.layout1 ? swap01(in.h0) : in.h0};
  if (lstm) {
    args.push_back(in.c0.defined() && c.layout1 ? swap01(in.c0) : in.c0);
    args.push_back(in.p);
  }
  const KernelFn fn = lstm ? kernels::LSTM : c.op == "GRU" ? kernels::GRU : kernels::RNN;
  auto out = run_kernel(fn, node_of(c), args, 14, threads);
  ASSERT_TRUE(out.has_value()) << out.message();
  std::vector<Tensor> want = reference(c, in);
  if (c.layout1) {
    want[0] = y_to_layout1(want[0]);
    want[1] = swap01(want[1]);
    want[2] = swap01(want[2]);
  }
  constexpr double kAtol = 2e-5, kRtol = 1e-4;
  EXPECT_TRUE(tensors_near((*out)[0], want[0], kAtol, kRtol)) << "Y";
  EXPECT_TRUE(tensors_near((*out)[1], want[1], kAtol, kRtol)) << "Y_h";
  if (lstm) {
    EXPECT_TRUE(tensors_near((*out)[2], want[2], kAtol, kRtol)) << "Y_c";
  }
}

const char* const kDirections[] = {"forward", "reverse", "bidirectional"};

TEST(Recurrent, LstmDirectionsBiasStatesPeepholes) {
  uint32_t seed = 10;
  for (const char* dir : kDirections)
    for (int variant = 0; variant < 4; ++variant) {
      Cfg c;
      c.direction = dir;
      c.hidden = 6;
      Opts o;
      o.bias = variant != 0;
      o.h0 = o.c0 = variant >= 2;
      o.peep = variant == 3;
      check(c, make_inputs(c, 5, 3, 4, o, seed += 10), std::string(dir) + " variant " + std::to_string(variant));
    }
}

TEST(Recurrent, LstmSequenceLensClipInputForget) {
  uint32_t seed = 200;
  for (const char* dir : kDirections) {
    Cfg c;
    c.direction = dir;
    c.hidden = 5;
    Opts o;
    o.lens = o.h0 = o.c0 = o.peep = true;
    o.len_values = {4, 0, 2, 1};  // 0: a padding entry (zeros everywhere)
    check(c, make_inputs(c, 4, 4, 3, o, seed += 10), std::string(dir) + " lens");
    c.clip = 0.3f;
    check(c, make_inputs(c, 4, 4, 3, o, seed += 10), std::string(dir) + " lens clip");
    c.clip = 0;
    c.input_forget = true;
    check(c, make_inputs(c, 4, 4, 3, o, seed += 10), std::string(dir) + " input_forget");
  }
}

TEST(Recurrent, GruBothLinearBeforeReset) {
  uint32_t seed = 400;
  for (const char* dir : kDirections)
    for (bool lbr : {false, true})
      for (int variant = 0; variant < 3; ++variant) {
        Cfg c;
        c.op = "GRU";
        c.direction = dir;
        c.hidden = 7;
        c.lbr = lbr;
        Opts o;
        o.bias = variant != 0;
        o.h0 = variant >= 1;
        o.lens = variant == 2;
        o.len_values = {3, 1, 0};
        if (variant == 2) c.clip = 0.5f;
        check(c, make_inputs(c, 3, 3, 5, o, seed += 10),
              std::string(dir) + (lbr ? " lbr=1" : " lbr=0") + " variant " + std::to_string(variant));
      }
}

TEST(Recurrent, RnnDirectionsAndEveryActivation) {
  uint32_t seed = 600;
  for (const char* dir : kDirections)
    for (int variant = 0; variant < 3; ++variant) {
      Cfg c;
      c.op = "RNN";
      c.direction = dir;
      c.hidden = 4;
      Opts o;
      o.bias = variant != 0;
      o.h0 = variant >= 1;
      o.lens = variant == 2;
      o.len_values = {2, 3};
      if (variant == 2) c.clip = 0.4f;
      check(c, make_inputs(c, 3, 2, 3, o, seed += 10), std::string(dir) + " variant " + std::to_string(variant));
    }
  // Each activation function, with non-default alpha/beta where it takes them.
  const std::vector<ActSpec> all = {{"Relu"},           {"Tanh"},          {"Sigmoid"},
                                    {"Affine", 0.7, -0.2}, {"LeakyRelu", 0.3}, {"ThresholdedRelu", 0.1},
                                    {"ScaledTanh", 1.5, 0.8}, {"HardSigmoid", 0.3, 0.4}, {"Elu", 0.6},
                                    {"Softsign"},       {"Softplus"}};
  for (const ActSpec& a : all) {
    Cfg c;
    c.op = "RNN";
    c.hidden = 5;
    c.acts = {a};
    Opts o;
    o.h0 = true;
    check(c, make_inputs(c, 3, 2, 4, o, seed += 10), a.name);
  }
  // The defaults of the ones with parameters (no activation_alpha / beta).
  for (const ActSpec& a : std::vector<ActSpec>{{"LeakyRelu", 0.01}, {"ThresholdedRelu", 1.0}, {"Elu", 1.0},
                                               {"HardSigmoid", 0.2, 0.5}, {"Affine", 1.0, 0.0}, {"ScaledTanh", 1.0, 1.0}}) {
    Cfg c;
    c.op = "RNN";
    c.hidden = 5;
    Opts o;
    Inputs in = make_inputs(c, 3, 2, 4, o, seed += 10);
    Node n = node_of(c);
    Attribute names;
    names.kind = Attribute::Kind::kStrings;
    names.strings = {a.name};
    n.attrs["activations"] = names;
    auto out = run_kernel(kernels::RNN, n, {in.x, in.w, in.r, in.b}, 14);
    ASSERT_TRUE(out.has_value()) << out.message();
    c.acts = {a};
    EXPECT_TRUE(tensors_near((*out)[0], reference(c, in)[0], 2e-5, 1e-4)) << a.name << " defaults";
  }
}

TEST(Recurrent, NonDefaultActivationsPerDirection) {
  Cfg lstm;
  lstm.direction = "bidirectional";
  lstm.hidden = 6;
  lstm.acts = {{"HardSigmoid", 0.25, 0.45}, {"LeakyRelu", 0.2}, {"Softsign"},
               {"Sigmoid"},                 {"ScaledTanh", 1.2, 0.7}, {"Elu", 0.9}};
  Opts o;
  o.h0 = o.c0 = o.peep = true;
  Inputs in = make_inputs(lstm, 4, 2, 3, o, 900);
  {
    Node n = node_of(lstm);
    n.attrs["activations"].strings[5] = "elu";  // names match in any case
    n.attrs["activations"].strings[1] = "LEAKYRELU";
    auto out = run_kernel(kernels::LSTM, n, {in.x, in.w, in.r, in.b, Tensor(), in.h0, in.c0, in.p}, 14);
    ASSERT_TRUE(out.has_value()) << out.message();
    auto want = reference(lstm, in);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(tensors_near((*out)[size_t(i)], want[size_t(i)], 2e-5, 1e-4)) << i;
  }
  Cfg gru;
  gru.op = "GRU";
  gru.direction = "bidirectional";
  gru.hidden = 4;
  gru.acts = {{"Sigmoid"}, {"Relu"}, {"HardSigmoid", 0.3, 0.6}, {"Affine", 0.5, 0.1}};
  check(gru, make_inputs(gru, 3, 2, 3, Opts{}, 920), "GRU per direction");
  gru.lbr = true;
  check(gru, make_inputs(gru, 3, 2, 3, Opts{}, 930), "GRU per direction lbr");
  // A bidirectional layer given one direction's activations uses them for both.
  Cfg rnn;
  rnn.op = "RNN";
  rnn.direction = "bidirectional";
  rnn.hidden = 3;
  rnn.acts = {{"Softplus"}};
  check(rnn, make_inputs(rnn, 3, 2, 3, Opts{}, 940), "RNN one activation for both directions");
}

TEST(Recurrent, Layout1) {
  uint32_t seed = 1000;
  for (const char* op : {"LSTM", "GRU", "RNN"})
    for (const char* dir : kDirections) {
      Cfg c;
      c.op = op;
      c.direction = dir;
      c.hidden = 5;
      c.layout1 = true;
      Opts o;
      o.h0 = true;
      o.c0 = c.op == "LSTM";
      o.lens = true;
      o.len_values = {3, 1, 2};
      check(c, make_inputs(c, 3, 3, 4, o, seed += 10), std::string(op) + " " + dir);
    }
}

TEST(Recurrent, SileroSizeAndHiddenSizeFromR) {
  // hidden 128 (whole vectors in every activation), no hidden_size attribute.
  Cfg c;
  c.hidden = 128;
  c.hidden_attr = false;
  Opts o;
  o.h0 = o.c0 = true;
  check(c, make_inputs(c, 2, 1, 128, o, 1100), "LSTM 128");
  c.op = "GRU";
  check(c, make_inputs(c, 2, 2, 64, o, 1110), "GRU 128");
  // Large enough for threaded GEMMs (2^20 multiply-adds and more), on 2 threads.
  set_num_threads(2);
  c.op = "LSTM";
  c.direction = "bidirectional";
  check(c, make_inputs(c, 8, 4, 128, o, 1115), "LSTM 128 threaded", 2);
  set_num_threads(1);
  // Large pre-activations: tanh and sigmoid saturate without NaN.
  Cfg r;
  r.op = "RNN";
  r.hidden = 3;
  Inputs in = make_inputs(r, 2, 1, 2, Opts{}, 1120);
  for (int64_t i = 0; i < in.x.numel(); ++i) in.x.mutable_data<float>()[i] *= 1e4f;
  check(r, in, "RNN saturated");
}

TEST(Recurrent, OmittedOutputsAndEmptyShapes) {
  Cfg c;
  c.hidden = 4;
  Opts o;
  o.h0 = o.c0 = true;
  Inputs in = make_inputs(c, 3, 2, 3, o, 1200);
  const auto want = reference(c, in);
  std::vector<Tensor> args = {in.x, in.w, in.r, in.b, Tensor(), in.h0, in.c0};
  for (int keep = 0; keep < 3; ++keep) {
    Node n = node_of(c);
    for (int k = 0; k < 3; ++k)
      if (k != keep) n.outputs[size_t(k)] = kNoValue;
    auto out = run_kernel(kernels::LSTM, n, args, 14);
    ASSERT_TRUE(out.has_value()) << out.message();
    EXPECT_TRUE(tensors_near((*out)[size_t(keep)], want[size_t(keep)], 2e-5, 1e-4)) << keep;
    for (int k = 0; k < 3; ++k)
      if (k != keep) {
        EXPECT_FALSE((*out)[size_t(k)].defined()) << k;
      }
  }
  // seq_length 0: empty Y, zero states (every length is 0).
  Inputs e = make_inputs(c, 0, 2, 3, o, 1210);
  auto out = run_kernel(kernels::LSTM, node_of(c), {e.x, e.w, e.r, e.b, Tensor(), e.h0, e.c0}, 14);
  ASSERT_TRUE(out.has_value()) << out.message();
  EXPECT_EQ((*out)[0].shape(), (Shape{0, 1, 2, 4}));
  EXPECT_TRUE(tensors_near((*out)[1], make_tensor<float>({1, 2, 4}, std::vector<float>(8, 0.f)), 0, 0));
  // batch 0 and input_size 0.
  Inputs b0 = make_inputs(c, 3, 0, 3, Opts{}, 1220);
  out = run_kernel(kernels::LSTM, node_of(c), {b0.x, b0.w, b0.r}, 14);
  ASSERT_TRUE(out.has_value()) << out.message();
  EXPECT_EQ((*out)[0].shape(), (Shape{3, 1, 0, 4}));
  c.op = "GRU";
  check(c, make_inputs(c, 3, 2, 0, Opts{}, 1230), "input_size 0");
  // int64 sequence_lens give the same result as int32.
  Opts lo;
  lo.lens = true;
  lo.len_values = {2, 0};
  Inputs li = make_inputs(c, 3, 2, 3, lo, 1240);
  auto a = run_kernel(kernels::GRU, node_of(c), {li.x, li.w, li.r, li.b, li.lens}, 14);
  auto b = run_kernel(kernels::GRU, node_of(c), {li.x, li.w, li.r, li.b, make_tensor<int64_t>({2}, {2, 0})}, 14);
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_TRUE(test::tensors_equal((*a)[0], (*b)[0]));
  EXPECT_TRUE(test::tensors_equal((*a)[1], (*b)[1]));
}

// X -> LSTM (initializers W, R, B) -> Y, Y_h, Y_c.
std::shared_ptr<Model> lstm_model(const Cfg& c, const Inputs& in) {
  auto m = std::make_shared<Model>();
  m->path = "lstm.onnx";
  Graph& g = m->graph;
  g.opset = 14;
  const int x = test::add_input(g, "X");
  const int w = test::add_init(g, "W", in.w), r = test::add_init(g, "R", in.r), b = test::add_init(g, "B", in.b);
  Node n = node_of(c);
  const int y = test::add_node(g, "LSTM", "", {x, w, r, b}, "Y", n.attrs);
  Node& node = g.nodes.back();
  for (const char* name : {"Y_h", "Y_c"}) {
    const int v = g.add_value(name);
    g.values[size_t(v)].producer = 0;
    node.outputs.push_back(v);
    g.outputs.push_back(v);
  }
  g.outputs.insert(g.outputs.begin(), y);
  return m;
}

TEST(Recurrent, PlannedSessionRunsTwice) {
  // Through a session: planned arena, workspace at a planned offset.
  Cfg c;
  c.hidden = 8;
  c.direction = "bidirectional";
  Inputs in = make_inputs(c, 4, 2, 5, Opts{}, 1300);
  std::unique_ptr<Session> s = test::session_on(lstm_model(c, in), SessionOptions{1});
  ASSERT_NE(s, nullptr);
  const auto want = reference(c, in);
  for (int run = 0; run < 2; ++run) {
    auto out = s->run({{"X", in.x}});
    ASSERT_TRUE(out.has_value()) << out.message();
    ASSERT_EQ(out->size(), 3u);
    for (size_t k = 0; k < 3; ++k) EXPECT_TRUE(tensors_near((*out)[k].tensor, want[k], 2e-5, 1e-4)) << k;
  }
}

TEST(Recurrent, SessionRefusesBadAttributesAtCreation) {
  // The prepare function runs once per node in Session::create.
  Cfg c;
  c.hidden = 3;
  c.direction = "sideways";
  Inputs in = make_inputs(c, 2, 1, 2, Opts{}, 1350);
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(lstm_model(c, in), table, SessionOptions{1});
  ASSERT_FALSE(s.has_value());
  EXPECT_HAS(s.message(), "Y_node");
  EXPECT_HAS(s.message(), "attribute 'direction' must be");
  // layout exists from opset 14 only.
  c.direction = "forward";
  c.layout1 = true;
  auto m = lstm_model(c, in);
  m->graph.opset = 13;
  s = Session::create(m, table, SessionOptions{1});
  ASSERT_FALSE(s.has_value());
  EXPECT_HAS(s.message(), "layout");
}

TEST(Recurrent, AttributeErrors) {
  Cfg c;
  c.hidden = 2;
  Inputs in = make_inputs(c, 2, 1, 3, Opts{}, 1400);
  const std::vector<Tensor> args = {in.x, in.w, in.r};
  auto err = [&](const std::string& op, const std::string& key, Attribute a, int64_t opset = 14) {
    Cfg k = c;
    k.op = op;
    Node n = node_of(k);
    n.attrs[key] = std::move(a);
    const KernelFn fn = op == "LSTM" ? kernels::LSTM : op == "GRU" ? kernels::GRU : kernels::RNN;
    return run_error(fn, n, args, opset);
  };
  EXPECT_HAS(err("LSTM", "direction", attr_string("backward")),
             "attribute 'direction' must be \"forward\", \"reverse\" or \"bidirectional\", got \"backward\"");
  EXPECT_HAS(err("LSTM", "hidden_size", attr_int(0)), "attribute 'hidden_size' must be > 0, got 0");
  EXPECT_HAS(err("GRU", "hidden_size", attr_int(-3)), "attribute 'hidden_size' must be > 0, got -3");
  EXPECT_HAS(err("RNN", "clip", attr_float(-1.f)), "attribute 'clip' must be > 0, got -1");
  EXPECT_HAS(err("RNN", "clip", attr_float(std::nanf(""))), "attribute 'clip' must be > 0, got nan");
  EXPECT_HAS(err("LSTM", "layout", attr_int(2)), "attribute 'layout' must be 0 or 1, got 2");
  EXPECT_HAS(err("LSTM", "input_forget", attr_int(3)), "attribute 'input_forget' must be 0 or 1, got 3");
  EXPECT_HAS(err("GRU", "linear_before_reset", attr_int(-1)), "attribute 'linear_before_reset' must be 0 or 1, got -1");
  Attribute names;
  names.kind = Attribute::Kind::kStrings;
  names.strings = {"Sigmoid", "Tanh"};
  EXPECT_HAS(err("LSTM", "activations", names),
             "attribute 'activations' has 2 names; LSTM with direction \"forward\" takes 3");
  names.strings = {"Sigmoid", "Swish"};
  EXPECT_HAS(err("GRU", "activations", names), "attribute 'activations' names an unknown activation \"Swish\"");
  // activation_alpha / beta values no activation takes.
  {
    Cfg k = c;
    k.op = "RNN";
    k.acts = {{"Relu"}};
    Node n = node_of(k);
    n.attrs["activation_alpha"] = attr_floats({0.5f});
    EXPECT_HAS(run_error(kernels::RNN, n, args, 14), "attribute 'activation_alpha' has 1 values but the activations take 0");
    n = node_of(k);
    n.attrs["activations"].strings = {"LeakyRelu"};
    n.attrs["activation_alpha"] = attr_floats({0.5f});
    n.attrs["activation_beta"] = attr_floats({0.5f, 1.f});
    EXPECT_HAS(run_error(kernels::RNN, n, args, 14), "attribute 'activation_beta' has 2 values but the activations take 0");
    n = node_of(k);
    n.attrs.erase("activations");
    n.attrs["activation_beta"] = attr_floats({0.5f});
    EXPECT_HAS(run_error(kernels::RNN, n, args, 14), "the default activations take none");
  }
}

TEST(Recurrent, InputErrors) {
  Cfg c;
  c.hidden = 2;
  Opts o;
  o.h0 = o.c0 = o.peep = true;
  Inputs in = make_inputs(c, 3, 2, 3, o, 1500);
  Node n = node_of(c);
  auto err = [&](std::vector<Tensor> args, const Node& node, int64_t opset = 14) {
    return run_error(kernels::LSTM, node, args, opset);
  };
  const Tensor lens = make_tensor<int32_t>({2}, {3, 1});
  auto base = [&] { return std::vector<Tensor>{in.x, in.w, in.r, in.b, lens, in.h0, in.c0, in.p}; };
  auto with = [&](size_t i, Tensor t) {
    auto a = base();
    a[i] = std::move(t);
    return a;
  };
  ASSERT_TRUE(run_kernel(kernels::LSTM, n, base(), 14).has_value());
  EXPECT_HAS(err({in.x, in.w}, n), "LSTM needs inputs X, W and R (input 2 is missing)");
  EXPECT_HAS(err(with(0, make_tensor<int32_t>({1, 1, 3}, {1, 2, 3})), n), "input 'X' must be float32, got int32");
  EXPECT_HAS(err(with(0, random_tensor({3, 6}, 1)), n), "input 'X' must be 3-D [seq_length, batch_size, input_size], got [3, 6]");
  EXPECT_HAS(err(with(1, random_tensor({1, 8, 4}, 1)), n),
             "input 'W' has shape [1, 8, 4]; expected [1, 8, 3] (num_directions, 4*hidden_size, input_size)");
  EXPECT_HAS(err(with(1, random_tensor({2, 8, 3}, 1)), n), "input 'W' has shape [2, 8, 3]; expected [1, 8, 3]");
  EXPECT_HAS(err(with(2, random_tensor({1, 8, 3}, 1)), n),
             "input 'R' has shape [1, 8, 3]; expected [1, 8, 2] (num_directions, 4*hidden_size, hidden_size)");
  EXPECT_HAS(err(with(2, random_tensor({8, 2}, 1)), n), "input 'R' must be 3-D [num_directions, 4*hidden_size, hidden_size], got [8, 2]");
  EXPECT_HAS(err(with(3, random_tensor({1, 8}, 1)), n),
             "input 'B' has shape [1, 8]; expected [1, 16] (num_directions, 2*4*hidden_size)");
  EXPECT_HAS(err(with(3, make_tensor<int32_t>({1, 16}, std::vector<int32_t>(16, 0))), n), "input 'B' must be float32, got int32");
  EXPECT_HAS(err(with(4, make_tensor<int32_t>({3}, {1, 1, 1})), n), "input 'sequence_lens' has shape [3]; expected [2] (batch_size)");
  EXPECT_HAS(err(with(4, make_tensor<float>({2}, {1, 1})), n), "input 'sequence_lens' must be int32 (or int64), got float32");
  EXPECT_HAS(err(with(4, make_tensor<int32_t>({2}, {3, 4})), n),
             "input 'sequence_lens' has 4 at index 1; each length must be in [0, seq_length=3]");
  EXPECT_HAS(err(with(4, make_tensor<int32_t>({2}, {-1, 2})), n),
             "input 'sequence_lens' has -1 at index 0; each length must be in [0, seq_length=3]");
  EXPECT_HAS(err(with(5, random_tensor({1, 3, 2}, 1)), n),
             "input 'initial_h' has shape [1, 3, 2]; expected [1, 2, 2] (num_directions, batch_size, hidden_size)");
  EXPECT_HAS(err(with(6, random_tensor({2, 1, 2}, 1)), n), "input 'initial_c' has shape [2, 1, 2]; expected [1, 2, 2]");
  EXPECT_HAS(err(with(7, random_tensor({1, 8}, 1)), n),
             "input 'P' has shape [1, 8]; expected [1, 6] (num_directions, 3*hidden_size)");
  EXPECT_HAS(err(with(5, make_tensor<int64_t>({1, 2, 2}, {0, 0, 0, 0})), n), "input 'initial_h' must be float32, got int64");
  // layout = 1: the states are [batch, num_directions, hidden].
  Node l1 = n;
  l1.attrs["layout"] = attr_int(1);
  EXPECT_HAS(err({swap01(in.x), in.w, in.r, in.b, lens, in.h0}, l1),
             "input 'initial_h' has shape [1, 2, 2]; expected [2, 1, 2] (batch_size, num_directions, hidden_size)");
  EXPECT_HAS(err({random_tensor({4}, 1), in.w, in.r}, l1),
             "input 'X' must be 3-D [batch_size, seq_length, input_size], got [4]");
  // hidden_size against W and R; absent, taken from R.
  Node h3 = n;
  h3.attrs["hidden_size"] = attr_int(3);
  EXPECT_HAS(err(base(), h3), "input 'W' has shape [1, 8, 3]; expected [1, 12, 3]");
  Node none = n;
  none.attrs.erase("hidden_size");
  EXPECT_TRUE(run_kernel(kernels::LSTM, none, base(), 14).has_value());
  EXPECT_HAS(err({in.x, random_tensor({1, 0, 3}, 1), random_tensor({1, 0, 0}, 1)}, none),
             "hidden_size (attribute absent, taken from R [1, 0, 0]) must be > 0");
  Node huge = n;
  huge.attrs["hidden_size"] = attr_int(INT64_C(1) << 62);
  EXPECT_HAS(err(base(), huge), "attribute 'hidden_size' 4611686018427387904 is too large");
  // GRU and RNN name their gate counts; RNN/GRU take no initial_c.
  Cfg g = c;
  g.op = "GRU";
  EXPECT_HAS(run_error(kernels::GRU, node_of(g), {in.x, in.w, in.r}, 14),
             "input 'W' has shape [1, 8, 3]; expected [1, 6, 3] (num_directions, 3*hidden_size, input_size)");
  Cfg r = c;
  r.op = "RNN";
  Node rn = node_of(r);
  EXPECT_HAS(run_error(kernels::RNN, rn, {in.x, random_tensor({1, 2, 3}, 1), random_tensor({1, 2, 2}, 1), in.b}, 14),
             "input 'B' has shape [1, 16]; expected [1, 4] (num_directions, 2*1*hidden_size)");
  // Too many outputs for GRU / RNN; X whose steps need more scratch than an
  // int64 count (empty, so it exists: [2^62, 1, 0]; Y omitted).
  Node ro = rn;
  ro.outputs.push_back(99);
  EXPECT_HAS(run_error(kernels::RNN, ro, {in.x, random_tensor({1, 2, 3}, 1), random_tensor({1, 2, 2}, 1)}, 14),
             "RNN has at most 2 outputs (Y, Y_h), got 3");
  Node ny = n;
  ny.outputs[0] = kNoValue;
  const Tensor huge_x = Tensor::allocate(DType::kFloat32, {INT64_C(1) << 62, 1, 0});
  EXPECT_HAS(err({huge_x, random_tensor({1, 8, 0}, 1), in.r}, ny),
             "input 'X' [4611686018427387904, 1, 0] with hidden_size 2 needs more scratch than can be addressed");
  EXPECT_HAS(err(with(1, make_tensor<int32_t>({1, 8, 3}, std::vector<int32_t>(24, 0))), n), "input 'W' must be float32, got int32");
  rn.inputs.push_back(6);
  EXPECT_HAS(run_error(kernels::RNN, rn, {in.x, random_tensor({1, 2, 3}, 1), random_tensor({1, 2, 2}, 1), Tensor(),
                                          Tensor(), Tensor(), in.c0}, 14),
             "RNN takes at most 6 inputs, got 7");
}

}  // namespace
}  // namespace sarai
