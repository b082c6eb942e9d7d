// Facts about the machine the engine runs on: free memory, memory bandwidth, time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kvq {

// MemAvailable from /proc/meminfo (Linux); physical memory elsewhere; 0 if unknown.
uint64_t available_memory_bytes();

// Multi-threaded streaming read over a buffer far larger than the caches, best of several passes:
// the bandwidth a memory-bound decode step can hope for. Takes about a second.
double measure_read_bandwidth_gbs(int n_threads);

// The CPU's model name ("AMD EPYC 9B45", "Apple M2"; from /proc/cpuinfo or sysctl; the ARM implementer and
// part numbers when Linux gives no name), "unknown CPU" if none.
std::string cpu_model_name();

// Bytes of the level-2 cache one core sees (Linux sysfs, macOS hw.perflevel0.l2cachesize), 0 if unknown. Read
// once.
uint64_t cpu_l2_cache_bytes();

// Whether the CPU has ARM's 8-bit dot product instructions (sdot / udot, FEAT_DotProd: Apple M1 and later,
// Graviton 2 and later, Ampere Altra); false on other architectures. Read once.
bool cpu_has_arm_dotprod();
// Whether it has ARM's int8 matrix-multiply instructions (usdot / sudot / smmla, FEAT_I8MM: Apple M2 and
// later, Graviton 3 and later); false on other architectures. Read once.
bool cpu_has_arm_i8mm();

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace kvq
