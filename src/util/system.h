// Facts about the machine the engine runs on: free memory, memory bandwidth, time.
#pragma once

#include <chrono>
#include <cstdint>

namespace kvq {

// MemAvailable from /proc/meminfo (Linux); physical memory elsewhere; 0 if unknown.
uint64_t available_memory_bytes();

// Multi-threaded streaming read over a buffer far larger than the caches, best of several passes:
// the bandwidth a memory-bound decode step can hope for. Takes about a second.
double measure_read_bandwidth_gbs(int n_threads);

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace kvq
