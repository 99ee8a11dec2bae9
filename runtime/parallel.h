// Intra-op parallelism. One pool for the whole process: OpenMP's, which
// oneDNN (Debian's build uses the OpenMP runtime) shares, so our loops and
// oneDNN's never oversubscribe each other.
#pragma once

#include <cstdint>

namespace sarai {

// Sets the thread count used by parallel_for and by oneDNN, for the calling
// thread only (each concurrent run sets its own).
void set_num_threads(int n);
int num_threads();
// Index of the calling thread inside parallel_for (0 outside it), for
// per-thread slices of a workspace.
int thread_index();
// Number of physical cores (not hyperthreads), at least 1.
int physical_cores();

// Calls fn(begin, end) over [0, n) split into contiguous chunks of at least
// `grain` items, on up to num_threads() threads. fn must not throw.
template <class Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn);

}  // namespace sarai

#include "runtime/parallel_impl.h"
