// The memory-bound row kernels around the INT8 GEMM, at the audio encoders'
// sizes, in bytes per second (bytes_per_second: the operands' bytes read +
// written once per call, so a kernel that reads its input twice still counts
// it once). See bench/README.md.
//
//   BM_quantize_u8        kernels::quantize_u8 (range pass + quantize pass,
//                         threaded): 4 B in + 1 B out per element
//   BM_quantize_u8_with   the quantize pass alone (scale, zero point given)
//   BM_epilogue_row       the INT8 GEMM's float epilogue over rows of int32
//                         accumulators (qgemm_default_ukernel().epilogue_row;
//                         there is no separate vectorized dequantize, the
//                         scalar one is kernels::dequantize_acc): 4 B in + 4 B
//                         out per element (comp, cscale, bias are per-channel
//                         rows that stay in L1 and are not counted)
//   BM_epilogue_row_scalar  the same with the scalar reference epilogue
//   BM_softmax_row        vec_kernels().softmax_row over rows of 1500 (T x T
//                         attention scores): 4 B in + 4 B out
//   BM_gelu               vec_kernels().gelu (the fc1 epilogue's GELU) on
//                         2048 x 32 floats in L2; items = floats
//   BM_softmax_u8_row     vec_kernels().softmax_u8_row (INT8 attention's
//                         softmax, P·vs and u8 quantization, given the
//                         scores and their maxima) over rows of 1500 and of
//                         1536 (no tail): 4 B in + 1 B out
//   BM_layernorm_row      vec_kernels().layernorm_row, 1500 rows x 512
//   BM_attention          the fused Attention op (kernels/attention.cc) on
//                         [heads, T, 64] x [heads, 64, T] x [heads, T, 64],
//                         precision 0 fp32, 1 int8 (per row), 2
//                         int8-per-tensor; items = multiply-adds of its two
//                         products (2 * heads * T * T * 64), so items/s is
//                         MAC/s including softmax and quantization
//   BM_bilstm             a CRNN's bidirectional LSTM (512 -> 256), both directions
//   BM_lstm_step          the LSTM op (kernels/recurrent.cc) at Silero VAD's
//                         size: batch 1, input 128, hidden 128, seq 1, with
//                         bias and initial states, outputs Y_h and Y_c (one
//                         call per 32 ms audio chunk); items = calls
//   BM_conv3x3            the FP32 Conv op (kernels/conv.cc, the blocked
//                         im2col + sgemm path) on [1, C, H, H] with a
//                         [M, C, 3, 3] kernel, pads 1, dilation d, with bias
//                         (imgly's segmenter at 1024x1024 input);
//                         items = multiply-adds (M * C * 9 * H * H)
//   BM_transpose          the Transpose op (kernels/data_ops.cc) on the
//                         encoder's [1, 1500, 8, 64] float32 tensor: perm 0
//                         is (0, 2, 3, 1) (K to [1, 8, 64, 1500]: the
//                         tiled in-register transpose), perm 1 is
//                         (0, 2, 1, 3) (heads out: rows of 64 memcpy'd);
//                         es 4 float32, es 2 float16 (perm 0 only);
//                         es B in + es B out per element; the output in a
//                         planned arena (no page faults)
//
// The data (<= 12 MB) fits in a 32 MB L3: these are in-cache rates, the
// situation inside an encoder layer where a GEMM's output feeds the next op
// (not BM_conv3x3's: 32 MB and more per tensor at H = 512).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <span>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/kernels.h"
#include "kernels/cpu/quantize_activations.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/cpu_isa.h"
#include "runtime/graph.h"
#include "runtime/kernel.h"
#include "runtime/parallel.h"

namespace {

namespace kn = sarai::kernels;

std::vector<float> random_floats(int64_t n, float scale, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = scale * (static_cast<float>(static_cast<int64_t>(seed >> 40) - (1 << 23)) / (1 << 23));
  }
  return v;
}

