#include "eval/kld.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace kvq::eval {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'Q', 'K', 'L', 'D', 'B', '\0'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxString = 1u << 16;

// Host order: the format is little-endian and kvq builds only for little-endian targets.
static_assert(std::endian::native == std::endian::little);

template <typename T>
void put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put(out, uint32_t(s.size()));
  out += s;
}
template <typename T>
void put_array(std::ofstream& out, const std::vector<T>& v) {
  out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

// Bounds-checked reader over a file's bytes.
struct Reader {
  const std::string& bytes;
  size_t offset = 0;

  bool get_raw(void* out, size_t n) {
    if (n > bytes.size() - offset) return false;
    std::memcpy(out, bytes.data() + offset, n);
    offset += n;
    return true;
  }
  template <typename T>
  bool get(T& value) {
    return get_raw(&value, sizeof(T));
  }
  bool get_string(std::string& s) {
    uint32_t n = 0;
    if (!get(n) || n > kMaxString || n > bytes.size() - offset) return false;
    s.assign(bytes.data() + offset, n);
    offset += n;
    return true;
  }
  template <typename T>
  bool get_array(std::vector<T>& v, size_t n) {
    if (n > (bytes.size() - offset) / sizeof(T)) return false;
    v.resize(n);
    return get_raw(v.data(), n * sizeof(T));
  }
};

double percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  // Linear interpolation between the closest ranks.
  const double rank = fraction * double(values.size() - 1);
  const size_t lo = size_t(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (rank - double(lo)) * (values[hi] - values[lo]);
}

// Mean and its standard error sqrt(var / (n - 1)), llama.cpp's convention.
void mean_stderr(const std::vector<double>& v, double& mean, double& err) {
  mean = err = 0;
  if (v.empty()) return;
  double sum = 0, sum2 = 0;
  for (double x : v) sum += x, sum2 += x * x;
  const double n = double(v.size());
  mean = sum / n;
  const double var = sum2 / n - mean * mean;
  err = (v.size() > 1 && var > 0) ? std::sqrt(var / (n - 1)) : 0.0;
}

}  // namespace

uint64_t fnv1a64(std::span<const uint8_t> bytes, uint64_t seed) {
  uint64_t h = seed;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

Status fingerprint_model(const std::string& path, KldIdentity& id) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return make_error("{}: cannot open the model file", path);
  id.model_bytes = uint64_t(in.tellg());
  in.seekg(0);
  std::vector<uint8_t> head(size_t(std::min<uint64_t>(id.model_bytes, KldIdentity::kModelHashBytes)));
  if (!in.read(reinterpret_cast<char*>(head.data()), std::streamsize(head.size()))) {
    return make_error("{}: read error", path);
  }
  id.model_hash = fnv1a64(head);
  id.model_path = path;
  return Status::Ok();
}

