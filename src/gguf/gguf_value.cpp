// Metadata values and the typed getters of gguf::File: every failure names the file and the key.
#include <cmath>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/mapping.h"

namespace kvq::gguf {

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::UINT8:
      return "uint8";
    case ValueType::INT8:
      return "int8";
    case ValueType::UINT16:
      return "uint16";
    case ValueType::INT16:
      return "int16";
    case ValueType::UINT32:
      return "uint32";
    case ValueType::INT32:
      return "int32";
    case ValueType::FLOAT32:
      return "float32";
    case ValueType::BOOL:
      return "bool";
    case ValueType::STRING:
      return "string";
    case ValueType::ARRAY:
      return "array";
    case ValueType::UINT64:
      return "uint64";
    case ValueType::INT64:
      return "int64";
    case ValueType::FLOAT64:
      return "float64";
  }
  return "unknown";
}

namespace {

bool is_unsigned_type(ValueType t) {
  return t == ValueType::UINT8 || t == ValueType::UINT16 || t == ValueType::UINT32 || t == ValueType::UINT64;
}
bool is_signed_type(ValueType t) {
  return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 || t == ValueType::INT64;
}

// "array of int32" / "uint32": how a value's type is named in error messages.
std::string describe(const Value& v) {
  if (v.type != ValueType::ARRAY) return std::string(value_type_name(v.type));
  return fmt::format("array of {}", value_type_name(v.element_type));
}

}  // namespace

bool Value::is_integer() const { return is_unsigned_type(type) || is_signed_type(type); }

int64_t Value::as_int() const {
  if (is_unsigned_type(type) || type == ValueType::BOOL) return int64_t(u64);
  if (is_signed_type(type)) return i64;
  if (is_float()) {
    // Saturate: converting an out-of-range double to an integer is undefined behaviour.
    if (std::isnan(f64)) return 0;
    if (f64 >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
    if (f64 <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
    return int64_t(f64);
  }
  return 0;
}

double Value::as_float() const {
  if (is_unsigned_type(type) || type == ValueType::BOOL) return double(u64);
  if (is_signed_type(type)) return double(i64);
  if (is_float()) return f64;
  return 0.0;
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // the parser and writer reject products that overflow
  return n;
}

const Value* File::find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Error missing(const std::string& path, std::string_view key) {
  return make_error("{}: missing metadata key '{}'", path, key);
}
Error wrong_type(const std::string& path, std::string_view key, std::string_view expected, const Value& v) {
  return make_error("{}: metadata key '{}' is {}, expected {}", path, key, describe(v), expected);
}

// An integer value as int64, refusing uint64 values that do not fit.
bool integer_value(const Value& v, int64_t* out) {
  if (!v.is_integer()) return false;
  if (v.type == ValueType::UINT64 && v.u64 > uint64_t(std::numeric_limits<int64_t>::max())) {
    return false;
  }
  *out = v.as_int();
  return true;
}

}  // namespace

Result<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(path_, key);
  int64_t out = 0;
  if (!integer_value(*v, &out)) return wrong_type(path_, key, "an integer fitting int64", *v);
  return out;
}

Result<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(path_, key);
  // Integers are accepted too: converters write e.g. rope bases either way.
  if (!v->is_float() && !v->is_integer()) return wrong_type(path_, key, "a number", *v);
  return v->as_float();
}

Result<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != ValueType::BOOL) return wrong_type(path_, key, "bool", *v);
  return v->u64 != 0;
}

Result<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != ValueType::STRING) return wrong_type(path_, key, "string", *v);
  return v->str;
}

Result<std::vector<std::string>> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(path_, key);
  if (v->type != ValueType::ARRAY || v->element_type != ValueType::STRING) {
    return wrong_type(path_, key, "array of string", *v);
  }
  std::vector<std::string> out;
  out.reserve(v->array.size());
  for (const Value& e : v->array) out.push_back(e.str);
  return out;
}

Result<std::vector<float>> File::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(path_, key);
  const bool numeric =
      v->type == ValueType::ARRAY && (is_unsigned_type(v->element_type) || is_signed_type(v->element_type) ||
                                      v->element_type == ValueType::FLOAT32 || v->element_type == ValueType::FLOAT64);
  if (!numeric) return wrong_type(path_, key, "array of numbers", *v);
  std::vector<float> out;
  out.reserve(v->array.size());
  for (const Value& e : v->array) out.push_back(float(e.as_float()));
  return out;
}

Result<std::vector<int64_t>> File::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(path_, key);
  const bool integers =
      v->type == ValueType::ARRAY && (is_unsigned_type(v->element_type) || is_signed_type(v->element_type));
  if (!integers) return wrong_type(path_, key, "array of integers", *v);
  std::vector<int64_t> out;
  out.reserve(v->array.size());
  for (size_t i = 0; i < v->array.size(); ++i) {
    int64_t x = 0;
    if (!integer_value(v->array[i], &x)) {
      return make_error("{}: metadata key '{}' element {} does not fit int64", path_, key, i);
    }
    out.push_back(x);
  }
  return out;
}

Result<int64_t> File::get_int_or(std::string_view key, int64_t fallback) const {
  if (find(key) == nullptr) return fallback;
  return get_int(key);
}

Result<double> File::get_float_or(std::string_view key, double fallback) const {
  if (find(key) == nullptr) return fallback;
  return get_float(key);
}

}  // namespace kvq::gguf