// A float tensor of `shape` holding random_floats(scale, seed).
sarai::Tensor random_tensor(sarai::Shape shape, float scale, uint64_t seed) {
  sarai::Tensor x = sarai::Tensor::allocate(sarai::DType::kFloat32, shape);
  const std::vector<float> v = random_floats(x.numel(), scale, seed);
  std::copy(v.begin(), v.end(), x.mutable_data<float>());
  return x;
}

// Times `kernel` on `node` as a session runs it: attributes prepared once
// (by `prepare`), a KernelContext per call, `nout` outputs (on the heap, or
// in `memory`'s planned arena as a session's are).
void time_kernel(benchmark::State& st, const sarai::Node& node, sarai::PrepareFn prepare, sarai::KernelFn kernel,
                 std::span<const sarai::Tensor* const> in, size_t nout, int threads,
                 sarai::NodeMemory* memory = nullptr) {
  std::vector<sarai::Tensor> out(nout);
  auto prepared = prepare(node, 17);
  if (!prepared) st.SkipWithError((node.op_type + ": prepare failed: " + prepared.message()).c_str());
  for (auto _ : st) {
    sarai::KernelContext ctx(node, 17, in, out, threads, memory);
    if (prepared) ctx.set_prepared(prepared->get());
    if (!sarai::invoke_kernel(kernel, ctx).is_ok()) st.SkipWithError((node.op_type + " failed").c_str());
    benchmark::ClobberMemory();
  }
}

void BM_quantize_u8(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1), n = rows * cols;
  sarai::max_isa();
  sarai::set_num_threads(static_cast<int>(st.range(2)));
  const std::vector<float> x = random_floats(n, 3.f, 1);
  std::vector<uint8_t> q(static_cast<size_t>(n));
  for (auto _ : st) {
    benchmark::DoNotOptimize(kn::quantize_u8(x.data(), n, q.data()));
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * n * 5);
  st.SetLabel(kn::vec_kernels().isa);
}

void BM_quantize_u8_with(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1), n = rows * cols;
  sarai::max_isa();
  sarai::set_num_threads(static_cast<int>(st.range(2)));
  const std::vector<float> x = random_floats(n, 3.f, 1);
  std::vector<uint8_t> q(static_cast<size_t>(n));
  const kn::QuantParams p = kn::choose_u8_params(-3.f, 3.f);
  for (auto _ : st) {
    kn::quantize_u8_with(x.data(), n, p, q.data());
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * n * 5);
  st.SetLabel(kn::vec_kernels().isa);
}

using EpilogueRow = void (*)(const int32_t*, int64_t, const int32_t*, const float*, const kn::QuantParams*,
                             const float*, const float*, kn::QgemmActivation, float*);

void run_epilogue(benchmark::State& st, EpilogueRow fn, const char* label) {
  const int64_t rows = st.range(0), n = st.range(1);
  std::vector<int32_t> acc(static_cast<size_t>(rows * n)), comp(static_cast<size_t>(n));
  for (size_t i = 0; i < acc.size(); ++i) acc[i] = static_cast<int32_t>((i * 2654435761u) % 200001) - 100000;
  for (size_t j = 0; j < comp.size(); ++j) comp[j] = static_cast<int32_t>(131 * (j % 97));
  const std::vector<float> cscale = random_floats(n, 1e-4f, 2), bias = random_floats(n, 0.1f, 3);
  std::vector<float> y(static_cast<size_t>(rows * n));
  for (auto _ : st) {
    for (int64_t r = 0; r < rows; ++r)
      fn(acc.data() + r * n, n, comp.data(), cscale.data(), nullptr, bias.data(), nullptr,
         kn::QgemmActivation::kNone, y.data() + r * n);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * rows * n * 8);
  st.SetLabel(label);
}

void BM_epilogue_row(benchmark::State& st) {
  sarai::max_isa();
  const kn::QgemmUkernel& uk = kn::qgemm_default_ukernel();
  run_epilogue(st, uk.epilogue_row, sarai::isa_name(uk.isa));
}

void BM_epilogue_row_scalar(benchmark::State& st) {
  run_epilogue(st, kn::qgemm_epilogue_row_scalar, "scalar");
}

