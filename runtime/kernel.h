// The contract between the executor and an op implementation.
//
// A kernel is a plain function `Status fn(KernelContext&)`. It reads its
// inputs and attributes through the context, infers its output shapes from
// the actual input shapes, asks the context for output storage and fills it.
// It returns an error (a one-line message; the executor prefixes the node)
// for anything the model can get wrong: bad attributes, mismatched shapes.
// Kernels are registered explicitly in kernels/registry.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/graph.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai {

// How the executor provides memory to one kernel call (runtime/session.cc
// fills it; a default NodeMemory means plain heap allocation).
struct NodeMemory {
  enum class Mode {
    kHeap,       // outputs and workspaces on the heap (tests, unplanned runs)
    kShapeOnly,  // planning pass: record sizes; skip_compute() may say yes
    kPlanned,    // outputs and workspaces at planned offsets of one arena
  };
  Mode mode = Mode::kHeap;
  // kPlanned: the arena, each output's offset (-1: not planned) and room,
  // and this node's workspace region.
  uint8_t* arena = nullptr;
  const int64_t* output_offset = nullptr;
  const uint64_t* output_capacity = nullptr;
  int64_t workspace_offset = -1;
  uint64_t workspace_capacity = 0;
  // Filled in by the context: workspace bytes asked for (64-byte rounded,
  // summed over calls), and whether a planned request did not fit its slot
  // (it was then served from the heap and the plan is stale).
  uint64_t workspace_used = 0;
  bool plan_miss = false;
  // kShapeOnly / kHeap under a session: the bytes of outputs and workspaces
  // alive in this call (the executor's counter, shared by every node). A
  // node that would take it past the machine's memory is stopped, so no
  // pass can touch more pages than the machine has, even when each
  // allocation alone fits.
  std::shared_ptr<std::atomic<uint64_t>> live_bytes;
};

// Debugging aid: when SARAI_POISON_MEMORY=1 is set (the test suite sets
// it), every output and workspace a kernel gets, and the planned arena
// before each run, is filled with 0xFF bytes (NaN as float), so a kernel
// that reads memory it never wrote shows up as a wrong result.
bool poison_memory();
void set_poison_memory(bool on);

// An op's per-node data, computed once from the node's attributes (TFLite
// Micro's Prepare): Session::create calls the op's prepare function for
// every node (OpSchema::prepare), so bad attribute values are refused before
// any run and each run reads the result instead of parsing again. The
// data may view the node's strings: the node outlives the session.
using PrepareFn = Expected<std::shared_ptr<const void>> (*)(const Node& node, int64_t opset);

class KernelContext {
 public:
  KernelContext(const Node& node, int64_t opset, std::span<const Tensor* const> inputs,
                std::span<Tensor> outputs, int num_threads, NodeMemory* memory = nullptr);
  ~KernelContext();
  KernelContext(const KernelContext&) = delete;
  KernelContext& operator=(const KernelContext&) = delete;

  const Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  int num_threads() const { return num_threads_; }

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  // True when input i exists and was not omitted (optional inputs may be "").
  bool has_input(int i) const {
    return i < num_inputs() && inputs_[static_cast<size_t>(i)] != nullptr;
  }
  const Tensor& input(int i) const {
    assert(has_input(i));
    return *inputs_[static_cast<size_t>(i)];
  }
  // Whether the graph wants output i (optional outputs may be omitted).
  bool wants_output(int i) const {
    return i < num_outputs() && node_.outputs[static_cast<size_t>(i)] != kNoValue;
  }

  // Storage for output i. Its contents are undefined (planned memory holds
  // whatever the arena held): write every element, or use the zeroed form.
  Tensor& allocate_output(int i, DType dtype, Shape shape);
  Tensor& allocate_output_zeroed(int i, DType dtype, Shape shape);
  // Output i is an existing tensor (a view of an input, a constant).
  void set_output(int i, Tensor t) { outputs_[static_cast<size_t>(i)] = std::move(t); }
  std::span<Tensor> outputs() { return outputs_; }
  // Whether output i's storage came from allocate_output (not set_output).
  bool allocated(int i) const { return i < 64 && ((allocated_mask_ >> i) & 1u); }

