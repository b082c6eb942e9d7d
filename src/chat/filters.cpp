// Jinja2's built-in filters that chat templates use, with Jinja2's argument names and defaults
// (`default(value, default_value='', boolean=False)`, `dictsort` case-insensitive by default, ...).
#include <algorithm>
#include <charconv>
#include <cmath>

#include "chat/builtins.h"
#include "chat/text.h"

namespace kvq::chat {

namespace {

// Position for CallArgs::get of an argument that can only be passed by keyword.
constexpr size_t kKeywordOnly = SIZE_MAX;

Result<std::string> as_text(const Value& v, RenderBudget& budget) {
  return to_output_string(v, budget.limits().max_output_bytes);
}

bool bool_arg(const CallArgs& args, size_t index, std::string_view name, bool fallback) {
  const Value* v = args.get(index, name);
  return v ? v->truthy() : fallback;
}

// Jinja2's attribute getter: "a.b.0" looks up a, then b, then index 0, each like `x[part]`.
Result<Value> get_attribute_path(const Value& item, const std::string& path, RenderBudget& budget) {
  Value current = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    int64_t index = 0;
    const auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
    const bool numeric = !part.empty() && ec == std::errc() && ptr == part.data() + part.size();
    auto next = get_item(current, numeric ? Value(index) : Value(part), budget);
    if (!next.ok()) return next;
    current = std::move(*next);
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

// Sort key for sort/dictsort/unique: strings compare case-insensitively unless asked otherwise.
Value fold_case(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(ascii_lower(v.as_string()));
  return v;
}

Result<Value> filter_trim(const Value& input, const CallArgs& args, RenderBudget& budget) {
  auto text = as_text(input, budget);
  if (!text.ok()) return text.error();
  const Value* chars = args.get(0, "chars");
  std::optional<std::string> set;
  if (chars && chars->is_string()) set = chars->as_string();
  return Value(python_strip(*text, set, true, true));
}

template <std::string (*Transform)(std::string_view)>
Result<Value> filter_text_transform(const Value& input, const CallArgs&, RenderBudget& budget) {
  auto text = as_text(input, budget);
  if (!text.ok()) return text.error();
  return Value(Transform(*text));
}

Result<Value> filter_length(const Value& input, const CallArgs&, RenderBudget& budget) {
  auto n = length_of(input);
  if (!n.ok()) return n.error();
  return Value(*n);
}

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Result<Value> filter_tojson(const Value& input, const CallArgs& args, RenderBudget& budget) {
  const Value* indent = args.get(1, "indent");
  if (indent && !indent->is_none() && !indent->is_int()) return make_error("tojson: indent must be an integer");
  const Value* separators = args.get(2, "separators");
  if (separators && !separators->is_none()) return make_error("unsupported construct: tojson(separators=...)");
  const int width = indent && indent->is_int() ? int(std::clamp<int64_t>(indent->as_int(), 0, 64)) : -1;
  auto text = to_json_text(input, width, bool_arg(args, 3, "sort_keys", false), budget.limits().max_output_bytes,
                           bool_arg(args, 0, "ensure_ascii", false));
  if (!text.ok()) return text.error();
  KVQ_RETURN_IF_ERROR(budget.check_string(text->size()));
  return Value(std::move(*text));
}

Result<Value> filter_identity(const Value& input, const CallArgs&, RenderBudget& budget) { return input; }

Result<Value> filter_string(const Value& input, const CallArgs&, RenderBudget& budget) {
  auto text = as_text(input, budget);
  if (!text.ok()) return text.error();
  return Value(std::move(*text));
}

Result<Value> filter_items(const Value& input, const CallArgs&, RenderBudget& budget) {
  if (input.is_undefined()) return Value::array();
  if (!input.is_object()) return make_error("items: can only get item pairs from a mapping, got {}", type_name(input));
  Array pairs;
  for (const auto& [k, v] : input.as_object()->entries) pairs.push_back(Value::tuple({Value(k), v}));
  return Value::array(std::move(pairs));
}

Result<Value> filter_list(const Value& input, const CallArgs&, RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  KVQ_RETURN_IF_ERROR(budget.charge(items->size()));
  return Value::array(std::move(*items));
}

Result<Value> filter_join(const Value& input, const CallArgs& args, RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  const Value* sep_arg = args.get(0, "d");
  auto sep = sep_arg ? as_text(*sep_arg, budget) : Result<std::string>(std::string());
  if (!sep.ok()) return sep.error();
  const Value* attribute = args.get(1, "attribute");
  std::string out;
  for (size_t i = 0; i < items->size(); ++i) {
    Value item = (*items)[i];
    if (attribute && attribute->is_string()) {
      auto picked = get_attribute_path(item, attribute->as_string(), budget);
      if (!picked.ok()) return picked.error();
      item = std::move(*picked);
    }
    auto text = as_text(item, budget);
    if (!text.ok()) return text.error();
    if (i) out += *sep;
    out += *text;
    KVQ_RETURN_IF_ERROR(budget.check_string(out.size()));
  }
  KVQ_RETURN_IF_ERROR(budget.charge(items->size()));
  return Value(std::move(out));
}

Result<Value> filter_first_or_last(const Value& input, bool first, RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  if (items->empty()) return Value::undefined(first ? "first" : "last");
  return first ? items->front() : items->back();
}
Result<Value> filter_first(const Value& input, const CallArgs&, RenderBudget& budget) {
  return filter_first_or_last(input, true, budget);
}
Result<Value> filter_last(const Value& input, const CallArgs&, RenderBudget& budget) {
  return filter_first_or_last(input, false, budget);
}

Result<Value> filter_default(const Value& input, const CallArgs& args, RenderBudget& budget) {
  const Value* fallback = args.get(0, "default_value");
  const bool use_fallback = input.is_undefined() || (bool_arg(args, 1, "boolean", false) && !input.truthy());
  if (!use_fallback) return input;
  return fallback ? *fallback : Value("");
}

Result<Value> filter_int(const Value& input, const CallArgs& args, RenderBudget& budget) {
  const Value* fallback = args.get(0, "default");
  const Value otherwise = fallback ? *fallback : Value(int64_t(0));
  if (input.is_int() || input.is_bool()) return Value(input.as_int());
  if (input.is_float()) {
    const double f = input.as_double();
    if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) return otherwise;
    return Value(int64_t(f));
  }
  if (input.is_string()) {
    const std::string text = python_strip(input.as_string(), std::nullopt, true, true);
    int64_t i = 0;
    const char* begin = text.data() + (!text.empty() && text[0] == '+');
    const auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), i);
    if (!text.empty() && ec == std::errc() && ptr == text.data() + text.size()) return Value(i);
    double f = 0;
    const auto [fptr, fec] = std::from_chars(begin, text.data() + text.size(), f);
    if (!text.empty() && fec == std::errc() && fptr == text.data() + text.size() && std::fabs(f) < 9.2e18) {
      return Value(int64_t(f));
    }
  }
  return otherwise;
}