void BM_softmax_row(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  sarai::max_isa();
  const kn::VecKernels& vk = kn::vec_kernels();
  const std::vector<float> x = random_floats(rows * n, 8.f, 4);
  std::vector<float> y(x.size());
  for (auto _ : st) {
    for (int64_t r = 0; r < rows; ++r) vk.softmax_row(x.data() + r * n, y.data() + r * n, n);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * rows * n * 8);
  st.SetLabel(vk.isa);
}

void BM_gelu(benchmark::State& st) {
  const int64_t n = st.range(0);
  sarai::max_isa();
  const kn::VecKernels& vk = kn::vec_kernels();
  const std::vector<float> x = random_floats(n, 3.f, 6);
  std::vector<float> y(n);
  for (auto _ : st) {
    vk.gelu(x.data(), y.data(), n);
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n);
  st.SetLabel(vk.isa);
}

void BM_softmax_u8_row(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  sarai::max_isa();
  const kn::VecKernels& vk = kn::vec_kernels();
  // Rows padded as Attention pads them (kSoftmaxU8Pad), weights 0.01..1.
  const int64_t np = sarai::int8::round_up(n, kn::kSoftmaxU8Pad);
  // Scores u = x / 8 + ln vs for random x, as attention_scores leaves them.
  std::vector<float> u = random_floats(rows * np, 1.f, 4), m(rows, -1e30f);
  const std::vector<float> w = random_floats(n, 1.f, 5);
  std::vector<float> invw(np, 0.f);
  for (int64_t i = 0; i < n; ++i) {
    const float vs = 0.01f + std::fabs(w[i]);
    invw[i] = 1.f / vs;
    for (int64_t r = 0; r < rows; ++r) {
      float& v = u[r * np + i];
      v = v + std::log(vs);
      m[r] = std::max(m[r], v);
    }
  }
  std::vector<uint8_t> y(rows * n);
  float acc = 0.f;
  for (auto _ : st) {
    for (int64_t r = 0; r < rows; ++r)
      acc += vk.softmax_u8_row(u.data() + r * np, n, m[r], invw.data(), y.data() + r * n);
    benchmark::DoNotOptimize(acc);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * rows * n * 5);
  st.SetLabel(vk.isa);
}

void BM_layernorm_row(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  sarai::max_isa();
  const kn::VecKernels& vk = kn::vec_kernels();
  const std::vector<float> x = random_floats(rows * n, 2.f, 5);
  const std::vector<float> scale = random_floats(n, 1.f, 6), bias = random_floats(n, 0.1f, 7);
  std::vector<float> y(x.size());
  float mean = 0, inv_std = 0;
  for (auto _ : st) {
    for (int64_t r = 0; r < rows; ++r)
      vk.layernorm_row(x.data() + r * n, y.data() + r * n, scale.data(), bias.data(), n, 1e-5f, &mean,
                       &inv_std);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * rows * n * 8);
  st.SetLabel(vk.isa);
}

void BM_attention(benchmark::State& st) {
  const int64_t precision = st.range(0), t = st.range(1), heads = st.range(2), d = 64;
  sarai::max_isa();
  const int threads = static_cast<int>(st.range(3));
  sarai::set_num_threads(threads);
  const sarai::Tensor q = random_tensor({heads, t, d}, 2.f, 8), kt = random_tensor({heads, d, t}, 2.f, 9),
                      v = random_tensor({heads, t, d}, 1.f, 10);
  sarai::Node node;
  node.op_type = "Attention";
  node.domain = "sarai";
  node.inputs = {0, 1, 2};
  node.outputs = {3};
  node.attrs["divisor"] = sarai::Attribute::of_float(8.f);
  const char* prec = precision == 0 ? "fp32" : precision == 1 ? "int8" : "int8-per-tensor";
  node.attrs["precision"] = sarai::Attribute::of_string(prec);
  const sarai::Tensor* in[] = {&q, &kt, &v};
  time_kernel(st, node, kn::PrepareAttention, kn::Attention, in, 1, threads);
  st.SetItemsProcessed(st.iterations() * 2 * heads * t * t * d);
  st.SetLabel(std::string(prec) + " " + sarai::isa_name(sarai::max_isa()));
}

