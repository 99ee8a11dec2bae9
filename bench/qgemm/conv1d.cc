// qgemm_bench's convolutions: the Conv1d front end of the audio encoders,
// through the ops themselves (a one-node graph in a Session, as `sarai-rt
// run` executes it): INT8 QConv (quantize + im2col + GEMM + epilogue)
// against the FP32 Conv (oneDNN sgemm). Whisper's two convolutions over 30 s of audio (3000 mel frames):
//   conv:1  80 -> 512 channels, k3, pad 1, stride 1 (d_model 512: base)
//   conv:2  512 -> 512, k3, pad 1, stride 2 (-> 1500 positions)
// GOPS counts 2 * M * C * 3 * out_positions (the useful multiply-adds).
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/qgemm/common.h"
#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "kernels/cpu/qgemm.h"
#include "runtime/graph.h"
#include "runtime/model.h"
#include "runtime/parallel.h"
#include "runtime/session.h"

namespace qgemm_bench {

namespace {

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

}  // namespace

void BM_qconv1d(benchmark::State& st) { run_conv(st, true); }
void BM_conv1d_fp32(benchmark::State& st) { run_conv(st, false); }

}  // namespace qgemm_bench
