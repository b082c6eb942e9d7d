// KL-divergence of a run against a baseline run over the same scored positions (DESIGN.md §5).
//
// The baseline (normally f16 KV) is stored per scored position as its full log-probability vector,
// quantized like llama.cpp's --kl-divergence-base file: uint16 codes on a per-position linear grid
// over [max(min log p, -kLogProbRange), max log p]. With a 48-nat range the grid step is < 7.4e-4
// nat, which adds ~2e-8 to a KLD (measured values of interest start near 1e-5), and anything below
// the range has p < e^-48 per token. Beside the codes each position keeps the exact f32 log p of
// the correct token (for the PPL ratio and Δp) and the baseline's top token (for top-1 agreement),
// so those two statistics are exact. Size: 2 * n_vocab + 20 bytes per scored position.
//
// A base file records what it was made from (model size + hash, text hash, context, chunks,
// vocabulary) and is refused for a run that differs in any of them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "eval/perplexity.h"
#include "util/result.h"

namespace kvq::eval {

// 64-bit FNV-1a.
uint64_t fnv1a64(std::span<const uint8_t> bytes, uint64_t seed = 0xcbf29ce484222325ull);

// What a baseline was computed from.
struct KldIdentity {
  uint64_t model_bytes = 0;  // model file size
  uint64_t model_hash = 0;   // FNV-1a of its first kModelHashBytes (header, metadata, tensor table)
  uint64_t text_hash = 0;    // FNV-1a of the whole text
  uint64_t text_bytes = 0;
  int32_t n_vocab = 0;
  int32_t n_ctx = 0;
  int32_t n_chunks = 0;
  std::string model_path;  // informational only: a copied model still matches
  std::string base_kv;     // informational: "f16/f16"

  static constexpr uint64_t kModelHashBytes = 4u << 20;
};

// Size and hash of a model file, for KldIdentity. Errors name the file.
Status fingerprint_model(const std::string& path, KldIdentity& id);
void fingerprint_text(std::string_view text, KldIdentity& id);

class KldBase {
 public:
  static constexpr double kLogProbRange = 48.0;

  KldBase() = default;
  explicit KldBase(KldIdentity identity);

  const KldIdentity& identity() const { return identity_; }
  size_t size() const { return target_.size(); }

  // Appends the next scored position (in run order).
  void append(const ScoredPosition& p);

  // Log-probabilities of position i decoded and renormalised to sum to 1. out: [n_vocab] f64.
  void decode(size_t i, double* out) const;
  double target_log_prob(size_t i) const { return target_lp_[i]; }
  int32_t target(size_t i) const { return target_[i]; }
  int32_t top(size_t i) const { return top_[i]; }

  // Refuses a run whose identity differs (the message says which field and both values).
  Status check_matches(const KldIdentity& run) const;

  // Written atomically (temporary file + rename). Errors name the file.
  Status save(const std::string& path) const;
  static Result<KldBase> load(const std::string& path);

 private:
  KldIdentity identity_;
  size_t stride_ = 0;             // n_vocab rounded up to even (4-byte aligned rows on disk)
  std::vector<float> lo_;         // [n_pos] log p of code 0
  std::vector<float> step_;       // [n_pos] log p per code
  std::vector<float> target_lp_;  // [n_pos] exact log p of the correct token
  std::vector<int32_t> target_;   // [n_pos]
  std::vector<int32_t> top_;      // [n_pos] baseline argmax
  std::vector<uint16_t> codes_;   // [n_pos, stride_]
};

struct KldStats {
  int64_t n = 0;
  double kld_mean = 0, kld_stderr = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double ln_ppl_ratio = 0, ln_ppl_ratio_stderr = 0;  // mean of nll - nll_base
  double ppl_ratio = 0, ppl_ratio_stderr = 0;        // exp(ln_ppl_ratio)
  double rms_dp = 0, rms_dp_stderr = 0;              // Δp = p(correct) - p_base(correct)
  double top1_pct = 0, top1_pct_stderr = 0;          // same argmax as the baseline
};

// Compares scored positions against a baseline, in the baseline's order.
class KldAccumulator {
 public:
  explicit KldAccumulator(const KldBase& base);
  // Position `index` of the run (0, 1, 2, ... in run order).
  void add(const ScoredPosition& p);
  size_t count() const { return kld_.size(); }
  KldStats finish() const;

 private:
  const KldBase& base_;
  std::vector<double> base_lp_;  // [n_vocab] scratch
  std::vector<double> kld_;      // [n] per-position KL(base || run)
  std::vector<double> dnll_;     // [n] nll - nll_base
  std::vector<double> dp_;       // [n] p - p_base of the correct token
  int64_t same_top_ = 0;
};

}  // namespace kvq::eval
