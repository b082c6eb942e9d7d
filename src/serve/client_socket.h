// The socket of the HTTP request a handler is answering, found so that a non-streaming answer can stop when
// its client hangs up. cpp-httplib 0.11 (Debian 12's) gives handlers no socket, and a non-streaming handler
// returns only once its answer is complete, so without this a client that leaves keeps its slot until
// max_tokens.
#pragma once

#include <optional>
#include <string>

namespace kvq::serve {

class ClientSocket {
 public:
  // The process's one socket whose local and peer addresses are these (the connection is unique by them);
  // nullopt when none is (then nothing can be watched).
  static std::optional<ClientSocket> find(const std::string& local_addr, int local_port,
                                          const std::string& remote_addr, int remote_port);
  // Whether the client closed or reset its end. A request still unread on the connection counts as alive.
  bool closed() const;

 private:
  explicit ClientSocket(int fd) : fd_(fd) {}
  int fd_;  // owned by the HTTP server's worker, which is inside our handler while we use it
};

}  // namespace kvq::serve
