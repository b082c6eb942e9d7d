// Expression evaluation and the global functions templates call: raise_exception, strftime_now,
// range, namespace and dict.
#include <ctime>

#include "chat/interpreter.h"
#include "chat/operators.h"

namespace kvq::chat {

namespace {

Value make_function(std::string name, std::function<Result<Value>(const CallArgs&)> fn) {
  auto callable = std::make_shared<Callable>();
  callable->name = std::move(name);
  callable->call = std::move(fn);
  return Value(std::move(callable));
}

Result<Value> range_function(const CallArgs& args, RenderBudget& budget) {
  if (!args.keyword.empty() || args.positional.empty() || args.positional.size() > 3) {
    return make_error("range() takes 1 to 3 integer arguments");
  }
  int64_t bounds[3] = {0, 0, 1};
  for (size_t i = 0; i < args.positional.size(); ++i) {
    const Value& v = args.positional[i];
    if (!v.is_int() && !v.is_bool())
      return make_error("range(): '{}' object cannot be interpreted as an integer", type_name(v));
  }
  if (args.positional.size() == 1) {
    bounds[1] = args.positional[0].as_int();
  } else {
    for (size_t i = 0; i < args.positional.size(); ++i) bounds[i] = args.positional[i].as_int();
  }
  const auto [start, stop, step] = bounds;
  if (step == 0) return make_error("range() arg 3 must not be zero");
  // Count without overflow: (stop - start) may not fit in int64.
  const __int128 span = step > 0 ? __int128(stop) - start : __int128(start) - stop;
  const __int128 magnitude = step > 0 ? __int128(step) : -__int128(step);
  const __int128 count = span <= 0 ? 0 : (span + magnitude - 1) / magnitude;
  KVQ_RETURN_IF_ERROR(budget.check_items(count > __int128(SIZE_MAX) ? SIZE_MAX : size_t(count)));
  KVQ_RETURN_IF_ERROR(budget.charge(uint64_t(count)));
  Array items;
  items.reserve(size_t(count));
  for (__int128 i = 0; i < count; ++i) items.emplace_back(int64_t(start + i * step));
  return Value::array(std::move(items));
}

// namespace(a=1) / namespace({'a': 1}) / dict(a=1): keyword arguments become entries.
Result<Value> make_dict(const CallArgs& args, bool is_namespace) {
  auto obj = std::make_shared<Object>();
  obj->is_namespace = is_namespace;
  for (const Value& initial : args.positional) {
    if (!initial.is_object())
      return make_error("{}() positional argument must be a dict", is_namespace ? "namespace" : "dict");
    for (const auto& [k, v] : initial.as_object()->entries) obj->set(k, v);
  }
  for (const auto& [k, v] : args.keyword) obj->set(k, v);
  return Value(std::move(obj));
}

Result<Value> strftime_function(const CallArgs& args, const std::optional<std::tm>& fixed) {
  const Value* format = args.get(0, "format");
  if (!format || !format->is_string()) return make_error("strftime_now() takes a format string");
  if (format->as_string().size() > 256) return make_error("strftime_now(): format string too long");
  std::tm when{};
  if (fixed) {
    when = *fixed;
  } else {
    const std::time_t now = std::time(nullptr);
    localtime_r(&now, &when);
  }
  // strftime returns 0 both for "too small" and for an empty result: a leading space tells apart.
  const std::string pattern = " " + format->as_string();
  std::string out(pattern.size() * 16 + 64, '\0');
  const size_t n = std::strftime(out.data(), out.size(), pattern.c_str(), &when);
  if (n == 0) return make_error("strftime_now(): result too long");
  return Value(out.substr(1, n - 1));
}

}  // namespace

void Interpreter::install_globals(Object& globals) {
  globals.set("raise_exception", make_function("raise_exception", [this](const CallArgs& args) -> Result<Value> {
                const Value* message = args.get(0, "message");
                auto text = message ? to_output_string(*message) : Result<std::string>(std::string());
                raised_ = true;
                return Error{text.ok() ? *text : text.error().message};
              }));
  globals.set("strftime_now", make_function("strftime_now", [this](const CallArgs& args) {
                return strftime_function(args, options_.now);
              }));
  globals.set("range", make_function("range", [this](const CallArgs& args) { return range_function(args, budget_); }));
  for (const bool is_namespace : {true, false}) {
    const char* name = is_namespace ? "namespace" : "dict";
    globals.set(name, make_function(name, [this, is_namespace](const CallArgs& args) -> Result<Value> {
                  auto dict = make_dict(args, is_namespace);
                  if (!dict.ok()) return dict;
                  const ValueShape shape = inspect_value(*dict, kMaxValueDepth);
                  KVQ_RETURN_IF_ERROR(budget_.charge(shape.nodes));
                  if (shape.depth > kMaxValueDepth)
                    return make_error("value nested deeper than {} levels", kMaxValueDepth);
                  return dict;
                }));
  }
}

Status Interpreter::check_nesting(uint32_t offset, const Value& value) {
  const ValueShape shape = inspect_value(value, kMaxValueDepth);
  if (Status spent = budget_.charge(shape.nodes); !spent.ok()) return located(offset, spent.error());
  if (shape.depth > kMaxValueDepth) {
    return located(offset, make_error("value nested deeper than {} levels", kMaxValueDepth));
  }
  return {};
}

Value Interpreter::lookup(const std::string& name) const {
  for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
    if (const Value* found = (*it)->find(name)) return *found;
  }
  return Value::undefined(name);
}

