// Block formats: the scalar references against ggml's own outputs
// (fixtures/quant/quant-vectors.gguf), every compiled Highway target against the references on
// random and adversarial inputs, and the round-trip error of every quantizer.
#include "quant/quant.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "util/half.h"

namespace kvq {
namespace {

constexpr int kRow = 256;  // values per test row: a multiple of every block size

// Round-trip NMSE (sum (x - x')^2 / sum x^2) bounds on N(0, 1) rows (64 x 256 values, fixed seed).
// A uniform quantizer with step s adds error variance s^2 / 12, s = block absmax (~2.1 sigma for 32
// values) or range (~4.2 sigma) over the number of levels; measured values are in the comments, the
// bounds leave ~1.4x margin so that only a real accuracy regression trips them.
constexpr double kMaxNmseF16 = 1e-7;      // 11-bit significand: measured 4.3e-8
constexpr double kMaxNmseBF16 = 5e-6;     // 8-bit significand: 2.8e-6
constexpr double kMaxNmseQ8_0 = 4e-5;     // absmax / 127: 2.9e-5
constexpr double kMaxNmseQ8_1 = 4e-5;     // same codes as q8_0: 2.9e-5
constexpr double kMaxNmseQ8_K = 7e-5;     // 256-value blocks have a larger absmax: 4.6e-5
constexpr double kMaxNmseQ5_0 = 2.6e-3;   // absmax / 16: 1.8e-3
constexpr double kMaxNmseQ5_1 = 2.2e-3;   // range / 31: 1.45e-3
constexpr double kMaxNmseQ4_0 = 1.05e-2;  // absmax / 8, one side only reaches +7: 7.4e-3
constexpr double kMaxNmseQ4_1 = 9e-3;     // range / 15: 6.1e-3
constexpr double kMaxNmseIQ4_NL = 8e-3;   // non-linear codebook + scale search, beats q4_0: 5.8e-3

// ggml's own NMSE of the fixture's `T.dequant` against `input` (fixtures/README.md, 2 digits). A
// kvq quantizer that deliberately differed from ggml's bytes would have to stay below these; ours
// reproduce the bytes, and the test recomputes the numbers to prove the fixture is read correctly.
struct FixtureNmse {
  const char* type;
  double nmse;
};
constexpr FixtureNmse kFixtureNmse[] = {{"q8_0", 1.5e-5}, {"q5_1", 8.9e-4},   {"q5_0", 9.7e-4}, {"q4_1", 3.8e-3},
                                        {"q4_0", 4.2e-3}, {"iq4_nl", 4.2e-3}, {"q6_K", 2.1e-4}, {"q5_K", 8.5e-4},
                                        {"q4_K", 3.1e-3}, {"q3_K", 1.6e-2},   {"q2_K", 5.5e-2}};
constexpr double kReadmeNmseRelTolerance = 0.05;  // 2 significant digits

const char* const kFixtureTypes[] = {"f16",    "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                     "iq4_nl", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_xs"};
// The KV-cache quantizers must reproduce ggml's reference bytes (f16/bf16 conversions too).
const char* const kBytesExactTypes[] = {"f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"};

// Types with a Highway kernel; the others go through the reference in both entry points.
const GgmlType kSimdQuantTypes[] = {GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                                    GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL};
const GgmlType kAllDequantTypes[] = {GgmlType::F32,  GgmlType::F16,   GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q8_1,
                                     GgmlType::Q4_0, GgmlType::Q4_1,  GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::IQ4_NL,
                                     GgmlType::Q2_K, GgmlType::Q3_K,  GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                                     GgmlType::Q8_K, GgmlType::IQ4_XS};

double nmse(const float* ref, const float* test, size_t n) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < n; ++i) {
    err += (double(test[i]) - ref[i]) * (double(test[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return norm > 0 ? err / norm : err;
}

// Bitwise equality, except that any two NaNs are equal (NaN payloads are not part of the contract).
bool same_floats(const std::vector<float>& a, const std::vector<float>& b, size_t* first_diff) {
  for (size_t i = 0; i < a.size(); ++i) {
    const bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    if (!both_nan && f32_to_bits(a[i]) != f32_to_bits(b[i])) {
      *first_diff = i;
      return false;
    }
  }
  return true;
}

std::vector<uint8_t> quantize(GgmlType type, const std::vector<float>& x, bool reference) {
  std::vector<uint8_t> out(row_bytes(type, int64_t(x.size())));  // [n / block] blocks
  (reference ? quantize_row_ref : quantize_row)(type, x.data(), out.data(), int64_t(x.size()));
  return out;
}

std::vector<float> dequantize(GgmlType type, const uint8_t* bytes, int64_t n, bool reference) {
  std::vector<float> out(size_t(n), 0.0f);  // [n] f32
  (reference ? dequantize_row_ref : dequantize_row)(type, bytes, out.data(), n);
  return out;
}

struct NamedRow {
  std::string name;
  std::vector<float> values;  // [kRow] f32
};

// Random and adversarial rows for the SIMD-vs-reference comparisons.
std::vector<NamedRow> adversarial_rows() {
  std::mt19937 rng(1234);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<NamedRow> rows;
  auto add = [&](std::string name, auto fill) {
    NamedRow row{std::move(name), std::vector<float>(kRow)};
    for (int i = 0; i < kRow; ++i) row.values[size_t(i)] = fill(i);
    rows.push_back(std::move(row));
  };
  for (float sigma : {1.0f, 1e-3f, 1e3f, 3e4f})
    add("gauss*" + std::to_string(sigma), [&](int) { return sigma * gauss(rng); });
  add("log-uniform magnitudes",
      [&](int) { return (unit(rng) < 0.5f ? -1.0f : 1.0f) * std::pow(10.0f, 6.0f * unit(rng) - 3.0f); });
  add("outlier channels", [&](int i) { return (i % 37 == 0 ? 80.0f : 0.05f) * gauss(rng); });
  add("zeros", [](int) { return 0.0f; });
  add("signed zeros", [](int i) { return i % 3 == 0 ? -0.0f : 0.0f; });
  add("negative zero first", [](int i) { return i % 32 == 0 ? -0.0f : (i % 32 == 5 ? 0.0f : 0.0f); });
  add("constant 0.75", [](int) { return 0.75f; });
  add("constant -2", [](int) { return -2.0f; });
  add("single spike", [](int i) { return i == 77 ? 42.0f : 0.0f; });
  add("spike per block", [&](int i) { return i % 32 == 9 ? -1e4f : 1e-2f * gauss(rng); });
  add("tied extremes", [](int i) { return i % 2 == 0 ? -3.0f : 3.0f; });
  add("alternating signs", [](int i) { return i % 2 == 0 ? 1.0f : -1.0f; });
  // Exact halves after scaling: q8_0 with absmax 127 has id == 1, so x * id lands on .5 ties.
  add("rounding ties", [](int i) { return i % 32 == 0 ? 127.0f : float(i % 64) - 31.5f; });
  add("tiny normals", [&](int) { return 1e-30f * gauss(rng); });
  add("subnormals", [&](int) { return 1e-39f * gauss(rng); });
  add("huge", [&](int) { return 1e30f * gauss(rng); });
  add("near fp16 max", [&](int) { return 65504.0f * (unit(rng) * 2.0f - 1.0f); });
  return rows;
}

// Random block bytes for any type, with every fp16 scale pattern possible (NaN and inf included).
std::vector<uint8_t> random_blocks(GgmlType type, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(row_bytes(type, n));  // [n / block] blocks of random bits
  for (auto& b : bytes) b = uint8_t(rng());
  return bytes;
}

// ---- fixture: ggml's outputs ----

const gguf::File& fixture() {
  static const Result<gguf::File> file = gguf::File::open(test::shared_path("fixtures/quant/quant-vectors.gguf"));
  if (!file.ok()) {
    ADD_FAILURE() << file.error().message;
    std::abort();
  }
  return *file;
}

struct FixtureTensor {
  GgmlType type;
  const uint8_t* bytes;         // [16 rows] of row_bytes(type, 256)
  std::vector<float> expected;  // [16, 256] f32: ggml's dequantization
};

FixtureTensor fixture_tensor(const std::string& name) {
  const gguf::TensorInfo* t = fixture().find_tensor(name);
  const gguf::TensorInfo* deq = fixture().find_tensor(name + ".dequant");
  KVQ_CHECK(t != nullptr && deq != nullptr && deq->type == GgmlType::F32);
  KVQ_CHECK(t->n_elements() == deq->n_elements() && t->dims[0] == kRow);
  FixtureTensor out{t->type, t->data, std::vector<float>(size_t(deq->n_elements()))};
  std::memcpy(out.expected.data(), deq->data, out.expected.size() * sizeof(float));
  return out;
}

std::vector<float> fixture_input() {
  const gguf::TensorInfo* t = fixture().find_tensor("input");
  KVQ_CHECK(t != nullptr && t->type == GgmlType::F32 && t->dims[0] == kRow);
  std::vector<float> out(size_t(t->n_elements()));  // [16, 256] f32
  std::memcpy(out.data(), t->data, out.size() * sizeof(float));
  return out;
}

// Dequantizes every fixture tensor with the reference or the dispatched kernels; must be bit-exact.
void expect_fixture_dequant(bool reference) {
  for (const char* name : kFixtureTypes) {
    SCOPED_TRACE(name);
    const FixtureTensor t = fixture_tensor(name);
    ASSERT_EQ(type_name(t.type), name);
    const int64_t n = int64_t(t.expected.size());
    const std::vector<float> got = dequantize(t.type, t.bytes, n, reference);
    size_t diff = 0;
    EXPECT_TRUE(same_floats(got, t.expected, &diff))
        << "value " << diff << ": got " << got[diff] << ", ggml " << t.expected[diff];
  }
}

// Quantizes `input` and compares the bytes with ggml's reference quantization.
void expect_fixture_quant_bytes(bool reference) {
  const std::vector<float> input = fixture_input();
  for (const char* name : kBytesExactTypes) {
    SCOPED_TRACE(name);
    const FixtureTensor t = fixture_tensor(name);
    const std::vector<uint8_t> got = quantize(t.type, input, reference);
    size_t first_diff = got.size();
    for (size_t i = 0; i < got.size() && first_diff == got.size(); ++i) {
      if (got[i] != t.bytes[i]) first_diff = i;
    }
    EXPECT_EQ(first_diff, got.size()) << "first differing byte " << first_diff << " of " << got.size();
  }
}

TEST(QuantFixture, ReferenceDequantizationIsBitExact) { expect_fixture_dequant(/*reference=*/true); }
TEST(QuantFixture, DispatchedDequantizationIsBitExact) { expect_fixture_dequant(/*reference=*/false); }
TEST(QuantFixture, ReferenceQuantizationReproducesGgmlBytes) { expect_fixture_quant_bytes(/*reference=*/true); }
TEST(QuantFixture, DispatchedQuantizationReproducesGgmlBytes) { expect_fixture_quant_bytes(/*reference=*/false); }

TEST(QuantFixture, ErrorMatchesPublishedNmse) {
  const std::vector<float> input = fixture_input();
  for (const FixtureNmse& row : kFixtureNmse) {
    SCOPED_TRACE(row.type);
    const FixtureTensor t = fixture_tensor(row.type);
    // Our own quantization where we have a quantizer, else ggml's bytes through our dequantizer.
    std::vector<float> restored;
    if (has_quantizer(t.type)) {
      const std::vector<uint8_t> bytes = quantize(t.type, input, /*reference=*/true);
      restored = dequantize(t.type, bytes.data(), int64_t(input.size()), true);
    } else {
      restored = dequantize(t.type, t.bytes, int64_t(input.size()), true);
    }
    const double got = nmse(input.data(), restored.data(), input.size());
    EXPECT_LE(got, row.nmse * (1 + kReadmeNmseRelTolerance));
    EXPECT_GE(got, row.nmse * (1 - kReadmeNmseRelTolerance));
  }
}

// ---- every compiled SIMD target against the reference ----

class QuantSimdTarget : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_P(QuantSimdTarget, QuantizeMatchesReferenceBytes) {
  for (const NamedRow& row : adversarial_rows()) {
    for (GgmlType type : kSimdQuantTypes) {
      SCOPED_TRACE(row.name + " " + std::string(type_name(type)));
      EXPECT_EQ(quantize(type, row.values, false), quantize(type, row.values, true));
    }
  }
}

TEST_P(QuantSimdTarget, DequantizeMatchesReferenceBits) {
  for (GgmlType type : kAllDequantTypes) {
    SCOPED_TRACE(type_name(type));
    // Bytes our quantizers produce, where there is one.
    if (has_quantizer(type)) {
      for (const NamedRow& row : adversarial_rows()) {
        const std::vector<uint8_t> bytes = quantize(type, row.values, true);
        size_t diff = 0;
        EXPECT_TRUE(
            same_floats(dequantize(type, bytes.data(), kRow, false), dequantize(type, bytes.data(), kRow, true), &diff))
            << row.name << " value " << diff;
      }
    }
    // Random bytes as a file could hold them: NaN / inf scales must not crash and must agree too.
    for (uint32_t seed = 0; seed < 8; ++seed) {
      const std::vector<uint8_t> bytes = random_blocks(type, 4 * kRow, seed);
      size_t diff = 0;
      EXPECT_TRUE(same_floats(dequantize(type, bytes.data(), 4 * kRow, false),
                              dequantize(type, bytes.data(), 4 * kRow, true), &diff))
          << "seed " << seed << " value " << diff;
    }
  }
}

TEST_P(QuantSimdTarget, HalfConversionsAreExactForEveryPattern) {
  // Every 16-bit pattern, as f16 and as bf16 (the odd length exercises the scalar tail).
  std::vector<uint16_t> patterns(65536 + 7);  // [65543] 16-bit values
  for (size_t i = 0; i < patterns.size(); ++i) patterns[i] = uint16_t(i);
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16}) {
    SCOPED_TRACE(type_name(type));
    const int64_t n = int64_t(patterns.size());
    const auto* bytes = reinterpret_cast<const uint8_t*>(patterns.data());
    std::vector<float> simd = dequantize(type, bytes, n, false), ref = dequantize(type, bytes, n, true);
    EXPECT_EQ(0, std::memcmp(simd.data(), ref.data(), simd.size() * sizeof(float)));  // NaN payloads too
  }
  // f32 -> f16 / bf16 on random bit patterns plus the rounding and range boundaries.
  std::mt19937 rng(7);
  std::vector<float> values;  // [~70k] f32
  for (int i = 0; i < 65536; ++i) values.push_back(bits_to_f32(uint32_t(rng())));
  for (uint32_t bits : {0x477fefffu, 0x477ff000u, 0x38800000u, 0x387fffffu, 0x33000000u, 0x33000001u, 0x7f800000u,
                        0x7fc00001u, 0x7f800001u, 0x00000001u, 0x3f808000u, 0x3f818000u, 0x3f800fffu, 0x3f801000u}) {
    values.push_back(bits_to_f32(bits));
    values.push_back(-bits_to_f32(bits));
  }
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16}) {
    SCOPED_TRACE(type_name(type));
    EXPECT_EQ(quantize(type, values, false), quantize(type, values, true));
  }
}

