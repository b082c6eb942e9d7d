// The bytes a parsed GGUF file points into: a read-only memory map of a file, or an owned copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/result.h"

namespace kvq::gguf {

class Mapping {
 public:
  // Maps the whole file read-only. An empty file yields an empty mapping (the parser reports it).
  static Result<std::shared_ptr<Mapping>> map_file(const std::string& path);
  // Copies `bytes` into a 64-byte aligned buffer owned by the mapping.
  static std::shared_ptr<Mapping> copy_of(std::span<const uint8_t> bytes);

  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  Mapping() = default;

  const uint8_t* data_ = nullptr;  // [size_] bytes, never written through
  uint64_t size_ = 0;
  bool mapped_ = false;  // true: munmap on destruction; false: aligned delete (or nothing when empty)
};

}  // namespace kvq::gguf
