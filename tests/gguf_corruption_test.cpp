// Malformed GGUF input: truncations of real files at every header offset and a sweep of the data,
// and hand-made files with one field broken at a time. Each must give an Error that names the file
// and the problem; none may crash (the suite also runs under ASan/UBSan).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>

#include "gguf/gguf.h"
#include "test_util.h"

namespace kvq::gguf {
namespace {

constexpr const char* kName = "broken.gguf";  // the name given to File::parse; errors must show it

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Parses `bytes`, expects failure, returns the message after checking it names the input.
std::string parse_error(const std::vector<uint8_t>& bytes) {
  auto file = File::parse(bytes, kName);
  if (file.ok()) return "<parsed without error>";
  const std::string& message = file.error().message;
  EXPECT_EQ(message.rfind(std::string(kName) + ": ", 0), 0u) << message;
  return message;
}

#define EXPECT_PARSE_ERROR(bytes, word)                                           \
  do {                                                                            \
    const std::string message_ = parse_error(bytes);                              \
    EXPECT_NE(message_.find(word), std::string::npos) << "message: " << message_; \
  } while (0)

// Independent little-endian encoder (not gguf::Writer), so reader and writer check each other.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b_.insert(b_.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(std::string_view s) {
    put<uint64_t>(s.size());
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::vector<uint8_t>& bytes) {
    b_.insert(b_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  void pad(size_t alignment) {
    while (b_.size() % alignment != 0) b_.push_back(0);
  }
  std::vector<uint8_t>& bytes() { return b_; }

 private:
  std::vector<uint8_t> b_;
};

// A small valid file described field by field; each test breaks one field.
struct Spec {
  struct Kv {
    std::string key;
    uint32_t type;
    std::vector<uint8_t> payload;  // the encoded value after its type tag
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    uint64_t offset;
  };
  uint32_t magic = kMagic;
  uint32_t version = 3;
  std::optional<uint64_t> n_kv, n_tensors;  // override the true counts
  std::vector<Kv> kvs = {{"general.architecture", 8, Bytes().str("llama").bytes()},
                         {"test.count", 4, Bytes().put<uint32_t>(7).bytes()}};
  // a: f32 [64, 2] = 512 bytes at 0; b: q8_0 [32] = 34 bytes at 512. Data section 576 bytes.
  std::vector<Tensor> tensors = {{"a", {64, 2}, 0, 0}, {"b", {32}, 8, 512}};
  size_t data_bytes = 576;
  size_t alignment = 32;

  std::vector<uint8_t> build() const {
    Bytes out;
    out.put(magic).put(version);
    out.put<uint64_t>(n_tensors.value_or(tensors.size())).put<uint64_t>(n_kv.value_or(kvs.size()));
    for (const Kv& kv : kvs) out.str(kv.key).put(kv.type).raw(kv.payload);
    for (const Tensor& t : tensors) {
      out.str(t.name).put<uint32_t>(uint32_t(t.dims.size()));
      for (uint64_t d : t.dims) out.put(d);
      out.put(t.type).put(t.offset);
    }
    out.pad(alignment);
    for (size_t i = 0; i < data_bytes; ++i) out.put<uint8_t>(uint8_t(i));
    return out.bytes();
  }
};

TEST(GgufCorruption, BaselineSpecParses) {
  auto file = File::parse(Spec().build(), kName);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->find_tensor("b")->bytes, 34u);
  EXPECT_EQ(file->get_int("test.count").value(), 7);
}

TEST(GgufCorruption, Header) {
  Spec s;
  s.magic = 0x46554746;
  EXPECT_PARSE_ERROR(s.build(), "magic");
  s = Spec();
  s.version = 1;
  EXPECT_PARSE_ERROR(s.build(), "version 1");
  s.version = 4;
  EXPECT_PARSE_ERROR(s.build(), "version 4");
  s.version = 0x03000000;
  EXPECT_PARSE_ERROR(s.build(), "big-endian");
  s = Spec();
  s.version = 2;  // v2 has the same layout and is accepted
  EXPECT_TRUE(File::parse(s.build(), kName).ok());
  EXPECT_PARSE_ERROR(std::vector<uint8_t>(), "truncated");
  EXPECT_PARSE_ERROR(std::vector<uint8_t>({'G', 'G'}), "truncated");
}

TEST(GgufCorruption, HugeCountsAreRefusedBeforeAllocating) {
  Spec s;
  s.n_kv = uint64_t(1) << 62;
  EXPECT_PARSE_ERROR(s.build(), "metadata entries");
  s = Spec();
  s.n_tensors = ~uint64_t(0);
  EXPECT_PARSE_ERROR(s.build(), "tensor infos");
  s = Spec();
  s.n_kv = 3;  // one more than present: runs into the tensor infos and fails somewhere, cleanly
  EXPECT_NE(parse_error(s.build()), "<parsed without error>");
}

TEST(GgufCorruption, Metadata) {
  Spec s;
  s.kvs[1].payload = Bytes().put<uint64_t>(~uint64_t(0) - 3).bytes();  // string length past the end
  s.kvs[1].type = 8;
  EXPECT_PARSE_ERROR(s.build(), "truncated");
  s = Spec();
  s.kvs[1].type = 13;
  EXPECT_PARSE_ERROR(s.build(), "unknown metadata value type 13");
  s.kvs[1] = {"test.array", 9, Bytes().put<uint32_t>(99).put<uint64_t>(1).bytes()};
  EXPECT_PARSE_ERROR(s.build(), "unknown array element type 99");
  s.kvs[1] = {"test.array", 9, Bytes().put<uint32_t>(6).put<uint64_t>(uint64_t(1) << 61).bytes()};
  EXPECT_PARSE_ERROR(s.build(), "array of");
  s.kvs[1] = {"test.bool", 7, {2}};
  EXPECT_PARSE_ERROR(s.build(), "bool");
  s.kvs[1] = {"", 4, Bytes().put<uint32_t>(1).bytes()};
  EXPECT_PARSE_ERROR(s.build(), "empty key");
  s.kvs[1] = {"general.architecture", 4, Bytes().put<uint32_t>(1).bytes()};
  EXPECT_PARSE_ERROR(s.build(), "duplicate metadata key 'general.architecture'");
  s.kvs[1] = {std::string(70000, 'k'), 4, Bytes().put<uint32_t>(1).bytes()};
  EXPECT_PARSE_ERROR(s.build(), "limit");

  // The total number of array elements is capped (each costs a Value in memory): refused up front.
  constexpr uint64_t kOverLimit = (uint64_t(1) << 22) + 1;
  s.kvs[1] = {"test.big", 9, Bytes().put<uint32_t>(0).put<uint64_t>(kOverLimit).bytes()};
  s.kvs[1].payload.resize(s.kvs[1].payload.size() + kOverLimit);
  EXPECT_PARSE_ERROR(s.build(), "values in total");

  // Arrays of arrays nest up to a fixed depth; one level more is refused, never a stack overflow.
  auto nested = [](int depth) {
    Bytes b;
    for (int i = 0; i < depth; ++i) b.put<uint32_t>(9).put<uint64_t>(1);
    b.put<uint32_t>(0).put<uint64_t>(1).put<uint8_t>(5);
    return b.bytes();
  };
  s.kvs[1] = {"test.nested", 9, nested(7)};
  EXPECT_TRUE(File::parse(s.build(), kName).ok());
  s.kvs[1] = {"test.nested", 9, nested(8)};
  EXPECT_PARSE_ERROR(s.build(), "nested deeper");
}

TEST(GgufCorruption, Alignment) {
  Spec s;
  s.kvs.push_back({"general.alignment", 4, Bytes().put<uint32_t>(48).bytes()});
  EXPECT_PARSE_ERROR(s.build(), "general.alignment");
  s.kvs.back().payload = Bytes().put<uint32_t>(0).bytes();
  EXPECT_PARSE_ERROR(s.build(), "general.alignment");
  s.kvs.back() = {"general.alignment", 8, Bytes().str("32").bytes()};
  EXPECT_PARSE_ERROR(s.build(), "general.alignment");
  s.kvs.back() = {"general.alignment", 4, Bytes().put<uint32_t>(64).bytes()};
  s.tensors[1].offset = 544;  // multiple of 32, not of 64
  s.alignment = 64;
  s.data_bytes = 640;
  EXPECT_PARSE_ERROR(s.build(), "not a multiple of the alignment 64");
  s.tensors[1].offset = 576;
  auto file = File::parse(s.build(), kName);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->data_offset() % 64, 0u);
}

