// ARM's 8-bit dot product (sdot: 16 int8 x int8 products summed into 4 int32 lanes, 4 per lane) for the
// NEON kernels. FEAT_DotProd is optional in Armv8.2 and required from Armv8.4 (Apple M1 and later, Graviton
// 2 and later, Ampere Altra have it; Cortex-A53/A72 do not): the functions that use it are compiled for it
// with KVQ_TARGET_DOTPROD and called only where cpu_has_arm_dotprod() (util/system.h) says so; the others
// run Highway's portable NEON code. The int8 matrix-multiply extension (FEAT_I8MM: `usdot`/`sudot`, u8 x s8;
// Apple M2 and later, Graviton 3 and later) is optional from Armv8.2 and required from Armv8.6: its kernels
// are compiled with KVQ_TARGET_I8MM and called only where cpu_has_arm_i8mm().
#pragma once

#if defined(__aarch64__)
#include <arm_neon.h>

#if defined(__ARM_FEATURE_DOTPROD)
#define KVQ_TARGET_DOTPROD
#elif defined(__clang__)
#define KVQ_TARGET_DOTPROD __attribute__((target("dotprod")))
#else
#define KVQ_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

#if defined(__ARM_FEATURE_MATMUL_INT8) && defined(__ARM_FEATURE_DOTPROD)
#define KVQ_TARGET_I8MM
#elif defined(__clang__)
#define KVQ_TARGET_I8MM __attribute__((target("dotprod,i8mm")))
#else
#define KVQ_TARGET_I8MM __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#endif

// Fully unrolls a small fixed loop, so that GCC keeps its arrays of vectors in registers.
#define KVQ_NEON_UNROLL4 _Pragma("GCC unroll 4")
#endif  // __aarch64__

#include <type_traits>

#include "hwy/base.h"
#include "quant/blocks.h"

namespace kvq {

// Calls run(std::integral_constant<GgmlType, T>()) for the T of kTypes equal to `type`, which must be one of
// them: turns a run-time KV type into the template argument of a kernel specialised per type.
template <GgmlType... kTypes, class Run>
inline void WithTypeTag(GgmlType type, const Run& run) {
  const bool found = ((type == kTypes ? (run(std::integral_constant<GgmlType, kTypes>()), true) : false) || ...);
  HWY_DASSERT(found);
  (void)found;
}

}  // namespace kvq
