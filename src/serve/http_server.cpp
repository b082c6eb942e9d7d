#include "serve/http_server.h"

#include "serve/client_socket.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

namespace kvq::serve {
namespace {

using nlohmann::json;

// Generated text may hold invalid UTF-8 (a byte token cut off by a stop): replace, never throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, int status, const std::string& message, const char* type,
                const char* code = nullptr, const char* param = nullptr) {
  json error = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (code) error["code"] = code;
  if (param) error["param"] = param;
  res.status = status;
  res.set_content(dump({{"error", error}}), "application/json");
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string next_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  return fmt::format("{}-{:x}{:06x}", prefix, unix_time(), counter.fetch_add(1) & 0xffffff);
}

json usage_json(const GenerationEvent& done) {
  return {{"prompt_tokens", done.prompt_tokens},
          {"completion_tokens", done.completion_tokens},
          {"total_tokens", done.prompt_tokens + done.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", done.cached_tokens}}}};
}

// The response objects of both endpoints, as OpenAI shapes them.
struct Shape {
  const CompletionRequest& request;
  std::string id, model;
  int64_t created = unix_time();
  bool chat() const { return request.endpoint == Endpoint::kChatCompletions; }

  json base(const char* object) const {
    return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
  }
  json chunk(const std::string& text, const json& finish_reason, bool first) const {
    json j = base(chat() ? "chat.completion.chunk" : "text_completion");
    json choice = {{"index", 0}, {"finish_reason", finish_reason}};
    if (chat()) {
      json delta = json::object();
      if (first) delta["role"] = "assistant";
      if (!text.empty() || (first && finish_reason.is_null())) delta["content"] = text;
      choice["delta"] = delta;
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    j["choices"] = json::array({choice});
    return j;
  }
  json whole(const std::string& text, const GenerationEvent& done) const {
    json j = base(chat() ? "chat.completion" : "text_completion");
    json choice = {{"index", 0}, {"finish_reason", done.finish_reason}};
    if (chat()) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    j["choices"] = json::array({choice});
    j["usage"] = usage_json(done);
    return j;
  }
};

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

constexpr auto kPoll = std::chrono::milliseconds(100);  // how often a waiting stream checks its client

}  // namespace

HttpServer::HttpServer(Engine& engine, const Tokenizer& tokenizer, ServerOptions options, ChatFormatter formatter)
    : engine_(engine),
      tokenizer_(tokenizer),
      options_(std::move(options)),
      formatter_(std::move(formatter)),
      server_(std::make_unique<httplib::Server>()) {
  // One thread per request in flight: every slot, every queued request, and a few for the cheap endpoints.
  const size_t threads = size_t(engine_.options().n_slots + engine_.options().queue_limit + 4);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_read_timeout(options_.io_timeout_seconds, 0);
  server_->set_write_timeout(options_.io_timeout_seconds, 0);
  server_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, 500, "internal error", "server_error");
  });
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      return send_error(res, 404, "no route " + req.method + " " + req.path, "invalid_request_error");
    if (res.status == 413) return send_error(res, 413, "the request body is too large", "invalid_request_error");
    send_error(res, res.status, fmt::format("HTTP {}", res.status), "invalid_request_error");
  });
  register_routes();
}

HttpServer::~HttpServer() = default;

Status HttpServer::bind() {
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ < 0) return make_error("cannot listen on {}", options_.host);
  } else {
    if (!server_->bind_to_port(options_.host, options_.port)) {
      return make_error("cannot listen on {}:{} (in use, or not an address of this machine)", options_.host,
                        options_.port);
    }
    port_ = options_.port;
  }
  return Status::Ok();
}

void HttpServer::serve() { server_->listen_after_bind(); }

void HttpServer::stop() { server_->stop(); }