TEST(GgufCorruption, TensorInfos) {
  Spec s;
  s.tensors[0].dims = {64, 1, 1, 1, 2};
  EXPECT_PARSE_ERROR(s.build(), "5 dimensions");
  s.tensors[0].dims = {};
  EXPECT_PARSE_ERROR(s.build(), "0 dimensions");
  s.tensors[0].dims = {64, 0};
  EXPECT_PARSE_ERROR(s.build(), "dimension 1 is 0");
  s.tensors[0].dims = {64, ~uint64_t(0)};  // -1 as int64
  EXPECT_PARSE_ERROR(s.build(), "must be positive");
  s.tensors[0].dims = {uint64_t(1) << 32, uint64_t(1) << 32};
  EXPECT_PARSE_ERROR(s.build(), "overflows");
  s = Spec();
  s.tensors[0].type = 4;  // retired q4_2
  EXPECT_PARSE_ERROR(s.build(), "unknown type id 4");
  s.tensors[0].type = 0xffffffff;
  EXPECT_PARSE_ERROR(s.build(), "unknown type id");
  s = Spec();
  s.tensors[1].dims = {48};
  EXPECT_PARSE_ERROR(s.build(), "not a multiple of the q8_0 block size 32");
  s = Spec();
  s.tensors[1].name = "a";
  EXPECT_PARSE_ERROR(s.build(), "duplicate tensor name 'a'");
}

