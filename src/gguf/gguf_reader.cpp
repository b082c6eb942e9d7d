// GGUF parser: validates every count, length, offset and size against the bytes actually present,
// so a truncated or hostile file yields an Error naming the file, the byte offset and the problem.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/mapping.h"

namespace kvq::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF is read by memcpy of little-endian");

namespace {

// Limits that keep a hostile file from exhausting the stack or memory (real files are far below).
constexpr int kMaxArrayDepth = 8;  // nested arrays (real files: 1)
// All array elements of all keys together: 8x the largest real vocabularies (~260k tokens x 3
// arrays), and a bound on memory, since each element becomes a ~90-byte Value.
constexpr uint64_t kMaxArrayValuesTotal = 1u << 22;
constexpr uint64_t kMaxKeyBytes = 65535;   // spec: keys are at most 2^16 - 1 bytes
constexpr uint64_t kMaxNameBytes = 65535;  // tensor names (ggml itself caps them at 63)
constexpr uint32_t kMaxAlignment = 1u << 30;

// Smallest encodings, used to bound counts by the bytes left before reserving anything.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;                  // key length, 1-byte key, type, uint8
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name, n_dims, one dim, type, offset

// Bytes of one scalar of a fixed-size type; 0 for STRING/ARRAY and ids outside the enum.
uint64_t scalar_bytes(uint32_t type) {
  switch (ValueType(type)) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL:
      return 1;
    case ValueType::UINT16:
    case ValueType::INT16:
      return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32:
      return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
      return 8;
    case ValueType::STRING:
    case ValueType::ARRAY:
      return 0;
  }
  return 0;
}
bool valid_value_type(uint32_t type) { return type <= uint32_t(ValueType::FLOAT64); }

// Smallest encoding of one array element of `type`: lower bound used to reject impossible counts.
uint64_t min_element_bytes(ValueType type) {
  if (type == ValueType::STRING) return 8;  // length only
  if (type == ValueType::ARRAY) return 12;  // element type + count
  return scalar_bytes(uint32_t(type));
}

// A name as shown in messages: hostile files may hold 64 KiB names.
std::string shown(std::string_view name) {
  constexpr size_t kMaxShown = 80;
  if (name.size() <= kMaxShown) return std::string(name);
  return fmt::format("{}...({} bytes)", name.substr(0, kMaxShown), name.size());
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;  // callers keep x far below 2^64 - alignment
}

}  // namespace

