#include "serve/client_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

namespace kvq::serve {
namespace {

// Whether `address` (from getsockname / getpeername) is addr:port, addr written as inet_ntop writes it
// (as cpp-httplib fills Request::remote_addr and local_addr: numeric hosts).
bool same_endpoint(const sockaddr_storage& address, const std::string& addr, int port) {
  char text[INET6_ADDRSTRLEN] = {};
  int found_port = -1;
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
    found_port = ntohs(v4.sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
    found_port = ntohs(v6.sin6_port);
  } else {
    return false;
  }
  return found_port == port && addr == text;
}

}  // namespace

std::optional<ClientSocket> ClientSocket::find(const std::string& local_addr, int local_port,
                                               const std::string& remote_addr, int remote_port) {
  // Linux and macOS list the process's open descriptors here. Error codes, not exceptions: a handler must
  // not fail because a descriptor closed while we looked.
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/dev/fd", ec), last; !ec && it != last; it.increment(ec)) {
    char* end = nullptr;
    const std::string name = it->path().filename().string();
    const long fd = std::strtol(name.c_str(), &end, 10);
    if (end == name.c_str() || *end != '\0') continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (getsockname(int(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (same_endpoint(local, local_addr, local_port) && same_endpoint(peer, remote_addr, remote_port)) {
      return ClientSocket(int(fd));
    }
  }
  return std::nullopt;
}

bool ClientSocket::closed() const {
  char byte;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;   // bytes of a next request: still there
  if (n == 0) return true;   // orderly shutdown: the client will read nothing more
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // reset, or the socket is gone
}

}  // namespace kvq::serve