  // Scratch memory valid until the kernel returns, 64-byte aligned, contents
  // undefined. Ask for it before the skip_compute() check, so the planning
  // pass sees its size; per-thread scratch is count * num_threads() with
  // thread_index() (runtime/parallel.h) picking the slice.
  // A count < 0, or one whose bytes pass the machine's memory, stops the
  // kernel with an error (as allocate_output does), before it can write.
  template <class T> T* workspace(int64_t count) { return static_cast<T*>(workspace_elems(count, sizeof(T))); }
  void* workspace_bytes(uint64_t bytes);
  void* workspace_elems(int64_t count, size_t elem_bytes);

  // True during the planning pass (runtime/session.h) when `out` is large
  // enough that no shape can depend on its values: the kernel has allocated
  // its outputs and workspaces, and returns without computing. Small and
  // integer outputs are always computed (they may carry shapes).
  bool skip_compute(const Tensor& out) const;
  bool shape_only() const { return memory_ && memory_->mode == NodeMemory::Mode::kShapeOnly; }

  // The node's prepared data (PrepareFn): the session's, set once per node
  // with set_prepared; a caller without a session (tests, single-node
  // evaluation) gets it prepared here, by `fn`, and kept for this call.
  template <class T> Expected<const T*> prepared(PrepareFn fn) {
    if (prepared_ == nullptr) {
      auto d = fn(node_, opset_);
      if (!d) return d.status();
      prepared_ = d->get();
      owned_.push_back(std::move(*d));
    }
    return static_cast<const T*>(prepared_);
  }
  void set_prepared(const void* data) { prepared_ = data; }

 private:
  void* scratch(uint64_t bytes, std::shared_ptr<const void>* owner);

  const Node& node_;
  int64_t opset_;
  std::span<const Tensor* const> inputs_;
  std::span<Tensor> outputs_;
  int num_threads_;
  NodeMemory* memory_;
  uint64_t allocated_mask_ = 0;  // outputs 0..63; later ones are never planned
  const void* prepared_ = nullptr;
  // Heap / planning-pass workspaces, released with the context.
  std::vector<std::shared_ptr<const void>> owned_;
};

using KernelFn = Status (*)(KernelContext&);

// A control-flow node's subgraph (If's branches, Loop's and Scan's body),
// made ready to run by the session that runs the node: Session::create
// gives each such node a ControlFlowBodies as its prepared data, one runner
// per graph attribute, each a session of its own over the subgraph (its
// plans, its arena pool; concurrent calls are fine).
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  // The body as it runs. Its inputs: the `formal_inputs` the op passes
  // (Loop's iteration number, condition and carried values; Scan's states
  // and slices), then its captures, each bound to the node input
  // capture_source names (one of the node's implicit inputs).
  virtual const Graph& graph() const = 0;
  // As Session::run: `outputs` reuses the previous call's storage when the
  // shapes are the same and nothing else holds it.
  virtual Status run(const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs) = 0;
  int formal_inputs = 0;
  std::vector<int> capture_source;
};

struct ControlFlowBodies {
  std::vector<std::pair<std::string, std::unique_ptr<SubgraphRunner>>> bodies;  // by attribute name
  SubgraphRunner* find(std::string_view attr) const {
    for (const auto& [name, r] : bodies)
      if (name == attr) return r.get();
    return nullptr;
  }
};

// The largest tensor a kernel may allocate (1 TiB): far above any real
// model's, far below where byte counts could wrap. No output or workspace
// may pass the machine's physical memory either (machine_memory_bytes()):
// a hostile shape below 1 TiB would otherwise have the planning pass write
// lazily mapped pages until the kernel's OOM killer ends the process.
inline constexpr uint64_t kMaxTensorBytes = uint64_t{1} << 40;
uint64_t machine_memory_bytes();

// Runs fn on ctx: the one way kernels are called (the session's executor,
// the tests, single-node evaluation). A kernel that asks allocate_output for
// a shape no tensor can have (a negative dim; an element or byte count past
// int64 or kMaxTensorBytes, as shape arithmetic that wrapped would give) is
// stopped at that call, before it can write anywhere, and the call returns
// the error; so does a kernel whose allocation the machine cannot serve.
// Kernels still check their own shape arithmetic, to say which attribute or
// input is wrong.
Status invoke_kernel(KernelFn fn, KernelContext& ctx);

