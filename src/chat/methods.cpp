// Attribute access, subscripts, slices and the Python methods that templates call on strings,
// dicts and lists. Mutating methods (append, pop, update, ...) are refused, as transformers'
// ImmutableSandboxedEnvironment refuses them.
#include <algorithm>
#include <optional>

#include "chat/builtins.h"
#include "chat/text.h"

namespace kvq::chat {

namespace {

Error undefined_error(const Value& v) {
  if (v.undefined_name().empty()) return make_error("value is undefined");
  return make_error("'{}' is undefined", v.undefined_name());
}

Result<std::optional<std::string>> optional_string_arg(const CallArgs& args, size_t index, std::string_view name) {
  const Value* v = args.get(index, name);
  if (!v || v->is_none()) return std::optional<std::string>();
  if (!v->is_string()) return make_error("argument '{}' must be a string, got {}", name, type_name(*v));
  return std::optional<std::string>(v->as_string());
}

Result<int64_t> int_arg(const CallArgs& args, size_t index, std::string_view name, int64_t fallback) {
  const Value* v = args.get(index, name);
  if (!v || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) return make_error("argument '{}' must be an integer, got {}", name, type_name(*v));
  return v->as_int();
}

Value string_list(std::vector<std::string> parts) {
  Array items;
  items.reserve(parts.size());
  for (auto& p : parts) items.emplace_back(std::move(p));
  return Value::array(std::move(items));
}

// startswith/endswith accept a string or a tuple (list) of strings.
Result<Value> affix_test(const std::string& s, const CallArgs& args, bool prefix) {
  const Value* arg = args.get(0, "prefix");
  if (!arg) return make_error("{} takes one argument", prefix ? "startswith" : "endswith");
  std::vector<std::string> candidates;
  if (arg->is_string()) {
    candidates.push_back(arg->as_string());
  } else if (arg->is_array()) {
    for (const Value& v : *arg->as_array()) {
      if (!v.is_string()) return make_error("startswith/endswith: tuple items must be strings");
      candidates.push_back(v.as_string());
    }
  } else {
    return make_error("startswith/endswith: expected a string, got {}", type_name(*arg));
  }
  for (const auto& c : candidates) {
    const bool hit =
        prefix ? s.rfind(c, 0) == 0 : (s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0);
    if (hit) return Value(true);
  }
  return Value(false);
}

Result<Value> string_method(const std::string& s, std::string_view name, const CallArgs& args, RenderBudget& budget) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto chars = optional_string_arg(args, 0, "chars");
    if (!chars.ok()) return chars.error();
    return Value(python_strip(s, *chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    auto sep = optional_string_arg(args, 0, "sep");
    if (!sep.ok()) return sep.error();
    auto maxsplit = int_arg(args, 1, "maxsplit", -1);
    if (!maxsplit.ok()) return maxsplit.error();
    if (*sep && (*sep)->empty()) return make_error("split: empty separator");
    if (name == "rsplit" && *maxsplit >= 0) return make_error("unsupported: str.rsplit with maxsplit");
    return string_list(python_split(s, *sep, *maxsplit));
  }
  if (name == "startswith" || name == "endswith") return affix_test(s, args, name == "startswith");
  if (name == "replace") {
    const Value* old_text = args.get(0, "old");
    const Value* new_text = args.get(1, "new");
    if (!old_text || !new_text || !old_text->is_string() || !new_text->is_string()) {
      return make_error("replace takes two string arguments");
    }
    auto count = int_arg(args, 2, "count", -1);
    if (!count.ok()) return count.error();
    // Bound the result before building it: replacing "" inserts `new` at every character.
    const std::string& from = old_text->as_string();
    const size_t hits = from.empty() ? code_point_count(s) + 1 : s.size() / from.size();
    const size_t growth = new_text->as_string().size() > from.size() ? new_text->as_string().size() - from.size() : 0;
    if (growth && hits > budget.limits().max_output_bytes / growth) return make_error("replace: result too large");
    KVQ_RETURN_IF_ERROR(budget.check_string(s.size() + hits * growth));
    return Value(python_replace(s, from, new_text->as_string(), *count));
  }
  if (name == "upper") return Value(ascii_upper(s));
  if (name == "lower") return Value(ascii_lower(s));
  if (name == "title") return Value(python_title(s));
  if (name == "capitalize") return Value(python_capitalize(s));
  if (name == "find" || name == "count") {
    const Value* sub = args.get(0, "sub");
    if (!sub || !sub->is_string()) return make_error("{} takes a string argument", name);
    const std::string& needle = sub->as_string();
    if (name == "find") {
      const size_t hit = s.find(needle);
      return Value(hit == std::string::npos ? int64_t(-1)
                                            : int64_t(code_point_count(std::string_view(s).substr(0, hit))));
    }
    if (needle.empty()) return Value(int64_t(code_point_count(s) + 1));
    int64_t n = 0;
    for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + needle.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    const Value* items = args.get(0, "iterable");
    if (!items) return make_error("join takes one argument");
    auto list = iterate(*items, budget);
    if (!list.ok()) return list.error();
    std::string out;
    for (size_t i = 0; i < list->size(); ++i) {
      if (!(*list)[i].is_string()) return make_error("join: item {} is {}, not a string", i, type_name((*list)[i]));
      if (i) out += s;
      out += (*list)[i].as_string();
    }
    return Value(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const Value* affix = args.get(0, "affix");
    if (!affix || !affix->is_string()) return make_error("{} takes a string argument", name);
    const std::string& a = affix->as_string();
    if (name == "removeprefix") return Value(s.rfind(a, 0) == 0 ? s.substr(a.size()) : s);
    const bool ends = s.size() >= a.size() && s.compare(s.size() - a.size(), a.size(), a) == 0;
    return Value(ends ? s.substr(0, s.size() - a.size()) : s);
  }
  if (name == "format") return make_error("unsupported construct: str.format()");
  return make_error("unsupported string method '{}'", name);
}

Result<Value> dict_method(const ObjectPtr& obj, std::string_view name, const CallArgs& args) {
  if (name == "items" || name == "keys" || name == "values") {
    Array out;
    out.reserve(obj->entries.size());
    for (const auto& [k, v] : obj->entries) {
      if (name == "items") out.push_back(Value::tuple({Value(k), v}));
      if (name == "keys") out.emplace_back(k);
      if (name == "values") out.push_back(v);
    }
    return Value::array(std::move(out));
  }
  if (name == "get") {
    const Value* key = args.get(0, "key");
    if (!key) return make_error("get takes a key argument");
    const Value* fallback = args.get(1, "default");
    if (key->is_string()) {
      if (const Value* found = obj->find(key->as_string())) return *found;
    }
    return fallback ? *fallback : Value::none();
  }
  return make_error("unsupported construct: dict.{}() (transformers' sandbox forbids changing a dict)", name);
}

Result<Value> list_method(const ArrayPtr& list, std::string_view name, const CallArgs& args) {
  if (name == "index" || name == "count") {
    const Value* needle = args.get(0, "value");
    if (!needle) return make_error("{} takes one argument", name);
    int64_t n = 0;
    for (size_t i = 0; i < list->size(); ++i) {
      if (!values_equal((*list)[i], *needle)) continue;
      if (name == "index") return Value(int64_t(i));
      ++n;
    }
    if (name == "index") return make_error("list.index(x): x not in list");
    return Value(n);
  }
  return make_error("unsupported construct: list.{}() (transformers' sandbox forbids changing a list)", name);
}

bool is_method_name(const Value& obj, std::string_view name) {
  static constexpr std::string_view kString[] = {
      "strip", "lstrip", "rstrip",     "split", "rsplit", "startswith", "endswith",     "replace",      "upper",
      "lower", "title",  "capitalize", "find",  "count",  "join",       "removeprefix", "removesuffix", "format"};
  static constexpr std::string_view kDict[] = {"items",  "keys",       "values", "get",  "pop",
                                               "update", "setdefault", "clear",  "copy", "popitem"};
  static constexpr std::string_view kList[] = {"index",  "count",  "append", "pop",  "insert",
                                               "extend", "remove", "clear",  "sort", "reverse"};
  auto contains = [&](const auto& names) {
    return std::find(std::begin(names), std::end(names), name) != std::end(names);
  };
  if (obj.is_string()) return contains(kString);
  if (obj.is_object()) return !obj.as_object()->is_namespace && contains(kDict);
  if (obj.is_array()) return contains(kList);
  return false;
}

// A method bound to its object, as `obj.name` evaluates to before the call.
Value bound_method(const Value& obj, std::string_view name, RenderBudget& budget) {
  auto callable = std::make_shared<Callable>();
  callable->name = std::string(name);
  // The budget outlives every value of a render: both belong to one Interpreter.
  callable->call = [obj, method = std::string(name), budget = &budget](const CallArgs& args) -> Result<Value> {
    KVQ_RETURN_IF_ERROR(budget->charge(1));
    if (obj.is_string()) return string_method(obj.as_string(), method, args, *budget);
    if (obj.is_object()) return dict_method(obj.as_object(), method, args);
    return list_method(obj.as_array(), method, args);
  };
  return Value(std::move(callable));
}

// Python index normalization: negative counts from the end; nullopt when out of range.
std::optional<size_t> normalize_index(int64_t index, size_t size) {
  if (index < 0) index += int64_t(size);
  if (index < 0 || index >= int64_t(size)) return std::nullopt;
  return size_t(index);
}

}  // namespace

Result<Value> get_attribute(const Value& obj, std::string_view name, RenderBudget& budget) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (is_method_name(obj, name)) return bound_method(obj, name, budget);
  if (obj.is_object()) {
    if (const Value* found = obj.as_object()->find(name)) return *found;
  }
  return Value::undefined(std::string(name));
}

Result<Value> get_item(const Value& obj, const Value& key, RenderBudget& budget) {
  if (obj.is_undefined()) return undefined_error(obj);
  if (obj.is_object() && key.is_string()) {
    if (const Value* found = obj.as_object()->find(key.as_string())) return *found;
  }
  if ((obj.is_array() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    if (obj.is_array()) {
      const Array& items = *obj.as_array();
      if (auto i = normalize_index(key.as_int(), items.size())) return items[*i];
    } else {
      KVQ_RETURN_IF_ERROR(budget.charge(obj.as_string().size() / 64));  // indexing decodes the string
      const auto offsets = code_point_offsets(obj.as_string());
      if (auto i = normalize_index(key.as_int(), offsets.size() - 1)) {
        return Value(obj.as_string().substr(offsets[*i], offsets[*i + 1] - offsets[*i]));
      }
    }
    return Value::undefined(fmt::format("[{}]", key.as_int()));
  }
  if (key.is_string() && is_method_name(obj, key.as_string())) return bound_method(obj, key.as_string(), budget);
  return Value::undefined(key.is_string() ? key.as_string() : std::string());
}

Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step,
                        RenderBudget& budget) {
  if (obj.is_undefined()) return undefined_error(obj);
  for (const Value* bound : {&start, &stop, &step}) {
    if (!bound->is_none() && !bound->is_int() && !bound->is_bool()) {
      return make_error("slice indices must be integers or None, got {}", type_name(*bound));
    }
  }
  const bool is_text = obj.is_string();
  if (!is_text && !obj.is_array()) return make_error("'{}' object is not subscriptable", type_name(obj));
  const std::vector<size_t> offsets = is_text ? code_point_offsets(obj.as_string()) : std::vector<size_t>();
  const int64_t size = is_text ? int64_t(offsets.size() - 1) : int64_t(obj.as_array()->size());
  auto given = [](const Value& v) { return v.is_int() || v.is_bool(); };
  const int64_t stride = given(step) ? step.as_int() : 1;
  if (stride == 0) return make_error("slice step cannot be zero");
  // CPython's PySlice_AdjustIndices.
  auto adjust = [&](const Value& v, int64_t fallback) {
    if (!given(v)) return fallback;
    int64_t i = v.as_int();
    if (i < 0) {
      i += size;
      if (i < 0) i = stride < 0 ? -1 : 0;
    } else if (i >= size) {
      i = stride < 0 ? size - 1 : size;
    }
    return i;
  };
  const int64_t first = adjust(start, stride < 0 ? size - 1 : 0);
  const int64_t last = adjust(stop, stride < 0 ? -1 : size);
  KVQ_RETURN_IF_ERROR(budget.charge(uint64_t(size) + (is_text ? obj.as_string().size() / 64 : 0)));
  std::vector<int64_t> picked;
  for (int64_t i = first; stride > 0 ? i < last : i > last; i += stride) picked.push_back(i);
  if (is_text) {
    const std::string& s = obj.as_string();
    std::string out;
    for (int64_t i : picked) out.append(s, offsets[size_t(i)], offsets[size_t(i) + 1] - offsets[size_t(i)]);
    return Value(std::move(out));
  }
  Array out;
  out.reserve(picked.size());
  for (int64_t i : picked) out.push_back((*obj.as_array())[size_t(i)]);
  return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::array(std::move(out));
}

Result<Array> iterate(const Value& value, RenderBudget& budget) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return Array();  // Jinja2's default Undefined iterates as empty
    case Value::Kind::kArray:
      KVQ_RETURN_IF_ERROR(budget.charge(value.as_array()->size()));
      return *value.as_array();
    case Value::Kind::kObject: {
      KVQ_RETURN_IF_ERROR(budget.charge(value.as_object()->entries.size()));
      Array keys;
      for (const auto& entry : value.as_object()->entries) keys.emplace_back(entry.first);
      return keys;
    }
    case Value::Kind::kString: {
      const std::string& s = value.as_string();
      KVQ_RETURN_IF_ERROR(budget.charge(s.size()));
      const auto offsets = code_point_offsets(s);
      Array chars;
      for (size_t i = 0; i + 1 < offsets.size(); ++i)
        chars.emplace_back(s.substr(offsets[i], offsets[i + 1] - offsets[i]));
      return chars;
    }
    default:
      return make_error("'{}' object is not iterable", type_name(value));
  }
}

Result<int64_t> length_of(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return int64_t(0);
    case Value::Kind::kString:
      return int64_t(code_point_count(value.as_string()));
    case Value::Kind::kArray:
      return int64_t(value.as_array()->size());
    case Value::Kind::kObject:
      return int64_t(value.as_object()->entries.size());
    default:
      return make_error("object of type '{}' has no len()", type_name(value));
  }
}

}  // namespace kvq::chat
