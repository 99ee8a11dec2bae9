// sarai-rt inspect: describe a model (.onnx, or a .sarai blob with its
// metadata and tensor table).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "runtime/session.h"
#include "tools/cli/cli.h"

namespace sarai::cli {

namespace {

const char* layout_name(blob::Layout l) {
  return l == blob::Layout::kPackedN16K4 ? "packed n16k4" : "plain";
}
const char* scheme_name(blob::Scheme s) {
  switch (s) {
    case blob::Scheme::kNone: return "-";
    case blob::Scheme::kInt8PerChannel: return "int8/channel";
    case blob::Scheme::kInt8PerTensor: return "int8/tensor";
  }
  return "?";
}

// A metadata value on one line: control characters escaped (\n, \t,
// \xNN), cut after kMaxValueChars with the full size said (a recognizer's
// character list runs to thousands of lines).
constexpr size_t kMaxValueChars = 96;
std::string one_line(const std::string& v) {
  std::string r;
  for (unsigned char c : v) {
    if (r.size() >= kMaxValueChars && (c & 0xc0) != 0x80) {  // never inside a UTF-8 character
      r += "... (" + std::to_string(v.size()) + " bytes)";
      break;
    }
    if (c == '\n') r += "\\n";
    else if (c == '\t') r += "\\t";
    else if (c == '\\') r += "\\\\";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    } else {
      r += static_cast<char>(c);
    }
  }
  return r;
}

// The blob-only part: format, sections, metadata, the tensor table with
// each quantized weight's scheme, axis and scale range.
void print_blob_details(const BlobInfo& info, const Model& m) {
  std::printf("format: .sarai version %u, weight layout version %u, %s\n", info.header.format_version,
              info.header.weight_layout_version, human_bytes(info.header.file_size).c_str());
  std::printf("sections:\n");
  const char* kinds[] = {"?", "META", "GRAPH", "TENSORS", "DATA"};
  for (const blob::BlobSection& s : info.sections) {
    auto k = static_cast<uint32_t>(s.kind);
    std::printf("  %-8s offset %12llu  size %12llu  crc32c %08x\n", k < 5 ? kinds[k] : "?",
                static_cast<unsigned long long>(s.offset), static_cast<unsigned long long>(s.size), s.crc32c);
  }
  std::printf("metadata:\n");
  for (const auto& [k, v] : info.metadata)
    if (k.rfind("choice:", 0) != 0) std::printf("  %s: %s\n", one_line(k).c_str(), one_line(v).c_str());
  std::printf("tensors (%zu):\n", info.tensors.size());
  std::printf("  %-44s %-8s %-20s %-13s %-12s %5s %12s\n", "name", "dtype", "dims", "layout", "scheme", "axis", "bytes");
  for (const BlobTensorInfo& t : info.tensors) {
    std::string scales;
    if (t.entry.scale_tensor >= 0 && static_cast<size_t>(t.entry.scale_tensor) < info.tensors.size()) {
      // Scale range straight from the mapping, through the model's view of it.
      const std::string& sname = info.tensors[static_cast<size_t>(t.entry.scale_tensor)].name;
      int v = m.graph.find_value(sname);
      if (v != kNoValue && m.graph.values[static_cast<size_t>(v)].is_initializer) {
        const Tensor& st = m.graph.values[static_cast<size_t>(v)].initializer;
        if (st.dtype() == DType::kFloat32 && st.numel() > 0) {
          float lo = st.data<float>()[0], hi = lo;
          for (int64_t i = 1; i < st.numel(); ++i) {
            lo = std::min(lo, st.data<float>()[i]);
            hi = std::max(hi, st.data<float>()[i]);
          }
          char buf[64];
          std::snprintf(buf, sizeof buf, "  scales %.3g..%.3g", lo, hi);
          scales = buf;
        }
      }
    }
    std::string name = t.name.size() > 44 ? "..." + t.name.substr(t.name.size() - 41) : t.name;
    std::printf("  %-44s %-8s %-20s %-13s %-12s %5d %12llu%s\n", name.c_str(), dtype_name(t.dtype),
                shape_to_string(t.dims).c_str(), layout_name(t.entry.layout), scheme_name(t.entry.scheme), t.entry.axis,
                static_cast<unsigned long long>(t.entry.size), scales.c_str());
  }
  int choices = 0;
  for (const auto& [k, v] : info.metadata) choices += k.rfind("choice:", 0) == 0;
  if (choices) {
    std::printf("quantization choices (%d weights):\n", choices);
    for (const auto& [k, v] : info.metadata)
      if (k.rfind("choice:", 0) == 0) std::printf("  %s: %s\n", k.substr(7).c_str(), v.c_str());
  }
}

}  // namespace

