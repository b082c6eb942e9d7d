// Statement execution: output, if, for (with Jinja2's `loop` object and loop controls), set,
// macros and filter blocks. Scoping follows Jinja2: a for loop (and a macro call) opens a scope,
// so `set` inside it is invisible after it; namespace() objects carry state out of loops.
#include "chat/interpreter.h"

#include <algorithm>

namespace kvq::chat {

Interpreter::Interpreter(const ParsedTemplate& parsed, const RenderOptions& options)
    : parsed_(parsed), options_(options), source_map_(parsed.source), budget_(options.limits) {}

Interpreter::~Interpreter() {
  for (const auto& weak : captured_frames_) {
    if (auto frame = weak.lock()) frame->entries.clear();
  }
}

Error Interpreter::located(uint32_t offset, const Error& error) const {
  if (raised_) return error;
  return make_error("chat template {}: {}", source_map_.describe(offset), error.message);
}

Result<std::string> Interpreter::render(const Value& context) {
  auto globals = std::make_shared<Object>();
  install_globals(*globals);
  // The caller's variables get their own frame above the globals so that top-level `set`
  // never changes the caller's objects' bindings.
  auto variables = std::make_shared<Object>();
  if (context.is_object()) variables->entries = context.as_object()->entries;
  frames_ = {globals, variables};
  std::string result;
  out_ = &result;
  Flow flow = Flow::kNormal;
  KVQ_RETURN_IF_ERROR(exec_body(parsed_.body, flow));
  return result;
}

Status Interpreter::write(std::string_view text) {
  out_->append(text);
  if (out_->size() > options_.limits.max_output_bytes) {
    return make_error("chat template: output exceeds {} bytes", options_.limits.max_output_bytes);
  }
  return {};
}

Status Interpreter::exec_body(const Body& body, Flow& flow) {
  for (const StmtPtr& stmt : body) {
    KVQ_RETURN_IF_ERROR(exec(*stmt, flow));
    if (flow != Flow::kNormal) return {};
  }
  return {};
}

Status Interpreter::exec(const Stmt& stmt, Flow& flow) {
  NestingGuard guard(nesting_);
  if (nesting_ > kMaxRenderNesting) return located(stmt.offset, make_error("rendering nested too deeply"));
  if (Status spent = budget_.charge(1); !spent.ok()) return located(stmt.offset, spent.error());
  switch (stmt.kind) {
    case StmtKind::kText:
      return write(stmt.text);
    case StmtKind::kOutput: {
      auto value = eval(*stmt.expr);
      if (!value.ok()) return value.error();
      auto text = to_output_string(*value, options_.limits.max_output_bytes);
      if (!text.ok()) return located(stmt.offset, text.error());
      return write(*text);
    }
    case StmtKind::kIf:
      for (const auto& [condition, body] : stmt.branches) {
        auto test = eval(*condition);
        if (!test.ok()) return test.error();
        if (test->truthy()) return exec_body(body, flow);
      }
      return exec_body(stmt.else_body, flow);
    case StmtKind::kFor:
      return exec_for(stmt);
    case StmtKind::kSet:
      return exec_set(stmt);
    case StmtKind::kMacro: {
      auto callable = std::make_shared<Callable>();
      callable->name = stmt.name;
      callable->is_macro = true;
      // The macro sees the scopes around its definition (by reference, so later top-level
      // `set`s are visible), plus its own parameters.
      for (const ObjectPtr& frame : frames_) captured_frames_.push_back(frame);
      callable->call = [this, &stmt, closure = frames_](const CallArgs& args) {
        return call_macro(stmt, closure, args);
      };
      frames_.back()->set(stmt.name, Value(std::move(callable)));
      return {};
    }
    case StmtKind::kFilterBlock:
      return exec_filter_block(stmt);
    case StmtKind::kBreak:
      flow = Flow::kBreak;
      return {};
    case StmtKind::kContinue:
      flow = Flow::kContinue;
      return {};
  }
  return {};
}

// Binds `value` to one name, or unpacks it into several (`for k, v in d.items()`).
Status Interpreter::bind_targets(const Stmt& stmt, const std::vector<std::string>& targets, const Value& value,
                                 Object& frame) {
  if (targets.size() == 1) {
    frame.set(targets[0], value);
    return {};
  }
  auto items = iterate(value, budget_);
  if (!items.ok()) return located(stmt.offset, items.error());
  if (items->size() != targets.size()) {
    return located(stmt.offset, make_error("cannot unpack {} values into {} names", items->size(), targets.size()));
  }
  for (size_t i = 0; i < targets.size(); ++i) frame.set(targets[i], (*items)[i]);
  return {};
}

Status Interpreter::exec_for(const Stmt& stmt) {
  auto iterable = eval(*stmt.expr);
  if (!iterable.ok()) return iterable.error();
  auto all_items = iterate(*iterable, budget_);
  if (!all_items.ok()) return located(stmt.expr->offset, all_items.error());

  auto frame = std::make_shared<Object>();
  frames_.push_back(frame);
  struct PopFrame {
    std::vector<ObjectPtr>& frames;
    ~PopFrame() { frames.pop_back(); }
  } pop{frames_};

  // `for x in xs if cond`: the condition filters before the loop, so loop.length counts only
  // the kept items, as in Jinja2.
  Array items;
  if (stmt.condition) {
    for (const Value& item : *all_items) {
      KVQ_RETURN_IF_ERROR(bind_targets(stmt, stmt.targets, item, *frame));
      auto keep = eval(*stmt.condition);
      if (!keep.ok()) return keep.error();
      if (keep->truthy()) items.push_back(item);
    }
  } else {
    items = std::move(*all_items);
  }
  if (items.empty()) {
    Flow flow = Flow::kNormal;
    return exec_body(stmt.else_body, flow);
  }

  const int64_t length = int64_t(items.size());
  for (int64_t i = 0; i < length; ++i) {
    if (Status spent = budget_.charge(1); !spent.ok()) return located(stmt.offset, spent.error());
    // Each iteration starts from the enclosing scope: a `set` in one iteration is not seen by
    // the next (Jinja2 renders `{% set x = x + i %}` in a loop from the outer x every time).
    frame = std::make_shared<Object>();
    frames_.back() = frame;
    KVQ_RETURN_IF_ERROR(bind_targets(stmt, stmt.targets, items[size_t(i)], *frame));
    auto loop = std::make_shared<Object>();
    loop->entries = {
        {"index", Value(i + 1)},
        {"index0", Value(i)},
        {"revindex", Value(length - i)},
        {"revindex0", Value(length - i - 1)},
        {"first", Value(i == 0)},
        {"last", Value(i == length - 1)},
        {"length", Value(length)},
        {"depth", Value(1)},
        {"depth0", Value(0)},
        {"previtem", i > 0 ? items[size_t(i - 1)] : Value::undefined("previtem")},
        {"nextitem", i + 1 < length ? items[size_t(i + 1)] : Value::undefined("nextitem")},
    };
    auto cycle = std::make_shared<Callable>();
    cycle->name = "loop.cycle";
    cycle->call = [i](const CallArgs& args) -> Result<Value> {
      if (args.positional.empty()) return make_error("loop.cycle needs at least one argument");
      return args.positional[size_t(i) % args.positional.size()];
    };
    loop->entries.emplace_back("cycle", Value(std::move(cycle)));
    frame->set("loop", Value(std::move(loop)));
    Flow flow = Flow::kNormal;
    KVQ_RETURN_IF_ERROR(exec_body(stmt.body, flow));
    if (flow == Flow::kBreak) break;
  }
  return {};
}

Result<std::string> Interpreter::render_to_string(const Body& body) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  Flow flow = Flow::kNormal;
  Status status = exec_body(body, flow);
  out_ = saved;
  if (!status.ok()) return status.error();
  return buffer;
}

