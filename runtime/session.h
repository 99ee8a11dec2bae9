// Session: a loaded model made ready to run.
//
// create() checks once that every node has a kernel (listing every
// unsupported op in one message) and fixes the execution order; run()
// validates the caller's inputs against the declared inputs (dtype, rank,
// fixed dims, and symbolic dims that must agree across inputs), then walks
// the nodes in order, inferring each output's shape from the actual input
// shapes, and frees every intermediate after its last reader.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/model.h"
#include "runtime/status.h"

namespace sarai {

struct SessionOptions {
  int num_threads = 0;  // 0: one per physical core
  bool profile = false; // time every node (see Session::node_times_ms)
  bool fuse = true;       // Add/Relu/Gelu into quantized ops' epilogues (runtime/fuse.h)
  bool fuse_patterns = true;  // GELU chains, Div+Softmax, attention -> one op each (runtime/fuse.h)
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// "float32 [1, 80, frames]" for a declared value.
std::string describe_value_type(const Value& v);

class Session {
 public:
  static Expected<std::unique_ptr<Session>> create(std::shared_ptr<const Model> model, const KernelTable& kernels,
                                                   SessionOptions options = {});

  const Model& model() const { return *model_; }
  const Graph& graph() const { return model_->graph; }
  int num_threads() const { return num_threads_; }

  // Checks one input against its declaration (name, dtype, rank, fixed
  // dims), so a caller can name the file it came from in the error.
  Status check_input(const NamedTensor& input) const;

  Expected<std::vector<NamedTensor>> run(const std::vector<NamedTensor>& inputs);

  // With SessionOptions::profile: milliseconds spent in each node (indexed
  // like graph().nodes), summed over every run so far.
  const std::vector<double>& node_times_ms() const { return node_ms_; }

 private:
  Session() = default;
  Status bind_inputs(const std::vector<NamedTensor>& inputs, std::vector<Tensor>& values) const;

  std::shared_ptr<const Model> model_;
  std::vector<int> order_;
  std::vector<KernelFn> kernel_of_node_;
  std::vector<int> last_use_;
  int num_threads_ = 1;
  bool profile_ = false;
  std::vector<double> node_ms_;
};

}  // namespace sarai