void BM_lstm_step(benchmark::State& st) {
  const int64_t seq = st.range(0), in = 128, hid = 128;
  sarai::max_isa();
  const int threads = static_cast<int>(st.range(1));
  sarai::set_num_threads(threads);
  const sarai::Tensor x = random_tensor({seq, 1, in}, 1.f, 11), w = random_tensor({1, 4 * hid, in}, 0.1f, 12),
                      r = random_tensor({1, 4 * hid, hid}, 0.1f, 13), b = random_tensor({1, 8 * hid}, 0.1f, 14),
                      h0 = random_tensor({1, 1, hid}, 0.5f, 15), c0 = random_tensor({1, 1, hid}, 0.5f, 16);
  sarai::Node node;
  node.name = "lstm";
  node.op_type = "LSTM";
  node.inputs = {0, 1, 2, 3, sarai::kNoValue, 5, 6};
  node.outputs = {sarai::kNoValue, 8, 9};
  node.attrs["hidden_size"] = sarai::Attribute::of_int(hid);
  const sarai::Tensor* inputs[] = {&x, &w, &r, &b, nullptr, &h0, &c0};
  time_kernel(st, node, kn::PrepareLSTM, kn::LSTM, inputs, 3, threads);
  st.SetItemsProcessed(st.iterations());
  st.SetLabel(sarai::isa_name(sarai::max_isa()));
}

// A CRNN recognizer's bidirectional LSTM (EasyOCR's: input 512, hidden
// 256, batch 1) over `seq` steps.
void BM_bilstm(benchmark::State& st) {
  const int64_t seq = st.range(0), in = 512, hid = 256;
  sarai::max_isa();
  const int threads = static_cast<int>(st.range(1));
  sarai::set_num_threads(threads);
  const sarai::Tensor x = random_tensor({seq, 1, in}, 1.f, 31), w = random_tensor({2, 4 * hid, in}, 0.05f, 32),
                      r = random_tensor({2, 4 * hid, hid}, 0.05f, 33), b = random_tensor({2, 8 * hid}, 0.1f, 34);
  sarai::Node node;
  node.name = "bilstm";
  node.op_type = "LSTM";
  node.inputs = {0, 1, 2, 3};
  node.outputs = {4};
  node.attrs["hidden_size"] = sarai::Attribute::of_int(hid);
  node.attrs["direction"] = sarai::Attribute::of_string("bidirectional");
  const sarai::Tensor* inputs[] = {&x, &w, &r, &b};
  time_kernel(st, node, kn::PrepareLSTM, kn::LSTM, inputs, 1, threads);
  st.SetItemsProcessed(st.iterations() * seq);
  st.SetLabel(sarai::isa_name(sarai::max_isa()));
}

void BM_conv3x3(benchmark::State& st) {
  const int64_t c = st.range(0), m = st.range(1), h = st.range(2), dil = st.range(3);
  const int threads = static_cast<int>(st.range(4));
  sarai::max_isa();
  sarai::set_num_threads(threads);
  const sarai::Tensor x = random_tensor({1, c, h, h}, 1.f, 21), w = random_tensor({m, c, 3, 3}, 0.1f, 22),
                      b = random_tensor({m}, 0.1f, 23);
  sarai::Node node;
  node.name = "conv";
  node.op_type = "Conv";
  node.inputs = {0, 1, 2};
  node.outputs = {3};
  node.attrs["pads"] = sarai::Attribute::of_ints({dil, dil, dil, dil});
  node.attrs["dilations"] = sarai::Attribute::of_ints({dil, dil});
  const sarai::Tensor* inputs[] = {&x, &w, &b};
  time_kernel(st, node, kn::PrepareConv, kn::Conv, inputs, 1, threads);
  st.SetItemsProcessed(st.iterations() * m * c * 9 * h * h);
  st.SetLabel(sarai::isa_name(sarai::max_isa()));
}