// (domain, op_type) -> implementation. The default ONNX domain is "";
// "sarai" holds the runtime's own ops (the quantized ones the converter
// writes). An op may have several entries for disjoint opset ranges of the
// default domain; most kernels handle every opset form themselves by
// looking at ctx.opset().
// What the executor knows of an op beyond its function (as ONNX Runtime's
// kernel definitions say it):
//  - in_place: the inputs its output 0 may overwrite. Such an input, when it
//    dies at the op and has the output's size, shares the output's buffer
//    (runtime/session_plan.cc); the kernel must read every element before
//    writing its position (audited per kernel; docs/memory.md).
//  - attrs: every attribute the op accepts, with its type and the opsets
//    that define it. Session::create refuses a node with any other
//    attribute, or one of another type, naming the node, the attribute and
//    what the op accepts (check_attributes): a misspelled `stride` must not
//    run as stride 1.
//  - prepare: computes the op's per-node data once (PrepareFn), for the ops
//    whose attributes need parsing or checking beyond their types.
struct AttrSpec {
  const char* name;
  Attribute::Kind kind;
  int64_t since = 1, until = INT64_MAX;  // the opsets (of the default domain) that define it
};
//  - types: the element types each input takes (ONNX's type constraints, as
//    the kernel implements them). Session::create refuses a node whose input
//    has a known dtype (a graph input's, an initializer's, a declared
//    value_info's) the op does not take, naming the node, the input, its
//    type and the types it takes (check_input_types).
// A set of element types: bit d for DType d.
using TypeSet = uint32_t;
constexpr TypeSet type_bit(DType t) { return TypeSet{1} << static_cast<int>(t); }
namespace dtypes {
inline constexpr TypeSet kF32 = type_bit(DType::kFloat32), kF64 = type_bit(DType::kFloat64),
                         kF16 = type_bit(DType::kFloat16), kBF16 = type_bit(DType::kBFloat16),
                         kI8 = type_bit(DType::kInt8), kU8 = type_bit(DType::kUInt8), kI16 = type_bit(DType::kInt16),
                         kU16 = type_bit(DType::kUInt16), kI32 = type_bit(DType::kInt32),
                         kU32 = type_bit(DType::kUInt32), kI64 = type_bit(DType::kInt64),
                         kU64 = type_bit(DType::kUInt64), kBool = type_bit(DType::kBool),
                         kString = type_bit(DType::kString);
// Named sets: float32 and float64; every integer type; both; every type a
// tensor can hold as raw bytes (what data movement takes).
inline constexpr TypeSet kFloat = kF32 | kF64;
inline constexpr TypeSet kInts = kI8 | kU8 | kI16 | kU16 | kI32 | kU32 | kI64 | kU64;
inline constexpr TypeSet kIndex = kI32 | kI64;  // indices, shapes, axes
inline constexpr TypeSet kNumeric = kFloat | kInts;
inline constexpr TypeSet kAny = kNumeric | kF16 | kBF16 | kBool;
}  // namespace dtypes
// The types of inputs first..last (kLastInput: through the node's last
// input); {kAllInputs, types} covers every input.
inline constexpr int kLastInput = INT32_MAX, kAllInputs = -1;
struct InputTypes {
  InputTypes(int input, TypeSet t)
      : first(input == kAllInputs ? 0 : input), last(input == kAllInputs ? kLastInput : input), types(t) {}
  InputTypes(int first_input, int last_input, TypeSet t) : first(first_input), last(last_input), types(t) {}
  int first, last;
  TypeSet types;
};
// "float32, float64"; "any" for dtypes::kAny, "integers" for the eight
// integer types within a longer list.
std::string type_set_name(TypeSet t);

