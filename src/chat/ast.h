// Syntax tree of a parsed chat template: statements (text, output, if, for, set, macro, ...)
// holding expressions. One node struct per layer with a kind tag keeps the evaluator a switch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace kvq::chat {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind : uint8_t {
  kLiteral,       // literal
  kName,          // name
  kList,          // items
  kTuple,         // items, from `(a, b)` or `a, b` after `set x =`
  kDict,          // items: key, value, key, value, ...
  kAttribute,     // items[0].name
  kSubscript,     // items[0][items[1]]
  kSlice,         // items[0][items[1]:items[2]:items[3]], absent bounds are null
  kCall,          // items[0](args)
  kFilter,        // items[0] | name(args); items[0] is null inside `{% filter %}`
  kTest,          // items[0] is [not] name(args)
  kUnary,         // op items[0]
  kBinary,        // items[0] op items[1]
  kCompareChain,  // items[0] compare_ops[0] items[1] compare_ops[1] items[2] ...: `a < b < c`
  kConditional,   // items[0] if items[1] else items[2] (items[2] may be null)
};

enum class Op : uint8_t {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kFloorDiv,
  kMod,
  kPow,
  kConcat,  // ~
  kEq,
  kNe,
  kLt,
  kGt,
  kLe,
  kGe,
  kIn,
  kNotIn,
  kAnd,
  kOr,
  kNot,
  kNeg,
  kPos,
};

struct Args {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct Expr {
  ExprKind kind;
  uint32_t offset = 0;  // where it starts in the source, for error messages
  Op op = Op::kAdd;
  bool negated = false;  // `is not`
  std::string name;      // variable, attribute, filter or test name
  Value literal;
  std::vector<ExprPtr> items;
  std::vector<Op> compare_ops;
  Args args;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind : uint8_t {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches: (condition, body)...; else_body
  kFor,          // for targets in expr [if condition]: body; else_body
  kSet,          // set targets = expr  |  set targets[0].attribute = expr  |  set x %}body{% endset
  kMacro,        // macro name(params): body
  kFilterBlock,  // filter filters: body
  kBreak,
  kContinue,
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Stmt {
  StmtKind kind;
  uint32_t offset = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;  // kFor: the inline `if` filter
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attribute;  // kSet with `ns.attr` target
  std::string name;       // kMacro
  std::vector<MacroParam> params;
  std::vector<ExprPtr> filters;  // kFilterBlock: kFilter nodes with a null operand
};

}  // namespace kvq::chat
