#include "util/system.h"

#include <omp.h>
#include <unistd.h>

#if defined(__linux__) && defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
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

namespace {

#if defined(__APPLE__)
std::string sysctl_string(const char* name) {
  char buffer[256] = {};
  size_t size = sizeof(buffer) - 1;
  return sysctlbyname(name, buffer, &size, nullptr, 0) == 0 ? std::string(buffer) : std::string();
}

// Whether the integer sysctl `name` exists and is non-zero (hw.optional.arm.FEAT_*).
[[maybe_unused]] bool sysctl_flag(const char* name) {
  int value = 0;
  size_t size = sizeof(value);
  return sysctlbyname(name, &value, &size, nullptr, 0) == 0 && value != 0;
}
#endif

// The value after "key<spaces>: " on the first /proc/cpuinfo line that starts with key, "" if none.
std::string cpuinfo_field(const char* key) {
  std::string value;
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[512];
    const size_t key_len = std::strlen(key);
    while (value.empty() && std::fgets(line, sizeof(line), f)) {
      if (std::strncmp(line, key, key_len) != 0) continue;
      const char* colon = std::strchr(line + key_len, ':');
      if (!colon) continue;
      value = colon + 1;
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t\n") + 1);
    }
    std::fclose(f);
  }
  return value;
}

}  // namespace

std::string cpu_model_name() {
#if defined(__APPLE__)
  if (std::string name = sysctl_string("machdep.cpu.brand_string"); !name.empty()) return name;
#endif
  if (std::string name = cpuinfo_field("model name"); !name.empty()) return name;
  // ARM Linux names no model: implementer and part (0x41 0xd0c = Arm Neoverse N1, 0x61 = Apple).
  if (std::string implementer = cpuinfo_field("CPU implementer"); !implementer.empty()) {
    return "ARM implementer " + implementer + " part " + cpuinfo_field("CPU part");
  }
  return "unknown CPU";
}

namespace {

// "2048K", "1M", "512" -> bytes; 0 when malformed.
uint64_t parse_cache_size(const std::string& text) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str()) return 0;
  const uint64_t unit = *end == 'K' ? 1024 : *end == 'M' ? 1024 * 1024 : 1;
  return uint64_t(n) * unit;
}

std::string read_first_line(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return {};
  char buffer[64] = {};
  const bool ok = std::fgets(buffer, sizeof buffer, f) != nullptr;
  std::fclose(f);
  std::string line = ok ? buffer : "";
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line;
}

uint64_t read_l2_cache_bytes() {
#if defined(__APPLE__)
  int64_t value = 0;
  size_t size = sizeof value;
  if (sysctlbyname("hw.perflevel0.l2cachesize", &value, &size, nullptr, 0) == 0 && value > 0) return uint64_t(value);
  size = sizeof value;
  if (sysctlbyname("hw.l2cachesize", &value, &size, nullptr, 0) == 0 && value > 0) return uint64_t(value);
  return 0;
#else
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string level = read_first_line(dir + "level");
    if (level.empty()) break;
    if (level == "2" && read_first_line(dir + "type") != "Instruction")
      return parse_cache_size(read_first_line(dir + "size"));
  }
  return 0;
#endif
}

}  // namespace

uint64_t cpu_l2_cache_bytes() {
  static const uint64_t bytes = read_l2_cache_bytes();
  return bytes;
}

bool cpu_has_arm_dotprod() {
#if defined(__ARM_FEATURE_DOTPROD)
  return true;  // the baseline has it (Apple clang's arm64 default)
#elif defined(__linux__) && defined(__aarch64__)
  static const bool has = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  return has;
#elif defined(__APPLE__) && defined(__aarch64__)
  static const bool has = sysctl_flag("hw.optional.arm.FEAT_DotProd");
  return has;
#else
  return false;
#endif
}

bool cpu_has_arm_i8mm() {
#if defined(__ARM_FEATURE_MATMUL_INT8)
  return true;
#elif defined(__linux__) && defined(__aarch64__)
  static const bool has = (getauxval(AT_HWCAP2) & HWCAP2_I8MM) != 0;
  return has;
#elif defined(__APPLE__) && defined(__aarch64__)
  static const bool has = sysctl_flag("hw.optional.arm.FEAT_I8MM");
  return has;
#else
  return false;
#endif
}

}  // namespace kvq
