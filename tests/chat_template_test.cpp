// Chat-template renderer: every case of ../shared/data/chat-templates/manifest.json (exact bytes
// for `ok`, the raise_exception message for `template_error`, no crash for `oracle_error`), plus
// unit tests of the expression language, whitespace control and error paths.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "chat/chat_template.h"
#include "chat/gguf_chat.h"
#include "gguf/gguf.h"
#include "test_util.h"

namespace kvq::chat {
namespace {

using Json = nlohmann::ordered_json;

const std::string kFixtureDir = "data/chat-templates/";

std::string fixture_path(const std::string& relative) { return test::shared_path(kFixtureDir + relative); }
Json read_json(const std::string& relative) { return Json::parse(test::read_text_file(fixture_path(relative))); }

// The fixtures' strftime_now() time: 2026-12-01 00:00:00.
RenderOptions fixture_options() {
  RenderOptions options;
  std::tm when{};
  when.tm_year = 2026 - 1900;
  when.tm_mon = 11;
  when.tm_mday = 1;
  when.tm_wday = 2;  // a Tuesday
  when.tm_yday = 334;
  options.now = when;
  return options;
}

// Renders one manifest case the way the fixtures' README prescribes.
Result<std::string> render_case(const Json& c) {
  auto tmpl = ChatTemplate::parse(test::read_text_file(fixture_path(c["template"])));
  if (!tmpl.ok()) return tmpl.error();
  Json context = read_json(c["variables"]);
  context["messages"] = read_json(c["conversation"])["messages"];
  context["add_generation_prompt"] = c["add_generation_prompt"].get<bool>();
  return tmpl->render(context, fixture_options());
}

// Where two renderings first differ, for a readable failure.
std::string first_difference(const std::string& got, const std::string& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto around = [&](const std::string& s) { return Json(s.substr(i < 40 ? 0 : i - 40, 100)).dump(); };
  return "first difference at byte " + std::to_string(i) + "\n  got:  " + around(got) + "\n  want: " + around(want);
}

TEST(ChatTemplateFixtures, EveryManifestCase) {
  const Json manifest = read_json("manifest.json");
  int ok_total = 0, ok_exact = 0, error_total = 0, error_matched = 0, oracle_total = 0, oracle_like_jinja2 = 0;
  for (const Json& c : manifest["cases"]) {
    const std::string id = c["id"];
    const std::string status = c["status"];
    auto result = render_case(c);
    if (status == "ok") {
      ++ok_total;
      const std::string want = test::read_text_file(fixture_path(c["expected_output"]));
      if (!result.ok()) {
        ADD_FAILURE() << id << ": render failed: " << result.error().message;
      } else if (*result != want) {
        ADD_FAILURE() << id << ": " << first_difference(*result, want);
      } else {
        ++ok_exact;
      }
    } else if (status == "template_error") {
      ++error_total;
      const std::string want = c["expected_error"]["message"];
      if (result.ok()) {
        ADD_FAILURE() << id << ": rendered, but the template should raise '" << want << "'";
      } else if (result.error().message != want) {
        ADD_FAILURE() << id << ": error '" << result.error().message << "', want '" << want << "'";
      } else {
        ++error_matched;
      }
    } else {
      // The oracle itself failed; Python Jinja2 renders these (a for over undefined `tools` is an
      // empty loop), so only report whether kvq matches Jinja2's rendering.
      ++oracle_total;
      if (result.ok() && c.contains("jinja2_output") &&
          *result == test::read_text_file(fixture_path(c["jinja2_output"]))) {
        ++oracle_like_jinja2;
      } else if (!result.ok()) {
        std::printf("oracle_error case %s: kvq error: %s\n", id.c_str(), result.error().message.c_str());
      }
    }
  }
  std::printf(
      "ok cases exact: %d/%d; template_error cases matched: %d/%d; oracle_error cases equal to "
      "Jinja2's rendering: %d/%d\n",
      ok_exact, ok_total, error_matched, error_total, oracle_like_jinja2, oracle_total);
  EXPECT_EQ(ok_exact, ok_total);
  EXPECT_EQ(error_matched, error_total);
  EXPECT_EQ(ok_total, manifest["counts"]["rendered"].get<int>());
  EXPECT_EQ(error_total, manifest["counts"]["template_errors"].get<int>());
}

// Rendering must be cheap next to a forward pass: prints the time for the largest template and the
// longest conversation (a figure to read, not an assertion: timing is not a test).
TEST(ChatTemplateFixtures, ReportsTheRenderTimeOfTheLargestTemplate) {
  const Json manifest = read_json("manifest.json");
  for (const Json& c : manifest["cases"]) {
    if (c["id"] != "openai-gpt-oss-120b__c06_long_multi_turn__gp1") continue;
    auto tmpl = ChatTemplate::parse(test::read_text_file(fixture_path(c["template"])));
    ASSERT_TRUE(tmpl.ok()) << tmpl.error().message;
    Json context = read_json(c["variables"]);
    context["messages"] = read_json(c["conversation"])["messages"];
    context["add_generation_prompt"] = true;
    const RenderOptions options = fixture_options();
    constexpr int kRuns = 50;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRuns; ++i) ASSERT_TRUE(tmpl->render(context, options).ok());
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    std::printf("gpt-oss template, 12 messages: %.1f us per render\n", us / kRuns);
    return;
  }
  FAIL() << "case not found in the manifest";
}

// ---- unit tests ----

Result<std::string> render(std::string_view source, const Json& context = Json::object()) {
  auto tmpl = ChatTemplate::parse(source);
  if (!tmpl.ok()) return tmpl.error();
  return tmpl->render(context, fixture_options());
}

std::string render_ok(std::string_view source, const Json& context = Json::object()) {
  auto out = render(source, context);
  EXPECT_TRUE(out.ok()) << source << " -> " << out.error().message;
  return out.ok() ? *out : std::string("<error>");
}

std::string render_error(std::string_view source, const Json& context = Json::object()) {
  auto out = render(source, context);
  EXPECT_FALSE(out.ok()) << source << " rendered " << (out.ok() ? *out : "");
  return out.ok() ? std::string() : out.error().message;
}

TEST(ChatTemplateExpressions, LiteralsAndPrinting) {
  EXPECT_EQ(render_ok("{{ 1 }} {{ 1.0 }} {{ 2.5e-5 }} {{ 1e20 }} {{ 'a' ~ \"b\" }}"), "1 1.0 2.5e-05 1e+20 ab");
  EXPECT_EQ(render_ok("{{ true }} {{ False }} {{ none }} {{ undefined_name }}|"), "True False None |");
  EXPECT_EQ(render_ok("{{ [1, 'a', none, true] }}"), "[1, 'a', None, True]");
  EXPECT_EQ(render_ok("{{ {'k': [1.5], \"it's\": 2} }}"), "{'k': [1.5], \"it's\": 2}");
  EXPECT_EQ(render_ok("{{ 'tab\\tnl\\nq\\'\\x41\\u00e9' }}"), "tab\tnl\nq'A\xc3\xa9");
  EXPECT_EQ(render_ok("{{ 'a' 'b' }}"), "ab");
}

TEST(ChatTemplateExpressions, Arithmetic) {
  EXPECT_EQ(render_ok("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}"),
            "3 -4 2 3.5 1024 7");
  EXPECT_EQ(render_ok("{{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'x' + 'y' }} {{ 1 ~ 2 }} {{ -(3) }}"),
            "ababab [1, 2] xy 12 -3");
  EXPECT_NE(render_error("{{ 9223372036854775807 + 1 }}").find("overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(render_error("{{ 'a' + 1 }}").find("unsupported operand"), std::string::npos);
}

TEST(ChatTemplateExpressions, ComparisonsAndLogic) {
  EXPECT_EQ(render_ok("{{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 2 > 1 }} {{ 'b' <= 'a' }} {{ [1,2] == [1,2] }}"),
            "True True True False True");
  EXPECT_EQ(render_ok("{{ 'ell' in 'hello' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' in nothing }}"),
            "True True True False");
  EXPECT_EQ(render_ok("{{ 0 or 'fallback' }} {{ 1 and 'second' }} {{ not 0 }} {{ not x is defined }}"),
            "fallback second True True");
  EXPECT_EQ(render_ok("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1 == 1 }} {{ (1, 'a') }} {{ (1,) }}"),
            "True False True (1, 'a') (1,)");
  EXPECT_EQ(render_ok("{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'yes' if 0 }}]"), "yes no []");
}

TEST(ChatTemplateExpressions, AttributesSubscriptsSlices) {
  const Json ctx = {{"m", {{"role", "user"}, {"content", "hi"}}}, {"xs", {1, 2, 3, 4}}, {"s", "h\xc3\xa9llo"}};
  EXPECT_EQ(render_ok("{{ m.role }} {{ m['content'] }} {{ m.missing is defined }} {{ xs[-1] }} {{ xs.0 }}", ctx),
            "user hi False 4 1");
  EXPECT_EQ(render_ok("{{ xs[1:3] }} {{ xs[::-1] }} {{ xs[:-1] }} {{ xs[::2] }} {{ s[1:3] }} {{ s[::-1] }}", ctx),
            "[2, 3] [4, 3, 2, 1] [1, 2, 3] [1, 3] \xc3\xa9l oll\xc3\xa9h");
  EXPECT_EQ(render_ok("{{ xs[10] is defined }} {{ none.attr is defined }}", ctx), "False False");
  EXPECT_NE(render_error("{{ nothing.attr }}").find("'nothing' is undefined"), std::string::npos);
}

TEST(ChatTemplateExpressions, FiltersAndMethods) {
  const Json ctx = {{"msgs", {{{"role", "system"}, {"n", 2}}, {{"role", "user"}, {"n", 1}}}},
                    {"d", {{"b", 1}, {"A", 2}}}};
  EXPECT_EQ(render_ok("{{ '  x  ' | trim }}|{{ 'abc' | upper }}|{{ [1,2,3] | length }}|{{ 'a,b' .split(',') }}"),
            "x|ABC|3|['a', 'b']");
  EXPECT_EQ(render_ok("{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}", ctx), "1");
  EXPECT_EQ(render_ok("{{ msgs | map(attribute='role') | join(', ') }}", ctx), "system, user");
  EXPECT_EQ(render_ok("{{ msgs | sort(attribute='n') | map(attribute='n') | list }}", ctx), "[1, 2]");
  EXPECT_EQ(render_ok("{% for k, v in d | dictsort %}{{ k }}={{ v }};{% endfor %}", ctx), "A=2;b=1;");
  EXPECT_EQ(render_ok("{% for k, v in d.items() %}{{ k }}{% endfor %}{{ d.get('zz', 'dflt') }}", ctx), "bAdflt");
  EXPECT_EQ(render_ok("{{ d | tojson }} {{ {'a': [1, 'é\"']} | tojson(indent=2) }}", ctx),
            "{\"b\": 1, \"A\": 2} {\n  \"a\": [\n    1,\n    \"é\\\"\"\n  ]\n}");
  EXPECT_EQ(render_ok("{{ 'é😀\\n' | tojson(ensure_ascii=true) }} {{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"),
            "\"\\u00e9\\ud83d\\ude00\\n\" {\"a\": 2, \"b\": 1}");
  EXPECT_EQ(render_ok("{{ x | default('dflt') }} {{ '' | default('e', true) }} {{ '42' | int + 1 }}"), "dflt e 43");
  EXPECT_EQ(render_ok("{{ 'a<think>b'.split('<think>')[-1].lstrip() }} {{ 'xxhixx'.strip('x') }}"), "b hi");
  EXPECT_EQ(
      render_ok("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'aXa'.replace('a', 'b') }}"),
      "True True bXb");
  EXPECT_EQ(
      render_ok(
          "{{ \"it's a-b (c)\" | title }} {{ 'x' ~ [{'k': 'v'}] | title }} {{ 2.5 | round }} {{ 2.567 | round(2) }}"),
      "It's A-B (C) x[{'k': 'v'}] 2.0 2.57");
  EXPECT_EQ(render_ok("{{ ['b', 'a'] | first }} {{ 'xyz' | last }} {{ [3, 1] | unique | list }} {{ 5 | string }}"),
            "b z [3, 1] 5");
}

TEST(ChatTemplateExpressions, Tests) {
  EXPECT_EQ(render_ok("{{ 'a' is string }} {{ 1 is number }} {{ true is boolean }} {{ {} is mapping }} "
                      "{{ [] is iterable }} {{ none is none }} {{ 3 is odd }} {{ 4 is divisibleby 2 }} "
                      "{{ 1 is not string }} {{ x is undefined }}"),
            "True True True True True True True True True True");
}

TEST(ChatTemplateStatements, LoopsAndScopes) {
  EXPECT_EQ(render_ok("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}"
                      "{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "103TrueFalse3;212FalseFalse3;321FalseTrue3;");
  EXPECT_EQ(render_ok("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render_ok("{% for x in range(10) if x is odd %}{{ x }}{% if loop.last %}.{% endif %}{% endfor %}"),
            "13579.");
  EXPECT_EQ(render_ok("{% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}"
                      "{% endif %}{{ x }}{% endfor %}"),
            "02");
  EXPECT_EQ(render_ok("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render_ok("{% set ns = namespace(x=1) %}{% for i in [1] %}{% set ns.x = 2 %}{% endfor %}{{ ns.x }}"), "2");
  EXPECT_EQ(render_ok("{% for x in undefined_list %}a{% endfor %}|"), "|");
  EXPECT_EQ(render_ok("{% for a in [1, 2] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}"), "-2;1-;");
  EXPECT_EQ(render_ok("{% set a, b = [1, 2] %}{{ b }}{% set c %}x{{ a }}{% endset %}{{ c }}"), "2x1");
  // Each iteration starts from the outer scope (Jinja2 prints 5, 6, 7 here, then the outer 5).
  EXPECT_EQ(render_ok("{% set x = 5 %}{% for i in range(3) %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"), "5675");
  EXPECT_EQ(render_ok("{% set a, b = 1, 'two' %}{{ b }}{{ a }}"), "two1");
}

TEST(ChatTemplateStatements, Macros) {
  EXPECT_EQ(render_ok("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                      "{{ greet('a') }} {{ greet('b', punct='?') }}"),
            "Hi a! Hi b?");
  EXPECT_EQ(render_ok("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}"
                      "{% endmacro %}{{ fact(5) }}"),
            "120");
  EXPECT_NE(render_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nested deeper"), std::string::npos);
}

TEST(ChatTemplateWhitespace, TrimAndLstripBlocks) {
  // trim_blocks eats the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render_ok("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(render_ok("x  {%- if true -%}  y  {%- endif -%}  z"), "xyz");
  EXPECT_EQ(render_ok("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(render_ok("{{ 'x' }}  {% if true %}y{% endif %}"), "x  y");  // lstrip only at line start
  EXPECT_EQ(render_ok("a\n  {%+ if true %}b{% endif +%}\nc"), "a\n  b\nc");
  EXPECT_EQ(render_ok("a {# note #}\n  {#- x -#}  b"), "a b");
  EXPECT_EQ(render_ok("line\n"), "line");  // one trailing newline dropped
  EXPECT_EQ(render_ok("line\n\n"), "line\n");
  EXPECT_EQ(render_ok("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
}

TEST(ChatTemplateErrors, RaiseExceptionMessageIsVerbatim) {
  EXPECT_EQ(render_error("{% if true %}{{ raise_exception('Roles must alternate') }}{% endif %}"),
            "Roles must alternate");
}

TEST(ChatTemplateErrors, ParseErrorsNameTheProblemAndPlace) {
  auto expect_parse_error = [](std::string_view source, std::string_view fragment) {
    auto tmpl = ChatTemplate::parse(source);
    ASSERT_FALSE(tmpl.ok()) << source;
    EXPECT_NE(tmpl.error().message.find(fragment), std::string::npos) << tmpl.error().message;
    EXPECT_NE(tmpl.error().message.find("line "), std::string::npos) << tmpl.error().message;
  };
  expect_parse_error("{% if x %}never closed", "not closed");
  expect_parse_error("{% include 'other.jinja' %}", "unsupported construct '{% include %}'");
  expect_parse_error("{% for x in xs recursive %}{% endfor %}", "recursive");
  expect_parse_error("{{ 1 + }}", "expected an expression");
  expect_parse_error("{{ 'unterminated }}", "unterminated string");
  expect_parse_error("{{ x ", "unclosed '{{'");
  expect_parse_error("{{ x $ y }}", "unexpected character '$'");
  expect_parse_error("{{ \x01 }}", "unexpected byte 0x01");
  expect_parse_error("text {# comment", "unclosed comment");
  expect_parse_error("{% endif %}", "no open block");
  expect_parse_error("{% break %}", "outside a for loop");
  expect_parse_error("{% frobnicate %}", "unknown tag");

  expect_parse_error("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}", "nested too deeply");
  expect_parse_error("{{ f(*args) }}", "*args");
  expect_parse_error("{{ x is string is defined }}", "cannot chain tests");
}

TEST(ChatTemplateErrors, RuntimeErrorsAreLocated) {
  EXPECT_EQ(render_error("\n  {{ 1 + none }}"),
            "chat template line 2, column 8: unsupported operand type(s) for +: 'int' and 'NoneType'");
  EXPECT_NE(render_error("{{ [].append(1) }}").find("unsupported construct: list.append()"), std::string::npos);
  EXPECT_NE(render_error("{{ 'a %s' % 1 }}").find("printf-style"), std::string::npos);
  EXPECT_NE(render_error("{% set x = 1 %}{% set x.y = 2 %}").find("not a namespace"), std::string::npos);
  // Unknown filters and tests fail where they are used (as in Jinja2 3.x), naming themselves.
  EXPECT_EQ(render_error("{{ 'x' | no_such_filter }}"),
            "chat template line 1, column 10: unsupported construct: no filter named 'no_such_filter'");
  EXPECT_NE(render_error("{{ 1 is no_such_test }}").find("no test named 'no_such_test'"), std::string::npos);
  EXPECT_EQ(render_ok("{% if false %}{{ x | from_json }}{% endif %}ok"), "ok");
  EXPECT_NE(render_error("{{ xs[missing:] }}", Json{{"xs", {1}}}).find("slice indices"), std::string::npos);
  EXPECT_NE(render_error("{{ undefined_fn() }}").find("'undefined_fn' is undefined"), std::string::npos);
}

TEST(ChatTemplateErrors, HostileTemplatesHitLimits) {
  EXPECT_NE(
      render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}").find("steps"),
      std::string::npos);
  EXPECT_NE(render_error("{{ 'x' * 100000000 }}").find("exceeds the limit"), std::string::npos);
  EXPECT_NE(render_error("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                         "{% endfor %}")
                .find("exceeds the limit"),
            std::string::npos);
  EXPECT_NE(render_error("{{ range(100000000000) }}").find("exceeds the limit"), std::string::npos);
}

TEST(ChatTemplateApi, MakeChatContext) {
  const Json ctx = make_chat_context({{"user", "hi"}}, true, {{"bos_token", "<s>"}});
  EXPECT_EQ(render_ok("{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
                      "{% if add_generation_prompt %}>{% endif %}",
                      ctx),
            "<s>[user:hi]>");
  EXPECT_EQ(render_ok("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y') }}"),
            "01 Dec 2026|December 01, 2026");
}

TEST(ChatTemplateApi, LoadsTheTemplateAndSpecialTokensFromGguf) {
  gguf::Writer writer;
  writer.set_string("general.architecture", "llama");
  writer.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "hi"});
  writer.set_u32("tokenizer.ggml.bos_token_id", 1);
  writer.set_u32("tokenizer.ggml.eos_token_id", 2);
  writer.set_string("tokenizer.chat_template",
                    "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}");
  const std::string path = test::temp_dir() + "/chat_template.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = gguf::File::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto loaded = load_gguf_chat_template(*file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  auto text = loaded->tmpl.render(make_chat_context({{"user", "hi"}}, false, loaded->variables));
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "<s>hi</s>");

  gguf::Writer bare;
  bare.set_string("general.architecture", "llama");
  ASSERT_TRUE(bare.write(path).ok());
  auto bare_file = gguf::File::open(path);
  ASSERT_TRUE(bare_file.ok());
  auto missing = load_gguf_chat_template(*bare_file);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no tokenizer.chat_template"), std::string::npos);
}

}  // namespace
}  // namespace kvq::chat
