// Arithmetic, concatenation, comparison and membership operators with Python's semantics
// (int/float promotion, floor division and modulo signs, list and string concatenation).
#pragma once

#include "chat/ast.h"
#include "chat/builtins.h"

namespace kvq::chat {

// Every binary operator except `and`/`or`, which the evaluator short-circuits.
Result<Value> apply_binary(Op op, const Value& left, const Value& right, RenderBudget& budget);
// `-x`, `+x`, `not x`.
Result<Value> apply_unary(Op op, const Value& operand);

}  // namespace kvq::chat