TEST(GgufCorruption, TensorOffsets) {
  Spec s;
  s.tensors[1].offset = 520;
  EXPECT_PARSE_ERROR(s.build(), "alignment");
  s.tensors[1].offset = 480;  // overlaps the end of 'a' (512 bytes at 0)
  EXPECT_PARSE_ERROR(s.build(), "overlap");
  s.tensors[1].offset = 544;  // ends 2 bytes past the data section
  EXPECT_PARSE_ERROR(s.build(), "truncated");
  s.tensors[1].offset = ~uint64_t(31);  // offset + bytes overflows uint64
  EXPECT_PARSE_ERROR(s.build(), "past the end");
  s = Spec();
  s.tensors[1].offset = 0;  // two tensors sharing bytes
  EXPECT_PARSE_ERROR(s.build(), "overlap");
}

void check_truncations(const std::string& relative, uint64_t sweep_step) {
  const std::vector<uint8_t> bytes = read_bytes(test::shared_path(relative));
  auto full = File::parse(bytes, kName);
  ASSERT_TRUE(full.ok()) << full.error().message;
  // A file cut anywhere before its last needed byte must fail (trailing padding is not needed).
  uint64_t needed = full->tensors().empty() ? bytes.size() : 0;
  for (const TensorInfo& t : full->tensors()) {
    needed = std::max(needed, full->data_offset() + t.offset + t.bytes);
  }
  std::vector<uint64_t> cuts;
  for (uint64_t cut = 0; cut <= std::min<uint64_t>(full->data_offset() + 64, needed - 1); ++cut) {
    cuts.push_back(cut);  // every header byte boundary
  }
  for (uint64_t cut = full->data_offset(); cut < needed; cut += sweep_step) cuts.push_back(cut);
  cuts.push_back(needed - 1);
  for (uint64_t cut : cuts) {
    const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + ptrdiff_t(cut));
    const std::string message = parse_error(prefix);
    ASSERT_NE(message.find("truncated"), std::string::npos) << "cut at " << cut << ": " << message;
  }
  EXPECT_TRUE(File::parse(std::vector<uint8_t>(bytes.begin(), bytes.begin() + ptrdiff_t(needed)), kName).ok());
}

TEST(GgufCorruption, TruncatedRealFiles) {
  check_truncations("fixtures/quant/quant-vectors.gguf", 997);
  check_truncations("fixtures/logits/logits-stories260K.kv-f32-f32.fa0.gguf", 4099);
  check_truncations("data/models/stories260K/stories260K.gguf", 8191);
}

TEST(GgufCorruption, TruncatedVocabularyMetadata) {
  // Big string arrays: cut inside the token list at a sweep of offsets.
  const std::vector<uint8_t> bytes = read_bytes(test::shared_path("data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"));
  ASSERT_TRUE(File::parse(bytes, kName).ok());
  for (uint64_t cut = 0; cut < bytes.size(); cut += 7919) {
    const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + ptrdiff_t(cut));
    EXPECT_NE(parse_error(prefix).find("truncated"), std::string::npos) << "cut at " << cut;
  }
}

TEST(GgufCorruption, RandomHeaderMutationsNeverCrash) {
  const std::vector<uint8_t> original = read_bytes(test::shared_path("fixtures/quant/quant-vectors.gguf"));
  auto clean = File::parse(original, kName);
  ASSERT_TRUE(clean.ok());
  const uint64_t header = clean->data_offset();
  std::mt19937_64 rng(12345);
  int failures = 0;
  constexpr int kMutations = 3000;
  for (int i = 0; i < kMutations; ++i) {
    std::vector<uint8_t> bytes = original;
    const int n_flips = 1 + int(rng() % 4);
    for (int f = 0; f < n_flips; ++f) bytes[rng() % header] = uint8_t(rng());
    auto file = File::parse(bytes, kName);
    if (!file.ok()) {
      ++failures;
      EXPECT_EQ(file.error().message.rfind(std::string(kName) + ": ", 0), 0u);
      continue;
    }
    for (const TensorInfo& t : file->tensors()) {
      ASSERT_LE(file->data_offset() + t.offset + t.bytes, bytes.size()) << t.name;
    }
  }
  // Most mutations land in string bytes and stay valid; the rest must fail cleanly.
  EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace kvq::gguf
