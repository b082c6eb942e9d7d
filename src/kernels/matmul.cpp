// matmul driver: picks the kernel family, quantizes activations once, splits output rows across OpenMP
// threads. The kernels themselves are in matmul_int.cpp (quantized weights) and matmul_float.cpp.

#include "kernels/matmul.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/targets.h"
#include "kernels/matmul_internal.h"
#include "quant/quant.h"
#include "util/result.h"

namespace kvq {
namespace {

using matmul_detail::kDecodeRows;
using matmul_detail::kFloatChunk;
using matmul_detail::kIntChunk;
using matmul_detail::kPanelRows;
using matmul_detail::kTripleValues;
using matmul_detail::kWideChunk;
using matmul_detail::kWideRows;
using matmul_detail::Q4Triple;

constexpr size_t kAlign = 64;  // cache line; also the widest vector
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Grow-only aligned buffer, kept per thread so that repeated calls (every layer, every token) allocate
// nothing after the first.
class AlignedBuffer {
 public:
  uint8_t* get(size_t bytes) {
    if (bytes > size_) {
      data_ = hwy::AllocateAligned<uint8_t>(bytes);
      KVQ_CHECK(data_ != nullptr);
      size_ = bytes;
    }
    return data_.get();
  }

 private:
  hwy::AlignedFreeUniquePtr<uint8_t[]> data_;
  size_t size_ = 0;
};

// This thread's panel scratch (about 0.9 MiB, mostly regrouped activations for the wide kernel).
matmul_detail::PanelScratch thread_panel_scratch() {
  const size_t q_bytes = align_up(size_t(kPanelRows * kIntChunk));
  const size_t scale_bytes = align_up(sizeof(float) * size_t(kPanelRows * kIntChunk / 4));
  const size_t min_bytes = align_up(sizeof(float) * size_t(kPanelRows * kIntChunk / 16));
  const size_t f_bytes = align_up(sizeof(float) * size_t(kPanelRows * kFloatChunk));
  const size_t wide_q_bytes = size_t(kWideRows * kWideChunk);
  const size_t wide_scale_bytes = sizeof(float) * size_t(kWideRows * kWideChunk / 16);
  thread_local AlignedBuffer buffer;
  const size_t wide_acts_bytes = size_t(matmul_detail::kWideMaxTiles * matmul_detail::kWideTileBytes);
  uint8_t* base =
      buffer.get(q_bytes + scale_bytes + min_bytes + f_bytes + wide_q_bytes + 2 * wide_scale_bytes + wide_acts_bytes);
  matmul_detail::PanelScratch s;
  s.q = base;
  s.scale = reinterpret_cast<float*>(base + q_bytes);
  s.min = reinterpret_cast<float*>(base + q_bytes + scale_bytes);
  s.f = reinterpret_cast<float*>(base + q_bytes + scale_bytes + min_bytes);
  uint8_t* wide = base + q_bytes + scale_bytes + min_bytes + f_bytes;  // 64-byte aligned
  s.wide_q = wide;
  s.wide_scale = reinterpret_cast<float*>(wide + wide_q_bytes);
  s.wide_min = reinterpret_cast<float*>(wide + wide_q_bytes + wide_scale_bytes);
  s.wide_acts = wide + wide_q_bytes + 2 * wide_scale_bytes;
  return s;
}

}  // namespace

bool matmul_supports(GgmlType type) {
  const TypeTraits* t = find_type_traits(uint32_t(type));
  return t != nullptr && t->kernels;
}

const char* simd_target_name() {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();  // best first
  return targets.empty() ? "none" : hwy::TargetName(targets.front());
}

std::string matmul_kernel_name(GgmlType type, int64_t n_tokens) {
  if (!matmul_supports(type)) return "unsupported";
  if (!type_traits(type).quantized) return "f32 FMA panel (Highway)";
  return matmul_detail::int8_kernel_name(type, n_tokens);
}

void matmul_ref(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens) {
  KVQ_CHECK(matmul_supports(w.type));
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  std::vector<float> row(size_t(w.n_in));  // [n_in] one dequantized weight row
  for (int64_t o = 0; o < w.n_out; ++o) {
    dequantize_row_ref(w.type, w.data + size_t(o) * w_row_bytes, row.data(), w.n_in);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * w.n_in;  // [n_in] token t
      double sum = 0.0;
      for (int64_t i = 0; i < w.n_in; ++i) sum += double(row[size_t(i)]) * double(xt[i]);
      y[t * w.n_out + o] = float(sum);
    }
  }
}

