#include <cmath>
#include <cstdio>

#include "kernels/kernels.h"
#include "loader/model_file.h"
#include "runtime/atomic_file.h"
#include "tools/cli/cli.h"

namespace sarai::cli {

int fail(const std::string& message) {
  std::fprintf(stderr, "sarai-rt: error: %s\n", message.c_str());
  return 1;
}

// "NAME=REST" -> {NAME, REST}; NAME may not be empty.
bool split_assignment(const std::string& s, std::string* name, std::string* rest) {
  size_t eq = s.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) return false;
  *name = s.substr(0, eq);
  *rest = s.substr(eq + 1);
  return true;
}

Expected<Shape> parse_dims(const std::string& text) {
  Shape shape;
  size_t i = 0;
  while (i <= text.size()) {
    size_t x = text.find_first_of("x,", i);
    std::string part = text.substr(i, x == std::string::npos ? std::string::npos : x - i);
    if (part.empty() || part.size() > 12 || part.find_first_not_of("0123456789") != std::string::npos)
      return Status::error("'" + text + "' is not a shape like 1x80x3000");
    shape.push_back(std::stoll(part));
    if (x == std::string::npos) break;
    i = x + 1;
  }
  auto n = checked_numel(shape, 8);
  if (!n) return n.status();
  if (*n > (int64_t{1} << 32)) return Status::error("shape " + text + " is too large for a random input");
  return shape;
}

// Deterministic random values of the model's declared dtype: floats in
// [-1, 1), integers in [0, 10), bools at random.
Tensor random_input(DType dtype, const Shape& shape, std::mt19937_64& rng) {
  Tensor t = Tensor::allocate(dtype, shape);
  std::uniform_real_distribution<float> uf(-1.f, 1.f);
  std::uniform_int_distribution<int> ui(0, 9);
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (dtype) {
      case DType::kFloat32: t.mutable_data<float>()[i] = uf(rng); break;
      case DType::kFloat64: t.mutable_data<double>()[i] = uf(rng); break;
      case DType::kFloat16: t.mutable_data<uint16_t>()[i] = float_to_half(uf(rng)); break;
      case DType::kInt64: t.mutable_data<int64_t>()[i] = ui(rng); break;
      case DType::kInt32: t.mutable_data<int32_t>()[i] = ui(rng); break;
      case DType::kInt8: t.mutable_data<int8_t>()[i] = static_cast<int8_t>(ui(rng)); break;
      case DType::kUInt8: t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(ui(rng)); break;
      case DType::kBool: t.mutable_data<uint8_t>()[i] = ui(rng) & 1; break;
      default: break;  // left zero
    }
  }
  return t;
}

void report_removed_stale_temp_files() {
  for (const std::string& p : take_removed_stale_temp_files())
    std::fprintf(stderr, "sarai-rt: removed %s, left by a writer that no longer runs (killed)\n", p.c_str());
}

std::string human_bytes(uint64_t b) {
  char buf[64];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", b / double(1ull << 20));
  else if (b >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

AttentionPrecision attention_precision(const std::string& v) {
  if (v == "fp32") return AttentionPrecision::kFloat32;
  if (v == "int8") return AttentionPrecision::kInt8;
  if (v == "int8-per-tensor") return AttentionPrecision::kInt8PerTensor;
  return AttentionPrecision::kModel;
}

Expected<std::unique_ptr<Session>> open_session(const std::string& path, bool verify_blob, const SessionOptions& options) {
  auto model = open_model_file(path, verify_blob);
  if (!model) return model.status();
  KernelTable kernels;  // the session keeps the kernel functions, not the table
  register_kernels(kernels);
  return Session::create(*model, kernels, options);
}

std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      r += buf;
      continue;
    }
    r += c;
  }
  return r + "\"";
}

}  // namespace sarai::cli