void fingerprint_text(std::string_view text, KldIdentity& id) {
  id.text_bytes = text.size();
  id.text_hash = fnv1a64({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

KldBase::KldBase(KldIdentity identity)
    : identity_(std::move(identity)), stride_(size_t(identity_.n_vocab + 1) & ~size_t(1)) {}

void KldBase::append(const ScoredPosition& p) {
  const size_t n_vocab = size_t(identity_.n_vocab);
  KVQ_CHECK(p.log_probs.size() == n_vocab);
  const double hi = p.log_probs[size_t(p.top)];
  double lo = hi;
  for (double lp : p.log_probs) lo = std::min(lo, lp);
  lo = std::max(lo, hi - kLogProbRange);
  const double step = hi > lo ? (hi - lo) / 65535.0 : 1.0;
  const size_t base = codes_.size();
  codes_.resize(base + stride_, 0);
  for (size_t i = 0; i < n_vocab; ++i) {
    const double code = std::nearbyint((p.log_probs[i] - lo) / step);
    codes_[base + i] = uint16_t(std::clamp(code, 0.0, 65535.0));
  }
  lo_.push_back(float(lo));
  step_.push_back(float(step));
  target_lp_.push_back(float(p.log_probs[size_t(p.target)]));
  target_.push_back(p.target);
  top_.push_back(p.top);
}

void KldBase::decode(size_t i, double* out) const {
  const size_t n_vocab = size_t(identity_.n_vocab);
  const uint16_t* codes = codes_.data() + i * stride_;
  const double lo = lo_[i], step = step_[i];
  double max = -1e300;
  for (size_t v = 0; v < n_vocab; ++v) {
    out[v] = lo + step * codes[v];
    max = std::max(max, out[v]);
  }
  // Renormalise: rounding leaves the decoded distribution off 1 by ~1e-4, which would otherwise
  // show up as a KLD floor of that size (and could make a KLD negative).
  double sum = 0;
  for (size_t v = 0; v < n_vocab; ++v) sum += std::exp(out[v] - max);
  const double log_norm = max + std::log(sum);
  for (size_t v = 0; v < n_vocab; ++v) out[v] -= log_norm;
}

Status KldBase::check_matches(const KldIdentity& run) const {
  const KldIdentity& b = identity_;
  if (b.model_bytes != run.model_bytes || b.model_hash != run.model_hash) {
    return make_error(
        "the KLD base was made with another model ({}, {} bytes); this run uses {} "
        "({} bytes)",
        b.model_path, b.model_bytes, run.model_path, run.model_bytes);
  }
  if (b.text_hash != run.text_hash || b.text_bytes != run.text_bytes) {
    return make_error(
        "the KLD base was made from another text ({} bytes, hash {:016x}); this "
        "text has {} bytes, hash {:016x}",
        b.text_bytes, b.text_hash, run.text_bytes, run.text_hash);
  }
  if (b.n_vocab != run.n_vocab) {
    return make_error("the KLD base has a vocabulary of {}; the model has {}", b.n_vocab, run.n_vocab);
  }
  if (b.n_ctx != run.n_ctx || b.n_chunks != run.n_chunks) {
    return make_error(
        "the KLD base was made with -c {} over {} chunks; this run is -c {} over {} "
        "chunks (use the same -c and --chunks)",
        b.n_ctx, b.n_chunks, run.n_ctx, run.n_chunks);
  }
  return Status::Ok();
}

Status KldBase::save(const std::string& path) const {
  std::string header(kMagic, sizeof(kMagic));
  put(header, kVersion);
  put(header, int32_t(identity_.n_vocab));
  put(header, int32_t(identity_.n_ctx));
  put(header, int32_t(identity_.n_chunks));
  put(header, identity_.model_bytes);
  put(header, identity_.model_hash);
  put(header, identity_.text_bytes);
  put(header, identity_.text_hash);
  put_string(header, identity_.model_path);
  put_string(header, identity_.base_kv);
  put(header, uint64_t(size()));

  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error("{}: cannot create the KLD base file", temp);
    out.write(header.data(), std::streamsize(header.size()));
    put_array(out, lo_);
    put_array(out, step_);
    put_array(out, target_lp_);
    put_array(out, target_);
    put_array(out, top_);
    put_array(out, codes_);
    out.flush();
    if (!out) {
      std::remove(temp.c_str());
      return make_error("{}: write error (disk full?)", temp);
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return make_error("{}: cannot rename {} into place", path, temp);
  }
  return Status::Ok();
}

Result<KldBase> KldBase::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("{}: cannot open the KLD base file", path);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Reader r{bytes};
  char magic[8];
  uint32_t version = 0;
  if (!r.get_raw(magic, sizeof(magic)) || std::memcmp(magic, kMagic, sizeof(magic)) != 0) {
    return make_error("{}: not a kvq KLD base file (written by kvq perplexity --kld-base)", path);
  }
  if (!r.get(version) || version != kVersion) {
    return make_error("{}: KLD base version {} is not supported (expected {})", path, version, kVersion);
  }
  KldIdentity id;
  uint64_t n_pos = 0;
  const bool header_ok = r.get(id.n_vocab) && r.get(id.n_ctx) && r.get(id.n_chunks) && r.get(id.model_bytes) &&
                         r.get(id.model_hash) && r.get(id.text_bytes) && r.get(id.text_hash) &&
                         r.get_string(id.model_path) && r.get_string(id.base_kv) && r.get(n_pos);
  if (!header_ok || id.n_vocab <= 0 || id.n_ctx <= 0 || id.n_chunks <= 0) {
    return make_error("{}: truncated or corrupt KLD base header", path);
  }
  KldBase base(std::move(id));
  const int64_t per_chunk = base.identity_.n_ctx - 1 - base.identity_.n_ctx / 2;
  if (n_pos != uint64_t(per_chunk) * uint64_t(base.identity_.n_chunks)) {
    return make_error("{}: {} positions do not match {} chunks of context {}", path, n_pos, base.identity_.n_chunks,
                      base.identity_.n_ctx);
  }
  const size_t n = size_t(n_pos);
  const bool body_ok = r.get_array(base.lo_, n) && r.get_array(base.step_, n) && r.get_array(base.target_lp_, n) &&
                       r.get_array(base.target_, n) && r.get_array(base.top_, n) && n <= SIZE_MAX / base.stride_ &&
                       r.get_array(base.codes_, n * base.stride_);
  if (!body_ok || r.offset != bytes.size()) {
    return make_error("{}: truncated or corrupt KLD base ({} bytes)", path, bytes.size());
  }
  for (size_t i = 0; i < n; ++i) {
    if (base.target_[i] < 0 || base.target_[i] >= base.identity_.n_vocab || base.top_[i] < 0 ||
        base.top_[i] >= base.identity_.n_vocab || !std::isfinite(base.lo_[i]) || !std::isfinite(base.step_[i])) {
      return make_error("{}: corrupt KLD base record {}", path, i);
    }
  }
  return base;
}

KldAccumulator::KldAccumulator(const KldBase& base) : base_(base), base_lp_(size_t(base.identity().n_vocab)) {}

void KldAccumulator::add(const ScoredPosition& p) {
  const size_t i = kld_.size();
  KVQ_CHECK(i < base_.size() && p.log_probs.size() == base_lp_.size());
  // Same text and tokenizer (checked by identity): the targets line up position by position.
  KVQ_CHECK(base_.target(i) == p.target);
  base_.decode(i, base_lp_.data());
  double kld = 0;
  for (size_t v = 0; v < base_lp_.size(); ++v) {
    kld += std::exp(base_lp_[v]) * (base_lp_[v] - p.log_probs[v]);
  }
  kld_.push_back(std::max(kld, 0.0));  // rounding can leave -1e-17 for identical distributions
  const double lp = p.log_probs[size_t(p.target)];
  const double lp_base = base_.target_log_prob(i);
  dnll_.push_back(lp_base - lp);
  dp_.push_back(std::exp(lp) - std::exp(lp_base));
  same_top_ += (p.top == base_.top(i)) ? 1 : 0;
}

KldStats KldAccumulator::finish() const {
  KldStats s;
  s.n = int64_t(kld_.size());
  if (s.n == 0) return s;
  mean_stderr(kld_, s.kld_mean, s.kld_stderr);
  s.kld_median = percentile(kld_, 0.5);
  s.kld_p99 = percentile(kld_, 0.99);
  s.kld_max = *std::max_element(kld_.begin(), kld_.end());
  // Paired differences: the error of the ratio is far smaller than either PPL's own error.
  mean_stderr(dnll_, s.ln_ppl_ratio, s.ln_ppl_ratio_stderr);
  s.ppl_ratio = std::exp(s.ln_ppl_ratio);
  s.ppl_ratio_stderr = s.ppl_ratio * s.ln_ppl_ratio_stderr;
  std::vector<double> dp2(dp_.size());
  for (size_t i = 0; i < dp_.size(); ++i) dp2[i] = dp_[i] * dp_[i];
  double dp2_mean = 0, dp2_err = 0;
  mean_stderr(dp2, dp2_mean, dp2_err);
  s.rms_dp = std::sqrt(dp2_mean);
  s.rms_dp_stderr = s.rms_dp > 0 ? dp2_err / (2.0 * s.rms_dp) : 0.0;
  const double f = double(same_top_) / double(s.n);
  s.top1_pct = 100.0 * f;
  s.top1_pct_stderr = s.n > 1 ? 100.0 * std::sqrt(f * (1.0 - f) / double(s.n - 1)) : 0.0;
  return s;
}

}  // namespace kvq::eval
