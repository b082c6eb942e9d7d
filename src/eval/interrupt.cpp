#include "eval/interrupt.h"

#include <signal.h>

#include <cstring>

namespace kvq::eval {
namespace {

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the flag is set from a signal handler");

extern "C" void on_sigint(int) {
  g_interrupted.store(true, std::memory_order_relaxed);
  // Back to the default action: a second Ctrl-C ends the process at once.
  signal(SIGINT, SIG_DFL);
}

}  // namespace

const std::atomic<bool>& install_interrupt_handler() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // file writes and waitpid carry on; the loops poll the flag
  sigaction(SIGINT, &action, nullptr);
  return g_interrupted;
}

}  // namespace kvq::eval
