// Jinja2's built-in tests (`x is defined`, `x is string`, ...). Python's type model decides the
// edge cases: bool is a number, an undefined value is iterable and a sequence (it has len() 0).
#include <algorithm>

#include "chat/builtins.h"
#include "chat/text.h"

namespace kvq::chat {

namespace {

Result<const Value*> required_arg(const CallArgs& args, std::string_view test) {
  if (args.positional.empty()) return make_error("test '{}' needs an argument", test);
  return &args.positional[0];
}

Result<bool> test_defined(const Value& v, const CallArgs&) { return !v.is_undefined(); }
Result<bool> test_undefined(const Value& v, const CallArgs&) { return v.is_undefined(); }
Result<bool> test_none(const Value& v, const CallArgs&) { return v.is_none(); }
Result<bool> test_boolean(const Value& v, const CallArgs&) { return v.is_bool(); }
Result<bool> test_true(const Value& v, const CallArgs&) { return v.is_bool() && v.as_bool(); }
Result<bool> test_false(const Value& v, const CallArgs&) { return v.is_bool() && !v.as_bool(); }
Result<bool> test_integer(const Value& v, const CallArgs&) { return v.is_int(); }
Result<bool> test_float(const Value& v, const CallArgs&) { return v.is_float(); }
Result<bool> test_number(const Value& v, const CallArgs&) { return v.is_number(); }
Result<bool> test_string(const Value& v, const CallArgs&) { return v.is_string(); }
Result<bool> test_mapping(const Value& v, const CallArgs&) { return v.is_object() && !v.as_object()->is_namespace; }
Result<bool> test_callable(const Value& v, const CallArgs&) { return v.is_callable(); }
Result<bool> test_iterable(const Value& v, const CallArgs&) {
  return v.is_undefined() || v.is_string() || v.is_array() || v.is_object();
}
Result<bool> test_sequence(const Value& v, const CallArgs&) {
  return v.is_undefined() || v.is_string() || v.is_array() || (v.is_object() && !v.as_object()->is_namespace);
}

Result<bool> test_lower(const Value& v, const CallArgs&) {
  auto text = to_output_string(v);
  if (!text.ok()) return text.error();
  const bool has_letter = std::any_of(text->begin(), text->end(), [](char c) { return c >= 'a' && c <= 'z'; });
  return has_letter && ascii_lower(*text) == *text;
}
Result<bool> test_upper(const Value& v, const CallArgs&) {
  auto text = to_output_string(v);
  if (!text.ok()) return text.error();
  const bool has_letter = std::any_of(text->begin(), text->end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  return has_letter && ascii_upper(*text) == *text;
}

Result<bool> integer_parity(const Value& v, int64_t remainder) {
  if (!v.is_int() && !v.is_bool()) return make_error("odd/even: expected an integer, got {}", type_name(v));
  return ((v.as_int() % 2) + 2) % 2 == remainder;
}
Result<bool> test_odd(const Value& v, const CallArgs&) { return integer_parity(v, 1); }
Result<bool> test_even(const Value& v, const CallArgs&) { return integer_parity(v, 0); }

Result<bool> test_divisibleby(const Value& v, const CallArgs& args) {
  auto arg = required_arg(args, "divisibleby");
  if (!arg.ok()) return arg.error();
  if (!v.is_int() || !(*arg)->is_int() || (*arg)->as_int() == 0) {
    return make_error("divisibleby: expected a non-zero integer divisor");
  }
  if ((*arg)->as_int() == -1) return true;  // INT64_MIN % -1 overflows
  return v.as_int() % (*arg)->as_int() == 0;
}

Result<bool> test_eq(const Value& v, const CallArgs& args) {
  auto arg = required_arg(args, "eq");
  if (!arg.ok()) return arg.error();
  return values_equal(v, **arg);
}
Result<bool> test_ne(const Value& v, const CallArgs& args) {
  auto arg = required_arg(args, "ne");
  if (!arg.ok()) return arg.error();
  return !values_equal(v, **arg);
}
Result<bool> test_lt(const Value& v, const CallArgs& args) {
  auto arg = required_arg(args, "lt");
  if (!arg.ok()) return arg.error();
  return value_less(v, **arg);
}
Result<bool> test_gt(const Value& v, const CallArgs& args) {
  auto arg = required_arg(args, "gt");
  if (!arg.ok()) return arg.error();
  return value_less(**arg, v);
}
Result<bool> test_le(const Value& v, const CallArgs& args) {
  auto greater = test_gt(v, args);
  if (!greater.ok()) return greater;
  return !*greater;
}
Result<bool> test_ge(const Value& v, const CallArgs& args) {
  auto less = test_lt(v, args);
  if (!less.ok()) return less;
  return !*less;
}

// `x is sameas y`: Python identity; for the immutable scalars templates compare, value equality
// of the same type, and for lists/dicts the same object.
Result<bool> test_sameas(const Value& v, const CallArgs& args) {
  auto arg = required_arg(args, "sameas");
  if (!arg.ok()) return arg.error();
  const Value& other = **arg;
  if (v.kind() != other.kind()) return false;
  if (v.is_array()) return v.as_array() == other.as_array();
  if (v.is_object()) return v.as_object() == other.as_object();
  return values_equal(v, other);
}

Result<bool> test_in(const Value& v, const CallArgs& args) {
  auto arg = required_arg(args, "in");
  if (!arg.ok()) return arg.error();
  const Value& container = **arg;
  if (container.is_string()) {
    if (!v.is_string()) return make_error("'in <string>' requires string as left operand");
    return container.as_string().find(v.as_string()) != std::string::npos;
  }
  if (container.is_object()) return v.is_string() && container.as_object()->find(v.as_string()) != nullptr;
  if (container.is_undefined()) return false;
  if (!container.is_array()) return make_error("test 'in': '{}' is not a container", type_name(container));
  const Array& items = *container.as_array();
  return std::any_of(items.begin(), items.end(), [&](const Value& item) { return values_equal(item, v); });
}

constexpr std::pair<std::string_view, TestFunction> kTests[] = {
    {"!=", test_ne},
    {"<", test_lt},
    {"<=", test_le},
    {"==", test_eq},
    {">", test_gt},
    {">=", test_ge},
    {"boolean", test_boolean},
    {"callable", test_callable},
    {"defined", test_defined},
    {"divisibleby", test_divisibleby},
    {"eq", test_eq},
    {"equalto", test_eq},
    {"even", test_even},
    {"false", test_false},
    {"float", test_float},
    {"ge", test_ge},
    {"greaterthan", test_gt},
    {"gt", test_gt},
    {"in", test_in},
    {"integer", test_integer},
    {"iterable", test_iterable},
    {"le", test_le},
    {"lessthan", test_lt},
    {"lower", test_lower},
    {"lt", test_lt},
    {"mapping", test_mapping},
    {"ne", test_ne},
    {"none", test_none},
    {"number", test_number},
    {"odd", test_odd},
    {"sameas", test_sameas},
    {"sequence", test_sequence},
    {"string", test_string},
    {"true", test_true},
    {"undefined", test_undefined},
    {"upper", test_upper},
};

}  // namespace

TestFunction find_test(std::string_view name) {
  for (const auto& [test_name, fn] : kTests) {
    if (test_name == name) return fn;
  }
  return nullptr;
}

}  // namespace kvq::chat
