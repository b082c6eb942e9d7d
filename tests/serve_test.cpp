// kvq serve's pieces, bottom up: the text stream (stop strings, UTF-8), the request parser, the engine
// (greedy output equals a plain generation loop, prefix reuse, queue limits, cancellation) and the HTTP
// server in-process on a loopback port (every endpoint, streaming, errors, a client that disconnects).
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "model/model.h"
#include "serve/chat_format.h"
#include "serve/engine.h"
#include "serve/http_server.h"
#include "serve/request.h"
#include "serve/text_stream.h"
#include "test_util.h"

namespace kvq::serve {
namespace {

using nlohmann::json;

TEST(TextStream, StopStringAcrossTokensEndsTheText) {
  TextStream s({"The end", "\n\n"});
  std::string out;
  for (const char* piece : {"Once", " upon", " a time.", " The", " e", "nd", " of it"}) out += s.push(piece);
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(out, "Once upon a time. ");
  EXPECT_EQ(s.push("more"), "");
}

TEST(TextStream, HoldsPartialStopAndIncompleteCharacters) {
  TextStream s({"STOP"});
  EXPECT_EQ(s.push("abc ST"), "abc ");  // "ST" may start "STOP"
  EXPECT_EQ(s.push("AR"), "STAR");      // it did not
  EXPECT_EQ(s.push("\xE2\x82"), "");    // first two bytes of the euro sign
  EXPECT_EQ(s.push("\xAC!"), "\xE2\x82\xAC!");
  EXPECT_EQ(s.push(" S"), " ");
  EXPECT_EQ(s.finish(), "S");  // a partial stop that never completed is text
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.sent(), "abc STAR\xE2\x82\xAC! S");
}

TEST(Request, ParsesEveryField) {
  const std::string body = R"({"model":"m","messages":[{"role":"system","content":"be brief"},
    {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
    "max_tokens":12,"temperature":0.5,"top_p":0.9,"top_k":7,"min_p":0.1,"seed":42,"stop":["a","b"],
    "stream":true,"stream_options":{"include_usage":true}})";
  auto r = parse_completion_request(body, Endpoint::kChatCompletions, SamplerParams{});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[1].content, "hi there");
  EXPECT_EQ(r->max_tokens, 12);
  EXPECT_FLOAT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_EQ(r->sampling.top_k, 7);
  EXPECT_TRUE(r->seeded);
  EXPECT_EQ(r->sampling.seed, 42u);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r->stream && r->include_usage);
}