namespace matmul_detail {

void make_q4_triples(const int8_t* q, const float* scale, int64_t n_in, Q4Triple* out) {
  constexpr int64_t kRawBlock = int64_t(sizeof(BlockQ4_0));  // 18 bytes: f16 d, then 16 bytes of nibbles
  const int64_t n_blocks = n_in / kQK;
  for (int64_t t = 0; t * 3 < n_blocks; ++t) {
    Q4Triple& tr = out[t];
    std::memset(&tr, 0, sizeof(tr));
    for (int64_t k = 0; k < 3 && 3 * t + k < n_blocks; ++k) {
      const int8_t* codes = q + kQK * (3 * t + k);  // [32] block 3t + k
      std::memcpy(tr.lo + kRawBlock * k + 2, codes, 16);
      std::memcpy(tr.hi + kRawBlock * k + 2, codes + 16, 16);
      for (int i = 0; i < 4; ++i) tr.scale[3 * i + k] = scale[kQK / 4 * (3 * t + k)];
    }
    for (int p = 0; p < 64; ++p) tr.neg8[p / 4] -= 8 * (tr.lo[p] + tr.hi[p]);
  }
}

void make_q4k_pairs(const int8_t* q, const float* scale, const float* sum16, int64_t n_in, int8_t* pairs,
                    float* dx_sums) {
  constexpr int64_t kFirst[4] = {0, 1, 4, 5};
  for (int64_t b = 0; b < n_in / kQK_K; ++b) {
    for (int64_t v = 0; v < 4; ++v) {
      std::memcpy(pairs + kQK_K * b + 64 * v, q + kQK_K * b + kQK * kFirst[v], kQK);
      std::memcpy(pairs + kQK_K * b + 64 * v + kQK, q + kQK_K * b + kQK * (kFirst[v] + 2), kQK);
    }
  }
  for (int64_t k = 0; k < n_in / kQK; ++k) {
    dx_sums[16 * (k / 8) + k % 8] = scale[kQK / 4 * k];
    dx_sums[16 * (k / 8) + 8 + k % 8] = sum16[2 * k] + sum16[2 * k + 1];
  }
}

void matmul_with_path(std::span<const Projection> outs, const float* x, int64_t n_tokens, Path path) {
  if (outs.empty()) return;
  const int64_t n_in = outs[0].w.n_in;
  bool any_int8 = false, any_float = false;
  for (const Projection& o : outs) {
    KVQ_CHECK(matmul_supports(o.w.type));
    const TypeTraits& traits = type_traits(o.w.type);
    KVQ_CHECK(o.w.n_in == n_in && o.w.n_out >= 0 && n_tokens >= 0);
    KVQ_CHECK(n_in % traits.block_size == 0);
    KVQ_CHECK(path != Path::kInt8 || traits.quantized);
    const bool int8 = path == Path::kInt8 || (path == Path::kAuto && traits.quantized);
    (int8 ? any_int8 : any_float) = true;
  }
  if (any_int8 && any_float) {  // one family per call (Q4_K_M files mix quantized types, never with float)
    for (const Projection& o : outs) matmul_with_path({&o, 1}, x, n_tokens, path);
    return;
  }
  if (n_tokens == 0) return;
  if (n_in == 0) {
    for (const Projection& o : outs) std::fill(o.y, o.y + n_tokens * o.w.n_out, 0.0f);
    return;
  }
  const bool int8 = any_int8;

  // Quantized activations, shared by all threads and matrices; n_in is a multiple of 32 for every quantized type.
  QuantizedActs acts{nullptr, nullptr, nullptr, n_in};
  if (int8) {
    const size_t n_values = size_t(n_tokens * n_in);
    const size_t q_bytes = align_up(n_values);
    const size_t scale_bytes = align_up(sizeof(float) * n_values / 4);
    thread_local AlignedBuffer act_buffer;
    const size_t sum16_bytes = align_up(sizeof(float) * n_values / 16);
    bool triples = false, q4k_pairs = false;
    for (const Projection& o : outs) {
      triples |= n_tokens <= kMaxGemvTokens && o.w.type == GgmlType::Q4_0 && gemv_uses_q4_triples();
      q4k_pairs |= n_tokens > 1 && n_tokens <= kMaxGemvTokens && o.w.type == GgmlType::Q4_K && gemv_uses_q4k_pairs();
    }
    const size_t n_triples = size_t((n_in + kTripleValues - 1) / kTripleValues);  // per token
    const size_t triple_bytes = triples ? sizeof(Q4Triple) * n_triples * size_t(n_tokens) : 0;
    const size_t pair_bytes = q4k_pairs ? align_up(n_values) : 0;
    const size_t dx_sum_bytes = q4k_pairs ? align_up(sizeof(float) * n_values / 16) : 0;
    uint8_t* base = act_buffer.get(q_bytes + scale_bytes + sum16_bytes + triple_bytes + pair_bytes + dx_sum_bytes);
    acts.q = reinterpret_cast<int8_t*>(base);                             // [n_tokens, n_in]
    acts.scale = reinterpret_cast<float*>(base + q_bytes);                // [n_tokens, n_in / 4]
    acts.sum16 = reinterpret_cast<float*>(base + q_bytes + scale_bytes);  // [n_tokens, n_in / 16]
    uint8_t* extra = base + q_bytes + scale_bytes + sum16_bytes;
    if (triples) acts.q4_triples = reinterpret_cast<Q4Triple*>(extra);
    if (q4k_pairs) {
      acts.q4k_pairs = reinterpret_cast<int8_t*>(extra + triple_bytes);                // [n_tokens, n_in]
      acts.q4k_dx_sums = reinterpret_cast<float*>(extra + triple_bytes + pair_bytes);  // [n_tokens, n_in / 16]
    }
  }

  // Decode: rows of all matrices in units of kDecodeRows (none spans two matrices), handed out first come
  // first served in runs that shrink as the work runs out (guided). unit_end[i]: units of matrices 0 .. i.
  std::vector<int64_t> unit_end(outs.size());
  int64_t n_panels = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    unit_end[i] = (i ? unit_end[i - 1] : 0) + (outs[i].w.n_out + kDecodeRows - 1) / kDecodeRows;
    n_panels += (outs[i].w.n_out + kPanelRows - 1) / kPanelRows;
  }
  // Threads get whole panels of output rows; no more threads than panels.
  const int n_threads = int(std::min<int64_t>(omp_get_max_threads(), std::max<int64_t>(n_panels, 1)));
#pragma omp parallel num_threads(n_threads)
  {
    if (int8) {
      auto* q = const_cast<int8_t*>(acts.q);
      auto* scale = const_cast<float*>(acts.scale);
      auto* sum16 = const_cast<float*>(acts.sum16);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < n_tokens; ++t) {
        quantize_activations(x + t * n_in, n_in, q + t * n_in, scale + t * n_in / 4, sum16 + t * n_in / 16);
        if (acts.q4k_pairs != nullptr) {
          make_q4k_pairs(q + t * n_in, scale + t * n_in / 4, sum16 + t * n_in / 16, n_in,
                         const_cast<int8_t*>(acts.q4k_pairs) + t * n_in,
                         const_cast<float*>(acts.q4k_dx_sums) + t * n_in / 16);
        }
      }
      // The barriers of `for` and `single`: every token is quantized and laid out before any row uses it.
#pragma omp single
      if (acts.q4_triples != nullptr) {
        for (int64_t t = 0; t < n_tokens; ++t) {
          make_q4_triples(q + t * n_in, scale + t * n_in / 4, n_in,
                          const_cast<Q4Triple*>(acts.q4_triples) + t * ((n_in + kTripleValues - 1) / kTripleValues));
        }
      }
    }
    const PanelScratch scratch = thread_panel_scratch();
    const auto run_rows = [&](const Projection& o, int64_t r0, int64_t r1) {
      if (int8) {
        matmul_int8_rows(o.w, acts, n_tokens, r0, r1, o.y, scratch);
      } else {
        matmul_float_rows(o.w, x, n_tokens, r0, r1, o.y, scratch);
      }
    };
    // Decode of one or a few tokens (batched decode of several sequences), one 32-row unit at a time, so
    // the unit's weights come from memory once: the int8 kernels take all tokens at once; the float path
    // runs its GEMV per token on the cached rows. The panel path decodes weights at a fixed cost that only
    // pays off from ~16 tokens.
    if (n_tokens <= kMaxGemvTokens) {
#pragma omp for schedule(guided, 1)
      for (int64_t c = 0; c < unit_end.back(); ++c) {
        const size_t i = size_t(std::upper_bound(unit_end.begin(), unit_end.end(), c) - unit_end.begin());
        const int64_t r0 = (c - (i ? unit_end[i - 1] : 0)) * kDecodeRows;
        const int64_t r1 = std::min(outs[i].w.n_out, r0 + kDecodeRows);
        const Projection& o = outs[i];
        if (int8 || n_tokens == 1) {
          run_rows(o, r0, r1);
        } else {
          for (int64_t t = 0; t < n_tokens; ++t) {
            matmul_float_rows(o.w, x + t * n_in, 1, r0, r1, o.y + t * o.w.n_out, scratch);
          }
        }
      }
    } else {  // prompts: each matrix's panels split evenly, no barrier between matrices
      const int64_t tid = omp_get_thread_num();
      const int64_t team = omp_get_num_threads();
      for (const Projection& o : outs) {
        const int64_t rows_per_thread = ((o.w.n_out + kPanelRows - 1) / kPanelRows + team - 1) / team * kPanelRows;
        const int64_t r0 = tid * rows_per_thread;
        const int64_t r1 = std::min(o.w.n_out, r0 + rows_per_thread);
        if (r0 < r1) run_rows(o, r0, r1);
      }
    }
  }
}

}  // namespace matmul_detail

void matmul(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens) {
  const Projection out{w, y};
  matmul_detail::matmul_with_path({&out, 1}, x, n_tokens, matmul_detail::Path::kAuto);
}

void matmul_shared_input(std::span<const Projection> outs, const float* x, int64_t n_tokens) {
  matmul_detail::matmul_with_path(outs, x, n_tokens, matmul_detail::Path::kAuto);
}

}  // namespace kvq