Result<Value> filter_float(const Value& input, const CallArgs& args, RenderBudget& budget) {
  const Value* fallback = args.get(0, "default");
  if (input.is_number()) return Value(input.as_double());
  if (input.is_string()) {
    const std::string text = python_strip(input.as_string(), std::nullopt, true, true);
    double f = 0;
    const char* begin = text.data() + (!text.empty() && text[0] == '+');
    const auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), f);
    if (!text.empty() && ec == std::errc() && ptr == text.data() + text.size()) return Value(f);
  }
  return fallback ? *fallback : Value(0.0);
}

Result<Value> filter_abs(const Value& input, const CallArgs&, RenderBudget& budget) {
  if (input.is_float()) return Value(std::fabs(input.as_double()));
  if (input.is_int() || input.is_bool()) {
    const int64_t i = input.as_int();
    if (i == INT64_MIN) return make_error("abs: integer overflow");
    return Value(i < 0 ? -i : i);
  }
  return make_error("abs: bad operand type '{}'", type_name(input));
}

// round(value, precision=0, method='common'): 'common' is Python's round(), halves to even.
Result<Value> filter_round(const Value& input, const CallArgs& args, RenderBudget& budget) {
  if (!input.is_number()) return make_error("round: expected a number, got {}", type_name(input));
  const Value* precision = args.get(0, "precision");
  const int64_t digits = precision && precision->is_int() ? std::clamp<int64_t>(precision->as_int(), -300, 300) : 0;
  const Value* method_arg = args.get(1, "method");
  const std::string method = method_arg && method_arg->is_string() ? method_arg->as_string() : "common";
  const double scale = std::pow(10.0, double(digits));
  const double x = input.as_double() * scale;
  double r = 0;
  if (method == "common") {
    r = std::nearbyint(x);  // the default rounding mode rounds halves to even
  } else if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else {
    return make_error("round: method must be 'common', 'ceil' or 'floor'");
  }
  return Value(r / scale);
}

