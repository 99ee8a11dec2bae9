// .sarai blob writer and reader: round trip, alignment, and the reader
// against corrupted files (each corruption gives its one-line message from
// verify_blob, and load_blob never crashes).
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "kernels/cpu/int8_layout.h"
#include "tests/onnx_builder.h"
#include "loader/blob_reader.h"
#include "runtime/session.h"
#include "loader/onnx_loader.h"
#include "kernels/kernels.h"
#include "quantizer/blob_writer.h"
#include "runtime/crc32c.h"
#include "test_util.h"

namespace sarai {
namespace {

using blob::Layout;
using blob::Scheme;
using blob::TensorSpec;
using Bytes = std::vector<uint8_t>;

// One folder per test and process: ctest runs tests in parallel.
std::string tmp_dir() {
  static std::string dir;
  static const void* owner = nullptr;
  const void* current = ::testing::UnitTest::GetInstance()->current_test_info();
  if (dir.empty() || owner != current) {
    dir = test::temp_dir("blob");
    owner = current;
  }
  return dir;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

Bytes read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

constexpr int64_t kK = 20, kN = 24;

struct Sample {
  Graph graph;
  std::vector<int32_t> value_tensor;
  Bytes packed, big;
  std::vector<float> scale, bias;
  std::vector<int32_t> wsum;
};

// x[batch, 20] -> QMatMul(w.q packed [20, 24], w.scale, w.wsum, b) -> y;
// Constant -> c; Add(y, c) -> z, with attributes of every kind; plus an
// unused 80 KiB initializer (page-aligned in the blob).
Sample make_sample() {
  Sample s;
  Graph& g = s.graph;
  g.name = "sample";
  g.opset = 17;
  auto add = [&](const std::string& name, DType dt, std::vector<Dim> dims, int32_t tensor) {
    int id = g.add_value(name);
    Value& v = g.values[static_cast<size_t>(id)];
    v.dtype = dt;
    v.has_shape = !dims.empty();
    v.dims = std::move(dims);
    s.value_tensor.push_back(tensor);
    return id;
  };
  int x = add("x", DType::kFloat32, {Dim{-1, "batch"}, Dim{kK, {}}}, -1);
  int wq = add("w.q", DType::kInt8, {}, 0);
  int ws = add("w.scale", DType::kFloat32, {}, 1);
  int wsum = add("w.wsum", DType::kInt32, {}, 2);
  int b = add("b", DType::kFloat32, {}, 3);
  int y = add("y", DType::kFloat32, {Dim{-1, "batch"}, Dim{-1, {}}}, -1);
  int c = add("c", DType::kUndefined, {}, -1);
  int z = add("z", DType::kFloat32, {Dim{-1, "batch"}, Dim{kN, {}}}, -1);
  add("big", DType::kFloat32, {}, 4);
  g.values[static_cast<size_t>(x)].has_shape = true;
  g.inputs = {x};
  g.outputs = {z};

  Node q;
  q.name = "fc";
  q.op_type = "QMatMul";
  q.domain = "sarai";
  q.inputs = {x, wq, ws, wsum, b};
  q.outputs = {y};
  q.attrs["K"] = test::attr_int(kK);
  q.attrs["N"] = test::attr_int(kN);
  g.nodes.push_back(q);
  Node k;
  k.name = "const";
  k.op_type = "Constant";
  k.outputs = {c};
  k.attrs["value"] = test::attr_tensor(test::make_tensor<float>({1, 3}, {1.5f, -2.f, 3.25f}));
  g.nodes.push_back(k);
  Node a;
  a.name = "add";
  a.op_type = "Add";
  a.inputs = {y, c};
  a.outputs = {z};
  a.attrs["f"] = test::attr_float(0.25f);
  a.attrs["i"] = test::attr_int(-7);
  a.attrs["s"] = test::attr_string("hello");
  a.attrs["fs"] = test::attr_floats({1.f, -0.5f});
  a.attrs["is"] = test::attr_ints({1, -2, 1LL << 40});
  Attribute ss;
  ss.kind = Attribute::Kind::kStrings;
  ss.strings = {"a", "", "ccc"};
  a.attrs["ss"] = ss;
  Attribute t2 = test::attr_tensor(test::make_tensor<int64_t>({2}, {5, -6}));
  a.attrs["t"] = t2;
  Attribute gr;
  gr.kind = Attribute::Kind::kGraph;
  a.attrs["g"] = gr;
  g.nodes.push_back(a);

  s.packed.resize(static_cast<size_t>(int8::packed_size(kK, kN)));
  for (size_t i = 0; i < s.packed.size(); ++i) s.packed[i] = static_cast<uint8_t>(i * 7 + 1);
  s.scale.resize(kN);
  s.bias.resize(kN);
  s.wsum.resize(kN);
  for (int i = 0; i < kN; ++i) {
    s.scale[static_cast<size_t>(i)] = 0.01f * static_cast<float>(i + 1);
    s.bias[static_cast<size_t>(i)] = static_cast<float>(i) - 3.f;
    s.wsum[static_cast<size_t>(i)] = i * 11 - 100;
  }
  s.big.resize(128 * 160 * 4);
  for (size_t i = 0; i < s.big.size(); ++i) s.big[i] = static_cast<uint8_t>(i * 13 + 5);
  return s;
}

// Writes the sample blob to `path` and returns its bytes.
Bytes write_sample(const std::string& path) {
  Sample s = make_sample();
  std::filesystem::remove(path);
  auto w = blob::BlobWriter::create(path + ".tmp", path);
  EXPECT_TRUE(w) << w.message();
  if (!w) return {};
  blob::BlobWriter& bw = **w;
  auto q = bw.add_tensor({"w.q", DType::kInt8, {kK, kN}, Layout::kPackedN16K4, Scheme::kInt8PerChannel, /*axis=*/1},
                         s.packed.data(), s.packed.size());
  auto sc = bw.add_tensor({"w.scale", DType::kFloat32, {kN}}, s.scale.data(), kN * 4);
  auto su = bw.add_tensor({"w.wsum", DType::kInt32, {kN}}, s.wsum.data(), kN * 4);
  auto bi = bw.add_tensor({"b", DType::kFloat32, {kN}}, s.bias.data(), kN * 4);
  auto big = bw.add_tensor({"big", DType::kFloat32, {128, 160}}, s.big.data(), s.big.size());
  EXPECT_TRUE(q && sc && su && bi && big);
  EXPECT_EQ(*q, 0);
  EXPECT_EQ(*big, 4);
  bw.set_companions(*q, *sc, -1, *su);
  bw.set_metadata({{"source", "model.onnx"}, {"sha256", "abc"}, {"empty", ""}});
  Status st = bw.finish(s.graph, s.value_tensor);
  EXPECT_TRUE(st) << st.message();
  return read_file(path);
}

// Byte positions of the fields of one TENSORS entry, found by walking the
// stream (the test's own decoder, independent of the reader).
struct EntryPos { size_t dims, offset, size; };
EntryPos tensor_entry(const Bytes& b, const BlobInfo& info, int index) {
  const blob::BlobSection* ts = nullptr;
  for (const auto& s : info.sections)
    if (s.kind == blob::SectionKind::kTensors) ts = &s;
  size_t p = static_cast<size_t>(ts->offset) + 4;
  auto u32 = [&](size_t at) { uint32_t v; std::memcpy(&v, &b[at], 4); return v; };
  for (int i = 0;; ++i) {
    p += 4 + u32(p);   // name
    p += 4;            // dtype
    uint32_t rank = u32(p);
    p += 4;
    EntryPos e;
    e.dims = p;
    p += 8 * rank + 1 + 1 + 4 * 4;
    e.offset = p;
    e.size = p + 8;
    p += 8 + 8 + 4;
    if (i == index) return e;
  }
}

const blob::BlobSection& section(const BlobInfo& info, blob::SectionKind k) {
  for (const auto& s : info.sections)
    if (s.kind == k) return s;
  throw std::runtime_error("no section");
}

void put64(Bytes& b, size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); }
void put32(Bytes& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }

// verify_blob's message for `b`, and load_blob must not crash on it either.
std::string verify_message(const Bytes& b, bool* load_ok = nullptr) {
  auto m = blob_internal::load_blob_bytes(b.data(), b.size(), nullptr, "f.sarai", /*verify=*/false);
  if (load_ok) *load_ok = m.has_value();
  Status s = blob_internal::verify_blob_bytes(b.data(), b.size(), "f.sarai");
  return s ? std::string("OK") : s.message();
}

class BlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = tmp_dir() + "/sample.sarai";
    bytes_ = write_sample(path_);
    ASSERT_FALSE(bytes_.empty());
    auto m = load_blob(path_, /*verify=*/true, &info_);
    ASSERT_TRUE(m) << m.message();
  }
  std::string path_;
  Bytes bytes_;
  BlobInfo info_;
};