TEST_P(QuantSimdTarget, FixtureThroughThisTarget) {
  expect_fixture_dequant(/*reference=*/false);
  expect_fixture_quant_bytes(/*reference=*/false);
}

// Code of value j (0..31) in a q4_0/q4_1/q5_0/q5_1 block.
int code_at(GgmlType type, const uint8_t* block, int j) {
  const bool five_bits = type == GgmlType::Q5_0 || type == GgmlType::Q5_1;
  const bool has_min = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
  const uint8_t* qh = block + (has_min ? 4 : 2);  // after d (and m)
  const uint8_t* qs = qh + (five_bits ? 4 : 0);
  int code = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
  if (five_bits) {
    uint32_t bits;
    std::memcpy(&bits, qh, 4);
    code |= int((bits >> j) & 1) << 4;
  }
  return code;
}

// ggml computes a code as trunc(fl(fl(x * id) + offset)): two roundings. This builds a block of
// values x for which fl(x * id) is exactly a tie of the addition while the exact x * id lies below
// it, so the tie rounds up to the integer k but a fused multiply-add (one rounding) gives k - 1. A
// compiler that contracts the kernels into FMAs fails here.
TEST_P(QuantSimdTarget, NoFusedMultiplyAdd) {
  struct Case {
    GgmlType type;
    float offset;  // added after scaling: 8.5 / 16.5 for the symmetric formats, 0.5 with a min
    int levels;    // codes 0..levels-1
    bool has_min;
  };
  for (const Case c : {Case{GgmlType::Q4_0, 8.5f, 16, false}, Case{GgmlType::Q5_0, 16.5f, 32, false},
                       Case{GgmlType::Q4_1, 0.5f, 16, true}, Case{GgmlType::Q5_1, 0.5f, 32, true}}) {
    SCOPED_TRACE(type_name(c.type));
    // One block per upper code k: [0 (the min, with a min),] the extreme M, the sensitive x, then
    // filler.
    std::vector<float> row;                        // [n_blocks * 32] f32
    std::vector<std::pair<size_t, int>> expected;  // (index of x in row, tie-rounded code k)
    for (int k = 1; k < c.levels; ++k) {
      // The midpoint between k and the float below it; ties go to k (its mantissa is even).
      const double tie = (double(k) + double(std::nextafter(float(k), 0.0f))) / 2;
      const double target = tie - double(c.offset);
      const float m = float(target);
      // The tie must be a product value: only where m sits in a finer binade than the sum m +
      // offset.
      if (target <= 0 || double(m) != target) continue;
      // Whether some x hits m exactly depends on the scale's mantissa: try extremes until one does.
      for (int trial = 0; trial < 400; ++trial) {
        const float extreme = (c.has_min ? 1.0f : -1.0f) * (7.3f + 0.01f * float(trial));
        // The quantizer's own scale, operation for operation.
        const float d = c.has_min ? (extreme - 0.0f) / float(c.levels - 1) : extreme / -float(c.levels / 2);
        const float id = 1.0f / d;
        float x = std::nextafter(m / id, 100.0f);
        bool found = false;
        for (int i = 0; i < 8 && !found; ++i, x = std::nextafter(x, 0.0f)) {  // walk down: the product decreases
          found = x * id == m && double(x) * double(id) < double(m);
        }
        if (!found) continue;
        x = std::nextafter(x, 100.0f);  // undo the last step
        const size_t base = row.size();
        row.resize(base + 32, c.has_min ? 0.25f : 0.0f);
        row[base] = 0.0f;
        row[base + 1] = extreme;
        row[base + 2] = x;
        expected.emplace_back(base + 2, k);
        break;
      }
    }
    // With offset 0.5 only k = 1 has its tie in a finer binade than the sum; 8.5 / 16.5 leave room
    // for more.
    ASSERT_GE(expected.size(), c.has_min ? 1u : 4u) << "too few tie-sensitive values found";
    const std::vector<uint8_t> ref = quantize(c.type, row, true);
    const size_t block_bytes = row_bytes(c.type, 32);
    for (const auto& [index, k] : expected) {
      EXPECT_EQ(code_at(c.type, ref.data() + index / 32 * block_bytes, int(index % 32)), k) << "value " << index;
    }
    EXPECT_EQ(quantize(c.type, row, false), ref);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, QuantSimdTarget, ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return std::string(hwy::TargetName(info.param));
                         });