Status Interpreter::exec_set(const Stmt& stmt) {
  Value value;
  if (stmt.expr) {
    auto result = eval(*stmt.expr);
    if (!result.ok()) return result.error();
    value = std::move(*result);
  } else {
    auto text = render_to_string(stmt.body);
    if (!text.ok()) return text.error();
    value = Value(std::move(*text));
  }
  if (!stmt.attribute.empty()) {
    const Value target = lookup(stmt.targets[0]);
    if (!target.is_object() || !target.as_object()->is_namespace) {
      return located(stmt.offset, make_error("cannot assign attribute '{}' on '{}': it is not a namespace()",
                                             stmt.attribute, stmt.targets[0]));
    }
    // Real templates store strings, numbers, lists and dicts in namespaces; a namespace or a
    // function stored there could make the namespace reach itself (a leak and endless printing).
    const ValueShape shape = inspect_value(value, kMaxValueDepth);
    if (Status spent = budget_.charge(shape.nodes); !spent.ok()) return located(stmt.offset, spent.error());
    if (shape.holds_namespace || shape.holds_callable) {
      return located(stmt.offset, make_error("unsupported construct: storing a namespace or a function in "
                                             "namespace attribute '{}'",
                                             stmt.attribute));
    }
    target.as_object()->set(stmt.attribute, std::move(value));
    return {};
  }
  return bind_targets(stmt, stmt.targets, value, *frames_.back());
}

