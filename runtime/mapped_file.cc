#include "runtime/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sarai {

Expected<int> open_regular_file(const std::string& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return Status::error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::error(ErrorCode::kIo, path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::error(ErrorCode::kIo, path + ": not a regular file");
  }
  if (size) *size = static_cast<uint64_t>(st.st_size);
  // Back to blocking reads (for a regular file the flag changes nothing, but
  // a descriptor handed on should not surprise its reader).
  (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

Expected<std::shared_ptr<MappedFile>> MappedFile::map(int fd, uint64_t size, const std::string& path) {
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = size;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return Status::error(ErrorCode::kIo, path + ": cannot map: " + std::strerror(e));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file referenced
  return m;
}

Expected<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  uint64_t size = 0;
  auto opened = open_regular_file(path, &size);
  if (!opened) return opened.status();
  return map(*opened, size, path);
}

Expected<std::shared_ptr<MappedFile>> MappedFile::copy_of(const void* data, uint64_t size, const std::string& name) {
  const int fd = ::memfd_create("sarai-rt model", MFD_CLOEXEC);
  if (fd < 0) return Status::error(ErrorCode::kIo, name + ": cannot hold the model in memory: " + std::strerror(errno));
  const auto* src = static_cast<const uint8_t*>(data);
  for (uint64_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, src + done, static_cast<size_t>(std::min<uint64_t>(size - done, uint64_t{1} << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : ENOSPC;
      ::close(fd);
      return Status::error(ErrorCode::kIo, name + ": cannot hold the model in memory: " + std::strerror(e));
    }
    done += static_cast<uint64_t>(n);
  }
  return map(fd, size, name);  // the mapping keeps the memfd alive
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::span<const uint8_t> mapped_pages(const std::vector<std::span<const uint8_t>>& regions, const void* p,
                                      uint64_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  if (n == 0) return {};
  for (const auto& r : regions) {
    if (b < r.data() || b + n > r.data() + r.size()) continue;
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t lo = std::max(reinterpret_cast<uintptr_t>(b) / page * page, reinterpret_cast<uintptr_t>(r.data()));
    const uintptr_t hi = std::min((reinterpret_cast<uintptr_t>(b) + n + page - 1) / page * page,
                                  reinterpret_cast<uintptr_t>(r.data() + r.size()));
    return {reinterpret_cast<const uint8_t*>(lo), hi - lo};
  }
  return {};
}

}  // namespace sarai