void BM_transpose(benchmark::State& st) {
  const int64_t which = st.range(0), es = st.range(2);
  const int threads = static_cast<int>(st.range(1));
  sarai::max_isa();
  sarai::set_num_threads(threads);
  sarai::Tensor x = random_tensor({1, 1500, 8, 64}, 1.f, 31);
  if (es == 2) {  // float16: the first half of the floats' bytes
    sarai::Tensor h = sarai::Tensor::allocate(sarai::DType::kFloat16, x.shape());
    std::memcpy(h.mutable_raw(), x.raw(), h.nbytes());
    x = std::move(h);
  }
  sarai::Node node;
  node.name = "transpose";
  node.op_type = "Transpose";
  node.inputs = {0};
  node.outputs = {1};
  node.attrs["perm"] = sarai::Attribute::of_ints(which == 0 ? std::vector<int64_t>{0, 2, 3, 1}
                                                             : std::vector<int64_t>{0, 2, 1, 3});
  // The output in a planned arena, as in a session: on the heap, a fresh
  // 3 MB block per call spends most of the time in page faults.
  std::vector<float> arena(static_cast<size_t>(x.numel()));  // room for either dtype
  const int64_t offset[1] = {0};
  const uint64_t capacity[1] = {arena.size() * sizeof(float)};
  sarai::NodeMemory memory;
  memory.mode = sarai::NodeMemory::Mode::kPlanned;
  memory.arena = reinterpret_cast<uint8_t*>(arena.data());
  memory.output_offset = offset;
  memory.output_capacity = capacity;
  const sarai::Tensor* inputs[] = {&x};
  time_kernel(st, node, kn::PrepareTranspose, kn::Transpose, inputs, 1, threads, &memory);
  st.SetBytesProcessed(st.iterations() * x.numel() * 2 * es);
  st.SetLabel(std::string(which == 0 ? "perm 0,2,3,1 " : "perm 0,2,1,3 ") + (es == 2 ? "float16 " : "float32 ") +
              sarai::isa_name(sarai::max_isa()));
}

BENCHMARK(BM_quantize_u8)
    ->ArgNames({"rows", "cols", "nthr"})
    ->ArgsProduct({{1, 1500}, {512, 2048}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_quantize_u8_with)
    ->ArgNames({"rows", "cols", "nthr"})
    ->ArgsProduct({{1500}, {512, 2048}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_epilogue_row)->ArgNames({"rows", "N"})->ArgsProduct({{1, 1500}, {512, 2048}});
BENCHMARK(BM_epilogue_row_scalar)->ArgNames({"rows", "N"})->ArgsProduct({{1500}, {512, 2048}});
BENCHMARK(BM_softmax_row)->ArgNames({"rows", "cols"})->Args({1500, 1500});
BENCHMARK(BM_gelu)->ArgNames({"n"})->Arg(2048 * 32);
BENCHMARK(BM_softmax_u8_row)->ArgNames({"rows", "cols"})->Args({1500, 1500})->Args({1500, 1536});
BENCHMARK(BM_layernorm_row)->ArgNames({"rows", "cols"})->Args({1500, 512})->Args({150, 512});
BENCHMARK(BM_attention)
    ->ArgNames({"precision", "T", "heads", "nthr"})
    ->ArgsProduct({{0, 1, 2}, {1500}, {8}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_conv3x3)
    ->ArgNames({"C", "M", "H", "d", "nthr"})
    ->Args({64, 32, 512, 1, 2})
    ->Args({32, 32, 512, 2, 2})
    ->Args({16, 16, 1024, 1, 2})
    ->Args({128, 64, 256, 1, 2})
    ->Args({512, 256, 32, 1, 2})
    ->Args({64, 32, 512, 1, 1})
    ->Args({512, 256, 32, 1, 1})
    ->Args({16, 16, 1024, 1, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_transpose)
    ->ArgNames({"perm", "nthr", "es"})
    ->ArgsProduct({{0, 1}, {1, 2}, {4}})
    ->Args({0, 1, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_bilstm)->ArgNames({"seq", "nthr"})->ArgsProduct({{40, 160}, {1, 2}})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_lstm_step)->ArgNames({"seq", "nthr"})->ArgsProduct({{1, 16}, {1, 2}})->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