Status Interpreter::exec_filter_block(const Stmt& stmt) {
  auto text = render_to_string(stmt.body);
  if (!text.ok()) return text.error();
  Value value(std::move(*text));
  for (const ExprPtr& filter : stmt.filters) {
    auto filtered = eval_filter(*filter, std::move(value));
    if (!filtered.ok()) return filtered.error();
    value = std::move(*filtered);
  }
  auto out = to_output_string(value, options_.limits.max_output_bytes);
  if (!out.ok()) return located(stmt.offset, out.error());
  return write(*out);
}

Result<Value> Interpreter::call_macro(const Stmt& macro, const std::vector<ObjectPtr>& closure, const CallArgs& args) {
  if (call_depth_ >= options_.limits.max_call_depth) {
    return located(macro.offset,
                   make_error("macro '{}': calls nested deeper than {}", macro.name, options_.limits.max_call_depth));
  }
  if (args.positional.size() > macro.params.size()) {
    return located(macro.offset, make_error("macro '{}' takes {} arguments, {} given", macro.name, macro.params.size(),
                                            args.positional.size()));
  }
  auto frame = std::make_shared<Object>();
  for (const auto& keyword : args.keyword) {
    const std::string& key = keyword.first;  // a named variable: clang 14 cannot capture a structured binding
    const bool known = std::any_of(macro.params.begin(), macro.params.end(), [&](auto& p) { return p.name == key; });
    if (!known) return located(macro.offset, make_error("macro '{}' has no argument '{}'", macro.name, key));
  }

  std::vector<ObjectPtr> saved_frames = std::move(frames_);
  frames_ = closure;
  frames_.push_back(frame);
  std::string buffer;
  std::string* saved_out = out_;
  out_ = &buffer;
  ++call_depth_;
  Status status;
  // Parameters bind in order; a default is evaluated in the macro's scope when it is needed.
  for (size_t i = 0; i < macro.params.size() && status.ok(); ++i) {
    const MacroParam& param = macro.params[i];
    if (const Value* given = args.get(i, param.name)) {
      frame->set(param.name, *given);
    } else if (param.default_value) {
      auto value = eval(*param.default_value);
      if (value.ok()) {
        frame->set(param.name, std::move(*value));
      } else {
        status = value.error();
      }
    } else {
      frame->set(param.name, Value::undefined(param.name));
    }
  }
  Flow flow = Flow::kNormal;
  if (status.ok()) status = exec_body(macro.body, flow);
  --call_depth_;
  out_ = saved_out;
  frames_ = std::move(saved_frames);
  if (!status.ok()) return status.error();
  return Value(std::move(buffer));
}

}  // namespace kvq::chat
