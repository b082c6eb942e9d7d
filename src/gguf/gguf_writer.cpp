// GGUF v3 writer. The header (metadata + tensor infos) is serialised into memory first; tensor data
// is then produced one tensor at a time by the Fill callbacks, so only one tensor is ever resident.
// The file is written to "<path>.tmp" and renamed, so a failed write never leaves a half file
// behind.
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "gguf/gguf.h"

namespace kvq::gguf {
namespace {

constexpr int kMaxWriteDepth = 8;       // the reader's nesting limit: never write what it refuses
constexpr size_t kMaxKeyBytes = 65535;  // spec limit on key length

const Value* find_key(const std::vector<std::pair<std::string, Value>>& metadata, std::string_view key) {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

// Appends little-endian encodings to a byte buffer.
class Encoder {
 public:
  template <typename T>
  void put(T v) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    while (bytes_.size() % alignment != 0) bytes_.push_back(0);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;  // [header bytes] the serialised header so far
};

// Checks that arrays are homogeneous (each element's type is the declared element type).
Status validate_value(const std::string& key, const Value& v, int depth) {
  if (uint32_t(v.type) > uint32_t(ValueType::FLOAT64)) {
    return make_error("gguf writer: key '{}' has invalid value type {}", key, uint32_t(v.type));
  }
  if (v.type != ValueType::ARRAY) return Status::Ok();
  if (depth >= kMaxWriteDepth) {
    return make_error("gguf writer: key '{}' nests arrays deeper than {}", key, kMaxWriteDepth);
  }
  for (size_t i = 0; i < v.array.size(); ++i) {
    if (v.array[i].type != v.element_type) {
      return make_error("gguf writer: key '{}' element {} is {} in an array of {}", key, i,
                        value_type_name(v.array[i].type), value_type_name(v.element_type));
    }
    KVQ_RETURN_IF_ERROR(validate_value(key, v.array[i], depth + 1));
  }
  return Status::Ok();
}

// Writes the payload of a value (no leading type tag: keys and arrays carry it separately).
void encode_payload(Encoder& out, const Value& v) {
  switch (v.type) {
    case ValueType::UINT8:
      out.put<uint8_t>(uint8_t(v.u64));
      break;
    case ValueType::INT8:
      out.put<int8_t>(int8_t(v.i64));
      break;
    case ValueType::UINT16:
      out.put<uint16_t>(uint16_t(v.u64));
      break;
    case ValueType::INT16:
      out.put<int16_t>(int16_t(v.i64));
      break;
    case ValueType::UINT32:
      out.put<uint32_t>(uint32_t(v.u64));
      break;
    case ValueType::INT32:
      out.put<int32_t>(int32_t(v.i64));
      break;
    case ValueType::UINT64:
      out.put<uint64_t>(v.u64);
      break;
    case ValueType::INT64:
      out.put<int64_t>(v.i64);
      break;
    case ValueType::FLOAT32:
      out.put<float>(float(v.f64));
      break;
    case ValueType::FLOAT64:
      out.put<double>(v.f64);
      break;
    case ValueType::BOOL:
      out.put<uint8_t>(v.u64 != 0 ? 1 : 0);
      break;
    case ValueType::STRING:
      out.put_string(v.str);
      break;
    case ValueType::ARRAY:
      out.put<uint32_t>(uint32_t(v.element_type));
      out.put<uint64_t>(v.array.size());
      for (const Value& e : v.array) encode_payload(out, e);
      break;
  }
}

Value scalar(ValueType type) {
  Value v;
  v.type = type;
  return v;
}
Value array_of(ValueType element_type, size_t n) {
  Value v;
  v.type = ValueType::ARRAY;
  v.element_type = element_type;
  v.array.resize(n, scalar(element_type));
  return v;
}

// Closes the FILE on early returns; the success path takes it back for a checked fclose.
struct FileCloser {
  std::FILE* f;
  ~FileCloser() {
    if (f != nullptr) std::fclose(f);
  }
};

}  // namespace

void Writer::set_value(std::string key, Value v) {
  if (key == "general.alignment" && v.is_integer() && v.as_int() > 0 && std::has_single_bit(uint64_t(v.as_int())) &&
      v.as_int() <= (1 << 30)) {
    alignment_ = uint32_t(v.as_int());
  }
  for (auto& [k, existing] : metadata_) {
    if (k == key) {
      existing = std::move(v);  // replacing keeps the original position
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(v));
}

void Writer::set_u32(std::string key, uint32_t v) {
  Value value = scalar(ValueType::UINT32);
  value.u64 = v;
  set_value(std::move(key), std::move(value));
}
void Writer::set_i32(std::string key, int32_t v) {
  Value value = scalar(ValueType::INT32);
  value.i64 = v;
  set_value(std::move(key), std::move(value));
}
void Writer::set_u64(std::string key, uint64_t v) {
  Value value = scalar(ValueType::UINT64);
  value.u64 = v;
  set_value(std::move(key), std::move(value));
}
void Writer::set_f32(std::string key, float v) {
  Value value = scalar(ValueType::FLOAT32);
  value.f64 = v;
  set_value(std::move(key), std::move(value));
}
void Writer::set_bool(std::string key, bool v) {
  Value value = scalar(ValueType::BOOL);
  value.u64 = v ? 1 : 0;
  set_value(std::move(key), std::move(value));
}
void Writer::set_string(std::string key, std::string v) {
  Value value = scalar(ValueType::STRING);
  value.str = std::move(v);
  set_value(std::move(key), std::move(value));
}
void Writer::set_string_array(std::string key, std::vector<std::string> v) {
  Value value = array_of(ValueType::STRING, v.size());
  for (size_t i = 0; i < v.size(); ++i) value.array[i].str = std::move(v[i]);
  set_value(std::move(key), std::move(value));
}
void Writer::set_f32_array(std::string key, std::vector<float> v) {
  Value value = array_of(ValueType::FLOAT32, v.size());
  for (size_t i = 0; i < v.size(); ++i) value.array[i].f64 = v[i];
  set_value(std::move(key), std::move(value));
}
void Writer::set_i32_array(std::string key, std::vector<int32_t> v) {
  Value value = array_of(ValueType::INT32, v.size());
  for (size_t i = 0; i < v.size(); ++i) value.array[i].i64 = v[i];
  set_value(std::move(key), std::move(value));
}

Status Writer::add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, Fill fill) {
  if (name.empty() || name.size() > kMaxKeyBytes) {
    return make_error("gguf writer: tensor name '{}' must be 1 to {} bytes", name, kMaxKeyBytes);
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) return make_error("gguf writer: duplicate tensor name '{}'", name);
  }
  const TypeTraits* traits = find_type_traits(uint32_t(type));
  if (traits == nullptr) {
    return make_error("gguf writer: tensor '{}' has unknown type id {}", name, uint32_t(type));
  }
  if (dims.empty() || dims.size() > size_t(kMaxDims)) {
    return make_error("gguf writer: tensor '{}' has {} dimensions (expected 1 to {})", name, dims.size(), kMaxDims);
  }
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d <= 0) return make_error("gguf writer: tensor '{}' has dimension {}", name, d);
    if (__builtin_mul_overflow(n, d, &n)) {
      return make_error("gguf writer: tensor '{}' element count overflows", name);
    }
  }
  if (dims[0] % traits->block_size != 0) {
    return make_error("gguf writer: tensor '{}' row length {} is not a multiple of the {} block size {}", name, dims[0],
                      traits->name, traits->block_size);
  }
  if (!fill) return make_error("gguf writer: tensor '{}' has no fill callback", name);
  const uint64_t bytes = uint64_t(n / traits->block_size) * uint64_t(traits->type_size);
  tensors_.push_back({std::move(name), type, std::move(dims), bytes, std::move(fill)});
  return Status::Ok();
}