Result<Value> filter_replace(const Value& input, const CallArgs& args, RenderBudget& budget) {
  auto text = as_text(input, budget);
  if (!text.ok()) return text.error();
  const Value* old_text = args.get(0, "old");
  const Value* new_text = args.get(1, "new");
  if (!old_text || !new_text) return make_error("replace takes two arguments");
  auto from = as_text(*old_text, budget);
  auto to = as_text(*new_text, budget);
  if (!from.ok() || !to.ok()) return make_error("replace: bad arguments");
  const Value* count = args.get(2, "count");
  const int64_t n = count && count->is_int() ? count->as_int() : -1;
  if (from->empty() && to->size() * (text->size() + 1) > budget.limits().max_output_bytes) {
    return make_error("replace: result too large");
  }
  std::string out = python_replace(*text, *from, *to, n);
  KVQ_RETURN_IF_ERROR(budget.check_string(out.size()));
  return Value(std::move(out));
}

Result<Value> filter_indent(const Value& input, const CallArgs& args, RenderBudget& budget) {
  auto text = as_text(input, budget);
  if (!text.ok()) return text.error();
  const Value* width = args.get(0, "width");
  std::string pad = "    ";
  if (width && width->is_string()) pad = width->as_string();
  if (width && width->is_int()) pad.assign(size_t(std::clamp<int64_t>(width->as_int(), 0, 256)), ' ');
  const bool first = bool_arg(args, 1, "first", false);
  const bool blank = bool_arg(args, 2, "blank", false);
  // Jinja2 appends "\n" and then splits lines, so a trailing newline keeps its (unindented) line.
  std::vector<std::string> lines = python_split(*text + "\n", std::string("\n"), -1);
  lines.pop_back();
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    const bool indent_line = (i > 0 || first) && (blank || !lines[i].empty());
    if (indent_line) out += pad;
    out += lines[i];
    KVQ_RETURN_IF_ERROR(budget.check_string(out.size()));
  }
  return Value(std::move(out));
}

Result<Value> filter_reverse(const Value& input, const CallArgs&, RenderBudget& budget) {
  if (input.is_string()) return get_slice(input, Value::none(), Value::none(), Value(int64_t(-1)), budget);
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  std::reverse(items->begin(), items->end());
  return Value::array(std::move(*items));
}

// Stable sort of `items` by `key_of`, remembering the first comparison error.
Status sort_values(Array& items, const std::function<Result<Value>(const Value&)>& key_of, bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items) {
    auto key = key_of(item);
    if (!key.ok()) return key.error();
    keyed.emplace_back(std::move(*key), item);
  }
  std::optional<Error> failure;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    auto less = reverse ? value_less(b.first, a.first) : value_less(a.first, b.first);
    if (!less.ok()) {
      if (!failure) failure = less.error();
      return false;
    }
    return *less;
  });
  if (failure) return *failure;
  for (size_t i = 0; i < items.size(); ++i) items[i] = std::move(keyed[i].second);
  return {};
}

