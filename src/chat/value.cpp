// Printing, comparison and JSON conversion of template values, following Python's rules
// (str/repr/json.dumps), since the reference renderer is Jinja2 running on Python objects.
#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tokenizer/unicode.h"

namespace kvq::chat {

const Value* Object::find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value* Object::find(std::string_view key) {
  for (auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Object::set(std::string key, Value value) {
  if (Value* existing = find(key)) {
    *existing = std::move(value);
  } else {
    entries.emplace_back(std::move(key), std::move(value));
  }
}

const Value* CallArgs::get(size_t index, std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return index < positional.size() ? &positional[index] : nullptr;
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return as_bool();
    case Kind::kInt:
      return as_int() != 0;
    case Kind::kFloat:
      return as_double() != 0.0;
    case Kind::kString:
      return !as_string().empty();
    case Kind::kArray:
      return !as_array()->empty();
    case Kind::kObject:
      return !as_object()->entries.empty();
    case Kind::kCallable:
      return true;
  }
  return false;
}

const char* type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kArray:
      return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::kObject:
      return v.as_object()->is_namespace ? "Namespace" : "dict";
    case Value::Kind::kCallable:
      return "function";
  }
  return "?";
}

std::string format_python_float(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form ("d.ddde±XX"), then laid out as Python does:
  // positional for decimal exponents in [-4, 16), scientific otherwise.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  if (ec != std::errc()) return "nan";
  std::string_view text(buf, size_t(end - buf));
  const bool negative = text.front() == '-';
  if (negative) text.remove_prefix(1);
  const size_t e_pos = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  int exponent = 0;
  std::from_chars(text.data() + e_pos + 1 + (text[e_pos + 1] == '+'), text.data() + text.size(), exponent);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(size_t(-exponent - 1), '0') + digits;
    } else if (size_t(exponent) + 1 >= digits.size()) {
      out += digits + std::string(size_t(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, size_t(exponent) + 1) + "." + digits.substr(size_t(exponent) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out;
}

namespace {

std::string python_string_repr(const std::string& s) {
  // Python prefers single quotes; it switches to double quotes when only ' occurs.
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == quote) {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  out += quote;
  return out;
}

Error too_long(size_t max_bytes) { return make_error("printed value exceeds {} bytes", max_bytes); }

Status append_repr(const Value& v, std::string& out, int depth, size_t max_bytes) {
  if (depth > kMaxValueDepth) return make_error("value nested deeper than {} levels", kMaxValueDepth);
  if (out.size() > max_bytes) return too_long(max_bytes);
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      out += "Undefined";
      return {};
    case Value::Kind::kString:
      out += python_string_repr(v.as_string());
      return {};
    case Value::Kind::kArray: {
      out += v.is_tuple() ? '(' : '[';
      const Array& items = *v.as_array();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        KVQ_RETURN_IF_ERROR(append_repr(items[i], out, depth + 1, max_bytes));
      }
      if (v.is_tuple() && items.size() == 1) out += ',';  // (x,)
      out += v.is_tuple() ? ')' : ']';
      return {};
    }
    case Value::Kind::kObject: {
      const Object& obj = *v.as_object();
      if (obj.is_namespace) out += "<Namespace ";
      out += '{';
      for (size_t i = 0; i < obj.entries.size(); ++i) {
        if (i) out += ", ";
        out += python_string_repr(obj.entries[i].first) + ": ";
        KVQ_RETURN_IF_ERROR(append_repr(obj.entries[i].second, out, depth + 1, max_bytes));
      }
      out += '}';
      if (obj.is_namespace) out += '>';
      if (out.size() > max_bytes) return too_long(max_bytes);
      return {};
    }
    default: {
      auto text = to_output_string(v);
      if (!text.ok()) return text.error();
      out += *text;
      return {};
    }
  }
}

// Appends the \uXXXX escape(s) of the code point at s[i] (a surrogate pair above U+FFFF), as
// json.dumps(ensure_ascii=True) writes it; returns the bytes it used.
size_t append_ascii_escape(const std::string& s, size_t i, std::string& out) {
  size_t pos = i;
  uint32_t cp = unicode::decode_utf8(s, pos);
  if (cp >= 0x10000) {
    cp -= 0x10000;
    out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
  } else {
    out += fmt::format("\\u{:04x}", cp);
  }
  return pos - i;
}

void append_json_string(const std::string& s, std::string& out, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (ensure_ascii && c >= 0x80) {
      i += append_ascii_escape(s, i, out) - 1;
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        // ensure_ascii=False: only control characters are escaped, UTF-8 passes through.
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

struct JsonWriter {
  int indent;  // < 0: one line with ", " and ": "; otherwise newlines, "," and ": " (Python's rule)
  bool sort_keys;
  bool ensure_ascii;
  size_t max_bytes;
  std::string out;

  void newline(int level) {
    out += '\n';
    out.append(size_t(indent) * size_t(level), ' ');
  }

  Status write(const Value& v, int level) {
    if (level > kMaxValueDepth) return make_error("value nested deeper than {} levels", kMaxValueDepth);
    if (out.size() > max_bytes) return too_long(max_bytes);
    switch (v.kind()) {
      case Value::Kind::kNone:
        out += "null";
        return {};
      case Value::Kind::kBool:
        out += v.as_bool() ? "true" : "false";
        return {};
      case Value::Kind::kInt:
        out += std::to_string(v.as_int());
        return {};
      case Value::Kind::kFloat: {
        const double f = v.as_double();
        out += std::isnan(f) ? "NaN" : std::isinf(f) ? (f > 0 ? "Infinity" : "-Infinity") : format_python_float(f);
        return {};
      }
      case Value::Kind::kString:
        append_json_string(v.as_string(), out, ensure_ascii);
        return {};
      case Value::Kind::kArray: {
        const Array& items = *v.as_array();
        if (items.empty()) {
          out += "[]";
          return {};
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += indent < 0 ? ", " : ",";
          if (indent >= 0) newline(level + 1);
          KVQ_RETURN_IF_ERROR(write(items[i], level + 1));
        }
        if (indent >= 0) newline(level);
        out += ']';
        return {};
      }
      case Value::Kind::kObject: {
        const Object& obj = *v.as_object();
        if (obj.entries.empty()) {
          out += "{}";
          return {};
        }
        std::vector<const std::pair<std::string, Value>*> entries;
        for (const auto& e : obj.entries) entries.push_back(&e);
        if (sort_keys) {
          std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
        }
        out += '{';
        for (size_t i = 0; i < entries.size(); ++i) {
          if (i) out += indent < 0 ? ", " : ",";
          if (indent >= 0) newline(level + 1);
          append_json_string(entries[i]->first, out, ensure_ascii);
          out += ": ";
          KVQ_RETURN_IF_ERROR(write(entries[i]->second, level + 1));
        }
        if (indent >= 0) newline(level);
        out += '}';
        return {};
      }
      case Value::Kind::kUndefined:
        return make_error("tojson: Object of type Undefined is not JSON serializable");
      case Value::Kind::kCallable:
        return make_error("tojson: Object of type function is not JSON serializable");
    }
    return {};
  }
};

template <typename Json>
Value from_any_json(const Json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      return u <= uint64_t(INT64_MAX) ? Value(int64_t(u)) : Value(double(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      Array items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_any_json(item));
      return Value::array(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto obj = std::make_shared<Object>();
      for (auto it = j.begin(); it != j.end(); ++it) obj->entries.emplace_back(it.key(), from_any_json(it.value()));
      return Value(obj);
    }
    default:
      return Value::none();  // binary and discarded values do not occur in parsed JSON text
  }
}

}  // namespace

Result<std::string> to_output_string(const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::string();
    case Value::Kind::kNone:
      return std::string("None");
    case Value::Kind::kBool:
      return std::string(v.as_bool() ? "True" : "False");
    case Value::Kind::kInt:
      return std::to_string(v.as_int());
    case Value::Kind::kFloat:
      return format_python_float(v.as_double());
    case Value::Kind::kString:
      return v.as_string();
    case Value::Kind::kCallable:
      return fmt::format("<function {}>", v.as_callable()->name);
    case Value::Kind::kArray:
    case Value::Kind::kObject:
      return to_repr(v, max_bytes);
  }
  return std::string();
}

Result<std::string> to_repr(const Value& v, size_t max_bytes) {
  std::string out;
  KVQ_RETURN_IF_ERROR(append_repr(v, out, 0, max_bytes));
  if (out.size() > max_bytes) return too_long(max_bytes);
  return out;
}

Result<std::string> to_json_text(const Value& v, int indent, bool sort_keys, size_t max_bytes, bool ensure_ascii) {
  JsonWriter writer{indent, sort_keys, ensure_ascii, max_bytes, {}};
  KVQ_RETURN_IF_ERROR(writer.write(v, 0));
  if (writer.out.size() > max_bytes) return too_long(max_bytes);
  return std::move(writer.out);
}

namespace {

bool equal_at_depth(const Value& a, const Value& b, int depth) {
  if (depth > kMaxValueDepth) return false;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind() || a.is_tuple() != b.is_tuple()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kArray: {
      const Array& x = *a.as_array();
      const Array& y = *b.as_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equal_at_depth(x[i], y[i], depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kObject: {
      const Object& x = *a.as_object();
      const Object& y = *b.as_object();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [key, value] : x.entries) {
        const Value* other = y.find(key);
        if (!other || !equal_at_depth(value, *other, depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kCallable:
      return a.as_callable() == b.as_callable();
    default:
      return false;
  }
}

Result<bool> less_at_depth(const Value& a, const Value& b, int depth) {
  if (depth > kMaxValueDepth) return make_error("value nested deeper than {} levels", kMaxValueDepth);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_array() && b.is_array()) {
    const Array& x = *a.as_array();
    const Array& y = *b.as_array();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equal_at_depth(x[i], y[i], depth + 1)) continue;
      return less_at_depth(x[i], y[i], depth + 1);
    }
    return x.size() < y.size();
  }
  return make_error("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b));
}

}  // namespace

bool values_equal(const Value& a, const Value& b) { return equal_at_depth(a, b, 0); }

namespace {

void inspect_at(const Value& v, int level, int max_depth, ValueShape& shape) {
  ++shape.nodes;
  shape.depth = std::max(shape.depth, level);
  if (level > max_depth) return;
  if (v.is_callable()) shape.holds_callable = true;
  if (v.is_array()) {
    for (const Value& item : *v.as_array()) inspect_at(item, level + 1, max_depth, shape);
  } else if (v.is_object()) {
    if (v.as_object()->is_namespace) shape.holds_namespace = true;
    for (const auto& entry : v.as_object()->entries) inspect_at(entry.second, level + 1, max_depth, shape);
  }
}

}  // namespace

ValueShape inspect_value(const Value& v, int max_depth) {
  ValueShape shape;
  inspect_at(v, 1, max_depth, shape);
  return shape;
}

Result<bool> value_less(const Value& a, const Value& b) { return less_at_depth(a, b, 0); }

Value from_json(const nlohmann::json& j) { return from_any_json(j); }
Value from_json(const nlohmann::ordered_json& j) { return from_any_json(j); }

}  // namespace kvq::chat