Status Writer::add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, std::vector<uint8_t> bytes) {
  auto shared = std::make_shared<std::vector<uint8_t>>(std::move(bytes));  // [tensor bytes]
  const size_t given = shared->size();
  const std::string label = name;
  KVQ_RETURN_IF_ERROR(add_tensor(std::move(name), type, std::move(dims), [shared](std::span<uint8_t> dst) {
    std::memcpy(dst.data(), shared->data(), dst.size());
  }));
  if (tensors_.back().bytes != given) {
    const uint64_t expected = tensors_.back().bytes;
    tensors_.pop_back();
    return make_error("gguf writer: tensor '{}' needs {} bytes, {} given", label, expected, given);
  }
  return Status::Ok();
}

Status Writer::write(const std::string& path) const {
  for (const auto& [key, value] : metadata_) {
    if (key.empty() || key.size() > kMaxKeyBytes) {
      return make_error("gguf writer: metadata key '{}' must be 1 to {} bytes", key, kMaxKeyBytes);
    }
    KVQ_RETURN_IF_ERROR(validate_value(key, value, 0));
  }
  if (const Value* a = find_key(metadata_, "general.alignment");
      a != nullptr && (!a->is_integer() || uint64_t(a->as_int()) != alignment_)) {
    return make_error("gguf writer: general.alignment must be a power of two up to 2^30");
  }
  const uint64_t alignment = alignment_;

  Encoder header;
  header.put<uint32_t>(kMagic);
  header.put<uint32_t>(3);
  header.put<uint64_t>(tensors_.size());
  header.put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    header.put_string(key);
    header.put<uint32_t>(uint32_t(value.type));
    encode_payload(header, value);
  }
  uint64_t offset = 0;  // relative to the data section; every tensor starts aligned
  for (const PendingTensor& t : tensors_) {
    header.put_string(t.name);
    header.put<uint32_t>(uint32_t(t.dims.size()));
    for (int64_t d : t.dims) header.put<uint64_t>(uint64_t(d));
    header.put<uint32_t>(uint32_t(t.type));
    header.put<uint64_t>(offset);
    offset += (t.bytes + alignment - 1) / alignment * alignment;
  }
  // No tensors, no data section: end right after the metadata as gguf-py and llama.cpp do.
  if (!tensors_.empty()) header.pad_to(alignment);

  const std::string tmp_path = path + ".tmp";
  FileCloser out{std::fopen(tmp_path.c_str(), "wb")};
  if (out.f == nullptr) return make_error("{}: cannot create: {}", tmp_path, std::strerror(errno));
  auto put = [&](const void* data, size_t n) { return std::fwrite(data, 1, n, out.f) == n; };
  auto io_error = [&](std::string_view what) {
    const int err = errno;
    std::fclose(out.f);
    out.f = nullptr;
    std::remove(tmp_path.c_str());
    return make_error("{}: {} failed: {}", path, what, std::strerror(err));
  };
  if (!put(header.bytes().data(), header.bytes().size())) return io_error("writing the header");

  std::vector<uint8_t> buffer;  // [largest tensor bytes + alignment] one tensor plus its padding
  for (const PendingTensor& t : tensors_) {
    const uint64_t padded = (t.bytes + alignment - 1) / alignment * alignment;
    buffer.assign(size_t(padded), 0);  // zeros: the padding, and whatever a fill leaves untouched
    t.fill(std::span<uint8_t>(buffer.data(), size_t(t.bytes)));
    if (!put(buffer.data(), buffer.size())) return io_error(fmt::format("writing tensor '{}'", t.name));
  }
  if (std::fflush(out.f) != 0) return io_error("flushing");
  std::FILE* f = out.f;
  out.f = nullptr;
  if (std::fclose(f) != 0) {
    std::remove(tmp_path.c_str());
    return make_error("{}: closing failed: {}", path, std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp_path, path, ec);
  if (ec) {
    std::remove(tmp_path.c_str());
    return make_error("{}: cannot rename from {}: {}", path, tmp_path, ec.message());
  }
  return Status::Ok();
}

}  // namespace kvq::gguf
