// Tensor names <-> file names for folders of .npy files, one file per
// tensor: what `sarai-rt run --output-dir` writes and what `compare
// --inputs-dir` and `convert --calibration` read, so a folder written by one
// tool is read by the others (tools/scripts/compare_ort.py and
// tools/scripts/ort/run_ort.js follow the same rule).
//
// The rule: the name's bytes in [A-Za-z0-9_+-.] stay as they are, except a
// leading '.'; every other byte ('%' included, and each byte of a UTF-8
// character) becomes %XX (upper-case hex); then ".npy". So "a/b" is
// "a%2Fb.npy", "a_b" stays "a_b.npy", ".." is "%2E..npy", "50%" is
// "50%25.npy", the empty name is "%.npy": no file name is '.', '..', empty,
// hidden or holds a '/', and two names never share a file. Decoding the
// stem gives the name back.
//
// Names whose escaped stem would pass kMaxStemBytes (file names are limited
// to 255 bytes, and writers add ".tmp-PID" while writing) keep their first
// escaped bytes and end in '~' and 16 hex digits of a 64-bit FNV-1a hash of
// the whole name: unique in practice, but not decodable; a reader that knows
// the names it expects (a model's inputs) matches them by recomputing.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sarai {

inline constexpr size_t kMaxStemBytes = 200;

// "a/b" -> "a%2Fb.npy".
std::string tensor_file_name(const std::string& name);

// The name a file name (with or without ".npy") stands for under the rule
// above; nullopt when the rule cannot have made it (a malformed or
// lower-case %XX, an escaped byte that the rule keeps, a hashed long name).
std::optional<std::string> tensor_name_from_file(const std::string& file_name);

// The name among `expected` whose file this is (the rule, then the name
// itself as a file name, for folders other tools wrote); otherwise the
// decoded name; otherwise the stem as is (and the caller reports an unknown
// name).
std::string match_tensor_file(const std::string& file_name, const std::vector<std::string>& expected);

}  // namespace sarai
