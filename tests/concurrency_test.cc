// One session, many threads (runtime/session.h): concurrent run() calls
// share the plans and the weights, each has an arena of its own, and every
// call gives the bits a sequential run gives. Built and run under TSan too
// (tools/test.sh tsan), where a data race fails the test.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "runtime/session.h"
#include "onnx_builder.h"
#include "test_util.h"

namespace sarai {
namespace {

std::shared_ptr<const Model> whisper(bool int8) {
  auto m = load_onnx(test::test_setting("SARAI_SOURCE_DIR") + "/tests/fixtures/whisper_tiny_encoder.onnx");
  EXPECT_TRUE(m.has_value()) << m.message();
  if (!m.has_value() || !int8) return m.has_value() ? *m : nullptr;
  const std::string path = test::temp_dir("concurrency") + "/whisper_tiny_encoder.sarai";
  auto converted = quant::convert_to_blob(**m, path, {});
  EXPECT_TRUE(converted.has_value()) << converted.message();
  auto blob = load_blob(path);
  EXPECT_TRUE(blob.has_value()) << blob.message();
  return blob.has_value() ? *blob : nullptr;
}

// Input t: 4 shapes (so plans are built while other calls run), 2 seeds each.
std::vector<NamedTensor> input(int t) {
  const int64_t frames = 20 + 10 * (t % 4);
  return {{"mel", test::random_tensor({1, 80, frames}, static_cast<uint32_t>(100 + t))}};
}

constexpr int kThreads = 8;

// Every thread runs its own input `runs` times on `session`, alternating the
// two run() forms, and checks each result against `expected[t]`.
void hammer(Session& session, const std::vector<std::vector<NamedTensor>>& expected, int runs) {
  std::atomic<int> failures{0};
  std::vector<std::string> first_error(kThreads);
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};  // all threads start their calls together
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      const std::vector<NamedTensor> in = input(t);
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      std::vector<NamedTensor> out;
      for (int r = 0; r < runs; ++r) {
        Status st = Status::ok();
        if (r % 2 == 0) {
          st = session.run(in, &out);
        } else {
          auto y = session.run(in);
          if (y.has_value()) out = std::move(*y);
          else st = y.status();
        }
        bool same = st.is_ok() && out.size() == expected[static_cast<size_t>(t)].size();
        for (size_t i = 0; same && i < out.size(); ++i)
          same = test::tensors_equal(out[i].tensor, expected[static_cast<size_t>(t)][i].tensor);
        if (!same && failures++ == 0)
          first_error[static_cast<size_t>(t)] = st.is_ok() ? "outputs differ from the sequential run" : st.message();
      }
    });
  }
  for (std::thread& th : pool) th.join();
  for (int t = 0; t < kThreads; ++t)
    EXPECT_TRUE(first_error[static_cast<size_t>(t)].empty()) << "thread " << t << ": " << first_error[static_cast<size_t>(t)];
  EXPECT_EQ(failures.load(), 0);
}

std::vector<std::vector<NamedTensor>> sequential(std::shared_ptr<const Model> m, SessionOptions o) {
  std::unique_ptr<Session> s = test::session_on(std::move(m), o);
  std::vector<std::vector<NamedTensor>> expected;
  for (int t = 0; s && t < kThreads; ++t) {
    auto y = s->run(input(t));
    EXPECT_TRUE(y.has_value()) << y.message();
    expected.push_back(y.has_value() ? std::move(*y) : std::vector<NamedTensor>{});
  }
  return expected;
}

// The INT8 blob or the FP32 ONNX model, and each input's sequential result
// (threads=1, the option of every session below).
class ConcurrentRuns : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    model_ = whisper(GetParam());
    ASSERT_TRUE(model_);
    options_.num_threads = 1;
    expected_ = sequential(model_, options_);
    ASSERT_EQ(expected_.size(), static_cast<size_t>(kThreads));
  }
  std::shared_ptr<const Model> model_;
  SessionOptions options_;
  std::vector<std::vector<NamedTensor>> expected_;
};

TEST_P(ConcurrentRuns, EightThreadsOnOneSessionGiveTheSequentialBits) {
  std::unique_ptr<Session> s = test::session_on(model_, options_);
  ASSERT_TRUE(s);
  hammer(*s, expected_, 4);
  EXPECT_EQ(s->plans_built(), 4) << "one plan per shape signature, however many calls planned it at once";
  EXPECT_GE(s->run_contexts(), 1);
  EXPECT_LE(s->run_contexts(), kThreads);
  EXPECT_EQ(s->plan_misses(), 0);
}

