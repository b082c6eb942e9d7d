// Python operator semantics for template values. Integer overflow is an error rather than the
// wrap-around of int64 (Python integers are unbounded; a real template never gets near 2^63).
#include "chat/operators.h"

#include <cmath>

namespace kvq::chat {

namespace {

Error undefined_operand(const Value& v) {
  if (v.undefined_name().empty()) return make_error("operand is undefined");
  return make_error("'{}' is undefined", v.undefined_name());
}

Error unsupported(const char* symbol, const Value& a, const Value& b) {
  return make_error("unsupported operand type(s) for {}: '{}' and '{}'", symbol, type_name(a), type_name(b));
}

const char* symbol_of(Op op) {
  switch (op) {
    case Op::kAdd:
      return "+";
    case Op::kSub:
      return "-";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
    case Op::kFloorDiv:
      return "//";
    case Op::kMod:
      return "%";
    case Op::kPow:
      return "**";
    default:
      return "?";
  }
}

bool is_integral(const Value& v) { return v.is_int() || v.is_bool(); }

Result<Value> integer_arithmetic(Op op, int64_t a, int64_t b) {
  int64_t r = 0;
  switch (op) {
    case Op::kAdd:
      if (__builtin_add_overflow(a, b, &r)) return make_error("integer overflow in +");
      return Value(r);
    case Op::kSub:
      if (__builtin_sub_overflow(a, b, &r)) return make_error("integer overflow in -");
      return Value(r);
    case Op::kMul:
      if (__builtin_mul_overflow(a, b, &r)) return make_error("integer overflow in *");
      return Value(r);
    case Op::kDiv:
      if (b == 0) return make_error("division by zero");
      return Value(double(a) / double(b));
    case Op::kFloorDiv:
    case Op::kMod: {
      if (b == 0) return make_error("integer division or modulo by zero");
      if (a == INT64_MIN && b == -1) return make_error("integer overflow in {}", symbol_of(op));
      int64_t q = a / b;
      int64_t m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) {  // Python rounds the quotient toward negative infinity
        --q;
        m += b;
      }
      return Value(op == Op::kFloorDiv ? q : m);
    }
    case Op::kPow: {
      if (b < 0) return Value(std::pow(double(a), double(b)));
      int64_t result = 1;
      for (int64_t base = a, e = b; e > 0; e >>= 1) {
        if ((e & 1) && __builtin_mul_overflow(result, base, &result)) return make_error("integer overflow in **");
        if (e > 1 && __builtin_mul_overflow(base, base, &base)) return make_error("integer overflow in **");
      }
      return Value(result);
    }
    default:
      return make_error("bad integer operator");
  }
}

Result<Value> float_arithmetic(Op op, double a, double b) {
  switch (op) {
    case Op::kAdd:
      return Value(a + b);
    case Op::kSub:
      return Value(a - b);
    case Op::kMul:
      return Value(a * b);
    case Op::kDiv:
      if (b == 0) return make_error("float division by zero");
      return Value(a / b);
    case Op::kFloorDiv:
      if (b == 0) return make_error("float floor division by zero");
      return Value(std::floor(a / b));
    case Op::kMod: {
      if (b == 0) return make_error("float modulo by zero");
      double m = std::fmod(a, b);
      if (m != 0 && ((m < 0) != (b < 0))) m += b;
      return Value(m);
    }
    case Op::kPow:
      return Value(std::pow(a, b));
    default:
      return make_error("bad float operator");
  }
}

// `s * n` and `list * n`.
Result<Value> repeat(const Value& sequence, int64_t times, RenderBudget& budget) {
  if (times < 0) times = 0;
  if (sequence.is_string()) {
    const std::string& s = sequence.as_string();
    if (!s.empty())
      KVQ_RETURN_IF_ERROR(budget.check_string(uint64_t(times) > (1ull << 40) ? SIZE_MAX : s.size() * size_t(times)));
    std::string out;
    for (int64_t i = 0; i < times && !s.empty(); ++i) out += s;
    return Value(std::move(out));
  }
  const Array& items = *sequence.as_array();
  if (!items.empty())
    KVQ_RETURN_IF_ERROR(budget.check_items(uint64_t(times) > (1ull << 40) ? SIZE_MAX : items.size() * size_t(times)));
  Array out;
  for (int64_t i = 0; i < times && !items.empty(); ++i) out.insert(out.end(), items.begin(), items.end());
  return sequence.is_tuple() ? Value::tuple(std::move(out)) : Value::array(std::move(out));
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;  // iterates as empty
    case Value::Kind::kString:
      if (!item.is_string())
        return make_error("'in <string>' requires string as left operand, not {}", type_name(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kArray:
      for (const Value& v : *container.as_array()) {
        if (values_equal(v, item)) return true;
      }
      return false;
    case Value::Kind::kObject:
      return item.is_string() && container.as_object()->find(item.as_string()) != nullptr;
    default:
      return make_error("argument of type '{}' is not iterable", type_name(container));
  }
}

}  // namespace

Result<Value> apply_binary(Op op, const Value& a, const Value& b, RenderBudget& budget) {
  switch (op) {
    case Op::kEq:
      return Value(values_equal(a, b));
    case Op::kNe:
      return Value(!values_equal(a, b));
    case Op::kLt:
    case Op::kGt:
    case Op::kLe:
    case Op::kGe: {
      if (a.is_undefined()) return undefined_operand(a);
      if (b.is_undefined()) return undefined_operand(b);
      // a > b is b < a; a <= b is not (b < a), exact for everything but NaN.
      const bool swap = op == Op::kGt || op == Op::kLe;
      auto less = swap ? value_less(b, a) : value_less(a, b);
      if (!less.ok()) return less.error();
      return Value((op == Op::kLe || op == Op::kGe) ? !*less : *less);
    }
    case Op::kIn:
    case Op::kNotIn: {
      auto found = contains(b, a);
      if (!found.ok()) return found.error();
      return Value(op == Op::kIn ? *found : !*found);
    }
    case Op::kConcat: {
      auto left = to_output_string(a, budget.limits().max_output_bytes);
      if (!left.ok()) return left.error();
      auto right = to_output_string(b, budget.limits().max_output_bytes);
      if (!right.ok()) return right.error();
      KVQ_RETURN_IF_ERROR(budget.check_string(left->size() + right->size()));
      return Value(*left + *right);
    }
    default:
      break;
  }
  if (a.is_undefined()) return undefined_operand(a);
  if (b.is_undefined()) return undefined_operand(b);
  const char* symbol = symbol_of(op);
  if (a.is_number() && b.is_number()) {
    if (is_integral(a) && is_integral(b)) return integer_arithmetic(op, a.as_int(), b.as_int());
    return float_arithmetic(op, a.as_double(), b.as_double());
  }
  if (op == Op::kAdd) {
    if (a.is_string() && b.is_string()) {
      KVQ_RETURN_IF_ERROR(budget.check_string(a.as_string().size() + b.as_string().size()));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_array() && b.is_array()) {
      if (a.is_tuple() != b.is_tuple()) {
        return make_error("can only concatenate {} (not \"{}\") to {}", type_name(a), type_name(b), type_name(a));
      }
      KVQ_RETURN_IF_ERROR(budget.check_items(a.as_array()->size() + b.as_array()->size()));
      Array joined = *a.as_array();
      joined.insert(joined.end(), b.as_array()->begin(), b.as_array()->end());
      return a.is_tuple() ? Value::tuple(std::move(joined)) : Value::array(std::move(joined));
    }
  }
  if (op == Op::kMul) {
    if ((a.is_string() || a.is_array()) && is_integral(b)) return repeat(a, b.as_int(), budget);
    if (is_integral(a) && (b.is_string() || b.is_array())) return repeat(b, a.as_int(), budget);
  }
  if (op == Op::kMod && a.is_string())
    return make_error("unsupported construct: printf-style string formatting with %");
  return unsupported(symbol, a, b);
}

Result<Value> apply_unary(Op op, const Value& v) {
  if (op == Op::kNot) return Value(!v.truthy());
  if (v.is_undefined()) return undefined_operand(v);
  if (v.is_float()) return Value(op == Op::kNeg ? -v.as_double() : v.as_double());
  if (is_integral(v)) {
    if (op == Op::kPos) return Value(v.as_int());
    if (v.as_int() == INT64_MIN) return make_error("integer overflow in unary -");
    return Value(-v.as_int());
  }
  return make_error("bad operand type for unary {}: '{}'", op == Op::kNeg ? "-" : "+", type_name(v));
}

}  // namespace kvq::chat
