// kvq serve's HTTP front: OpenAI-compatible endpoints (cpp-httplib) over the Engine. Handlers run on
// httplib's thread pool; each waits on its Job while the engine thread batches all of them.
//   POST /v1/completions, /v1/chat/completions   (stream: server-sent events ending with data: [DONE])
//   GET  /v1/models, /health, /metrics (Prometheus text)
//   POST /tokenize, /detokenize
// Errors are OpenAI error objects: 400 bad request (with the figures when a prompt is too long),
// 404 unknown model, 503 busy (Retry-After) or shutting down.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "serve/engine.h"
#include "serve/request.h"
#include "tokenizer/tokenizer.h"

namespace httplib {
class Server;
}

namespace kvq::serve {

// Renders chat messages as the model's prompt text (its chat template); an error is a 400.
using ChatFormatter = std::function<Result<std::string>(const std::vector<ChatMessage>& messages)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;         // 0: any free port (tests)
  std::string model_id;    // what /v1/models lists and requests may name
  SamplerParams defaults;  // sampling fields a request leaves out
  size_t max_body_bytes = 4 << 20;
  int io_timeout_seconds = 60;  // a client that sends or reads nothing for this long is dropped
};

class HttpServer {
 public:
  // formatter may be empty: chat requests then get a 400 that says how to give a template.
  HttpServer(Engine& engine, const Tokenizer& tokenizer, ServerOptions options, ChatFormatter formatter);
  ~HttpServer();

  // Binds the socket; the port is known after this (options.port 0 picks one).
  Status bind();
  int port() const { return port_; }
  // Serves until stop(); returns when the listener has closed.
  void serve();
  void stop();

 private:
  void register_routes();

  Engine& engine_;
  const Tokenizer& tokenizer_;
  ServerOptions options_;
  ChatFormatter formatter_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
};

}  // namespace kvq::serve
