// Values of the chat-template language: Jinja2's dynamic types as real templates use them
// (undefined, none, bool, int, float, string, list, dict, callable), with Python's truthiness,
// equality and printing, because templates emit `{{ x }}` of lists and booleans and compare them.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "util/result.h"

namespace kvq::chat {

class Value;

// Lists and dicts are shared by reference, as in Python: `ns.x = ...` on a namespace and
// `list.append(...)` must be seen through every name bound to the same object.
using Array = std::vector<Value>;
using ArrayPtr = std::shared_ptr<Array>;

// Insertion-ordered dict with string keys (JSON objects and template dict literals).
// Linear lookup: chat messages and tool schemas have a handful of keys.
struct Object {
  std::vector<std::pair<std::string, Value>> entries;
  bool is_namespace = false;  // created by namespace(): the only dict `set x.attr = ...` may change

  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(std::string key, Value value);
};
using ObjectPtr = std::shared_ptr<Object>;

// Arguments of a call, as written: `f(a, b, key=c)`.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Returns the keyword argument `name`, or positional argument `index`, or nullptr.
  const Value* get(size_t index, std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Result<Value>(const CallArgs&)> call;
  bool is_macro = false;  // its errors already carry a template location
};
using CallablePtr = std::shared_ptr<Callable>;

// Undefined remembers the name that produced it, for "'x' is undefined" messages.
struct Undefined {
  std::string name;
};
struct None {};

class Value {
 public:
  enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kCallable };

  Value() : data_(Undefined{}) {}
  static Value undefined(std::string name = {}) { return Value(Undefined{std::move(name)}); }
  static Value none() { return Value(None{}); }
  Value(bool b) : data_(b) {}
  Value(int64_t i) : data_(i) {}
  Value(int i) : data_(int64_t(i)) {}
  Value(double f) : data_(f) {}
  // Strings are immutable and shared: copying a value (into a list, a loop variable) is cheap
  // however long the string, so `[s] * n` costs n pointers, not n copies.
  Value(std::string s) : data_(std::make_shared<const std::string>(std::move(s))) {}
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(ArrayPtr a) : data_(std::move(a)) {}
  Value(ObjectPtr o) : data_(std::move(o)) {}
  Value(CallablePtr c) : data_(std::move(c)) {}
  static Value array(Array items = {}) { return Value(std::make_shared<Array>(std::move(items))); }
  // A tuple is a list that prints as `(a, b)` and is never equal to a list, as in Python:
  // dict items and `(x, y)` literals are tuples, and templates print them.
  static Value tuple(Array items) {
    Value v = array(std::move(items));
    v.is_tuple_ = true;
    return v;
  }
  static Value object() { return Value(std::make_shared<Object>()); }

  Kind kind() const { return Kind(data_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const { return kind() == Kind::kString; }
  bool is_array() const { return kind() == Kind::kArray; }
  bool is_tuple() const { return is_tuple_; }
  bool is_object() const { return kind() == Kind::kObject; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return is_bool() ? int64_t(as_bool()) : std::get<int64_t>(data_); }
  double as_double() const { return is_float() ? std::get<double>(data_) : double(as_int()); }
  const std::string& as_string() const { return *std::get<StringPtr>(data_); }
  const ArrayPtr& as_array() const { return std::get<ArrayPtr>(data_); }
  const ObjectPtr& as_object() const { return std::get<ObjectPtr>(data_); }
  const CallablePtr& as_callable() const { return std::get<CallablePtr>(data_); }
  const std::string& undefined_name() const { return std::get<Undefined>(data_).name; }

  // Jinja2 / Python truthiness: empty string, list, dict, 0, none and undefined are false.
  bool truthy() const;

 private:
  explicit Value(Undefined u) : data_(std::move(u)) {}
  explicit Value(None) : data_(None{}) {}

  using StringPtr = std::shared_ptr<const std::string>;
  std::variant<Undefined, None, bool, int64_t, double, StringPtr, ArrayPtr, ObjectPtr, CallablePtr> data_;
  bool is_tuple_ = false;
};

// Python type name, for messages ("expected a string, got list").
const char* type_name(const Value& v);

// Limits on nested containers when printing or comparing: a list that contains itself
// (`xs.append(xs)`) must give an error, not a stack overflow.
constexpr int kMaxValueDepth = 64;

// Printed values longer than `max_bytes` are an error (a hostile `{{ [s] * n }}` must not
// allocate n copies of s); the renderer passes its output limit.
constexpr size_t kNoSizeLimit = SIZE_MAX;

// str(v) as Jinja2 prints `{{ v }}`: undefined → "", None/True/False, lists and dicts as repr.
Result<std::string> to_output_string(const Value& v, size_t max_bytes = kNoSizeLimit);
// repr(v): strings quoted the way Python quotes them.
Result<std::string> to_repr(const Value& v, size_t max_bytes = kNoSizeLimit);
// Python float repr: shortest round-trip digits, "1.0", "1e-05", "inf".
std::string format_python_float(double f);

// transformers' tojson: json.dumps(v, ensure_ascii=False), default separators, optional indent.
// ensure_ascii escapes every non-ASCII character as \uXXXX, as Python does.
Result<std::string> to_json_text(const Value& v, int indent, bool sort_keys, size_t max_bytes = kNoSizeLimit,
                                 bool ensure_ascii = false);

// What a value holds, for the renderer's guards: nesting depth (a scalar is 1, counted up to
// `max_depth` + 1), nodes visited, and whether a namespace or a function is inside (storing
// those in a namespace could form a reference cycle).
struct ValueShape {
  int depth = 0;
  uint64_t nodes = 0;
  bool holds_namespace = false;
  bool holds_callable = false;
};
ValueShape inspect_value(const Value& v, int max_depth);

// Python ==, with int/float/bool equal by number and containers by content.
bool values_equal(const Value& a, const Value& b);
// Python <: numbers, strings (by code point, i.e. UTF-8 bytes) and lists; otherwise an error.
Result<bool> value_less(const Value& a, const Value& b);

Value from_json(const nlohmann::json& j);
Value from_json(const nlohmann::ordered_json& j);  // keeps the key order tojson prints

}  // namespace kvq::chat