Result<Value> filter_sort(const Value& input, const CallArgs& args, RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  KVQ_RETURN_IF_ERROR(budget.charge(items->size()));
  const bool reverse = bool_arg(args, 0, "reverse", false);
  const bool case_sensitive = bool_arg(args, 1, "case_sensitive", false);
  const Value* attribute = args.get(2, "attribute");
  auto key_of = [&](const Value& item) -> Result<Value> {
    if (!attribute || !attribute->is_string()) return fold_case(item, case_sensitive);
    auto picked = get_attribute_path(item, attribute->as_string(), budget);
    if (!picked.ok()) return picked;
    return fold_case(*picked, case_sensitive);
  };
  KVQ_RETURN_IF_ERROR(sort_values(*items, key_of, reverse));
  return Value::array(std::move(*items));
}

Result<Value> filter_dictsort(const Value& input, const CallArgs& args, RenderBudget& budget) {
  if (!input.is_object()) return make_error("dictsort: expected a mapping, got {}", type_name(input));
  const bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
  const Value* by = args.get(1, "by");
  const bool by_value = by && by->is_string() && by->as_string() == "value";
  const bool reverse = bool_arg(args, 2, "reverse", false);
  Array pairs;
  for (const auto& [k, v] : input.as_object()->entries) pairs.push_back(Value::tuple({Value(k), v}));
  KVQ_RETURN_IF_ERROR(budget.charge(pairs.size()));
  auto key_of = [&](const Value& pair) -> Result<Value> {
    return fold_case((*pair.as_array())[by_value ? 1 : 0], case_sensitive);
  };
  KVQ_RETURN_IF_ERROR(sort_values(pairs, key_of, reverse));
  return Value::array(std::move(pairs));
}

Result<Value> filter_unique(const Value& input, const CallArgs& args, RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  KVQ_RETURN_IF_ERROR(budget.charge(items->size() * items->size() / 16 + items->size()));
  const bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
  const Value* attribute = args.get(1, "attribute");
  Array out;
  std::vector<Value> seen;
  for (const Value& item : *items) {
    Value key = item;
    if (attribute && attribute->is_string()) {
      auto picked = get_attribute_path(item, attribute->as_string(), budget);
      if (!picked.ok()) return picked.error();
      key = std::move(*picked);
    }
    key = fold_case(key, case_sensitive);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return values_equal(s, key); })) continue;
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return Value::array(std::move(out));
}

// select / reject / selectattr / rejectattr share one loop: keep items whose (attribute's)
// test result equals `keep`; without a test name the value's truthiness decides.
Result<Value> select_items(const Value& input, const CallArgs& args, bool by_attribute, bool keep,
                           RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  size_t next_arg = 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty() || !args.positional[0].is_string()) return make_error("selectattr: missing attribute");
    attribute = args.positional[0].as_string();
    next_arg = 1;
  }
  TestFunction test = nullptr;
  CallArgs test_args;
  if (args.positional.size() > next_arg) {
    if (!args.positional[next_arg].is_string()) return make_error("select: test name must be a string");
    const std::string& test_name = args.positional[next_arg].as_string();
    test = find_test(test_name);
    if (!test) return make_error("no test named '{}'", test_name);
    test_args.positional.assign(args.positional.begin() + long(next_arg) + 1, args.positional.end());
  }
  Array out;
  for (const Value& item : *items) {
    Value subject = item;
    if (by_attribute) {
      auto picked = get_attribute_path(item, attribute, budget);
      if (!picked.ok()) return picked.error();
      subject = std::move(*picked);
    }
    bool passed = subject.truthy();
    if (test) {
      auto result = test(subject, test_args);
      if (!result.ok()) return result.error();
      passed = *result;
    }
    if (passed == keep) out.push_back(item);
  }
  return Value::array(std::move(out));
}
Result<Value> filter_select(const Value& in, const CallArgs& a, RenderBudget& budget) {
  return select_items(in, a, false, true, budget);
}
Result<Value> filter_reject(const Value& in, const CallArgs& a, RenderBudget& budget) {
  return select_items(in, a, false, false, budget);
}
Result<Value> filter_selectattr(const Value& in, const CallArgs& a, RenderBudget& budget) {
  return select_items(in, a, true, true, budget);
}
Result<Value> filter_rejectattr(const Value& in, const CallArgs& a, RenderBudget& budget) {
  return select_items(in, a, true, false, budget);
}

