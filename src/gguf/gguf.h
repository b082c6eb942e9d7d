// GGUF (versions 2 and 3): a memory-mapped reader and a streaming writer.
// Spec: ggml docs/gguf.md. All integers little-endian; tensor data starts at the first multiple of
// `general.alignment` (default 32) after the header, and each tensor offset is relative to that start.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quant/blocks.h"
#include "util/result.h"

namespace kvq::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;

enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
std::string_view value_type_name(ValueType type);

// One metadata value. Scalars keep their stored type; arrays may nest.
struct Value {
  ValueType type = ValueType::UINT8;
  ValueType element_type = ValueType::UINT8;  // arrays only
  uint64_t u64 = 0;                           // unsigned integers and bool
  int64_t i64 = 0;                            // signed integers
  double f64 = 0;                             // floats
  std::string str;                            // STRING
  std::vector<Value> array;                   // ARRAY

  bool is_integer() const;
  bool is_float() const { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }
  // Integer/float/bool as the asked type; nullopt-like failure is reported by the File getters.
  int64_t as_int() const;
  double as_float() const;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ne[0] first: ne[0] is the contiguous (row) dimension
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;            // relative to the data section
  uint64_t bytes = 0;             // computed from dims and type
  const uint8_t* data = nullptr;  // into the mapping

  int64_t n_elements() const;
  int64_t n_rows() const { return dims.empty() ? 1 : n_elements() / dims[0]; }
};

// Keeps the bytes alive: a memory map of a file, or an owned buffer.
class Mapping;

class File {
 public:
  // Maps and parses a file; every malformed input returns an Error naming the file and the problem.
  static Result<File> open(const std::string& path);
  // Parses bytes in memory (fuzzing, tests). `name` is used in error messages. The bytes are copied.
  static Result<File> parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }
  // Start of the tensor data section. A file without tensors may end before it (no padding).
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed getters: an Error names the file, the key and what was expected (missing key, wrong type).
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;
  // Defaults for optional keys (wrong type still fails).
  Result<int64_t> get_int_or(std::string_view key, int64_t fallback) const;
  Result<double> get_float_or(std::string_view key, double fallback) const;

 private:
  std::shared_ptr<Mapping> mapping_;
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;

  friend class Parser;
};

// Writes GGUF v3. Metadata and tensor infos are collected first; tensor data is produced by callbacks
// one tensor at a time while writing, so multi-GiB models never sit in memory whole.
class Writer {
 public:
  using Fill = std::function<void(std::span<uint8_t> dst)>;

  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_value(std::string key, Value v);  // any type, arrays included
  void set_string_array(std::string key, std::vector<std::string> v);
  void set_f32_array(std::string key, std::vector<float> v);
  void set_i32_array(std::string key, std::vector<int32_t> v);

  // dims ne[0] first; dims[0] must be a multiple of the type's block size.
  Status add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, Fill fill);
  Status add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, std::vector<uint8_t> bytes);

  Status write(const std::string& path) const;

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    uint64_t bytes;
    Fill fill;
  };
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<PendingTensor> tensors_;
  uint32_t alignment_ = kDefaultAlignment;
};

}  // namespace kvq::gguf
