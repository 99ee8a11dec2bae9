#include "runtime/parallel.h"

#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace sarai {

namespace {
// Per calling thread, like OpenMP's own nthreads ICV: concurrent runs of one
// or several sessions (runtime/session.h) each keep their own count, and a
// parallel_for body (on a worker thread) sees 1, so it never nests a team.
thread_local int t_threads = 1;
}

void set_num_threads(int n) {
  t_threads = n < 1 ? 1 : n;
  omp_set_num_threads(t_threads);  // oneDNN's OpenMP build reads this (also per thread)
}

int num_threads() { return t_threads; }

int thread_index() { return omp_get_thread_num(); }

int physical_cores() {
  // Count distinct (physical id, core id) pairs; fall back to the logical
  // count when /proc/cpuinfo does not say.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    std::string val = line.substr(colon + 1);
    if (key == "physical id") phys = val;
    if (key == "core id") cores.insert({phys, val});
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

}  // namespace sarai
