// sarai_soak: long-running use of one session, as a service would use it.
//
//   sarai_soak MODEL INPUT SHAPE_A SHAPE_B [--runs 10000] [--sample-every 500]
//              [--warmup 100] [--tolerance-mb 2] [--threads N]
//
// Runs MODEL (.onnx or .sarai) `runs` times on one session, alternating two
// input shapes of INPUT (e.g. 1x80x300 and 1x80x3000: 3 s and 30 s of audio
// on the whisper-tiny fixture), with fixed random inputs. It fails (exit 1)
// when
//   - RSS (VmRSS) sampled every `sample-every` runs grows more than
//     `tolerance-mb` above its value after `warmup` runs;
//   - a memory plan is built again once both shapes are planned (2 plans in
//     all: Session::plans_built);
//   - an output differs, bit for bit, from that shape's first output.
// It prints every sample and one closing line. tests/CMakeLists.txt runs a
// short version (soak.short); the full one is in docs/BENCHMARKS.md.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "runtime/memory_stats.h"
#include "runtime/session.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

struct Args {
  std::string model, input;
  Shape shapes[2];
  int runs = 10000, sample_every = 500, warmup = 100, threads = 0;
  double tolerance_mb = 2;
};

bool parse_shape(const char* s, Shape* out) {
  out->clear();
  const char* p = s;
  while (*p) {
    char* end = nullptr;
    const long long d = std::strtoll(p, &end, 10);
    if (end == p || d <= 0) return false;
    out->push_back(d);
    p = end;
    if (*p == 'x') ++p;
    else if (*p) return false;
  }
  return !out->empty();
}

int usage(const char* why) {
  std::fprintf(stderr,
               "sarai_soak: %s\nusage: sarai_soak MODEL INPUT SHAPE_A SHAPE_B [--runs N] [--sample-every K] "
               "[--warmup W] [--tolerance-mb T] [--threads N]\n",
               why);
  return 2;
}

bool same_bits(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!test::tensors_equal(a[i].tensor, b[i].tensor)) return false;
  return true;
}

double mb(uint64_t b) { return static_cast<double>(b) / (1 << 20); }

int soak(int argc, char** argv) {
  Args a;
  std::vector<const char*> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" || arg == "--sample-every" || arg == "--warmup" || arg == "--threads" ||
        arg == "--tolerance-mb") {
      if (i + 1 >= argc) return usage((arg + " needs a value").c_str());
      const char* v = argv[++i];
      char* end = nullptr;
      const double d = std::strtod(v, &end);
      if (*end != '\0' || d < 0) return usage((arg + ": not a number: " + v).c_str());
      if (arg == "--runs") a.runs = static_cast<int>(d);
      if (arg == "--sample-every") a.sample_every = static_cast<int>(d);
      if (arg == "--warmup") a.warmup = static_cast<int>(d);
      if (arg == "--threads") a.threads = static_cast<int>(d);
      if (arg == "--tolerance-mb") a.tolerance_mb = d;
    } else if (arg.rfind("--", 0) == 0) {
      return usage(("unknown option " + arg).c_str());
    } else {
      pos.push_back(argv[i]);
    }
  }
  if (pos.size() != 4) return usage("expected MODEL INPUT SHAPE_A SHAPE_B");
  a.model = pos[0];
  a.input = pos[1];
  for (int k = 0; k < 2; ++k)
    if (!parse_shape(pos[2 + k], &a.shapes[k])) return usage((std::string("bad shape ") + pos[2 + k]).c_str());
  if (a.sample_every < 1 || a.warmup < 2 || a.runs <= a.warmup) return usage("need runs > warmup >= 2, sample-every >= 1");

  auto model = looks_like_blob(a.model) ? load_blob(a.model) : load_onnx(a.model);
  if (!model) {
    std::fprintf(stderr, "sarai_soak: %s\n", model.message().c_str());
    return 1;
  }
  KernelTable table;
  register_kernels(table);
  SessionOptions options;
  options.num_threads = a.threads;
  auto session = Session::create(*model, table, options);
  if (!session) {
    std::fprintf(stderr, "sarai_soak: %s\n", session.message().c_str());
    return 1;
  }
  Session& s = **session;
  const std::vector<NamedTensor> inputs[2] = {{{a.input, test::random_tensor(a.shapes[0], 1)}},
                                              {{a.input, test::random_tensor(a.shapes[1], 2)}}};
  std::vector<NamedTensor> first[2], out[2];
  uint64_t base_rss = 0, max_rss = 0;
  int plans_after_both = -1;
  bool ok = true;
  std::printf("soak: %s, %s %s / %s, %d runs, %d threads\n", a.model.c_str(), a.input.c_str(),
              shape_to_string(a.shapes[0]).c_str(), shape_to_string(a.shapes[1]).c_str(), a.runs, s.num_threads());
  for (int r = 1; r <= a.runs; ++r) {
    const int k = r % 2;
    // The second form reuses the previous outputs' storage, as a service would.
    Status st = s.run(inputs[k], &out[k]);
    if (!st) {
      std::fprintf(stderr, "sarai_soak: run %d: %s\n", r, st.message().c_str());
      return 1;
    }
    if (first[k].empty()) {
      for (const NamedTensor& t : out[k]) first[k].push_back({t.name, t.tensor.clone()});
    } else if (!same_bits(out[k], first[k])) {
      std::fprintf(stderr, "sarai_soak: run %d: the output for %s differs from its first run\n", r,
                   shape_to_string(a.shapes[k]).c_str());
      ok = false;
      break;
    }
    if (r == 2) plans_after_both = s.plans_built();
    if (r > 2 && s.plans_built() != plans_after_both) {
      std::fprintf(stderr, "sarai_soak: run %d: a plan was built again (%d plans, %d after both shapes)\n", r,
                   s.plans_built(), plans_after_both);
      ok = false;
      break;
    }
    const uint64_t rss = process_memory().rss_bytes;
    if (r == a.warmup) {
      base_rss = max_rss = rss;
      std::printf("  run %6d  RSS %8.1f MB  (baseline)\n", r, mb(rss));
    } else if (r > a.warmup && (r % a.sample_every == 0 || r == a.runs)) {
      max_rss = std::max(max_rss, rss);
      std::printf("  run %6d  RSS %8.1f MB  %+6.2f MB\n", r, mb(rss), mb(rss) - mb(base_rss));
      std::fflush(stdout);
      if (mb(rss) - mb(base_rss) > a.tolerance_mb) {
        std::fprintf(stderr, "sarai_soak: run %d: RSS grew %.2f MB past the baseline (tolerance %.2f MB)\n", r,
                     mb(rss) - mb(base_rss), a.tolerance_mb);
        ok = false;
        break;
      }
    }
  }
  std::printf("soak: %s: %d runs, RSS after %d runs %.1f MB, at most %.1f MB after (+%.2f MB, tolerance %.2f MB), "
              "%d plans built%s\n",
              ok ? "OK" : "FAILED", a.runs, a.warmup, mb(base_rss), mb(max_rss), mb(max_rss) - mb(base_rss),
              a.tolerance_mb, s.plans_built(), ok ? ", every output identical to its shape's first" : "");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace sarai

int main(int argc, char** argv) { return sarai::soak(argc, argv); }