class Parser {
 public:
  Parser(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  Status parse(File& file);

 private:
  template <typename... Args>
  Error fail(fmt::format_string<Args...> format, Args&&... args) const {
    return make_error("{}: {} (at byte {})", path_, fmt::format(format, std::forward<Args>(args)...), pos_);
  }
  uint64_t remaining() const { return size_ - pos_; }

  template <typename T>
  Status read(T* out, std::string_view what) {
    if (remaining() < sizeof(T)) {
      return fail("truncated: file ends while reading {} ({} bytes needed, {} left)", what, sizeof(T), remaining());
    }
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  // Reads a `Stored` and widens it into the Value field that holds its kind.
  template <typename Stored, typename Field>
  Status read_as(Field* field, std::string_view what) {
    Stored v{};
    KVQ_RETURN_IF_ERROR(read(&v, what));
    *field = Field(v);
    return Status::Ok();
  }
  Status read_string(std::string* out, std::string_view what, uint64_t max_bytes);
  Status read_value(uint32_t type, Value* out, int depth);
  Status read_header(File& file);
  Status read_metadata(File& file, uint64_t n_kv);
  Status read_tensor_info(File& file, TensorInfo* info);
  Status check_tensor_layout(File& file);

  const uint8_t* data_;  // [size_] the whole file
  uint64_t size_;
  const std::string& path_;
  uint64_t pos_ = 0;
  uint64_t array_values_ = 0;  // running total against kMaxArrayValuesTotal
};

Status Parser::read_string(std::string* out, std::string_view what, uint64_t max_bytes) {
  uint64_t length = 0;
  KVQ_RETURN_IF_ERROR(read(&length, what));
  if (length > remaining()) {
    return fail("truncated: {} of {} bytes extends past the end of the file ({} bytes left)", what, length,
                remaining());
  }
  if (length > max_bytes) return fail("{} is {} bytes long, limit {}", what, length, max_bytes);
  out->assign(reinterpret_cast<const char*>(data_ + pos_), size_t(length));
  pos_ += length;
  return Status::Ok();
}

Status Parser::read_value(uint32_t type, Value* out, int depth) {
  if (!valid_value_type(type)) return fail("unknown metadata value type {}", type);
  out->type = ValueType(type);
  switch (out->type) {
    case ValueType::UINT8:
      return read_as<uint8_t>(&out->u64, "uint8 value");
    case ValueType::UINT16:
      return read_as<uint16_t>(&out->u64, "uint16 value");
    case ValueType::UINT32:
      return read_as<uint32_t>(&out->u64, "uint32 value");
    case ValueType::UINT64:
      return read_as<uint64_t>(&out->u64, "uint64 value");
    case ValueType::INT8:
      return read_as<int8_t>(&out->i64, "int8 value");
    case ValueType::INT16:
      return read_as<int16_t>(&out->i64, "int16 value");
    case ValueType::INT32:
      return read_as<int32_t>(&out->i64, "int32 value");
    case ValueType::INT64:
      return read_as<int64_t>(&out->i64, "int64 value");
    case ValueType::FLOAT32:
      return read_as<float>(&out->f64, "float32 value");
    case ValueType::FLOAT64:
      return read_as<double>(&out->f64, "float64 value");
    case ValueType::BOOL: {
      uint8_t v;
      KVQ_RETURN_IF_ERROR(read(&v, "bool value"));
      if (v > 1) return fail("bool value {} is neither 0 nor 1", v);
      out->u64 = v;
      break;
    }
    case ValueType::STRING:
      return read_string(&out->str, "string value", std::numeric_limits<uint64_t>::max());
    case ValueType::ARRAY: {
      if (depth >= kMaxArrayDepth) return fail("arrays nested deeper than {}", kMaxArrayDepth);
      uint32_t element_type = 0;
      uint64_t count = 0;
      KVQ_RETURN_IF_ERROR(read(&element_type, "array element type"));
      if (!valid_value_type(element_type)) return fail("unknown array element type {}", element_type);
      out->element_type = ValueType(element_type);
      KVQ_RETURN_IF_ERROR(read(&count, "array length"));
      // Each element needs at least min_element_bytes: refuse before allocating anything.
      if (count > remaining() / min_element_bytes(out->element_type)) {
        return fail("truncated: array of {} {} values does not fit in the {} bytes left", count,
                    value_type_name(out->element_type), remaining());
      }
      array_values_ += count;
      if (array_values_ > kMaxArrayValuesTotal) {
        return fail("metadata arrays hold more than {} values in total", kMaxArrayValuesTotal);
      }
      out->array.resize(size_t(count));
      for (Value& element : out->array) {
        KVQ_RETURN_IF_ERROR(read_value(element_type, &element, depth + 1));
      }
      break;
    }
  }
  return Status::Ok();
}

Status Parser::read_header(File& file) {
  uint32_t magic = 0;
  KVQ_RETURN_IF_ERROR(read(&magic, "magic"));
  if (magic != kMagic) {
    return fail("bad magic 0x{:08x}: not a GGUF file (expected \"GGUF\")", magic);
  }
  KVQ_RETURN_IF_ERROR(read(&file.version_, "version"));
  if (file.version_ == 1) return fail("GGUF version 1 is not supported (only versions 2 and 3)");
  if (file.version_ != 2 && file.version_ != 3) {
    if (__builtin_bswap32(file.version_) == 2 || __builtin_bswap32(file.version_) == 3) {
      return fail("big-endian GGUF (version field 0x{:08x}) is not supported", file.version_);
    }
    return fail("unsupported GGUF version {} (only versions 2 and 3)", file.version_);
  }
  return Status::Ok();
}

Status Parser::read_metadata(File& file, uint64_t n_kv) {
  if (n_kv > remaining() / kMinKvBytes) {
    return fail("truncated or corrupt: {} metadata entries cannot fit in the {} bytes left", n_kv, remaining());
  }
  file.metadata_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type = 0;
    KVQ_RETURN_IF_ERROR(read_string(&key, "metadata key", kMaxKeyBytes));
    if (key.empty()) return fail("metadata entry {} has an empty key", i);
    KVQ_RETURN_IF_ERROR(read(&type, "metadata value type"));
    Value value;
    KVQ_RETURN_IF_ERROR(read_value(type, &value, 0));
    if (!file.metadata_index_.emplace(key, file.metadata_.size()).second) {
      return fail("duplicate metadata key '{}'", shown(key));
    }
    file.metadata_.emplace_back(std::move(key), std::move(value));
  }

  if (const Value* a = file.find("general.alignment")) {
    if (!a->is_integer() || a->as_int() <= 0 || a->as_int() > int64_t(kMaxAlignment) ||
        !std::has_single_bit(uint64_t(a->as_int()))) {
      return fail("general.alignment must be a power of two between 1 and {}, got {} {}", kMaxAlignment,
                  value_type_name(a->type), a->as_int());
    }
    file.alignment_ = uint32_t(a->as_int());
  }
  return Status::Ok();
}

Status Parser::read_tensor_info(File& file, TensorInfo* info) {
  KVQ_RETURN_IF_ERROR(read_string(&info->name, "tensor name", kMaxNameBytes));
  const std::string name = shown(info->name);  // for messages
  uint32_t n_dims = 0;
  KVQ_RETURN_IF_ERROR(read(&n_dims, "tensor n_dims"));
  if (n_dims == 0 || n_dims > uint32_t(kMaxDims)) {
    return fail("tensor '{}' has {} dimensions (expected 1 to {})", name, n_dims, kMaxDims);
  }
  int64_t n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = 0;
    KVQ_RETURN_IF_ERROR(read(&ne, "tensor dimension"));
    if (ne == 0 || ne > uint64_t(std::numeric_limits<int64_t>::max())) {
      return fail("tensor '{}' dimension {} is {} (must be positive)", name, d, int64_t(ne));
    }
    if (__builtin_mul_overflow(n_elements, int64_t(ne), &n_elements)) {
      return fail("tensor '{}' element count overflows int64", name);
    }
    info->dims.push_back(int64_t(ne));
  }
  uint32_t type_id = 0;
  KVQ_RETURN_IF_ERROR(read(&type_id, "tensor type"));
  const TypeTraits* traits = find_type_traits(type_id);
  if (traits == nullptr) return fail("tensor '{}' has unknown type id {}", name, type_id);
  info->type = traits->type;
  if (info->dims[0] % traits->block_size != 0) {
    return fail("tensor '{}' row length {} is not a multiple of the {} block size {}", name, info->dims[0],
                traits->name, traits->block_size);
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(uint64_t(n_elements / traits->block_size), uint64_t(traits->type_size), &bytes)) {
    return fail("tensor '{}' byte size overflows", name);
  }
  info->bytes = bytes;
  KVQ_RETURN_IF_ERROR(read(&info->offset, "tensor data offset"));
  if (info->offset % file.alignment_ != 0) {
    return fail("tensor '{}' offset {} is not a multiple of the alignment {}", name, info->offset, file.alignment_);
  }
  return Status::Ok();
}

