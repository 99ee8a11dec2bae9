#include "tools/eval.h"

#include <algorithm>
#include <filesystem>

#include "loader/npy.h"

namespace fs = std::filesystem;

namespace sarai::cli {

bool is_quantized(const Node& n) {
  return n.domain == "sarai" && (n.op_type == "QMatMul" || n.op_type == "QConv" || n.op_type == "QConvTranspose");
}

Expected<std::vector<InputSet>> read_input_sets(const Session& session, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::error(dir + ": not a folder");
  auto read_set = [&](const fs::path& folder) -> Expected<InputSet> {
    InputSet set{folder.string(), {}};
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(folder, ec))
      if (e.is_regular_file() && e.path().extension() == ".npy") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      auto t = read_npy(f.string());
      if (!t) return t.status();
      NamedTensor in{f.stem().string(), std::move(*t)};
      if (Status st = session.check_input(in); !st) return Status::error(f.string() + ": " + st.message());
      set.tensors.push_back(std::move(in));
    }
    return set;
  };
  std::vector<InputSet> sets;
  auto top = read_set(dir);
  if (!top) return top.status();
  if (!top->tensors.empty()) {
    sets.push_back(std::move(*top));
    return sets;
  }
  std::vector<fs::path> subdirs;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) subdirs.push_back(e.path());
  std::sort(subdirs.begin(), subdirs.end());
  for (const fs::path& d : subdirs) {
    auto s = read_set(d);
    if (!s) return s.status();
    if (!s->tensors.empty()) sets.push_back(std::move(*s));
  }
  if (sets.empty()) return Status::error(dir + ": no .npy files (NAME.npy per input, in DIR or in its subfolders)");
  return sets;
}

Expected<double> min_output_cosine(Session& reference, Session& test, const std::vector<InputSet>& sets) {
  const Graph& g = reference.graph();
  std::vector<quant::OutputError> errors(g.outputs.size());
  std::vector<NamedTensor> ref_out, test_out;
  for (const InputSet& set : sets) {
    if (Status st = reference.run(set.tensors, &ref_out); !st) return Status::error(set.name + ": " + st.message());
    if (Status st = test.run(set.tensors, &test_out); !st) return Status::error(set.name + ": " + st.message());
    for (size_t i = 0; i < ref_out.size(); ++i) {
      auto it = std::find_if(test_out.begin(), test_out.end(),
                             [&](const NamedTensor& t) { return t.name == ref_out[i].name; });
      if (it == test_out.end()) return Status::error("the quantized model has no output '" + ref_out[i].name + "'");
      SARAI_RETURN_IF_ERROR(errors[i].add(ref_out[i].tensor, it->tensor));
    }
  }
  double worst = 1;
  for (const quant::OutputError& e : errors) worst = std::min(worst, e.cosine());
  return worst;
}

}  // namespace sarai::cli
