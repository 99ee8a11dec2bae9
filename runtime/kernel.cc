#include "runtime/kernel.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/memory_plan.h"

namespace sarai {

KernelContext::KernelContext(const Node& node, int64_t opset, std::span<const Tensor* const> inputs,
                             std::span<Tensor> outputs, int num_threads, NodeMemory* memory)
    : node_(node), opset_(opset), inputs_(inputs), outputs_(outputs), num_threads_(num_threads), memory_(memory) {
  assert(outputs.size() == node.outputs.size());
}

KernelContext::~KernelContext() = default;

namespace {
bool g_poison = [] {
  const char* e = std::getenv("SARAI_POISON_MEMORY");
  return e && *e && std::strcmp(e, "0") != 0;
}();

// Planning pass: address space whose pages cost nothing until written
// (reads see the shared zero page), so a skipped kernel's outputs and
// workspaces never become resident.
constexpr uint64_t kLazyFrom = 64 << 10;  // see KernelContext::scratch

std::shared_ptr<const void> lazy_pages(uint64_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return std::shared_ptr<const void>(p, [bytes](const void* q) { ::munmap(const_cast<void*>(q), bytes); });
}

std::shared_ptr<const void> heap_block(uint64_t bytes) {
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
}
}  // namespace

uint64_t machine_memory_bytes() {
  static const uint64_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? std::min(kMaxTensorBytes, static_cast<uint64_t>(pages) * static_cast<uint64_t>(page))
                                 : kMaxTensorBytes;
  }();
  return bytes;
}

bool poison_memory() { return g_poison; }
void set_poison_memory(bool on) { g_poison = on; }

namespace {

// Thrown by allocate_output and scratch on a size no tensor or workspace
// can have, caught by invoke_kernel: the kernel is stopped before it can
// use the bad size.
struct KernelAbort {
  Status status;
};

}  // namespace

void* KernelContext::scratch(uint64_t bytes, std::shared_ptr<const void>* owner) {
  bytes = align_up(bytes ? bytes : 1, 64);
  // Small blocks come from the heap even then: a mapping per node costs two
  // system calls and a page fault (most of the planning pass's time on a
  // graph of a million small nodes), and the kernel caps a process's
  // mappings (vm.max_map_count, 65530 by default).
  const bool lazy = memory_ && memory_->mode == NodeMemory::Mode::kShapeOnly && bytes >= kLazyFrom;
  std::shared_ptr<std::atomic<uint64_t>> live = memory_ ? memory_->live_bytes : nullptr;  // set in unplanned passes only
  if (live) {
    const uint64_t now = live->load(std::memory_order_relaxed) + bytes;
    if (now > machine_memory_bytes())
      throw KernelAbort{Status::error(ErrorCode::kOutOfMemoryBudget, "the values alive at this node would hold " + std::to_string(now) +
                                      " bytes, more than this machine's " + std::to_string(machine_memory_bytes()) +
                                      " bytes of memory")};
  }
  *owner = lazy ? lazy_pages(bytes) : heap_block(bytes);
  if (live) {
    live->fetch_add(bytes, std::memory_order_relaxed);
    void* p = const_cast<void*>(owner->get());
    *owner = std::shared_ptr<const void>(p, [block = std::move(*owner), live, bytes](const void*) mutable {
      live->fetch_sub(bytes, std::memory_order_relaxed);
      block.reset();
    });
  }
  if (g_poison && !lazy) std::memset(const_cast<void*>(owner->get()), 0xff, bytes);
  return const_cast<void*>(owner->get());
}

Status invoke_kernel(KernelFn fn, KernelContext& ctx) {
  try {
    return fn(ctx);
  } catch (const KernelAbort& a) {
    return a.status;
  } catch (const std::bad_alloc&) {
    return Status::error("out of memory: an allocation of this node failed");
  }
}

