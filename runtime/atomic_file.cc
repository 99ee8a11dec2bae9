#include "runtime/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <utility>
#include <vector>

namespace sarai {
namespace {

// Temporary paths of live, uncommitted files, for the signal handler. The
// strings they point to are owned by the files and never change.
constexpr int kRegistrySlots = 16;
std::atomic<const char*> g_registry[kRegistrySlots];

int register_temp(const char* path) {
  for (int i = 0; i < kRegistrySlots; ++i) {
    const char* expected = nullptr;
    if (g_registry[i].compare_exchange_strong(expected, path)) return i;
  }
  return -1;  // more than 16 at once: no signal-time cleanup for this one
}

void unregister_temp(int& slot) {
  if (slot >= 0) g_registry[slot].store(nullptr);
  slot = -1;
}

std::string dirname_of(const std::string& p) {
  const size_t s = p.rfind('/');
  if (s == std::string::npos) return ".";
  if (s == 0) return "/";
  return p.substr(0, s);
}

std::string basename_of(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

std::mutex g_stale_mutex;
std::vector<std::string> g_stale_removed;

// Removes FINAL.tmp-PID files beside final_path whose PID no longer runs:
// what a writer killed by SIGKILL (which no handler sees) left behind.
void remove_stale_temp_files(const std::string& final_path) {
  const std::string dir = dirname_of(final_path), prefix = basename_of(final_path) + ".tmp-";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    const std::string path = dir + "/" + name;
    if (::unlink(path.c_str()) == 0) {
      std::lock_guard<std::mutex> lock(g_stale_mutex);
      g_stale_removed.push_back(path);
    }
  }
  ::closedir(d);
}

}  // namespace

std::vector<std::string> take_removed_stale_temp_files() {
  std::lock_guard<std::mutex> lock(g_stale_mutex);
  return std::exchange(g_stale_removed, {});
}

void unlink_unfinished_temp_files_from_signal_handler() noexcept {
  for (int i = 0; i < kRegistrySlots; ++i) {
    const char* p = g_registry[i].load();
    if (p) ::unlink(p);
  }
}

std::unique_ptr<AtomicFile> AtomicFile::create(const std::string& tmp_path, const std::string& final_path, int* err) {
  if (dirname_of(tmp_path) != dirname_of(final_path)) {
    *err = EXDEV;
    return nullptr;
  }
  remove_stale_temp_files(final_path);
  const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    *err = errno;
    return nullptr;
  }
  std::unique_ptr<AtomicFile> f(new AtomicFile());
  f->fd_ = fd;
  f->tmp_ = tmp_path;
  f->final_ = final_path;
  f->slot_ = register_temp(f->tmp_.c_str());
  *err = 0;
  return f;
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

namespace {

// Calls `io(p, n)` (write, pwrite or pread: bytes moved or -1) until all of
// data is moved, retrying EINTR; 0 or the errno (EIO for no progress).
template <class Io>
int write_fully(const void* data, size_t n, Io&& io) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = io(p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

}  // namespace

int pwrite_fully(int fd, const void* data, size_t n, uint64_t offset) {
  return write_fully(data, n, [&](const char* p, size_t k) {
    const ssize_t w = ::pwrite(fd, p, k, static_cast<off_t>(offset));
    if (w > 0) offset += static_cast<uint64_t>(w);
    return w;
  });
}

int pread_fully(int fd, void* data, size_t n, uint64_t offset) {
  // The same loop: `data` filled instead of drained.
  return write_fully(data, n, [&](const char* p, size_t k) {
    const ssize_t r = ::pread(fd, const_cast<char*>(p), k, static_cast<off_t>(offset));
    if (r > 0) offset += static_cast<uint64_t>(r);
    return r;
  });
}

int AtomicFile::write_all(const void* data, size_t n) {
  return write_fully(data, n, [&](const char* p, size_t k) {
    const ssize_t w = ::write(fd_, p, k);
    if (w > 0) size_ += static_cast<uint64_t>(w);
    return w;
  });
}

int AtomicFile::pwrite_all(const void* data, size_t n, uint64_t offset) { return pwrite_fully(fd_, data, n, offset); }

int AtomicFile::sync_close() {
  if (fd_ < 0) return 0;
  if (::fsync(fd_) != 0) return errno;
  const int fd = fd_;
  fd_ = -1;
  return ::close(fd) != 0 ? errno : 0;
}

int AtomicFile::commit() {
  if (const int e = sync_close(); e != 0) return e;
  if (::rename(tmp_.c_str(), final_.c_str()) != 0) return errno;
  committed_ = true;
  unregister_temp(slot_);
  // The rename is durable only once the folder's entry is on disk.
  const int dfd = ::open(dirname_of(final_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return 0;
}

void AtomicFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!committed_ && !discarded_) ::unlink(tmp_.c_str());
  discarded_ = true;
  unregister_temp(slot_);
}

void AtomicFile::revoke() {
  if (committed_) ::unlink(final_.c_str());
}

}  // namespace sarai