struct OpSchema {
  std::vector<int> in_place;
  std::vector<AttrSpec> attrs;
  PrepareFn prepare = nullptr;
  std::vector<InputTypes> types;  // later entries win where they overlap
  bool types_declared = false;    // .types() was called (an op without inputs declares {})
  // The types input i takes; 0 when no entry covers it (not checked).
  TypeSet input_types(int i) const {
    TypeSet r = 0;
    for (const InputTypes& t : types)
      if (i >= t.first && i <= t.last) r = t.types;
    return r;
  }
};

// OK when every attribute of `node` is one `schema` accepts at `opset`, with
// its type; else the error (one line, naming the node).
Status check_attributes(const Node& node, const OpSchema& schema, int64_t opset);

// OK when every explicit input of `node` whose dtype `graph` knows (an
// initializer's, a declared one) is of a type `schema` takes; else the
// error (one line naming the node, the input, its type and the types taken).
Status check_input_types(const Node& node, const OpSchema& schema, const Graph& graph);

class KernelTable {
  struct Entry {
    int64_t since, until;
    KernelFn fn;
    OpSchema schema;
  };

 public:
  // What add() returns: sets the schema of the entry just added.
  class Registration {
   public:
    explicit Registration(Entry& e) : e_(e) {}
    Registration& in_place(std::initializer_list<int> inputs) {
      e_.schema.in_place.assign(inputs);
      return *this;
    }
    Registration& prepare(PrepareFn fn) {
      e_.schema.prepare = fn;
      return *this;
    }
    Registration& attrs(std::initializer_list<AttrSpec> specs) {
      e_.schema.attrs.insert(e_.schema.attrs.end(), specs);
      return *this;
    }
    // Per input: .types({{0, dtypes::kFloat}, {1, dtypes::kI64}}); the same
    // set for every input: .types(dtypes::kNumeric); an op without inputs:
    // .types({}).
    Registration& types(std::initializer_list<InputTypes> per_input) {
      e_.schema.types.insert(e_.schema.types.end(), per_input);
      e_.schema.types_declared = true;
      return *this;
    }
    Registration& types(TypeSet every_input) { return types({{kAllInputs, every_input}}); }

   private:
    Entry& e_;
  };

  Registration add(const std::string& op_type, KernelFn fn, int64_t since_opset = 1,
                   int64_t until_opset = INT64_MAX, const std::string& domain = "") {
    std::vector<Entry>& v = table_[key(domain, op_type)];
    v.push_back({since_opset, until_opset, fn, {}});
    return Registration(v.back());
  }
  Registration add_domain_op(const std::string& domain, const std::string& op_type, KernelFn fn) {
    return add(op_type, fn, 1, INT64_MAX, domain);
  }
  KernelFn find(const std::string& op_type, int64_t opset, const std::string& domain = "") const {
    const Entry* e = entry(op_type, opset, domain);
    return e ? e->fn : nullptr;
  }
  // The schema of the entry find() would pick, or nullptr.
  const OpSchema* schema(const std::string& op_type, int64_t opset, const std::string& domain = "") const {
    const Entry* e = entry(op_type, opset, domain);
    return e ? &e->schema : nullptr;
  }
  // "Op" for the default domain, "domain::Op" otherwise.
  std::vector<std::string> op_types() const {
    std::vector<std::string> r;
    for (const auto& [k, v] : table_) r.push_back(k);
    return r;
  }
  // The opset ranges [since, until] of key's entries (docs/ops.md).
  std::vector<std::pair<int64_t, int64_t>> opset_ranges(const std::string& key) const {
    std::vector<std::pair<int64_t, int64_t>> r;
    auto it = table_.find(key);
    if (it != table_.end())
      for (const Entry& e : it->second) r.emplace_back(e.since, e.until);
    return r;
  }
  static std::string key(const std::string& domain, const std::string& op_type) {
    return domain.empty() ? op_type : domain + "::" + op_type;
  }

 private:
  const Entry* entry(const std::string& op_type, int64_t opset, const std::string& domain) const {
    auto it = table_.find(key(domain, op_type));
    if (it == table_.end()) return nullptr;
    for (const Entry& e : it->second)
      if (opset >= e.since && opset <= e.until) return &e;
    return nullptr;
  }
  std::map<std::string, std::vector<Entry>> table_;
};

}  // namespace sarai
