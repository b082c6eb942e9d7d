#include "util/system.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

namespace kvq {

uint64_t available_memory_bytes() {
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kib = 0;
    while (std::fgets(line, sizeof(line), f)) {
      if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
    }
    std::fclose(f);
    if (kib) return uint64_t(kib) * 1024;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? uint64_t(pages) * uint64_t(page_size) : 0;
}

double measure_read_bandwidth_gbs(int n_threads) {
  // 16-byte vectors (SSE2 / NEON, the baseline everywhere), four independent accumulators and a
  // software prefetch 1 KiB ahead: the memory system, not the loop, then sets the rate.
  using Vec = uint64_t __attribute__((vector_size(16)));
  constexpr size_t kBytes = size_t(512) << 20;  // far beyond any L3 here
  constexpr size_t kVecs = kBytes / sizeof(Vec);
  constexpr size_t kPrefetchVecs = 1024 / sizeof(Vec);
  std::vector<Vec> buffer(kVecs);  // [kVecs] written once so pages are resident
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (size_t i = 0; i < kVecs; ++i) buffer[i] = Vec{i, ~i};
  double best = 0.0;
  uint64_t sink = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const double start = omp_get_wtime();
    uint64_t total = 0;
#pragma omp parallel num_threads(n_threads) reduction(+ : total)
    {
      Vec acc[4] = {};
#pragma omp for schedule(static)
      for (size_t i = 0; i < kVecs; i += 4) {
        __builtin_prefetch(&buffer[i] + kPrefetchVecs);  // as the kernels do: streams need it here
        for (int j = 0; j < 4; ++j) acc[j] += buffer[i + j];
      }
      for (const Vec& v : acc) total += v[0] + v[1];
    }
    const double seconds = omp_get_wtime() - start;
    sink += total;
    best = std::max(best, double(kBytes) / seconds / 1e9);
  }
  if (sink == 42) std::fputs("", stderr);  // keeps the reads observable
  return best;
}

}  // namespace kvq
