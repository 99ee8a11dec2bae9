// The runtime's own IR: a graph of nodes over values, with no protobuf types.
//
// Values are indexed by position in Graph::values; a node names its inputs
// and outputs by value index (kNoValue for an omitted optional input). A
// value is either a graph input, an initializer (a constant Tensor, possibly
// a view into a mapped file), or the output of exactly one node.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai {

inline constexpr int kNoValue = -1;

// One dimension of a declared shape: a fixed size, a named symbol
// ("seq_len"), or unknown (no value, no symbol).
struct Dim {
  int64_t value = -1;
  std::string symbol;
  bool is_fixed() const { return value >= 0; }
  std::string to_string() const { return is_fixed() ? std::to_string(value) : (symbol.empty() ? "?" : symbol); }
};

class Graph;

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kGraph };
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  // kGraph: the subgraph (the body of If, Loop, Scan); null for kinds the
  // loader keeps out of the IR (lists of graphs, sparse tensors, types).
  std::shared_ptr<const Graph> g;

  // One-value attributes, as the rewrites make them.
  static Attribute of_float(float v);
  static Attribute of_int(int64_t v);
  static Attribute of_string(std::string v);
  static Attribute of_ints(std::vector<int64_t> v);
};

struct Node {
  std::string name;     // may be empty in the source model; the loader names it
  std::string op_type;
  std::string domain;   // "" for the default ONNX domain
  std::vector<int> inputs;
  std::vector<int> outputs;
  std::map<std::string, Attribute> attrs;
  // Control flow: the last `implicit_inputs` entries of `inputs` are not the
  // op's own but the outer values its subgraphs read (Graph::captures, by
  // name), listed so that order and lifetimes see them (ONNX Runtime calls
  // them implicit inputs too).
  int implicit_inputs = 0;
  int explicit_inputs() const { return static_cast<int>(inputs.size()) - implicit_inputs; }

  bool has_attr(const std::string& k) const { return attrs.count(k) != 0; }
  const Attribute* attr(const std::string& k) const {
    auto it = attrs.find(k);
    return it == attrs.end() ? nullptr : &it->second;
  }
  int64_t attr_int(const std::string& k, int64_t def) const {
    const Attribute* a = attr(k);
    return a ? a->i : def;
  }
  float attr_float(const std::string& k, float def) const {
    const Attribute* a = attr(k);
    return a ? a->f : def;
  }
  std::string attr_string(const std::string& k, const std::string& def) const {
    const Attribute* a = attr(k);
    return a ? a->s : def;
  }
  std::vector<int64_t> attr_ints(const std::string& k, std::vector<int64_t> def = {}) const {
    const Attribute* a = attr(k);
    return a ? a->ints : def;
  }
  // Lookups that never allocate, for kernels (they run on every
  // Session::run, which must not touch the heap once planned): the key is
  // compared in place, where a std::string temporary would allocate past 15
  // characters ("coordinate_transformation_mode"), and values are views into
  // the attribute instead of copies. A linear scan: nodes have few attributes.
  const Attribute* find_attr(std::string_view k) const {
    for (const auto& [name, a] : attrs)
      if (name == k) return &a;
    return nullptr;
  }
  std::span<const int64_t> attr_ints_view(std::string_view k) const {
    const Attribute* a = find_attr(k);
    return a ? std::span<const int64_t>(a->ints) : std::span<const int64_t>();
  }
  std::string_view attr_string_view(std::string_view k, std::string_view def) const {
    const Attribute* a = find_attr(k);
    return a ? std::string_view(a->s) : def;
  }
  // "node 'name' (OpType)" for error messages.
  std::string describe() const { return "node '" + name + "' (" + op_type + ")"; }
};

struct Value {
  std::string name;
  DType dtype = DType::kUndefined;  // kUndefined when the model does not say
  std::vector<Dim> dims;
  bool has_shape = false;
  int producer = -1;                 // node index, -1 for inputs and initializers
  bool is_initializer = false;
  Tensor initializer;                // set when is_initializer

  // Makes this value the constant t: initializer, dtype and dims from t, no
  // producer.
  void set_initializer(Tensor t);
};

class Graph {
 public:
  std::string name;
  int64_t opset = 0;                // default-domain opset the model imports
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;          // graph inputs that are not initializers
  std::vector<int> outputs;
  // A subgraph's values that enclosing graphs define (read by name, as ONNX
  // scoping says): neither inputs nor initializers nor produced here; the
  // node owning the subgraph binds them to its implicit inputs. An outer
  // initializer is copied in as an initializer instead (a shared handle).
  std::vector<int> captures;

  int find_value(const std::string& name) const;  // kNoValue if absent
  // A value name not yet in the graph: `base` when it is free, else
  // base.2, base.3, ... (for values a pass adds next to existing ones).
  std::string fresh_name(const std::string& base) const;
  // Adds a value (name must be new) and returns its index.
  int add_value(const std::string& name);
  // Renames value id (the new name must be new).
  void rename_value(int id, const std::string& name);

  // Nodes in an order where every node comes after the producers of its
  // inputs; an error naming a node on the cycle when there is one.
  Expected<std::vector<int>> topological_order() const;

  // For each value, the index in `order` of the last node that reads it
  // (-1 when no node reads it). Graph outputs are never released.
  std::vector<int> last_uses(const std::vector<int>& order) const;

 private:
  std::map<std::string, int> index_;
};

}  // namespace sarai