TEST_F(BlobTest, RoundTrip) {
  Sample s = make_sample();
  BlobInfo info;
  auto m = load_blob(path_, /*verify=*/false, &info);
  ASSERT_TRUE(m) << m.message();
  const Graph& g = (*m)->graph;
  EXPECT_EQ(g.name, "sample");
  EXPECT_EQ(g.opset, 17);
  ASSERT_EQ(g.values.size(), s.graph.values.size());
  EXPECT_EQ(g.inputs, s.graph.inputs);
  EXPECT_EQ(g.outputs, s.graph.outputs);
  // Symbolic, unknown and fixed dims.
  const Value& x = g.values[0];
  EXPECT_EQ(x.name, "x");
  ASSERT_EQ(x.dims.size(), 2u);
  EXPECT_EQ(x.dims[0].value, -1);
  EXPECT_EQ(x.dims[0].symbol, "batch");
  EXPECT_EQ(x.dims[1].value, kK);
  const Value& y = g.values[static_cast<size_t>(g.find_value("y"))];
  EXPECT_EQ(y.dims[1].to_string(), "?");
  EXPECT_FALSE(g.values[static_cast<size_t>(g.find_value("c"))].has_shape);
  EXPECT_EQ(g.values[static_cast<size_t>(g.find_value("c"))].dtype, DType::kUndefined);
  EXPECT_EQ(g.values[static_cast<size_t>(g.find_value("y"))].producer, 0);

  // Initializers: views into the mapping, the packed one 1-D.
  const Value& wq = g.values[static_cast<size_t>(g.find_value("w.q"))];
  ASSERT_TRUE(wq.is_initializer);
  EXPECT_TRUE(wq.initializer.read_only());
  EXPECT_EQ(wq.initializer.dtype(), DType::kInt8);
  EXPECT_EQ(wq.initializer.shape(), Shape{int8::packed_size(kK, kN)});
  EXPECT_EQ(std::memcmp(wq.initializer.raw(), s.packed.data(), s.packed.size()), 0);
  const Value& bias = g.values[static_cast<size_t>(g.find_value("b"))];
  EXPECT_TRUE(test::tensors_equal(bias.initializer, test::make_tensor<float>({kN}, s.bias)));
  const Value& big = g.values[static_cast<size_t>(g.find_value("big"))];
  EXPECT_EQ(big.initializer.shape(), (Shape{128, 160}));
  EXPECT_EQ(std::memcmp(big.initializer.raw(), s.big.data(), s.big.size()), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.initializer.raw()) % 4096, 0u);

  // Nodes and every attribute kind.
  ASSERT_EQ(g.nodes.size(), 3u);
  EXPECT_EQ(g.nodes[0].domain, "sarai");
  EXPECT_EQ(g.nodes[0].inputs, s.graph.nodes[0].inputs);
  EXPECT_EQ(g.nodes[0].attr_int("K", 0), kK);
  EXPECT_TRUE(test::tensors_equal(g.nodes[1].attr("value")->t, s.graph.nodes[1].attr("value")->t));
  const Node& a = g.nodes[2];
  EXPECT_EQ(a.attr("f")->kind, Attribute::Kind::kFloat);
  EXPECT_EQ(a.attr_float("f", 0), 0.25f);
  EXPECT_EQ(a.attr_int("i", 0), -7);
  EXPECT_EQ(a.attr_string("s", ""), "hello");
  EXPECT_EQ(a.attr("fs")->floats, (std::vector<float>{1.f, -0.5f}));
  EXPECT_EQ(a.attr_ints("is"), (std::vector<int64_t>{1, -2, 1LL << 40}));
  EXPECT_EQ(a.attr("ss")->strings, (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_TRUE(test::tensors_equal(a.attr("t")->t, test::make_tensor<int64_t>({2}, {5, -6})));
  EXPECT_EQ(a.attr("g")->kind, Attribute::Kind::kGraph);

  // Metadata and the tensor table with the quantization parameters.
  std::vector<std::pair<std::string, std::string>> meta = {{"source", "model.onnx"}, {"sha256", "abc"}, {"empty", ""}};
  EXPECT_EQ((*m)->metadata, meta);
  EXPECT_EQ(info.metadata, meta);
  ASSERT_EQ(info.tensors.size(), 7u);  // 5 + the two tensor attributes
  const BlobTensorInfo& t0 = info.tensors[0];
  EXPECT_EQ(t0.name, "w.q");
  EXPECT_EQ(t0.dims, (Shape{kK, kN}));
  EXPECT_EQ(t0.entry.layout, Layout::kPackedN16K4);
  EXPECT_EQ(t0.entry.scheme, Scheme::kInt8PerChannel);
  EXPECT_EQ(t0.entry.axis, 1);
  EXPECT_EQ(t0.entry.scale_tensor, 1);
  EXPECT_EQ(t0.entry.zero_point_tensor, -1);
  EXPECT_EQ(t0.entry.sum_tensor, 2);
  EXPECT_EQ(t0.entry.crc32c, crc32c(0, s.packed.data(), s.packed.size()));
  EXPECT_EQ(info.header.file_size, bytes_.size());
  EXPECT_EQ(info.header.weight_layout_version, int8::kWeightLayoutVersion);

  VerifyStats st;
  Status v = verify_blob(path_, &st);
  EXPECT_TRUE(v) << v.message();
  EXPECT_EQ(st.tensors, 7);
  EXPECT_EQ(st.bytes_checked, bytes_.size());
  EXPECT_TRUE(looks_like_blob(path_));
}

TEST_F(BlobTest, Alignment) {
  const auto& data = section(info_, blob::SectionKind::kData);
  EXPECT_EQ(data.offset, 4096u);
  for (const auto& t : info_.tensors) {
    EXPECT_EQ(t.entry.offset % 64, 0u) << t.name;
    if (t.entry.size >= 64 * 1024) {
      EXPECT_EQ(t.entry.offset % 4096, 0u) << t.name;
    }
  }
  EXPECT_GE(info_.tensors[4].entry.size, 64u * 1024);
  for (const auto& s : info_.sections) EXPECT_EQ(s.offset % 64, 0u);
  // File order: header, table, DATA, then META, GRAPH, TENSORS.
  EXPECT_LT(data.offset, section(info_, blob::SectionKind::kMeta).offset);
  EXPECT_LT(section(info_, blob::SectionKind::kMeta).offset, section(info_, blob::SectionKind::kGraph).offset);
  EXPECT_LT(section(info_, blob::SectionKind::kGraph).offset, section(info_, blob::SectionKind::kTensors).offset);
  const auto& ts = section(info_, blob::SectionKind::kTensors);
  EXPECT_EQ(ts.offset + ts.size, bytes_.size());
}

TEST_F(BlobTest, TruncationAtManyOffsets) {
  std::vector<size_t> cuts;
  for (int i = 0; i < 50; ++i) cuts.push_back(bytes_.size() * static_cast<size_t>(i) / 50);
  for (const auto& s : info_.sections)
    for (int64_t d : {-1, 0, 1}) {
      cuts.push_back(static_cast<size_t>(static_cast<int64_t>(s.offset) + d));
      cuts.push_back(static_cast<size_t>(static_cast<int64_t>(s.offset + s.size) + d));
    }
  for (size_t cut : {size_t{1}, size_t{8}, size_t{12}, size_t{23}, size_t{24}, size_t{127}, size_t{128}, size_t{255},
                     size_t{256}, bytes_.size() - 1})
    cuts.push_back(cut);
  for (size_t cut : cuts) {
    if (cut >= bytes_.size()) continue;
    Bytes b(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(cut));
    bool load_ok = true;
    std::string msg = verify_message(b, &load_ok);
    EXPECT_FALSE(load_ok) << "cut " << cut;
    if (cut == 0) {
      EXPECT_EQ(msg, "f.sarai: file is empty (not a .sarai blob)");
    } else if (cut >= 24) {
      EXPECT_EQ(msg, "f.sarai: truncated at byte " + std::to_string(cut) + " of " + std::to_string(bytes_.size()));
    } else {  // the header's file size is not there yet: the header's size stands in
      EXPECT_EQ(msg, "f.sarai: truncated at byte " + std::to_string(cut) + " of 256");
    }
  }
  // Through the file API too.
  std::string p = tmp_dir() + "/truncated.sarai";
  write_file(p, Bytes(bytes_.begin(), bytes_.begin() + 5000));
  EXPECT_EQ(verify_blob(p).message(), p + ": truncated at byte 5000 of " + std::to_string(bytes_.size()));
  EXPECT_EQ(load_blob(p).message(), p + ": truncated at byte 5000 of " + std::to_string(bytes_.size()));
}

TEST_F(BlobTest, TrailingBytes) {
  Bytes b = bytes_;
  b.push_back(0);
  EXPECT_EQ(verify_message(b), "f.sarai: " + std::to_string(b.size()) + " bytes, but the header says " +
                                   std::to_string(bytes_.size()) + " (trailing bytes after the blob)");
}

TEST_F(BlobTest, FlippedByteInEachSection) {
  auto flip = [&](size_t at) {
    Bytes b = bytes_;
    b[at] ^= 0x40;
    return b;
  };
  // Header (the file size field) and section table: the header checksum.
  EXPECT_EQ(verify_message(flip(20)), "f.sarai: checksum mismatch in the header or section table");
  EXPECT_EQ(verify_message(flip(128 + 32 + 9)), "f.sarai: checksum mismatch in the header or section table");
  EXPECT_EQ(verify_message(flip(44)), "f.sarai: checksum mismatch in the header or section table");
  for (auto k : {blob::SectionKind::kMeta, blob::SectionKind::kGraph, blob::SectionKind::kTensors}) {
    const auto& s = section(info_, k);
    for (uint64_t at : {s.offset, s.offset + s.size / 2, s.offset + s.size - 1}) {
      bool load_ok = true;
      std::string name = k == blob::SectionKind::kMeta ? "META" : k == blob::SectionKind::kGraph ? "GRAPH" : "TENSORS";
      EXPECT_EQ(verify_message(flip(static_cast<size_t>(at)), &load_ok), "f.sarai: checksum mismatch in section " + name);
      EXPECT_FALSE(load_ok);
    }
  }
  // Inside DATA: load_blob does not read tensor bytes, so it succeeds by
  // design (opening must not cost a pass over the weights); verify catches it.
  for (int i : {0, 3, 4, 6}) {
    const auto& e = info_.tensors[static_cast<size_t>(i)].entry;
    for (uint64_t at : {e.offset, e.offset + e.size - 1}) {
      bool load_ok = false;
      EXPECT_EQ(verify_message(flip(static_cast<size_t>(at)), &load_ok),
                "f.sarai: checksum mismatch in tensor '" + info_.tensors[static_cast<size_t>(i)].name + "'");
      EXPECT_TRUE(load_ok);
    }
  }
  // Padding: between tensors in DATA (w.scale ends at 4832, w.wsum starts
  // at 4864), and the zeros before DATA.
  const auto& e1 = info_.tensors[1].entry;
  const size_t pad = static_cast<size_t>(e1.offset + e1.size);
  ASSERT_LT(pad + 5, info_.tensors[2].entry.offset);
  bool load_ok = false;
  EXPECT_EQ(verify_message(flip(pad + 5), &load_ok),
            "f.sarai: byte " + std::to_string(pad + 5) + " is not zero (padding between tensors in DATA)");
  EXPECT_TRUE(load_ok);
  EXPECT_EQ(verify_message(flip(1000)), "f.sarai: byte 1000 is not zero (padding outside every section)");
}

TEST_F(BlobTest, FlippedByteEverywhereNeverPasses) {
  // Every byte position, one at a time: verify must fail, nothing may crash.
  for (size_t at = 0; at < bytes_.size(); at += (at < 4096 || at + 2048 > bytes_.size() ? 1 : 61)) {
    Bytes b = bytes_;
    b[at] ^= 0x01;
    EXPECT_NE(verify_message(b), "OK") << "flipped byte " << at;
  }
}

// A blob written in format version 1 (tests/fixtures/README.md) loads,
// verifies and runs as its source model does.
TEST(BlobFormat, ReadsFormatVersion1) {
  const std::string dir = test::test_setting("SARAI_SOURCE_DIR") + "/tests/fixtures/";
  BlobInfo info;
  auto blob = load_blob(dir + "format_v1.sarai", /*verify=*/true, &info);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  EXPECT_EQ(info.header.format_version, 1u);
  auto onnx = load_onnx(dir + "format_v1.onnx");
  ASSERT_TRUE(onnx.has_value()) << onnx.message();
  KernelTable table;
  register_kernels(table);
  Tensor x = test::random_tensor({2, 16}, 7);
  std::vector<Tensor> y;
  for (auto m : {*onnx, *blob}) {
    auto s = Session::create(m, table, SessionOptions{1});
    ASSERT_TRUE(s.has_value()) << s.message();
    auto out = (*s)->run({{"x", x}});
    ASSERT_TRUE(out.has_value()) << out.message();
    y.push_back((*out)[0].tensor);
  }
  EXPECT_TRUE(test::tensors_near(y[1], y[0], 0.05, 0.02));  // INT8 weights against FP32
  EXPECT_FALSE(test::tensors_equal(y[1], y[0]));             // and really the quantized path
}

TEST_F(BlobTest, WrongMagicAndVersions) {
  Bytes b = bytes_;
  b[3] = 'X';
  EXPECT_EQ(verify_message(b), "f.sarai: not a .sarai blob (bad magic)");
  b = bytes_;
  b[8] = 7;
  EXPECT_EQ(verify_message(b), "f.sarai: format version 7 is not supported (this build reads 1 to 2)");
  b = bytes_;
  put32(b, blob::HeaderLayout::kWeightLayoutVersion, 9);
  blob_internal::reseal(b.data(), b.size());
  EXPECT_EQ(verify_message(b),
            "f.sarai: weight layout version 9 is not supported (this build's kernels read 1): reconvert the model");
  std::string onnx = tmp_dir() + "/not_a_blob.onnx";
  write_file(onnx, Bytes{0x08, 0x07, 0x12, 0x00, 1, 2, 3, 4, 5});
  EXPECT_FALSE(looks_like_blob(onnx));
  EXPECT_EQ(verify_blob(onnx).message(), onnx + ": not a .sarai blob (bad magic)");
  EXPECT_EQ(verify_blob(tmp_dir() + "/missing.sarai").message(),
            tmp_dir() + "/missing.sarai: cannot open: No such file or directory");
}

// The section-table index of kind k (the writer's order: DATA, META, GRAPH, TENSORS).
size_t entry_at(const BlobInfo& info, blob::SectionKind k) {
  for (size_t i = 0; i < info.sections.size(); ++i)
    if (info.sections[i].kind == k) return 128 + 32 * i;
  return 0;
}

TEST_F(BlobTest, OverlappingAndOutOfRangeSections) {
  const auto& graph = section(info_, blob::SectionKind::kGraph);
  const auto& tensors = section(info_, blob::SectionKind::kTensors);
  const auto& meta = section(info_, blob::SectionKind::kMeta);
  ASSERT_GT(graph.size, 64u);
  Bytes b = bytes_;
  const uint64_t moved = graph.offset + 64;  // TENSORS moved onto the middle of GRAPH
  put64(b, entry_at(info_, blob::SectionKind::kTensors) + 8, moved);
  blob_internal::reseal(b.data(), b.size());
  EXPECT_EQ(verify_message(b), "f.sarai: section GRAPH [" + std::to_string(graph.offset) + ", " +
                                   std::to_string(graph.offset + graph.size) + ") overlaps section TENSORS [" +
                                   std::to_string(moved) + ", " + std::to_string(moved + tensors.size) + ")");

  b = bytes_;
  put64(b, entry_at(info_, blob::SectionKind::kMeta) + 8, bytes_.size());
  blob_internal::reseal(b.data(), b.size());
  EXPECT_EQ(verify_message(b), "f.sarai: section META [" + std::to_string(bytes_.size()) + ", +" +
                                   std::to_string(meta.size) + ") extends past the end of the file (" +
                                   std::to_string(bytes_.size()) + " bytes)");

  b = bytes_;
  put64(b, entry_at(info_, blob::SectionKind::kMeta) + 16, UINT64_MAX - 10);  // offset + size wraps around
  blob_internal::reseal(b.data(), b.size());
  EXPECT_EQ(verify_message(b), "f.sarai: section META [" + std::to_string(meta.offset) + ", +" +
                                   std::to_string(UINT64_MAX - 10) + ") extends past the end of the file (" +
                                   std::to_string(bytes_.size()) + " bytes)");

  b = bytes_;
  put64(b, entry_at(info_, blob::SectionKind::kMeta) + 8, 64);
  blob_internal::reseal(b.data(), b.size());
  EXPECT_EQ(verify_message(b), "f.sarai: section META [64, " + std::to_string(64 + meta.size) +
                                   ") overlaps the header and section table [0, 256)");

  b = bytes_;
  put32(b, entry_at(info_, blob::SectionKind::kMeta), 3);  // a second TENSORS
  blob_internal::reseal(b.data(), b.size());
  EXPECT_EQ(verify_message(b), "f.sarai: section TENSORS appears twice");
}

TEST_F(BlobTest, TensorEntryCorruption) {
  // Each edit is resealed (checksums recomputed) so it reaches the check
  // it is aimed at.
  auto edit = [&](int tensor, auto fn) {
    Bytes b = bytes_;
    fn(b, tensor_entry(b, info_, tensor));
    blob_internal::reseal(b.data(), b.size());
    return b;
  };
  const auto& data = section(info_, blob::SectionKind::kData);
  const std::string data_range = "[4096, " + std::to_string(data.offset + data.size) + ")";
  EXPECT_EQ(verify_message(edit(3, [](Bytes& b, EntryPos e) { put64(b, e.offset, 1ull << 40); })),
            "f.sarai: tensor 'b' [1099511627776, +96) is outside the DATA section " + data_range);
  EXPECT_EQ(verify_message(edit(3, [](Bytes& b, EntryPos e) { put64(b, e.offset, UINT64_MAX - 8); })),
            "f.sarai: tensor 'b' [18446744073709551607, +96) is outside the DATA section " + data_range);
  EXPECT_EQ(verify_message(edit(3, [](Bytes& b, EntryPos e) { put64(b, e.dims, 1ull << 62); })),
            "f.sarai: tensor 'b' dims [4611686018427387904] overflow");
  EXPECT_EQ(verify_message(edit(3, [](Bytes& b, EntryPos e) { put64(b, e.dims, 1ull << 40); })),
            "f.sarai: tensor 'b' has 96 bytes, but float32 [1099511627776] takes 4398046511104");
  EXPECT_EQ(verify_message(edit(3, [](Bytes& b, EntryPos e) { put64(b, e.dims, static_cast<uint64_t>(-5)); })),
            "f.sarai: tensor 'b' dims [-5] have a negative dim");
  EXPECT_EQ(verify_message(edit(0, [](Bytes& b, EntryPos e) { put64(b, e.dims, 1ull << 50); })),
            "f.sarai: tensor 'w.q' dims [1125899906842624, 24] overflow");
  // Packed: K * N fits, but rounding K up to 4 would not.
  EXPECT_EQ(verify_message(edit(0, [](Bytes& b, EntryPos e) {
              put64(b, e.dims, INT64_MAX);
              put64(b, e.dims + 8, 1);
            })),
            "f.sarai: tensor 'w.q' dims [9223372036854775807, 1] overflow");
  EXPECT_EQ(verify_message(edit(0, [](Bytes& b, EntryPos e) {
              put64(b, e.dims, 1ull << 31);
              put64(b, e.dims + 8, (1ull << 31) + 1);
            })),
            "f.sarai: tensor 'w.q' has 640 bytes, but int8 [2147483648, 2147483649] packed N16K4 takes 4611686052787126272");
  EXPECT_EQ(verify_message(edit(3, [](Bytes& b, EntryPos e) { put64(b, e.offset, 4096 + 32); })),
            "f.sarai: tensor 'b' at byte 4128 is not aligned to 64");
  // Two tensors on the same bytes: only verify looks at overlaps.
  const auto& w = info_.tensors[0].entry;
  const auto& bias = info_.tensors[3].entry;
  bool load_ok = false;
  EXPECT_EQ(verify_message(edit(3, [&](Bytes& b, EntryPos e) { put64(b, e.offset, w.offset); }), &load_ok),
            "f.sarai: tensor 'w.q' " + std::string("[") + std::to_string(w.offset) + ", " + std::to_string(w.offset + w.size) +
                ") overlaps tensor 'b' [" + std::to_string(w.offset) + ", " + std::to_string(w.offset + bias.size) + ")");
  EXPECT_TRUE(load_ok);
  // The dtype code of 'b' (just before its rank).
  EXPECT_EQ(verify_message(edit(3, [](Bytes& b, EntryPos e) { put32(b, e.dims - 8, 8); })),
            "f.sarai: tensor 'b' has dtype code 8, which a blob cannot hold");
  // Companions: the scale index of w.q (offset field - 16).
  EXPECT_EQ(verify_message(edit(0, [](Bytes& b, EntryPos e) { put32(b, e.offset - 12, 99); })),
            "f.sarai: tensor 'w.q' names scale tensor 99, but the blob has 7 tensors");
  EXPECT_EQ(verify_message(edit(0, [](Bytes& b, EntryPos e) { put32(b, e.offset - 12, 2); })),
            "f.sarai: tensor 'w.q': its scale tensor 'w.wsum' is int32 [24], not plain float32 with 24 elements");
  EXPECT_EQ(verify_message(edit(0, [](Bytes& b, EntryPos e) { put32(b, e.offset - 16, 2); })),
            "f.sarai: tensor 'w.q' has channel axis 2, out of range for [20, 24]");
}

TEST_F(BlobTest, HugeCounts) {
  auto at_count = [&](blob::SectionKind k, size_t rel, uint32_t v) {
    Bytes b = bytes_;
    put32(b, static_cast<size_t>(section(info_, k).offset) + rel, v);
    blob_internal::reseal(b.data(), b.size());
    return verify_message(b);
  };
  const auto& g = section(info_, blob::SectionKind::kGraph);
  // GRAPH: i64 opset, str "sample" (4 + 6), then the value count.
  EXPECT_EQ(at_count(blob::SectionKind::kGraph, 18, 0xFFFFFFFFu),
            "f.sarai: GRAPH section: 4294967295 values cannot fit in the remaining " + std::to_string(g.size - 22) + " bytes");
  const auto& t = section(info_, blob::SectionKind::kTensors);
  EXPECT_EQ(at_count(blob::SectionKind::kTensors, 0, 0xFFFFFFFFu),
            "f.sarai: TENSORS section: 4294967295 tensors cannot fit in the remaining " + std::to_string(t.size - 4) + " bytes");
  const auto& m = section(info_, blob::SectionKind::kMeta);
  EXPECT_EQ(at_count(blob::SectionKind::kMeta, 0, 0x10000000u),
            "f.sarai: META section: 268435456 metadata entries cannot fit in the remaining " + std::to_string(m.size - 4) + " bytes");
  // A string length past the end: the first metadata key.
  EXPECT_EQ(at_count(blob::SectionKind::kMeta, 4, 0x7FFFFFFFu),
            "f.sarai: META section: a string of 2147483647 bytes at byte 8 runs past the end (" + std::to_string(m.size) + " bytes)");
  // Fewer tensors than the stream holds: bytes left over.
  EXPECT_EQ(at_count(blob::SectionKind::kTensors, 0, 6).rfind("f.sarai: TENSORS section has ", 0), 0u);
}

TEST(BlobWriterTest, GraphErrors) {
  std::string dir = tmp_dir();
  auto write = [&](Graph& g, std::vector<int32_t> vt) {
    std::string p = dir + "/graph_err.sarai";
    std::filesystem::remove(p);
    auto w = blob::BlobWriter::create(p + ".tmp", p);
    EXPECT_TRUE(w);
    float one = 1.f;
    (void)(*w)->add_tensor({"one", DType::kFloat32, {1}}, &one, 4);
    Status s = (*w)->finish(g, vt);
    EXPECT_TRUE(s) << s.message();
    return verify_blob(p).message();
  };
  // A cycle: a -> b -> a.
  Graph g;
  g.opset = 17;
  int a = g.add_value("a"), b = g.add_value("b");
  Node n1, n2;
  n1.name = "n1"; n1.op_type = "Relu"; n1.inputs = {a}; n1.outputs = {b};
  n2.name = "n2"; n2.op_type = "Relu"; n2.inputs = {b}; n2.outputs = {a};
  g.nodes = {n1, n2};
  g.outputs = {b};
  std::string msg = write(g, {-1, -1});
  EXPECT_EQ(msg.rfind(dir + "/graph_err.sarai: graph has a cycle through node 'n", 0), 0u) << msg;
  // A node reading a value nothing provides.
  Graph g2;
  int x = g2.add_value("x"), y = g2.add_value("y");
  Node r; r.name = "r"; r.op_type = "Relu"; r.inputs = {x}; r.outputs = {y};
  g2.nodes = {r};
  g2.outputs = {y};
  EXPECT_EQ(write(g2, {-1, -1}), dir + "/graph_err.sarai: node 'r' (Relu) reads 'x', which no node, input or initializer provides");
  // Names from the file are escaped: the message stays on one line.
  Graph g3;
  int x3 = g3.add_value("x\ny\x01"), y3 = g3.add_value("out");
  Node r3; r3.name = "r"; r3.op_type = "Relu"; r3.inputs = {x3}; r3.outputs = {y3};
  g3.nodes = {r3};
  g3.outputs = {y3};
  EXPECT_EQ(write(g3, {-1, -1}),
            dir + "/graph_err.sarai: node 'r' (Relu) reads 'x\\ny\\x01', which no node, input or initializer provides");
  // A node writing an initializer.
  EXPECT_EQ(write(g2, {-1, 0}), dir + "/graph_err.sarai: node 'r' (Relu) writes 'y', which is already an initializer");
}

TEST(BlobWriterTest, RejectsWrongSizesAndCleansUp) {
  std::string dir = tmp_dir();
  std::string out = dir + "/cleanup.sarai", tmp = out + ".tmp-1";
  std::filesystem::remove(out);
  std::filesystem::remove(tmp);
  {
    auto w = blob::BlobWriter::create(tmp, out);
    ASSERT_TRUE(w) << w.message();
    EXPECT_TRUE(exists(tmp));
    // A second writer cannot take the same temp file.
    auto w2 = blob::BlobWriter::create(tmp, out);
    EXPECT_EQ(w2.message(), tmp + ": cannot create: File exists");
    std::vector<uint8_t> bytes(1000);
    auto r = (*w)->add_tensor({"w.q", DType::kInt8, {20, 24}, Layout::kPackedN16K4, Scheme::kInt8PerChannel, 1},
                              bytes.data(), 480);
    EXPECT_EQ(r.message(), "tensor 'w.q': 480 bytes given, but int8 [20, 24] packed N16K4 takes 640");
    r = (*w)->add_tensor({"f", DType::kFloat32, {2, 3}}, bytes.data(), 25);
    EXPECT_EQ(r.message(), "tensor 'f': 25 bytes given, but float32 [2, 3] takes 24");
    r = (*w)->add_tensor({"s", DType::kString, {2}}, bytes.data(), 0);
    EXPECT_EQ(r.message(), "tensor 's': dtype string cannot be stored in a blob");
    r = (*w)->add_tensor({"h", DType::kFloat32, {1LL << 62, 4}}, bytes.data(), 0);
    EXPECT_EQ(r.message(), "tensor 'h': shape [4611686018427387904, 4] has more elements than fit in 64 bits");
    r = (*w)->add_tensor({"q", DType::kInt8, {4, 4}, Layout::kPlain, Scheme::kInt8PerChannel, 2}, bytes.data(), 16);
    EXPECT_EQ(r.message(), "tensor 'q': channel axis 2 is out of range for [4, 4]");
    // A quantized tensor whose scale is missing fails at finish and leaves nothing.
    r = (*w)->add_tensor({"q", DType::kInt8, {4, 4}, Layout::kPlain, Scheme::kInt8PerChannel, 0}, bytes.data(), 16);
    ASSERT_TRUE(r);
    Graph g;
    Status s = (*w)->finish(g, {});
    EXPECT_EQ(s.message(), tmp + ": tensor 'q': scale tensor index -1 is out of range");
    EXPECT_FALSE(exists(tmp));
    EXPECT_FALSE(exists(out));
  }
  {
    // Destroyed without finish(): the temp file goes away.
    auto w = blob::BlobWriter::create(tmp, out);
    ASSERT_TRUE(w);
    std::vector<float> f(100000, 1.f);
    ASSERT_TRUE((*w)->add_tensor({"f", DType::kFloat32, {100000}}, f.data(), f.size() * 4));
    EXPECT_GT((*w)->bytes_written(), 400000u);
    EXPECT_TRUE(exists(tmp));
  }
  EXPECT_FALSE(exists(tmp));
  EXPECT_FALSE(exists(out));
  {
    auto w = blob::BlobWriter::create(tmp, out);
    ASSERT_TRUE(w);
    (*w)->abort();
    EXPECT_FALSE(exists(tmp));
    float one = 1.f;
    EXPECT_FALSE((*w)->add_tensor({"f", DType::kFloat32, {1}}, &one, 4));
  }
  {
    // The signal-handler helper removes the temp files of live writers.
    auto w = blob::BlobWriter::create(tmp, out);
    ASSERT_TRUE(w);
    blob::unlink_unfinished_temp_files_from_signal_handler();
    EXPECT_FALSE(exists(tmp));
  }
  auto w = blob::BlobWriter::create(dir + "/a.tmp", dir + "/sub/a.sarai");
  EXPECT_EQ(w.message(), dir + "/a.tmp: the temp file must be in the folder of " + dir + "/sub/a.sarai");
  w = blob::BlobWriter::create(dir + "/no_such_dir/a.tmp", dir + "/no_such_dir/a.sarai");
  EXPECT_EQ(w.message(), dir + "/no_such_dir/a.tmp: cannot create: No such file or directory");
}

TEST(BlobWriterTest, WriteErrorNamesTheFile) {
  // A file-size limit makes write() fail (EFBIG) the way a full disk does
  // (ENOSPC): the error names the temp file and the reason, and the temp
  // file is removed.
  std::string out = tmp_dir() + "/limited.sarai", tmp = out + ".tmp";
  std::filesystem::remove(out);
  std::filesystem::remove(tmp);
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 1 << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  std::string msg;
  {
    auto w = blob::BlobWriter::create(tmp, out);
    ASSERT_TRUE(w);
    std::vector<float> f(4 << 20, 1.f);  // 16 MB, written past the buffer
    auto r = (*w)->add_tensor({"f", DType::kFloat32, {4 << 20}}, f.data(), f.size() * 4);
    msg = r.message();
    Graph g;
    EXPECT_EQ((*w)->finish(g, {}).message(), msg);  // sticky
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  EXPECT_EQ(msg, tmp + ": cannot write: File too large");
  EXPECT_FALSE(exists(tmp));
  EXPECT_FALSE(exists(out));
}

TEST(BlobWriterTest, EmptyModel) {
  std::string p = tmp_dir() + "/empty.sarai";
  std::filesystem::remove(p);
  auto w = blob::BlobWriter::create(p + ".tmp", p);
  ASSERT_TRUE(w);
  Graph g;
  ASSERT_TRUE((*w)->finish(g, {}));
  BlobInfo info;
  auto m = load_blob(p, /*verify=*/true, &info);
  ASSERT_TRUE(m) << m.message();
  EXPECT_TRUE(info.tensors.empty());
  EXPECT_TRUE(verify_blob(p));
}

TEST_F(BlobTest, RandomCorruptionNeverCrashes) {
  // Random multi-byte damage, with and without resealing the checksums (so
  // the stream parsers see garbage too).
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    Bytes b = bytes_;
    int n = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < n; ++k) {
      size_t at = rng() % b.size();
      if (iter % 2 == 0 && at < 4096) at = section(info_, blob::SectionKind::kGraph).offset + at % section(info_, blob::SectionKind::kGraph).size;
      b[at] = static_cast<uint8_t>(rng());
    }
    if (iter % 3 == 0) b.resize(rng() % b.size());
    if (iter % 2 == 0) blob_internal::reseal(b.data(), b.size());
    bool load_ok = false;
    std::string msg = verify_message(b, &load_ok);
    EXPECT_EQ(msg.find('\n'), std::string::npos);
    EXPECT_FALSE(msg.empty());
  }
}

}  // namespace
}  // namespace sarai