Tensor& KernelContext::allocate_output(int i, DType dtype, Shape shape) {
  const size_t k = static_cast<size_t>(i);
  if (i < 64) allocated_mask_ |= uint64_t{1} << i;
  const auto checked = checked_numel(shape, dtype_size(dtype));
  const uint64_t bytes = checked ? static_cast<uint64_t>(*checked) * dtype_size(dtype) : 0;
  if (!checked || bytes > kMaxTensorBytes)
    throw KernelAbort{Status::error("output " + std::to_string(i) + " would have shape " + shape_to_string(shape) +
                                    (checked ? " (" + std::to_string(bytes) + " bytes, more than any tensor may have)"
                                             : ": " + checked.message()))};
  if (bytes > machine_memory_bytes())
    throw KernelAbort{Status::error(ErrorCode::kOutOfMemoryBudget, "output " + std::to_string(i) + " would have shape " + shape_to_string(shape) + " (" +
                                    std::to_string(bytes) + " bytes, more than this machine's " +
                                    std::to_string(machine_memory_bytes()) + " bytes of memory)")};
  if (memory_ && memory_->mode == NodeMemory::Mode::kPlanned) {
    const int64_t off = i < 64 ? memory_->output_offset[k] : -1;
    if (off >= 0 && bytes <= memory_->output_capacity[k]) {
      outputs_[k] = Tensor::wrap(dtype, std::move(shape), memory_->arena + off, nullptr, false);
      return outputs_[k];
    }
    // The plan did not foresee this size (a shape that depends on data):
    // serve it from the heap and let the session plan again.
    memory_->plan_miss = true;
  }
  std::shared_ptr<const void> owner;
  void* p = scratch(bytes, &owner);
  outputs_[k] = Tensor::wrap(dtype, std::move(shape), p, std::move(owner), false);
  return outputs_[k];
}

Tensor& KernelContext::allocate_output_zeroed(int i, DType dtype, Shape shape) {
  Tensor& t = allocate_output(i, dtype, std::move(shape));
  // The planning pass's lazily mapped pages are zero already: writing them
  // would make them resident for nothing.
  if (t.nbytes() && !(shape_only() && t.nbytes() >= kLazyFrom)) std::memset(t.mutable_raw(), 0, t.nbytes());
  return t;
}

void* KernelContext::workspace_elems(int64_t count, size_t elem_bytes) {
  uint64_t bytes = 0;
  if (count < 0 || __builtin_mul_overflow(static_cast<uint64_t>(count), elem_bytes, &bytes) || bytes > kMaxTensorBytes)
    throw KernelAbort{Status::error("a workspace of " + std::to_string(count) + " x " + std::to_string(elem_bytes) +
                                    " bytes is asked for: shape arithmetic gone wrong")};
  return workspace_bytes(bytes);
}

void* KernelContext::workspace_bytes(uint64_t bytes) {
  if (bytes > machine_memory_bytes())
    throw KernelAbort{Status::error(ErrorCode::kOutOfMemoryBudget, "a workspace of " + std::to_string(bytes) + " bytes is more than this machine's " +
                                    std::to_string(machine_memory_bytes()) + " bytes of memory")};
  bytes = align_up(bytes ? bytes : 1, 64);
  if (memory_) {
    const uint64_t at = memory_->workspace_used;
    memory_->workspace_used += bytes;
    if (memory_->mode == NodeMemory::Mode::kPlanned) {
      if (memory_->workspace_offset >= 0 && at + bytes <= memory_->workspace_capacity)
        return memory_->arena + memory_->workspace_offset + at;
      memory_->plan_miss = true;
    }
  }
  std::shared_ptr<const void> owner;
  void* p = scratch(bytes, &owner);
  owned_.push_back(std::move(owner));
  return p;
}

bool KernelContext::skip_compute(const Tensor& out) const {
  if (!shape_only()) return false;
  const DType t = out.dtype();
  const bool floating = t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16 || t == DType::kFloat64;
  return floating && out.numel() >= 1024;
}

