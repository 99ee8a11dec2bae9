// .npy reading and writing: round trips for every supported dtype, headers
// as NumPy writes them, and bad files with their messages.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>

#include "loader/npy.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

TEST(Npy, RoundTripEveryDtype) {
  std::string dir = test::temp_dir("npy");
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt64, DType::kInt32, DType::kInt16,
                  DType::kInt8, DType::kUInt8, DType::kUInt16, DType::kUInt32, DType::kUInt64, DType::kBool}) {
    Tensor t = Tensor::allocate(d, {2, 3, 5});
    auto* bytes = static_cast<uint8_t*>(t.mutable_raw());
    for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(d == DType::kBool ? (i & 1) : i * 7);
    std::string path = dir + "/" + dtype_name(d) + ".npy";
    ASSERT_TRUE(write_npy(path, t).is_ok());
    auto back = read_npy(path);
    ASSERT_TRUE(back.has_value()) << back.message();
    EXPECT_TRUE(test::tensors_equal(*back, t)) << dtype_name(d);
  }
}

// A write that fails half way (here: the file size limit, as a full disk
// would) leaves no partial file, and the file it would have replaced as it was.
TEST(Npy, FailedWriteLeavesNothingBehind) {
  const std::string dir = test::temp_dir("npy_fail");
  const std::string path = dir + "/y.npy";
  const Tensor small = test::make_tensor<float>({2}, {1, 2});
  ASSERT_TRUE(write_npy(path, small).is_ok());
  Tensor big = Tensor::allocate(DType::kFloat32, {1 << 18});  // 1 MiB
  std::memset(big.mutable_raw(), 0, big.nbytes());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit lim = old;
  lim.rlim_cur = 64 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  const Status st = write_npy(path, big);
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message().rfind(path, 0), 0u) << st.message();  // names the file
  EXPECT_NE(st.message().find(": write failed: "), std::string::npos) << st.message();
  auto back = read_npy(path);
  ASSERT_TRUE(back.has_value()) << back.message();
  EXPECT_TRUE(test::tensors_equal(*back, small));
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u) << "the temporary file was left behind";
}

TEST(Npy, ScalarAndOneDimensionalShapes) {
  std::string dir = test::temp_dir("shapes");
  for (Shape s : {Shape{}, Shape{7}, Shape{0, 4}}) {
    Tensor t = Tensor::allocate(DType::kFloat32, s);
    ASSERT_TRUE(write_npy(dir + "/a.npy", t).is_ok());
    auto back = read_npy(dir + "/a.npy");
    ASSERT_TRUE(back.has_value()) << back.message();
    EXPECT_EQ(back->shape(), s);
  }
  // The header NumPy writes for a 1-D array has a trailing comma: (7,)
  EXPECT_NE(test::read_file(dir + "/a.npy").find("'shape': (0, 4)"), std::string::npos);
}

TEST(Npy, DataStartsAt64ByteBoundary) {
  std::string dir = test::temp_dir("align");
  ASSERT_TRUE(write_npy(dir + "/a.npy", Tensor::allocate(DType::kFloat32, {3})).is_ok());
  size_t size = test::read_file(dir + "/a.npy").size();
  EXPECT_EQ((size - 12) % 64, 0u) << "file size " << size;
}

std::string header_v1(const std::string& dict) {
  std::string h = dict;
  size_t total = 10 + h.size() + 1;
  h.append((total + 63) / 64 * 64 - total, ' ');
  h += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h;
}

TEST(Npy, ReadsVersion2Headers) {
  std::string dir = test::temp_dir("v2");
  std::string dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n";
  std::string f = std::string("\x93NUMPY\x02\x00", 8);
  uint32_t n = static_cast<uint32_t>(dict.size());
  f.append(reinterpret_cast<const char*>(&n), 4);
  f += dict;
  int32_t v[2] = {7, -9};
  f.append(reinterpret_cast<const char*>(v), 8);
  test::write_file(dir + "/a.npy", f);
  auto t = read_npy(dir + "/a.npy");
  ASSERT_TRUE(t.has_value()) << t.message();
  EXPECT_TRUE(test::tensors_equal(*t, test::make_tensor<int32_t>({2}, {7, -9})));
}

TEST(NpyErrors, Messages) {
  std::string dir = test::temp_dir("bad");
  auto err = [&](const std::string& bytes) {
    test::write_file(dir + "/x.npy", bytes);
    auto r = read_npy(dir + "/x.npy");
    return r.has_value() ? std::string("(no error)") : r.message();
  };
  EXPECT_NE(err("PK\x03\x04 zip").find("x.npy: not a NumPy .npy file (bad magic)"), std::string::npos);
  EXPECT_NE(err(std::string("\x93NUMPY\x01\x00\x40", 9)).find("x.npy: truncated .npy header"), std::string::npos);
  EXPECT_NE(err(header_v1("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }")).find("dtype '<c8' is not supported"),
            std::string::npos);
  EXPECT_NE(err(header_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }")).find("big-endian"), std::string::npos);
  EXPECT_NE(err(header_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }")).find("Fortran-order"), std::string::npos);
  EXPECT_NE(err(header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") + "12345678")
                .find("x.npy: truncated: float32 [2, 3] needs 24 bytes of data, the file has 8"),
            std::string::npos);
  EXPECT_NE(err(header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }"))
                .find("more elements than fit"),
            std::string::npos);
  EXPECT_NE(err(header_v1("{'descr': '<f4', 'fortran_order': False, }")).find("has no 'shape'"), std::string::npos);
}

}  // namespace
}  // namespace sarai