Result<CallArgs> Interpreter::eval_args(const Args& args) {
  CallArgs out;
  for (const ExprPtr& arg : args.positional) {
    auto v = eval(*arg);
    if (!v.ok()) return v.error();
    out.positional.push_back(std::move(*v));
  }
  for (const auto& [name, arg] : args.keyword) {
    auto v = eval(*arg);
    if (!v.ok()) return v.error();
    out.keyword.emplace_back(name, std::move(*v));
  }
  return out;
}

Result<Value> Interpreter::eval(const Expr& expr) {
  NestingGuard guard(nesting_);
  if (nesting_ > kMaxRenderNesting) return located(expr.offset, make_error("rendering nested too deeply"));
  switch (expr.kind) {
    case ExprKind::kLiteral:
      return expr.literal;
    case ExprKind::kName:
      return lookup(expr.name);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      Array items;
      items.reserve(expr.items.size());
      for (const ExprPtr& item : expr.items) {
        auto v = eval(*item);
        if (!v.ok()) return v;
        items.push_back(std::move(*v));
      }
      Value list = expr.kind == ExprKind::kTuple ? Value::tuple(std::move(items)) : Value::array(std::move(items));
      KVQ_RETURN_IF_ERROR(check_nesting(expr.offset, list));
      return list;
    }
    case ExprKind::kDict: {
      auto obj = std::make_shared<Object>();
      for (size_t i = 0; i + 1 < expr.items.size(); i += 2) {
        auto key = eval(*expr.items[i]);
        if (!key.ok()) return key;
        if (!key->is_string()) {
          return located(expr.items[i]->offset,
                         make_error("unsupported construct: dict key of type {}", type_name(*key)));
        }
        auto value = eval(*expr.items[i + 1]);
        if (!value.ok()) return value;
        obj->set(key->as_string(), std::move(*value));
      }
      Value dict(std::move(obj));
      KVQ_RETURN_IF_ERROR(check_nesting(expr.offset, dict));
      return dict;
    }
    case ExprKind::kAttribute: {
      auto obj = eval(*expr.items[0]);
      if (!obj.ok()) return obj;
      auto v = get_attribute(*obj, expr.name, budget_);
      if (!v.ok()) return located(expr.offset, v.error());
      return v;
    }
    case ExprKind::kSubscript: {
      auto obj = eval(*expr.items[0]);
      if (!obj.ok()) return obj;
      auto key = eval(*expr.items[1]);
      if (!key.ok()) return key;
      auto v = get_item(*obj, *key, budget_);
      if (!v.ok()) return located(expr.offset, v.error());
      return v;
    }
    case ExprKind::kSlice: {
      auto obj = eval(*expr.items[0]);
      if (!obj.ok()) return obj;
      Value bounds[3] = {Value::none(), Value::none(), Value::none()};  // absent bounds are None
      for (int i = 0; i < 3; ++i) {
        if (!expr.items[size_t(i) + 1]) continue;
        auto b = eval(*expr.items[size_t(i) + 1]);
        if (!b.ok()) return b;
        bounds[i] = std::move(*b);
      }
      auto v = get_slice(*obj, bounds[0], bounds[1], bounds[2], budget_);
      if (!v.ok()) return located(expr.offset, v.error());
      return v;
    }
    case ExprKind::kCall:
      return eval_call(expr);
    case ExprKind::kFilter: {
      auto input = eval(*expr.items[0]);
      if (!input.ok()) return input;
      return eval_filter(expr, std::move(*input));
    }
    case ExprKind::kTest:
      return eval_test(expr);
    case ExprKind::kUnary: {
      auto operand = eval(*expr.items[0]);
      if (!operand.ok()) return operand;
      auto v = apply_unary(expr.op, *operand);
      if (!v.ok()) return located(expr.offset, v.error());
      return v;
    }
    case ExprKind::kBinary: {
      auto left = eval(*expr.items[0]);
      if (!left.ok()) return left;
      // `and`/`or` return an operand, as in Python: `x or 'default'`.
      if (expr.op == Op::kAnd) return left->truthy() ? eval(*expr.items[1]) : left;
      if (expr.op == Op::kOr) return left->truthy() ? left : eval(*expr.items[1]);
      auto right = eval(*expr.items[1]);
      if (!right.ok()) return right;
      auto v = apply_binary(expr.op, *left, *right, budget_);
      if (!v.ok()) return located(expr.offset, v.error());
      return v;
    }
    case ExprKind::kCompareChain: {
      auto left = eval(*expr.items[0]);
      if (!left.ok()) return left;
      for (size_t i = 0; i < expr.compare_ops.size(); ++i) {
        auto right = eval(*expr.items[i + 1]);
        if (!right.ok()) return right;
        auto holds = apply_binary(expr.compare_ops[i], *left, *right, budget_);
        if (!holds.ok()) return located(expr.offset, holds.error());
        if (!holds->truthy()) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case ExprKind::kConditional: {
      auto condition = eval(*expr.items[1]);
      if (!condition.ok()) return condition;
      if (condition->truthy()) return eval(*expr.items[0]);
      if (expr.items[2]) return eval(*expr.items[2]);
      return Value::undefined();
    }
  }
  return Value::undefined();
}

Result<Value> Interpreter::eval_call(const Expr& expr) {
  auto callee = eval(*expr.items[0]);
  if (!callee.ok()) return callee;
  if (!callee->is_callable()) {
    if (callee->is_undefined() && !callee->undefined_name().empty()) {
      return located(expr.offset, make_error("'{}' is undefined (not a function kvq knows)", callee->undefined_name()));
    }
    return located(expr.offset, make_error("'{}' object is not callable", type_name(*callee)));
  }
  auto args = eval_args(expr.args);
  if (!args.ok()) return args.error();
  if (Status spent = budget_.charge(1); !spent.ok()) return located(expr.offset, spent.error());
  const Callable& callable = *callee->as_callable();
  auto result = callable.call(*args);
  if (!result.ok() && !callable.is_macro) return located(expr.offset, result.error());
  return result;
}

Result<Value> Interpreter::eval_filter(const Expr& expr, Value input) {
  auto args = eval_args(expr.args);
  if (!args.ok()) return args.error();
  // Like Jinja2 (3.x) an unknown filter fails when it is used, so a template whose unused branch
  // calls one still renders.
  FilterFunction filter = find_filter(expr.name);
  if (!filter) return located(expr.offset, make_error("unsupported construct: no filter named '{}'", expr.name));
  auto result = filter(input, *args, budget_);
  if (!result.ok()) return located(expr.offset, result.error());
  return result;
}

Result<Value> Interpreter::eval_test(const Expr& expr) {
  auto subject = eval(*expr.items[0]);
  if (!subject.ok()) return subject;
  auto args = eval_args(expr.args);
  if (!args.ok()) return args.error();
  TestFunction test = find_test(expr.name);
  if (!test) return located(expr.offset, make_error("unsupported construct: no test named '{}'", expr.name));
  auto result = test(*subject, *args);
  if (!result.ok()) return located(expr.offset, result.error());
  return Value(expr.negated ? !*result : *result);
}

}  // namespace kvq::chat