// Every tensor lies inside the data section, and no two overlap.
Status Parser::check_tensor_layout(File& file) {
  const uint64_t data_bytes = size_ > file.data_offset_ ? size_ - file.data_offset_ : 0;
  for (TensorInfo& t : file.tensors_) {
    uint64_t end = 0;
    if (__builtin_add_overflow(t.offset, t.bytes, &end) || end > data_bytes) {
      return make_error(
          "{}: truncated: tensor '{}' data [{}, +{}) extends past the end of the file (data "
          "section "
          "at byte {} holds {} bytes)",
          path_, shown(t.name), t.offset, t.bytes, file.data_offset_, data_bytes);
    }
    t.data = data_ + file.data_offset_ + t.offset;
  }
  std::vector<const TensorInfo*> by_offset;  // [n_tensors] sorted by data offset
  by_offset.reserve(file.tensors_.size());
  for (const TensorInfo& t : file.tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    if (prev.offset + prev.bytes > by_offset[i]->offset) {
      const TensorInfo& next = *by_offset[i];
      return make_error("{}: tensors '{}' [{}, +{}) and '{}' [{}, +{}) overlap", path_, shown(prev.name), prev.offset,
                        prev.bytes, shown(next.name), next.offset, next.bytes);
    }
  }
  return Status::Ok();
}

Status Parser::parse(File& file) {
  file.size_ = size_;
  KVQ_RETURN_IF_ERROR(read_header(file));
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  KVQ_RETURN_IF_ERROR(read(&n_tensors, "tensor count"));
  KVQ_RETURN_IF_ERROR(read(&n_kv, "metadata count"));
  KVQ_RETURN_IF_ERROR(read_metadata(file, n_kv));

  if (n_tensors > remaining() / kMinTensorInfoBytes) {
    return fail("truncated or corrupt: {} tensor infos cannot fit in the {} bytes left", n_tensors, remaining());
  }
  file.tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo info;
    KVQ_RETURN_IF_ERROR(read_tensor_info(file, &info));
    if (!file.tensor_index_.emplace(info.name, file.tensors_.size()).second) {
      return fail("duplicate tensor name '{}'", shown(info.name));
    }
    file.tensors_.push_back(std::move(info));
  }
  // pos_ <= size_ < 2^63, so aligning cannot overflow.
  file.data_offset_ = align_up(pos_, file.alignment_);
  return check_tensor_layout(file);
}

Result<File> File::open(const std::string& path) {
  auto mapping = Mapping::map_file(path);
  if (!mapping.ok()) return mapping.error();
  File file;
  file.path_ = path;
  file.mapping_ = std::move(mapping.value());
  Parser parser(file.mapping_->data(), file.mapping_->size(), file.path_);
  KVQ_RETURN_IF_ERROR(parser.parse(file));
  return file;
}

Result<File> File::parse(std::span<const uint8_t> bytes, std::string name) {
  File file;
  file.path_ = std::move(name);
  file.mapping_ = Mapping::copy_of(bytes);
  Parser parser(file.mapping_->data(), file.mapping_->size(), file.path_);
  KVQ_RETURN_IF_ERROR(parser.parse(file));
  return file;
}

}  // namespace kvq::gguf
