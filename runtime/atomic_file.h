// AtomicFile: an output file written under a temporary name in its final
// folder and renamed over the final path only when complete, so a reader
// never sees half a file and a failed write leaves the old file (or none).
// The one such writer: the blob writer (quantizer/blob_writer.cc), the ONNX
// exporter (quantizer/onnx_export.cc) and .npy outputs (loader/npy.cc) all
// write through it.
//
//   auto f = AtomicFile::create(out + ".tmp-123", out);   // O_EXCL
//   ... f->write_all(p, n) / f->pwrite_all(p, n, offset) ...
//   int err = f->commit();  // fsync file, rename, fsync folder
//
// A writer killed by SIGKILL cannot clean up: create() first removes the
// FINAL.tmp-PID files beside the same final path whose PID no longer runs
// (take_removed_stale_temp_files() lists them, for the caller to say so).
//
// Until commit() the temporary name is registered, so a signal handler can
// remove every unfinished one (unlink_unfinished_temp_files_from_signal_handler);
// destroyed or discard()ed before commit, the file removes itself.
//
// Calls return 0 or the errno of the failing system call, and leave the
// wording of the error (which file, which step) to the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sarai {

// All n bytes at `offset` of fd, written or read with pwrite / pread,
// EINTR retried: 0 or the errno (EIO when the call makes no progress: a
// full device, or for a read the end of the file).
int pwrite_fully(int fd, const void* data, size_t n, uint64_t offset);
int pread_fully(int fd, void* data, size_t n, uint64_t offset);

class AtomicFile {
 public:
  // Creates tmp_path (O_CREAT | O_EXCL), which must be in final_path's
  // folder (the rename is atomic only within one file system): EXDEV when
  // it is not. *err receives the errno on failure.
  static std::unique_ptr<AtomicFile> create(const std::string& tmp_path, const std::string& final_path, int* err);
  ~AtomicFile();  // not committed: close and unlink the temporary file
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int write_all(const void* data, size_t n);                  // at the end; EINTR retried
  int pwrite_all(const void* data, size_t n, uint64_t offset);
  // Before commit(), if the caller wants close() errors apart: fsync + close.
  int sync_close();
  // sync_close() if not done, rename over final_path, fsync the folder (its
  // failure is ignored: the rename has happened). Unregisters the name.
  int commit();
  // Closes and unlinks the temporary file now (before commit).
  void discard();
  // After commit(): unlinks final_path (the other half of a two-file output
  // failed).
  void revoke();

  uint64_t size() const { return size_; }  // bytes written at the end
  const std::string& tmp_path() const { return tmp_; }
  const std::string& final_path() const { return final_; }
  bool committed() const { return committed_; }

 private:
  AtomicFile() = default;
  int fd_ = -1;
  std::string tmp_, final_;
  uint64_t size_ = 0;
  bool committed_ = false;
  bool discarded_ = false;
  int slot_ = -1;  // in the signal-time registry
};

// For a SIGINT/SIGTERM handler: unlinks the temporary file of every
// AtomicFile alive and not committed. Only calls unlink(2), so it is
// async-signal-safe; the handler should then _exit().
void unlink_unfinished_temp_files_from_signal_handler() noexcept;

// The stale temporary files create() removed since the last call (paths).
std::vector<std::string> take_removed_stale_temp_files();

}  // namespace sarai