namespace {

const char* kind_name(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kFloat: return "a float";
    case Attribute::Kind::kInt: return "an int";
    case Attribute::Kind::kString: return "a string";
    case Attribute::Kind::kTensor: return "a tensor";
    case Attribute::Kind::kFloats: return "a list of floats";
    case Attribute::Kind::kInts: return "a list of ints";
    case Attribute::Kind::kStrings: return "a list of strings";
    case Attribute::Kind::kGraph: return "a graph (or another kind this runtime does not read)";
  }
  return "?";
}

}  // namespace

Status check_attributes(const Node& node, const OpSchema& schema, int64_t opset) {
  const bool versioned = node.domain.empty();  // the sarai domain has no opsets of its own
  auto defined = [&](const AttrSpec& a) { return !versioned || (opset >= a.since && opset <= a.until); };
  for (const auto& [name, attr] : node.attrs) {
    const AttrSpec* spec = nullptr;
    for (const AttrSpec& a : schema.attrs)
      if (name == a.name) spec = &a;
    if (spec != nullptr && defined(*spec)) {
      if (attr.kind != spec->kind)
        return Status::error(node.describe() + ": attribute '" + name + "' is " + kind_name(attr.kind) + "; " +
                             node.op_type + " takes " + kind_name(spec->kind));
      continue;
    }
    std::string accepted;
    for (const AttrSpec& a : schema.attrs)
      if (defined(a)) accepted += (accepted.empty() ? "" : ", ") + std::string(a.name);
    if (spec != nullptr) {
      const std::string range = spec->until == INT64_MAX ? "from opset " + std::to_string(spec->since)
                                                         : "at opsets " + std::to_string(spec->since) + "-" +
                                                               std::to_string(spec->until);
      return Status::error(node.describe() + ": attribute '" + name + "' is only defined " + range +
                           ", not at the model's opset " + std::to_string(opset) + " (accepted there: " +
                           (accepted.empty() ? "none" : accepted) + ")");
    }
    return Status::error(node.describe() + ": attribute '" + name + "' is not one " + node.op_type + " accepts (" +
                         (accepted.empty() ? "it takes no attributes" : "accepted: " + accepted) + ")");
  }
  return Status::ok();
}

std::string type_set_name(TypeSet t) {
  if (t == dtypes::kAny) return "any";
  static constexpr DType kOrder[] = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16,
                                     DType::kInt8,    DType::kUInt8,   DType::kInt16,   DType::kUInt16,
                                     DType::kInt32,   DType::kUInt32,  DType::kInt64,   DType::kUInt64,
                                     DType::kBool,    DType::kString};
  const bool all_ints = (t & dtypes::kInts) == dtypes::kInts && t != dtypes::kInts;
  std::string r;
  for (DType d : kOrder) {
    if (!(t & type_bit(d))) continue;
    if (all_ints && (type_bit(d) & dtypes::kInts)) {
      if (d != DType::kInt8) continue;
      r += r.empty() ? "integers" : ", integers";
      continue;
    }
    r += (r.empty() ? "" : ", ") + std::string(dtype_name(d));
  }
  return r.empty() ? "none" : r;
}

Status check_input_types(const Node& node, const OpSchema& schema, const Graph& graph) {
  for (int i = 0; i < node.explicit_inputs(); ++i) {
    const int id = node.inputs[static_cast<size_t>(i)];
    if (id == kNoValue || id < 0 || static_cast<size_t>(id) >= graph.values.size()) continue;
    const Value& v = graph.values[static_cast<size_t>(id)];
    const DType t = v.is_initializer ? v.initializer.dtype() : v.dtype;
    const TypeSet takes = schema.input_types(i);
    if (t == DType::kUndefined || takes == 0 || (takes & type_bit(t))) continue;
    return Status::error(node.describe() + ": input " + std::to_string(i) + " ('" + v.name + "') is " +
                         dtype_name(t) + "; " + node.op_type + " takes " + type_set_name(takes) + " there");
  }
  return Status::ok();
}

}  // namespace sarai
