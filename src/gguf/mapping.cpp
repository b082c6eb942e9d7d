#include "gguf/mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace kvq::gguf {
namespace {

// Tensor rows are read with vector loads; 64 bytes covers every SIMD width kvq dispatches to.
constexpr std::align_val_t kBufferAlignment{64};

// Closes a file descriptor on every return path.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Mapping::~Mapping() {
  if (data_ == nullptr) return;
  if (mapped_) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  } else {
    ::operator delete[](const_cast<uint8_t*>(data_), kBufferAlignment);
  }
}

Result<std::shared_ptr<Mapping>> Mapping::map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("{}: cannot open: {}", path, std::strerror(errno));
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error("{}: not a regular file", path);

  std::shared_ptr<Mapping> mapping(new Mapping());
  if (st.st_size == 0) return mapping;  // mmap rejects length 0; the parser reports "truncated"
  void* addr = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) return make_error("{}: cannot mmap: {}", path, std::strerror(errno));
  mapping->data_ = static_cast<const uint8_t*>(addr);
  mapping->size_ = uint64_t(st.st_size);
  mapping->mapped_ = true;
  return mapping;
}

std::shared_ptr<Mapping> Mapping::copy_of(std::span<const uint8_t> bytes) {
  std::shared_ptr<Mapping> mapping(new Mapping());
  if (bytes.empty()) return mapping;
  auto* buffer = static_cast<uint8_t*>(::operator new[](bytes.size(), kBufferAlignment));
  std::memcpy(buffer, bytes.data(), bytes.size());
  mapping->data_ = buffer;
  mapping->size_ = bytes.size();
  return mapping;
}

}  // namespace kvq::gguf
