// Built-in filters (`x | trim`), tests (`x is string`) and methods (`s.split(',')`, `d.items()`)
// of the chat-template language, plus the attribute and subscript rules of Jinja2's sandbox.
#pragma once

#include <cstdint>
#include <string_view>

#include "chat/value.h"

namespace kvq::chat {

// Bounds that turn a hostile template's runaway loops, recursion or output into an error.
// Real templates stay orders of magnitude below the defaults.
struct RenderLimits {
  size_t max_output_bytes = 8u << 20;  // also bounds every string value built while rendering
  size_t max_items = 1u << 20;         // elements of one list built while rendering (range, +, *)
  uint64_t max_steps = 4'000'000;      // statements, loop iterations and elements processed
  int max_call_depth = 64;             // nested macro calls
};

// Work counter shared by the renderer and the built-ins.
class RenderBudget {
 public:
  explicit RenderBudget(const RenderLimits& limits) : limits_(limits) {}
  const RenderLimits& limits() const { return limits_; }

  // Spends `work` steps; fails when the template has done more work than the limit allows.
  Status charge(uint64_t work) {
    steps_ += work;
    if (steps_ > limits_.max_steps) return make_error("rendering exceeded {} steps", limits_.max_steps);
    return {};
  }
  Status check_string(size_t bytes) const {
    if (bytes > limits_.max_output_bytes) return make_error("string of {} bytes exceeds the limit", bytes);
    return {};
  }
  Status check_items(size_t count) const {
    if (count > limits_.max_items) return make_error("list of {} items exceeds the limit", count);
    return {};
  }

 private:
  const RenderLimits& limits_;
  uint64_t steps_ = 0;
};

using FilterFunction = Result<Value> (*)(const Value& input, const CallArgs& args, RenderBudget& budget);
using TestFunction = Result<bool> (*)(const Value& input, const CallArgs& args);

// nullptr when the template language has no such filter / test.
FilterFunction find_filter(std::string_view name);
TestFunction find_test(std::string_view name);

// `obj.name`: dict methods first, then the key (Jinja2's getattr order); missing → undefined.
// Fails only on an undefined `obj`, as Jinja2's Undefined does.
// `budget` bounds the work of the methods it returns (str.replace can grow a string).
Result<Value> get_attribute(const Value& obj, std::string_view name, RenderBudget& budget);
// `obj[key]`: key or index first, then a method of that name; missing → undefined.
Result<Value> get_item(const Value& obj, const Value& key, RenderBudget& budget);
// `obj[start:stop:step]` on lists and strings (code points), Python semantics.
Result<Value> get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step,
                        RenderBudget& budget);

// Items that `for x in value` visits: list items, dict keys, string characters; undefined → none.
// Charges one step per item.
Result<Array> iterate(const Value& value, RenderBudget& budget);

// Python's len(); undefined has length 0.
Result<int64_t> length_of(const Value& value);

}  // namespace kvq::chat