// The result cache under concurrent calls: every call counted once, as a
// hit or a miss, and a hit returns the bits of a run.
TEST_P(ConcurrentRuns, ResultCacheCountsEveryCallOnce) {
  SessionOptions o = options_;
  o.cache_size = kThreads;
  std::unique_ptr<Session> s = test::session_on(model_, o);
  ASSERT_TRUE(s);
  hammer(*s, expected_, 3);
  const CacheStats c = s->cache_stats();
  EXPECT_EQ(c.hits + c.misses, static_cast<uint64_t>(kThreads * 3));
  EXPECT_GE(c.misses, static_cast<uint64_t>(kThreads));  // each input missed at least once
  EXPECT_EQ(c.entries, static_cast<uint64_t>(kThreads));
}

INSTANTIATE_TEST_SUITE_P(Models, ConcurrentRuns, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Int8Blob" : "Fp32Onnx"; });

// Two calls in flight, each waiting at its first node for the other: both
// run at once, with an arena each. Under a budget that holds one arena
// and not two, the second call waits for the first to end instead, and
// the arenas never add up to two.
struct TwoCalls {
  std::mutex m;
  std::condition_variable cv;
  int inside = 0;
  std::atomic<uint64_t> max_arena_bytes{0};
};

void run_two(Session& s, const std::vector<NamedTensor>& in, const std::vector<NamedTensor>& expect) {
  std::vector<std::thread> pool;
  for (int t = 0; t < 2; ++t)
    pool.emplace_back([&] {
      auto y = s.run(in);
      ASSERT_TRUE(y.has_value()) << y.message();
      ASSERT_EQ(y->size(), expect.size());
      EXPECT_TRUE(test::tensors_equal((*y)[0].tensor, expect[0].tensor));
    });
  for (std::thread& th : pool) th.join();
}

TEST(ConcurrentRunsUnderABudget, ASecondArenaBeyondTheBudgetWaitsForTheFirst) {
  auto m = whisper(false);
  ASSERT_TRUE(m);
  const std::vector<NamedTensor> in = {{"mel", test::random_tensor({1, 80, 3000}, 7)}};
  SessionOptions o;
  o.num_threads = 1;
  (void)sequential(m, o);  // warms the process up as the budgeted session will find it
  std::unique_ptr<Session> probe = test::session_on(m, o);
  ASSERT_TRUE(probe);
  auto report = probe->prepare(in);
  ASSERT_TRUE(report.has_value()) << report.message();
  auto y = probe->run(in);
  ASSERT_TRUE(y.has_value());
  const std::vector<NamedTensor> expect_out = std::move(*y);
  const uint64_t arena = report->arena_bytes;
  ASSERT_GT(arena, 1000000u) << "the test needs an arena the budget can tell from two";

  // Without a budget: the first node of each call waits (up to 30 s) until
  // both are inside, so two arenas exist at once.
  {
    TwoCalls calls;
    SessionOptions free_o = o;
    Session* sp = nullptr;
    free_o.observer = [&](const Node&, std::span<const Tensor>) {
      calls.max_arena_bytes = std::max(calls.max_arena_bytes.load(), sp->arena_bytes());
      std::unique_lock<std::mutex> lock(calls.m);
      if (calls.inside < 2 && ++calls.inside == 2) calls.cv.notify_all();
      calls.cv.wait_for(lock, std::chrono::seconds(30), [&] { return calls.inside >= 2; });
    };
    std::unique_ptr<Session> s = test::session_on(m, free_o);
    ASSERT_TRUE(s);
    sp = s.get();
    run_two(*s, in, expect_out);
    EXPECT_EQ(s->run_contexts(), 2);
    EXPECT_GE(calls.max_arena_bytes.load(), 2 * arena) << "two calls in flight, an arena each";
  }
  // A budget with room for this run's plan and 3/4 of an arena more (the
  // process may grow a little before the budgeted session plans).
  {
    TwoCalls calls;
    SessionOptions tight = o;
    Session* sp = nullptr;
    std::unique_ptr<Session> now = test::session_on(m, o);
    ASSERT_TRUE(now);
    auto current = now->prepare(in);
    ASSERT_TRUE(current.has_value()) << current.message();
    tight.max_memory_bytes = current->needed_bytes + arena * 3 / 4;
    tight.observer = [&](const Node&, std::span<const Tensor>) {
      calls.max_arena_bytes = std::max(calls.max_arena_bytes.load(), sp->arena_bytes());
    };
    std::unique_ptr<Session> s = test::session_on(m, tight);
    ASSERT_TRUE(s);
    sp = s.get();
    auto planned = s->prepare(in);
    ASSERT_TRUE(planned.has_value()) << planned.message();
    if (planned->needed_bytes + arena > tight.max_memory_bytes) {
      run_two(*s, in, expect_out);
      EXPECT_LE(calls.max_arena_bytes.load(), arena + 63) << "a second arena does not fit the budget";
    } else {
      GTEST_SKIP() << "the process grew between the probe and the run; the budget would hold two arenas";
    }
  }
}

}  // namespace
}  // namespace sarai