void HttpServer::register_routes() {
  httplib::Server& s = *server_;
  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const json model = {{"id", options_.model_id}, {"object", "model"}, {"created", unix_time()}, {"owned_by", "kvq"}};
    res.set_content(dump({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const EngineStats st = engine_.stats();
    std::string out;
    const auto metric = [&](const char* name, const char* type, const char* help, double value) {
      out += fmt::format("# HELP kvq_{} {}\n# TYPE kvq_{} {}\nkvq_{} {}\n", name, help, name, type, name, value);
    };
    metric("requests_total", "counter", "Requests accepted into the queue.", double(st.requests));
    metric("requests_rejected_total", "counter", "Requests refused (busy, too long, shutting down).",
           double(st.rejected));
    metric("prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", double(st.prompt_tokens));
    metric("prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's cache.",
           double(st.cached_tokens));
    metric("completion_tokens_total", "counter", "Tokens generated.", double(st.completion_tokens));
    metric("generation_tokens_per_second", "gauge", "Generated tokens per second of forward passes.",
           st.generation_seconds > 0 ? double(st.completion_tokens) / st.generation_seconds : 0.0);
    metric("forward_passes_total", "counter", "Batched forward passes.", double(st.steps));
    metric("batched_sequences_total", "counter", "Sequences summed over forward passes.", double(st.batched_sequences));
    metric("queue_length", "gauge", "Requests waiting for a slot.", double(st.queued));
    metric("slots_active", "gauge", "Slots running a request.", double(st.active));
    metric("slots", "gauge", "Slots.", double(st.n_slots));
    metric("kv_cache_bytes", "gauge", "KV cache bytes allocated (all slots).", double(st.kv_bytes_allocated));
    metric("kv_cache_bytes_in_use", "gauge", "KV cache bytes holding cached positions.", double(st.kv_bytes_in_use));
    metric("kv_cache_tokens_in_use", "gauge", "Positions held in the slots' caches.", double(st.kv_tokens_in_use));
    res.set_content(out, "text/plain; version=0.0.4");
  });
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const json j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("content") || !j["content"].is_string()) {
      return send_error(res, 400, "'content' must be a string", "invalid_request_error", nullptr, "content");
    }
    const bool add_special = j.value("add_special", false);
    res.set_content(dump({{"tokens", tokenizer_.encode(j["content"].get<std::string>(), add_special)}}),
                    "application/json");
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const json j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) {
      return send_error(res, 400, "'tokens' must be an array of token ids", "invalid_request_error", nullptr, "tokens");
    }
    std::vector<int32_t> ids;
    for (const json& t : j["tokens"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= tokenizer_.n_vocab()) {
        return send_error(res, 400, fmt::format("token ids must be integers in [0, {})", tokenizer_.n_vocab()),
                          "invalid_request_error", nullptr, "tokens");
      }
      ids.push_back(t.get<int32_t>());
    }
    res.set_content(dump({{"content", tokenizer_.decode(ids)}}), "application/json");
  });
  const auto completion = [this](Endpoint endpoint) {
    return [this, endpoint](const httplib::Request& req, httplib::Response& res) {
      auto parsed = parse_completion_request(req.body, endpoint, options_.defaults);
      if (!parsed) return send_error(res, 400, parsed.error().message, "invalid_request_error");
      CompletionRequest& r = *parsed;
      if (!r.model.empty() && r.model != options_.model_id) {
        return send_error(
            res, 404, fmt::format("the model '{}' does not exist (this server runs '{}')", r.model, options_.model_id),
            "invalid_request_error", "model_not_found", "model");
      }
      std::vector<int32_t> prompt;
      if (endpoint == Endpoint::kChatCompletions) {
        if (!formatter_) {
          return send_error(res, 400,
                            "the model has no chat template: start kvq serve with --chat-template FILE, or use "
                            "/v1/completions",
                            "invalid_request_error");
        }
        auto text = formatter_(r.messages);
        if (!text) return send_error(res, 400, text.error().message, "invalid_request_error");
        prompt = tokenizer_.encode(*text, false, /*parse_special=*/true);
        if (tokenizer_.add_bos() && (prompt.empty() || prompt.front() != tokenizer_.bos())) {
          prompt.insert(prompt.begin(), tokenizer_.bos());
        }
      } else {
        prompt = tokenizer_.encode(r.prompt, true);
        if (prompt.empty()) prompt.push_back(tokenizer_.bos());
      }
      GenerationParams params{r.sampling, r.max_tokens, r.stop};
      if (!r.seeded) params.sampling.seed = std::random_device{}();
      SubmitStatus status;
      std::string message;
      std::shared_ptr<Job> job = engine_.submit(std::move(prompt), std::move(params), status, message);
      if (!job) {
        if (status == SubmitStatus::kPromptTooLong) return send_error(res, 400, message, "invalid_request_error");
        res.set_header("Retry-After", "1");
        return send_error(res, 503, message, "server_error", status == SubmitStatus::kBusy ? "busy" : "shutting_down");
      }
      auto request = std::make_shared<CompletionRequest>(std::move(r));
      auto shape = std::make_shared<Shape>(
          Shape{*request, next_id(endpoint == Endpoint::kChatCompletions ? "chatcmpl" : "cmpl"), options_.model_id});
      if (!request->stream) {
        const auto client = ClientSocket::find(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
        std::string text;
        for (;;) {
          if (client && client->closed()) {
            job->cancel();  // frees its slot at the engine's next step; nobody reads the answer
            return;
          }
          for (GenerationEvent& e : job->wait(kPoll)) {
            text += e.text;
            if (!e.done) continue;
            if (!e.error.empty()) return send_error(res, 500, e.error, "server_error");
            res.set_content(dump(shape->whole(text, e)), "application/json");
            return;
          }
        }
      }
      res.set_header("Cache-Control", "no-cache");
      auto first = std::make_shared<bool>(true);
      res.set_chunked_content_provider(
          "text/event-stream",
          [job, shape, request, first](size_t, httplib::DataSink& sink) {
            for (GenerationEvent& e : job->wait(kPoll)) {
              std::string out;
              if (!e.text.empty() || *first) out += sse(shape->chunk(e.text, nullptr, *first));
              *first = false;
              if (e.done) {
                if (!e.error.empty()) {
                  out += sse({{"error", {{"message", e.error}, {"type", "server_error"}}}});
                } else {
                  out += sse(shape->chunk("", e.finish_reason, false));
                  if (request->include_usage) {
                    json usage = shape->base(shape->chat() ? "chat.completion.chunk" : "text_completion");
                    usage["choices"] = json::array();
                    usage["usage"] = usage_json(e);
                    out += sse(usage);
                  }
                }
                out += "data: [DONE]\n\n";
                if (!sink.write(out.data(), out.size())) return false;
                sink.done();
                return true;
              }
              if (!out.empty() && !sink.write(out.data(), out.size())) return false;
            }
            return sink.is_writable();  // false: the client went away
          },
          [job](bool success) {
            if (!success) job->cancel();  // frees its slot at the engine's next step
          });
    };
  };
  s.Post("/v1/completions", completion(Endpoint::kCompletions));
  s.Post("/v1/chat/completions", completion(Endpoint::kChatCompletions));
}

}  // namespace kvq::serve