// ---- round-trip error of every quantizer ----

struct RoundTripCase {
  GgmlType type;
  double max_nmse;
};

class QuantRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(QuantRoundTrip, GaussianNmseWithinBound) {
  const RoundTripCase c = GetParam();
  std::mt19937 rng(42);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x(64 * kRow);  // [64, 256] f32
  for (float& v : x) v = gauss(rng);
  for (bool reference : {true, false}) {
    SCOPED_TRACE(reference ? "reference" : "dispatched");
    const std::vector<uint8_t> bytes = quantize(c.type, x, reference);
    const std::vector<float> restored = dequantize(c.type, bytes.data(), int64_t(x.size()), reference);
    const double error = nmse(x.data(), restored.data(), x.size());
    EXPECT_LE(error, c.max_nmse);
    EXPECT_GT(error, 0.0);  // a lossy format that reports no loss is not quantizing at all
  }
}

TEST_P(QuantRoundTrip, ZerosStayZero) {
  const GgmlType type = GetParam().type;
  const std::vector<float> zeros(kRow, 0.0f);
  for (bool reference : {true, false}) {
    const std::vector<uint8_t> bytes = quantize(type, zeros, reference);
    for (float v : dequantize(type, bytes.data(), kRow, reference)) ASSERT_EQ(v, 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllQuantizers, QuantRoundTrip,
    ::testing::Values(RoundTripCase{GgmlType::F16, kMaxNmseF16}, RoundTripCase{GgmlType::BF16, kMaxNmseBF16},
                      RoundTripCase{GgmlType::Q8_0, kMaxNmseQ8_0}, RoundTripCase{GgmlType::Q8_1, kMaxNmseQ8_1},
                      RoundTripCase{GgmlType::Q8_K, kMaxNmseQ8_K}, RoundTripCase{GgmlType::Q5_0, kMaxNmseQ5_0},
                      RoundTripCase{GgmlType::Q5_1, kMaxNmseQ5_1}, RoundTripCase{GgmlType::Q4_0, kMaxNmseQ4_0},
                      RoundTripCase{GgmlType::Q4_1, kMaxNmseQ4_1}, RoundTripCase{GgmlType::IQ4_NL, kMaxNmseIQ4_NL}),
    [](const ::testing::TestParamInfo<RoundTripCase>& info) { return std::string(type_name(info.param.type)); });

// ---- type predicates and q8_K's layout ----

// The KV cache's iq4_nl quantizer (no scale search, as llama.cpp's cache store): more error than the
// searched one, still no worse than q4_0 at the same 4.5 bits.
TEST(QuantIq4Nl, NoSearchVariantBetweenSearchAndQ4_0) {
  std::mt19937 rng(7);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x(64 * kRow);  // [64, 256] f32
  for (float& v : x) v = gauss(rng);
  std::vector<BlockIQ4_NL> blocks(x.size() / kQK);
  quantize_row_iq4_nl_nosearch_ref(x.data(), blocks.data(), int64_t(x.size()));
  const double nosearch = nmse(
      x.data(),
      dequantize(GgmlType::IQ4_NL, reinterpret_cast<const uint8_t*>(blocks.data()), int64_t(x.size()), true).data(),
      x.size());
  auto roundtrip = [&](GgmlType type) {
    const std::vector<uint8_t> bytes = quantize(type, x, true);
    return nmse(x.data(), dequantize(type, bytes.data(), int64_t(x.size()), true).data(), x.size());
  };
  std::printf("iq4_nl NMSE: no search %.3e, search %.3e, q4_0 %.3e\n", nosearch, roundtrip(GgmlType::IQ4_NL),
              roundtrip(GgmlType::Q4_0));
  EXPECT_GE(nosearch, roundtrip(GgmlType::IQ4_NL));
  EXPECT_LE(nosearch, roundtrip(GgmlType::Q4_0));
  // quantize_row_kv routes iq4_nl to this variant and every other type to quantize_row.
  std::vector<BlockIQ4_NL> via_kv(blocks.size());
  quantize_row_kv(GgmlType::IQ4_NL, x.data(), via_kv.data(), int64_t(x.size()));
  EXPECT_EQ(0, std::memcmp(via_kv.data(), blocks.data(), blocks.size() * sizeof(BlockIQ4_NL)));
}

TEST(QuantTypes, KvCacheTypesAreTheQuantizableStorageFormats) {
  for (GgmlType type : kAllDequantTypes) {
    const bool kv = type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 ||
                    type == GgmlType::Q8_0 || type == GgmlType::Q5_1 || type == GgmlType::Q5_0 ||
                    type == GgmlType::Q4_1 || type == GgmlType::Q4_0 || type == GgmlType::IQ4_NL;
    EXPECT_EQ(is_kv_cache_type(type), kv) << type_name(type);
    if (kv) {
      EXPECT_TRUE(has_quantizer(type)) << type_name(type);  // the cache must be able to write it
    }
  }
  EXPECT_TRUE(has_quantizer(GgmlType::Q8_K));
  EXPECT_FALSE(has_quantizer(GgmlType::Q4_K));
}

TEST(QuantTypes, Q8KBlockSumsAndScale) {
  std::mt19937 rng(3);
  std::normal_distribution<float> gauss(0.0f, 2.0f);
  std::vector<float> x(2 * kQK_K);  // [512] f32
  for (float& v : x) v = gauss(rng);
  x[5] = -9.0f;  // the block's extreme value maps to code -127 exactly: d = 9 / 127
  std::vector<BlockQ8_K> blocks(2);
  quantize_row(GgmlType::Q8_K, x.data(), blocks.data(), int64_t(x.size()));
  EXPECT_EQ(blocks[0].qs[5], -127);
  EXPECT_FLOAT_EQ(blocks[0].d, 9.0f / 127.0f);
  for (const BlockQ8_K& b : blocks) {
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
      EXPECT_EQ(b.bsums[g], sum);
    }
  }
}

}  // namespace
}  // namespace kvq
