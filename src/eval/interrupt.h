// Ctrl-C for long evaluations: the first SIGINT sets a flag that the evaluation loops check after
// every chunk (finished results are kept and written); a second SIGINT kills the process as usual.
#pragma once

#include <atomic>

namespace kvq::eval {

// Installs the SIGINT handler (idempotent) and returns the flag it sets.
const std::atomic<bool>& install_interrupt_handler();

// Exit status of a run stopped by SIGINT (128 + SIGINT, what shells report).
inline constexpr int kInterruptedExitCode = 130;

}  // namespace kvq::eval
