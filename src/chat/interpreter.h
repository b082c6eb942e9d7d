// Tree-walking renderer for a parsed chat template. Internal: use chat_template.h.
#pragma once

#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "chat/lexer.h"
#include "chat/parser.h"

namespace kvq::chat {

class Interpreter {
 public:
  Interpreter(const ParsedTemplate& parsed, const RenderOptions& options);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Renders the whole template with `context` (a dict) as its variables.
  Result<std::string> render(const Value& context);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  // Statements (interpreter.cpp).
  Status exec_body(const Body& body, Flow& flow);
  Status exec(const Stmt& stmt, Flow& flow);
  Status exec_for(const Stmt& stmt);
  Status exec_set(const Stmt& stmt);
  Status exec_filter_block(const Stmt& stmt);
  Result<std::string> render_to_string(const Body& body);
  Status bind_targets(const Stmt& stmt, const std::vector<std::string>& targets, const Value& value, Object& frame);
  Result<Value> call_macro(const Stmt& macro, const std::vector<ObjectPtr>& closure, const CallArgs& args);
  Status write(std::string_view text);

  // Expressions (eval.cpp).
  Result<Value> eval(const Expr& expr);
  Result<Value> eval_call(const Expr& expr);
  Result<Value> eval_filter(const Expr& expr, Value input);
  Result<Value> eval_test(const Expr& expr);
  Result<CallArgs> eval_args(const Args& args);
  Value lookup(const std::string& name) const;
  // Fails when a list or dict being built nests deeper than kMaxValueDepth.
  Status check_nesting(uint32_t offset, const Value& value);
  void install_globals(Object& globals);

  // Prefixes an error from a built-in or an operator with the template location, except the
  // message of raise_exception(), which must reach the caller verbatim.
  Error located(uint32_t offset, const Error& error) const;

  const ParsedTemplate& parsed_;
  const RenderOptions& options_;
  SourceMap source_map_;
  RenderBudget budget_;
  std::vector<ObjectPtr> frames_;  // innermost scope last; frames_[0] holds the globals
  // Scopes captured by macros: a macro stored in a scope it captures is a reference cycle,
  // broken by clearing these scopes when rendering ends.
  std::vector<std::weak_ptr<Object>> captured_frames_;
  std::string* out_ = nullptr;  // where text goes: the result, or a macro's / set block's buffer
  int call_depth_ = 0;
  // Recursion depth of exec/eval together: macros calling macros multiply the (bounded) depth
  // of the tree, and the stack must not overflow under hostile templates.
  int nesting_ = 0;
  static constexpr int kMaxRenderNesting = 400;
  struct NestingGuard {
    int& depth;
    explicit NestingGuard(int& d) : depth(d) { ++depth; }
    ~NestingGuard() { --depth; }
  };
  bool raised_ = false;  // raise_exception() was called: its message propagates unchanged
};

}  // namespace kvq::chat
