#include "runtime/graph.h"

#include <cassert>

namespace sarai {

Attribute Attribute::of_float(float v) {
  Attribute a;
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}

Attribute Attribute::of_int(int64_t v) {
  Attribute a;
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}

Attribute Attribute::of_string(std::string v) {
  Attribute a;
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}

Attribute Attribute::of_ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}

void Value::set_initializer(Tensor t) {
  dtype = t.dtype();
  dims.clear();
  for (int64_t d : t.shape()) dims.push_back(Dim{d, ""});
  has_shape = true;
  producer = -1;
  is_initializer = true;
  initializer = std::move(t);
}

int Graph::find_value(const std::string& n) const {
  auto it = index_.find(n);
  return it == index_.end() ? kNoValue : it->second;
}

std::string Graph::fresh_name(const std::string& base) const {
  std::string name = base;
  for (int i = 2; find_value(name) != kNoValue; ++i) name = base + "." + std::to_string(i);
  return name;
}

void Graph::rename_value(int id, const std::string& n) {
  assert(index_.count(n) == 0);
  Value& v = values[static_cast<size_t>(id)];
  index_.erase(v.name);
  v.name = n;
  index_[n] = id;
}

int Graph::add_value(const std::string& n) {
  assert(index_.count(n) == 0);
  int id = static_cast<int>(values.size());
  values.push_back(Value{});
  values.back().name = n;
  index_[n] = id;
  return id;
}

Expected<std::vector<int>> Graph::topological_order() const {
  // Kahn's algorithm, visiting nodes in their file order where possible so the
  // schedule is stable and matches what the exporter wrote.
  const size_t n = nodes.size();
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> consumers(values.size());
  for (size_t i = 0; i < n; ++i) {
    for (int v : nodes[i].inputs) {
      if (v == kNoValue) continue;
      if (values[static_cast<size_t>(v)].producer >= 0) {
        ++pending[i];
        consumers[static_cast<size_t>(v)].push_back(static_cast<int>(i));
      }
    }
  }
  std::vector<int> order;
  order.reserve(n);
  std::vector<int> ready;
  for (size_t i = 0; i < n; ++i)
    if (pending[i] == 0) ready.push_back(static_cast<int>(i));
  // A FIFO seeded in file order: deterministic, and for exporter output
  // (already topologically sorted) it reproduces the file order.
  size_t head = 0;
  while (head < ready.size()) {
    int node = ready[head++];
    order.push_back(node);
    for (int v : nodes[static_cast<size_t>(node)].outputs) {
      if (v == kNoValue) continue;
      for (int c : consumers[static_cast<size_t>(v)])
        if (--pending[static_cast<size_t>(c)] == 0) ready.push_back(c);
    }
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i)
      if (pending[i] > 0)
        return Status::error("graph has a cycle through " + nodes[i].describe());
  }
  return order;
}

std::vector<int> Graph::last_uses(const std::vector<int>& order) const {
  std::vector<int> last(values.size(), -1);
  for (size_t pos = 0; pos < order.size(); ++pos)
    for (int v : nodes[static_cast<size_t>(order[pos])].inputs)
      if (v != kNoValue) last[static_cast<size_t>(v)] = static_cast<int>(pos);
  for (int v : outputs) last[static_cast<size_t>(v)] = static_cast<int>(order.size());
  return last;
}

}  // namespace sarai