TEST(Request, BadInputNamesTheField) {
  const SamplerParams d;
  const auto error = [&](const std::string& body, Endpoint e = Endpoint::kCompletions) {
    auto r = parse_completion_request(body, e, d);
    return r.ok() ? std::string("<ok>") : r.error().message;
  };
  EXPECT_NE(error("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error("[1,2]").find("object"), std::string::npos);
  EXPECT_NE(error(R"({"max_tokens":5})").find("'prompt'"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":"x","max_tokens":"5"})").find("'max_tokens'"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":"x","temperature":9})").find("'temperature'"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":"x","top_k":1.5})").find("integer"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":"x","stop":[1]})").find("'stop'"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":"x","stop":["a","b","c","d","e"]})").find("at most 4"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":"x","stream":"yes"})").find("'stream'"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":"x","n":3})").find("'n'"), std::string::npos);
  EXPECT_NE(error(R"({"prompt":["a","b"]})").find("'prompt'"), std::string::npos);
  EXPECT_NE(error(R"({"messages":[]})", Endpoint::kChatCompletions).find("non-empty"), std::string::npos);
  EXPECT_NE(error(R"({"messages":[{"role":"wizard","content":"x"}]})", Endpoint::kChatCompletions).find("wizard"),
            std::string::npos);
  EXPECT_NE(error(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", Endpoint::kChatCompletions)
                .find("text"),
            std::string::npos);
}

// stories260K: tiny and real, so greedy text is meaningful and the tests stay fast (also under ASan).
struct Fixture {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  Fixture() {
    auto m = Model::load(test::shared_path("data/models/stories260K/stories260K.gguf"));
    KVQ_CHECK(m.ok());
    model = std::move(*m);
    auto t = Tokenizer::from_gguf(model->file());
    KVQ_CHECK(t.ok());
    tokenizer = std::make_unique<Tokenizer>(std::move(*t));
  }
  std::vector<KvTypes> types(KvTypes kv = {GgmlType::Q8_0, GgmlType::Q4_0}) const {
    return std::vector<KvTypes>(size_t(model->config().n_layer), kv);
  }
  // What `kvq run --temp 0` prints after the prompt: one forward for the prompt, then one per token.
  std::string greedy(const std::string& prompt, int n, KvTypes kv = {GgmlType::Q8_0, GgmlType::Q4_0}) const {
    std::vector<int32_t> tokens = tokenizer->encode(prompt, true);
    auto cache = model->make_cache(256, types(kv));
    std::vector<float> logits(size_t(model->config().n_vocab));
    KVQ_CHECK(model->forward(tokens, 0, *cache, logits.data(), false).ok());
    std::string text;
    int pos = int(tokens.size());
    for (int i = 0; i < n; ++i) {
      const int32_t next = argmax(logits.data(), model->config().n_vocab);
      if (tokenizer->is_eog(next)) break;
      text += tokenizer->token_to_piece(next);
      const int32_t one[1] = {next};
      KVQ_CHECK(model->forward(one, pos++, *cache, logits.data(), false).ok());
    }
    return text;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

GenerationParams greedy_params(int max_tokens) {
  GenerationParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = max_tokens;
  return p;
}

// Runs a job to its end; returns the text and the final event.
std::pair<std::string, GenerationEvent> collect(Job& job) {
  std::string text;
  for (;;) {
    for (GenerationEvent& e : job.wait(std::chrono::milliseconds(100))) {
      text += e.text;
      if (e.done) return {text, e};
    }
  }
}

TEST(Engine, GreedyEqualsPlainGenerationAndReusesPrefixes) {
  Fixture& f = fixture();
  auto engine = Engine::create(*f.model, *f.tokenizer, {1, 256, f.types(), 4, 256});
  ASSERT_TRUE(engine.ok());
  SubmitStatus status;
  std::string message;
  const std::string prompt = "Once upon a time, there was a";
  auto job = (*engine)->submit(f.tokenizer->encode(prompt, true), greedy_params(30), status, message);
  ASSERT_TRUE(job);
  auto [text, done] = collect(*job);
  EXPECT_EQ(text, f.greedy(prompt, 30));
  EXPECT_EQ(done.finish_reason, "length");
  EXPECT_EQ(done.completion_tokens, 30);
  EXPECT_EQ(done.cached_tokens, 0);
  // A follow-up that extends the conversation reuses every token the slot holds.
  const std::string longer = prompt + text + " Then";
  auto again = (*engine)->submit(f.tokenizer->encode(longer, true), greedy_params(10), status, message);
  auto [text2, done2] = collect(*again);
  EXPECT_GT(done2.cached_tokens, done.prompt_tokens);
  EXPECT_EQ(text2, f.greedy(longer, 10));
}

TEST(Engine, RefusesWhatDoesNotFitAndFreesCancelledSlots) {
  Fixture& f = fixture();
  SubmitStatus status;
  std::string message;
  {
    auto engine = Engine::create(*f.model, *f.tokenizer, {1, 64, f.types(), 1, 256});
    ASSERT_TRUE(engine.ok());
    std::vector<int32_t> long_prompt(64, 100);
    EXPECT_FALSE((*engine)->submit(long_prompt, greedy_params(1), status, message));
    EXPECT_EQ(status, SubmitStatus::kPromptTooLong);
    EXPECT_NE(message.find("64"), std::string::npos) << message;
  }
  // One slot, one queue place: once the first request holds the slot and the second waits, a third is busy.
  // The first runs until the end of its context unless cancelled; on a loaded machine this thread may be
  // descheduled long enough for it to get there first (the slot is then freed by finishing, not by the
  // cancel), so the scenario is retried on a fresh engine until the cancel lands.
  bool cancelled = false;
  for (int attempt = 0; attempt < 5 && !cancelled; ++attempt) {
    auto engine = Engine::create(*f.model, *f.tokenizer, {1, 256, f.types(), 1, 256});
    ASSERT_TRUE(engine.ok());
    auto running = (*engine)->submit({1, 100, 200}, greedy_params(-1), status, message);
    ASSERT_TRUE(running);
    for (int i = 0; i < 500 && (*engine)->stats().active == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto waiting = (*engine)->submit({1, 300}, greedy_params(5), status, message);
    ASSERT_TRUE(waiting);
    EXPECT_FALSE((*engine)->submit({1, 7}, greedy_params(1), status, message));
    EXPECT_EQ(status, SubmitStatus::kBusy);
    running->cancel();  // frees the slot for the waiting one
    auto [text, done] = collect(*waiting);
    EXPECT_TRUE(done.error.empty()) << done.error;
    EXPECT_EQ(done.completion_tokens, 5);
    const std::string outcome = collect(*running).second.error;
    EXPECT_TRUE(outcome.empty() || outcome == "cancelled") << outcome;
    cancelled = outcome == "cancelled";
    (*engine)->drain();
    EXPECT_EQ((*engine)->stats().active, 0);
    EXPECT_FALSE((*engine)->submit({1, 2}, greedy_params(1), status, message));
    EXPECT_EQ(status, SubmitStatus::kDraining);
  }
  EXPECT_TRUE(cancelled) << "the first request always finished before its cancel";
}

// The HTTP server in this process on a free loopback port.
class Server {
 public:
  explicit Server(int n_slots, int queue = 8) {
    Fixture& f = fixture();
    auto engine = Engine::create(*f.model, *f.tokenizer, {n_slots, 256, f.types(), queue, 256});
    KVQ_CHECK(engine.ok());
    engine_ = std::move(*engine);
    auto formatter =
        make_chat_formatter(f.model->file(), *f.tokenizer,
                            test::shared_path("data/chat-templates/templates/meta-llama-Llama-3.2-3B-Instruct.jinja"));
    KVQ_CHECK(formatter.ok());
    ServerOptions options;
    options.port = 0;
    options.model_id = "stories260K";
    options.max_body_bytes = 1 << 16;
    http_ = std::make_unique<HttpServer>(*engine_, *f.tokenizer, options, *formatter);
    KVQ_CHECK(http_->bind().ok());
    thread_ = std::thread([this] { http_->serve(); });
  }
  ~Server() {
    http_->stop();
    thread_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", http_->port());
    c.set_read_timeout(60, 0);
    return c;
  }
  Engine& engine() { return *engine_; }
  int port() const { return http_->port(); }

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<HttpServer> http_;
  std::thread thread_;
};

json post_json(httplib::Client& c, const char* path, const json& body, int expected_status = 200) {
  auto res = c.Post(path, body.dump(), "application/json");
  EXPECT_TRUE(res) << path;
  if (!res) return json();
  EXPECT_EQ(res->status, expected_status) << res->body;
  return json::parse(res->body, nullptr, false);
}

TEST(Http, CompletionsChatModelsTokenizeAndErrors) {
  Server server(2);
  Fixture& f = fixture();
  httplib::Client c = server.client();
  EXPECT_EQ(c.Get("/health")->status, 200);
  const json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["id"], "stories260K");

  const json done =
      post_json(c, "/v1/completions",
                {{"model", "stories260K"}, {"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}});
  EXPECT_EQ(done["object"], "text_completion");
  EXPECT_EQ(done["choices"][0]["text"], f.greedy("Once upon a time", 20));
  EXPECT_EQ(done["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(done["usage"]["completion_tokens"], 20);
  EXPECT_EQ(done["usage"]["prompt_tokens"], f.tokenizer->encode("Once upon a time", true).size());
  EXPECT_EQ(done["usage"]["total_tokens"], done["usage"]["prompt_tokens"].get<int>() + 20);

  // Seeds reproduce; stop strings stop (and are not part of the text).
  const json seeded = {{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 1.0}, {"seed", 7}};
  EXPECT_EQ(post_json(c, "/v1/completions", seeded)["choices"][0]["text"],
            post_json(c, "/v1/completions", seeded)["choices"][0]["text"]);
  const std::string full = done["choices"][0]["text"];
  const std::string stop = full.substr(full.size() / 2, 4);
  const json stopped = post_json(
      c, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}, {"stop", stop}});
  EXPECT_EQ(stopped["choices"][0]["text"], full.substr(0, full.find(stop)));
  EXPECT_EQ(stopped["choices"][0]["finish_reason"], "stop");

  const json chat = post_json(c, "/v1/chat/completions",
                              {{"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}}, {"max_tokens", 8}});
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_GT(chat["usage"]["prompt_tokens"].get<int>(), 10);  // the template's header tokens

  const json tokens = post_json(c, "/tokenize", {{"content", "Once upon a time"}});
  EXPECT_EQ(post_json(c, "/detokenize", {{"tokens", tokens["tokens"]}})["content"], "Once upon a time");

  // Errors: OpenAI error objects, and the server keeps serving.
  auto bad = c.Post("/v1/completions", "{oops", "application/json");
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["type"], "invalid_request_error");
  EXPECT_EQ(
      post_json(c, "/v1/completions", {{"prompt", 5}}, 400)["error"]["message"].get<std::string>().find("'prompt'"),
      0u);
  EXPECT_EQ(post_json(c, "/v1/completions", {{"model", "gpt-4"}, {"prompt", "x"}}, 404)["error"]["code"],
            "model_not_found");
  const json too_long = post_json(c, "/v1/completions", {{"prompt", std::string(3000, 'a')}}, 400);
  EXPECT_NE(too_long["error"]["message"].get<std::string>().find("256"), std::string::npos) << too_long;
  EXPECT_EQ(c.Post("/v1/completions", std::string(1 << 17, ' '), "application/json")->status, 413);
  EXPECT_EQ(c.Get("/nowhere")->status, 404);
  EXPECT_EQ(post_json(c, "/detokenize", {{"tokens", {1, -5}}}, 400)["error"]["param"], "tokens");
  EXPECT_EQ(c.Get("/health")->status, 200);
}

// Server-sent events: "data: {...}\n\n" chunks, then "data: [DONE]".
std::vector<json> parse_sse(const std::string& body, bool& saw_done) {
  std::vector<json> events;
  saw_done = false;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    const std::string data = body.substr(at + 6, end - at - 6);
    at = end;
    if (data == "[DONE]") {
      saw_done = true;
      continue;
    }
    events.push_back(json::parse(data));
  }
  return events;
}

TEST(Http, StreamingAndClientsThatLeave) {
  Server server(2);
  Fixture& f = fixture();
  httplib::Client c = server.client();
  const json body = {{"prompt", "Once upon a time"},
                     {"max_tokens", 16},
                     {"temperature", 0},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  auto res = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  bool saw_done = false;
  const std::vector<json> events = parse_sse(res->body, saw_done);
  EXPECT_TRUE(saw_done);
  ASSERT_GE(events.size(), 3u);
  std::string text;
  for (const json& e : events) {
    if (!e["choices"].empty()) text += e["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, f.greedy("Once upon a time", 16));
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 16);

  // A client that reads a few chunks and hangs up: its slot is freed, not run to max_tokens.
  const json endless = {{"prompt", "Once"}, {"max_tokens", 200}, {"stream", true}, {"temperature", 0}};
  int chunks = 0;
  httplib::Client leaver = server.client();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = endless.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  auto left = leaver.send(req);
  EXPECT_FALSE(left);  // we cancelled the read
  for (int i = 0; i < 100 && server.engine().stats().active > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server.engine().stats().active, 0);
  EXPECT_LT(server.engine().stats().completion_tokens, 16u + 200u);

  // A non-streaming request whose client hangs up once its request is running: freed as well (the handler
  // watches the connection while it waits for the whole answer).
  const EngineStats before = server.engine().stats();
  const std::string request_body = json{{"prompt", "Once"}, {"max_tokens", 240}, {"temperature", 0}}.dump();
  const std::string request = fmt::format(
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n{}",
      request_body.size(), request_body);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(server.port()));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(send(fd, request.data(), request.size(), 0), ssize_t(request.size()));
  for (int i = 0; i < 2000 && server.engine().stats().requests == before.requests; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  close(fd);
  for (int i = 0; i < 100 && server.engine().stats().active > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const EngineStats after = server.engine().stats();
  EXPECT_EQ(after.requests, before.requests + 1);
  EXPECT_EQ(after.active, 0);
  EXPECT_LT(after.completion_tokens - before.completion_tokens, 120u);  // of 240 asked for
}

}  // namespace
}  // namespace kvq::serve