int cmd_inspect(const std::string& path) {
  const bool is_blob = looks_like_blob(path);
  BlobInfo info;
  auto loaded = is_blob ? load_blob(path, /*verify=*/false, &info) : load_onnx(path);
  if (!loaded) return fail(loaded.message());
  const Model& m = **loaded;
  const Graph& g = m.graph;
  std::printf("model: %s\n", path.c_str());
  if (is_blob) {
    print_blob_details(info, m);
  } else {
    std::printf("producer: %s %s, IR version %lld\n", m.producer_name.empty() ? "(unknown)" : m.producer_name.c_str(),
                m.producer_version.c_str(), static_cast<long long>(m.ir_version));
    const ModelDescription& d = m.description;
    if (!d.domain.empty() || d.model_version != 0)
      std::printf("domain: %s, model version %lld\n", d.domain.empty() ? "(none)" : one_line(d.domain).c_str(),
                  static_cast<long long>(d.model_version));
    if (!d.doc_string.empty()) std::printf("description: %s\n", one_line(d.doc_string).c_str());
    if (!d.props.empty()) {
      std::printf("metadata_props:\n");
      for (const auto& [k, v] : d.props) std::printf("  %s: %s\n", one_line(k).c_str(), one_line(v).c_str());
    }
  }
  std::printf("opset: %lld (default domain)\n", static_cast<long long>(g.opset));
  std::printf("inputs:\n");
  for (int id : g.inputs) {
    const Value& v = g.values[static_cast<size_t>(id)];
    std::printf("  %s: %s\n", v.name.c_str(), describe_value_type(v).c_str());
  }
  std::printf("outputs:\n");
  for (int id : g.outputs) {
    const Value& v = g.values[static_cast<size_t>(id)];
    std::printf("  %s: %s\n", v.name.c_str(), describe_value_type(v).c_str());
  }
  KernelTable kernels;
  register_kernels(kernels);
  // Every node, at any depth of subgraphs (If, Loop, Scan bodies), and
  // every constant: initializers (an outer one copied into a subgraph is
  // the same bytes, counted once) and Constant nodes' tensors.
  std::map<std::string, int> hist;
  int nodes = 0, sub_nodes = 0, n_init = 0, n_const = 0;
  int64_t count = 0;
  uint64_t bytes = 0;
  std::set<const void*> seen;
  auto add_tensor = [&](const Tensor& t) {
    if (t.nbytes() && !seen.insert(t.raw()).second) return false;
    count += t.numel();
    bytes += t.nbytes();
    return true;
  };
  std::function<void(const Graph&, int)> walk = [&](const Graph& graph, int depth) {
    for (const Value& v : graph.values)
      if (v.is_initializer && add_tensor(v.initializer)) ++n_init;
    for (const Node& n : graph.nodes) {
      hist[KernelTable::key(n.domain, n.op_type)]++;
      ++(depth ? sub_nodes : nodes);
      if (n.op_type == "Constant" && n.domain.empty())
        if (const Attribute* a = n.attr("value"); a && a->kind == Attribute::Kind::kTensor && a->t.defined() && add_tensor(a->t))
          ++n_const;
      for (const auto& [name, a] : n.attrs)
        if (a.kind == Attribute::Kind::kGraph && a.g) walk(*a.g, depth + 1);
    }
  };
  walk(g, 0);
  std::vector<std::pair<std::string, int>> ops(hist.begin(), hist.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  if (sub_nodes)
    std::printf("ops (%d nodes, and %d more inside subgraphs):\n", nodes, sub_nodes);
  else
    std::printf("ops (%d nodes):\n", nodes);
  int unsupported = 0;
  for (const auto& [op, count] : ops) {
    auto sep = op.find("::");
    bool ok = sep == std::string::npos ? kernels.find(op, g.opset) != nullptr
                                       : kernels.find(op.substr(sep + 2), g.opset, op.substr(0, sep)) != nullptr;
    unsupported += !ok;
    std::printf("  %-24s %6d%s\n", op.c_str(), count, ok ? "" : "  (unsupported)");
  }
  std::printf("parameters: %lld in %d initializers", static_cast<long long>(count), n_init);
  if (n_const) std::printf(" and %d Constant nodes", n_const);
  std::printf(", %s\n", human_bytes(bytes).c_str());
  if (is_blob) {
    // weights live in the blob itself
  } else if (m.external_data.empty()) {
    std::printf("external data: none\n");
  } else {
    std::printf("external data:\n");
    for (const ExternalDataFile& f : m.external_data)
      std::printf("  %s: %s, %d tensors, %s referenced\n", f.location.c_str(), human_bytes(f.file_size).c_str(),
                  f.tensor_count, human_bytes(f.bytes_used).c_str());
  }
  if (unsupported) std::printf("note: %d op type%s not supported by this runtime\n", unsupported, unsupported > 1 ? "s are" : " is");
  return 0;
}
}  // namespace sarai::cli