// map('filter', args...) or map(attribute='name', default=value).
Result<Value> filter_map(const Value& input, const CallArgs& args, RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  KVQ_RETURN_IF_ERROR(budget.charge(items->size()));
  Array out;
  if (const Value* attribute = args.get(kKeywordOnly, "attribute")) {
    if (!attribute->is_string()) return make_error("map: attribute must be a string");
    const Value* fallback = args.get(kKeywordOnly, "default");
    for (const Value& item : *items) {
      auto picked = get_attribute_path(item, attribute->as_string(), budget);
      if (!picked.ok()) return picked.error();
      out.push_back(picked->is_undefined() && fallback ? *fallback : *picked);
    }
    return Value::array(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) return make_error("map: expected a filter name");
  const std::string& name = args.positional[0].as_string();
  FilterFunction filter = find_filter(name);
  if (!filter) return make_error("no filter named '{}'", name);
  CallArgs filter_args{{args.positional.begin() + 1, args.positional.end()}, args.keyword};
  for (const Value& item : *items) {
    auto mapped = filter(item, filter_args, budget);
    if (!mapped.ok()) return mapped;
    out.push_back(std::move(*mapped));
  }
  return Value::array(std::move(out));
}

Result<Value> filter_min_max(const Value& input, bool want_max, RenderBudget& budget) {
  auto items = iterate(input, budget);
  if (!items.ok()) return items.error();
  if (items->empty()) return Value::undefined(want_max ? "max" : "min");
  Value best = items->front();
  for (const Value& item : *items) {
    auto less = want_max ? value_less(best, item) : value_less(item, best);
    if (!less.ok()) return less.error();
    if (*less) best = item;
  }
  return best;
}
Result<Value> filter_min(const Value& in, const CallArgs&, RenderBudget& budget) {
  return filter_min_max(in, false, budget);
}
Result<Value> filter_max(const Value& in, const CallArgs&, RenderBudget& budget) {
  return filter_min_max(in, true, budget);
}

Result<Value> filter_attr(const Value& input, const CallArgs& args, RenderBudget& budget) {
  const Value* name = args.get(0, "name");
  if (!name || !name->is_string()) return make_error("attr: expected an attribute name");
  return get_attribute(input, name->as_string(), budget);
}

constexpr std::pair<std::string_view, FilterFunction> kFilters[] = {
    {"abs", filter_abs},
    {"attr", filter_attr},
    {"capitalize", filter_text_transform<python_capitalize>},
    {"count", filter_length},
    {"d", filter_default},
    {"default", filter_default},
    {"dictsort", filter_dictsort},
    {"first", filter_first},
    {"float", filter_float},
    {"indent", filter_indent},
    {"int", filter_int},
    {"items", filter_items},
    {"join", filter_join},
    {"last", filter_last},
    {"length", filter_length},
    {"list", filter_list},
    {"lower", filter_text_transform<ascii_lower>},
    {"map", filter_map},
    {"max", filter_max},
    {"min", filter_min},
    {"reject", filter_reject},
    {"rejectattr", filter_rejectattr},
    {"replace", filter_replace},
    {"reverse", filter_reverse},
    {"round", filter_round},
    {"safe", filter_identity},
    {"select", filter_select},
    {"selectattr", filter_selectattr},
    {"sort", filter_sort},
    {"string", filter_string},
    {"title", filter_text_transform<jinja_title>},
    {"tojson", filter_tojson},
    {"trim", filter_trim},
    {"unique", filter_unique},
    {"upper", filter_text_transform<ascii_upper>},
};

}  // namespace

FilterFunction find_filter(std::string_view name) {
  for (const auto& [filter_name, fn] : kFilters) {
    if (filter_name == name) return fn;
  }
  return nullptr;
}

}  // namespace kvq::chat
