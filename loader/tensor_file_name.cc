#include "loader/tensor_file_name.h"

#include <cstdint>
#include <cstdio>
#include <vector>

namespace sarai {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";
constexpr size_t kHashChars = 1 + 16;  // "~" + 16 hex digits

bool is_plain(unsigned char c, size_t pos) {
  const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  return alnum || c == '_' || c == '+' || c == '-' || (c == '.' && pos > 0);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is not what the rule writes
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string stem_of(const std::string& file_name) {
  const std::string ext = ".npy";
  if (file_name.size() >= ext.size() && file_name.compare(file_name.size() - ext.size(), ext.size(), ext) == 0)
    return file_name.substr(0, file_name.size() - ext.size());
  return file_name;
}

}  // namespace

std::string tensor_file_name(const std::string& name) {
  std::string s;
  std::vector<size_t> cuts;  // where each source byte's text starts in s
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    cuts.push_back(s.size());
    if (is_plain(c, i)) {
      s += static_cast<char>(c);
    } else {
      s += '%';
      s += kHex[c >> 4];
      s += kHex[c & 15];
    }
  }
  if (s.empty()) return "%.npy";  // the empty name (no valid value has it) still gets a visible file
  if (s.size() > kMaxStemBytes) {
    // Cut at a byte boundary (never inside a %XX) before the hash.
    size_t keep = 0;
    for (size_t c : cuts)
      if (c <= kMaxStemBytes - kHashChars) keep = c;
    char hash[kHashChars + 1];
    std::snprintf(hash, sizeof hash, "~%016llx", static_cast<unsigned long long>(fnv1a64(name)));
    s = s.substr(0, keep) + hash;
  }
  return s + ".npy";
}

std::optional<std::string> tensor_name_from_file(const std::string& file_name) {
  const std::string stem = stem_of(file_name);
  if (stem == "%") return std::string();
  if (stem.empty()) return std::nullopt;
  std::string name;
  for (size_t i = 0; i < stem.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(stem[i]);
    if (c == '%') {
      if (i + 2 >= stem.size()) return std::nullopt;
      const int hi = hex_value(stem[i + 1]), lo = hex_value(stem[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      const auto b = static_cast<unsigned char>(hi * 16 + lo);
      if (is_plain(b, name.size())) return std::nullopt;  // the rule writes this byte as is
      name += static_cast<char>(b);
      i += 2;
    } else if (is_plain(c, name.size())) {
      name += static_cast<char>(c);
    } else {
      return std::nullopt;  // '~' of a hashed name, or a byte the rule escapes
    }
  }
  return name;
}

std::string match_tensor_file(const std::string& file_name, const std::vector<std::string>& expected) {
  const std::string stem = stem_of(file_name);
  for (const std::string& n : expected)
    if (tensor_file_name(n) == stem + ".npy") return n;
  for (const std::string& n : expected)
    if (n == stem) return n;
  if (auto decoded = tensor_name_from_file(stem)) return *decoded;
  return stem;
}

}  // namespace sarai
