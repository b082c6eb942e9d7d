// GGUF reader and writer: every shared file reads with the expected facts, the writer reproduces
// llama.cpp's files byte for byte, and values of every type survive a round trip.
// Malformed inputs are covered in gguf_corruption_test.cpp.
#include "gguf/gguf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test_util.h"

namespace kvq::gguf {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> shared_gguf_files() {
  std::vector<std::string> paths;
  for (const char* dir : {"data", "fixtures"}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(test::shared_path(dir))) {
      if (entry.is_regular_file() && entry.path().extension() == ".gguf") {
        paths.push_back(entry.path().string());
      }
    }
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

bool values_equal(const Value& a, const Value& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case ValueType::STRING:
      return a.str == b.str;
    case ValueType::FLOAT32:
    case ValueType::FLOAT64:
      return std::memcmp(&a.f64, &b.f64, sizeof(double)) == 0;
    case ValueType::ARRAY:
      if (a.element_type != b.element_type || a.array.size() != b.array.size()) return false;
      for (size_t i = 0; i < a.array.size(); ++i) {
        if (!values_equal(a.array[i], b.array[i])) return false;
      }
      return true;
    default:
      return a.as_int() == b.as_int();
  }
}

// Writes `file` again through Writer: same metadata in the same order, same tensors and bytes.
Status rewrite(const File& file, const std::string& path) {
  Writer writer;
  for (const auto& [key, value] : file.metadata()) writer.set_value(key, value);
  for (const TensorInfo& t : file.tensors()) {
    const uint8_t* src = t.data;
    KVQ_RETURN_IF_ERROR(writer.add_tensor(t.name, t.type, t.dims,
                                          [src](std::span<uint8_t> dst) { std::memcpy(dst.data(), src, dst.size()); }));
  }
  return writer.write(path);
}

TEST(GgufRead, EverySharedFileParses) {
  const std::vector<std::string> paths = shared_gguf_files();
  ASSERT_GE(paths.size(), 40u) << "expected the models, vocabularies and fixtures under ../shared";
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    auto file = File::open(path);
    ASSERT_TRUE(file.ok()) << file.error().message;
    EXPECT_EQ(file->version(), 3u);  // fixtures/README.md: all v3, alignment 32
    EXPECT_EQ(file->alignment(), 32u);
    EXPECT_EQ(file->data_offset() % 32, 0u);
    EXPECT_FALSE(file->metadata().empty());
    for (const TensorInfo& t : file->tensors()) {
      EXPECT_EQ(file->find_tensor(t.name), &t);
      EXPECT_LE(file->data_offset() + t.offset + t.bytes, file->file_size()) << t.name;
      EXPECT_EQ(t.bytes, row_bytes(t.type, t.dims[0]) * uint64_t(t.n_rows())) << t.name;
    }
  }
}

TEST(GgufRead, Stories260KFacts) {
  const std::string path = test::shared_path("data/models/stories260K/stories260K.gguf");
  auto file = File::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->get_string("general.architecture").value(), "llama");
  EXPECT_EQ(file->get_int("llama.context_length").value(), 2048);
  EXPECT_EQ(file->get_int("llama.block_count").value(), 5);
  EXPECT_FLOAT_EQ(float(file->get_float("llama.attention.layer_norm_rms_epsilon").value()), 1e-5f);
  // An unsigned 32-bit "none" id must come back unsigned, not as -1.
  EXPECT_EQ(file->get_int("tokenizer.ggml.padding_token_id").value(), 4294967295);

  auto tokens = file->get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.error().message;
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ(file->get_float_array("tokenizer.ggml.scores").value().size(), 512u);
  EXPECT_EQ(file->get_int_array("tokenizer.ggml.token_type").value().size(), 512u);

  ASSERT_EQ(file->tensors().size(), 48u);
  for (const TensorInfo& t : file->tensors()) EXPECT_EQ(t.type, GgmlType::F32) << t.name;
  const TensorInfo* embd = file->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(embd->n_rows(), 512);
  EXPECT_EQ(file->find_tensor("no.such.tensor"), nullptr);

  // The data pointer is the file's bytes at data_offset + offset.
  const std::vector<uint8_t> raw = read_bytes(path);
  const TensorInfo* ffn = file->find_tensor("blk.4.ffn_down.weight");
  ASSERT_NE(ffn, nullptr);
  EXPECT_EQ(std::memcmp(ffn->data, raw.data() + file->data_offset() + ffn->offset, ffn->bytes), 0);
}

TEST(GgufRead, QuantVectorsTensors) {
  auto file = File::open(test::shared_path("fixtures/quant/quant-vectors.gguf"));
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->get_int("vectors.n_per_row").value(), 256);
  EXPECT_EQ(file->get_int("vectors.nrows").value(), 16);
  const std::pair<const char*, GgmlType> expected[] = {
      {"f16", GgmlType::F16},   {"bf16", GgmlType::BF16},    {"q8_0", GgmlType::Q8_0}, {"q4_0", GgmlType::Q4_0},
      {"q4_1", GgmlType::Q4_1}, {"q5_0", GgmlType::Q5_0},    {"q5_1", GgmlType::Q5_1}, {"iq4_nl", GgmlType::IQ4_NL},
      {"q2_K", GgmlType::Q2_K}, {"q3_K", GgmlType::Q3_K},    {"q4_K", GgmlType::Q4_K}, {"q5_K", GgmlType::Q5_K},
      {"q6_K", GgmlType::Q6_K}, {"iq4_xs", GgmlType::IQ4_XS}};
  ASSERT_EQ(file->tensors().size(), 1 + 2 * std::size(expected));
  const TensorInfo* input = file->find_tensor("input");
  ASSERT_NE(input, nullptr);
  EXPECT_EQ(input->type, GgmlType::F32);
  EXPECT_EQ(input->dims, (std::vector<int64_t>{256, 16}));
  for (const auto& [name, type] : expected) {
    SCOPED_TRACE(name);
    const TensorInfo* t = file->find_tensor(name);
    const TensorInfo* dequant = file->find_tensor(std::string(name) + ".dequant");
    ASSERT_NE(t, nullptr);
    ASSERT_NE(dequant, nullptr);
    EXPECT_EQ(t->type, type);
    EXPECT_EQ(t->dims, input->dims);
    EXPECT_EQ(t->bytes, 16 * row_bytes(type, 256));
    EXPECT_EQ(dequant->type, GgmlType::F32);
    EXPECT_EQ(dequant->bytes, 16u * 256u * 4u);
  }
}

TEST(GgufRead, GetterErrorsNameFileKeyAndType) {
  const std::string path = test::shared_path("data/models/stories260K/stories260K.gguf");
  auto file = File::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto expect_error = [&](const Error& e, std::initializer_list<std::string_view> words) {
    EXPECT_NE(e.message.find(path), std::string::npos) << e.message;
    for (std::string_view w : words) EXPECT_NE(e.message.find(w), std::string::npos) << e.message;
  };
  expect_error(file->get_int("llama.missing_key").error(), {"llama.missing_key", "missing"});
  expect_error(file->get_int("general.architecture").error(), {"general.architecture", "string"});
  expect_error(file->get_bool("llama.context_length").error(), {"uint32", "bool"});
  expect_error(file->get_string("tokenizer.ggml.scores").error(), {"array of float32"});
  expect_error(file->get_string_array("tokenizer.ggml.scores").error(), {"array of string"});
  expect_error(file->get_int_array("tokenizer.ggml.tokens").error(), {"array of integers"});
  expect_error(file->get_float("general.name").error(), {"general.name", "number"});
  EXPECT_EQ(file->get_int_or("llama.missing_key", 7).value(), 7);
  EXPECT_DOUBLE_EQ(file->get_float_or("llama.missing_key", 0.5).value(), 0.5);
  EXPECT_FALSE(file->get_int_or("general.architecture", 7).ok());  // present, wrong type
  EXPECT_EQ(file->get_int_or("llama.context_length", 7).value(), 2048);

  auto missing = File::open(path + ".does-not-exist");
  ASSERT_FALSE(missing.ok());
  expect_error(missing.error(), {"cannot open"});
}

// Files written by llama.cpp / gguf-py come back identical from Writer: the layout follows the
// spec.
TEST(GgufWrite, RewritesSharedFilesByteForByte) {
  for (const char* relative :
       {"data/models/stories260K/stories260K.gguf", "fixtures/quant/quant-vectors.gguf",
        "fixtures/models/synth-mini-q4_k_m.gguf", "fixtures/logits/logits-synth-mini-f32.kv-f32-f32.gguf",
        "data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"}) {
    SCOPED_TRACE(relative);
    const std::string path = test::shared_path(relative);
    auto file = File::open(path);
    ASSERT_TRUE(file.ok()) << file.error().message;
    const std::string out = test::temp_dir() + "/rewrite.gguf";
    Status status = rewrite(*file, out);
    ASSERT_TRUE(status.ok()) << status.message();
    EXPECT_TRUE(read_bytes(out) == read_bytes(path)) << "rewritten file differs";
  }
}

Value scalar(ValueType type, int64_t i, uint64_t u, double f) {
  Value v;
  v.type = type;
  v.i64 = i;
  v.u64 = u;
  v.f64 = f;
  return v;
}

TEST(GgufWrite, RoundTripsEveryValueTypeAndTensorType) {
  Writer writer;
  writer.set_u32("t.u32", 4000000000u);
  writer.set_i32("t.i32", -123456);
  writer.set_u64("t.u64", 18000000000000000000ull);
  writer.set_f32("t.f32", 0.1f);
  writer.set_bool("t.bool", true);
  writer.set_string("t.str", std::string("utf-8 \xE2\x96\x81 and a \0 byte", 22));
  writer.set_value("t.u8", scalar(ValueType::UINT8, 0, 255, 0));
  writer.set_value("t.i8", scalar(ValueType::INT8, -128, 0, 0));
  writer.set_value("t.u16", scalar(ValueType::UINT16, 0, 65535, 0));
  writer.set_value("t.i16", scalar(ValueType::INT16, -32768, 0, 0));
  writer.set_value("t.i64", scalar(ValueType::INT64, INT64_MIN, 0, 0));
  writer.set_value("t.f64", scalar(ValueType::FLOAT64, 0, 0, -1.0 / 3.0));
  writer.set_string_array("t.strs", {"a", "", "ccc"});
  writer.set_f32_array("t.f32s", {1.5f, -2.25f});
  writer.set_i32_array("t.i32s", {});
  Value nested;  // [[1, 2], [], [3]] of uint16
  nested.type = ValueType::ARRAY;
  nested.element_type = ValueType::ARRAY;
  for (size_t n : {2, 0, 1}) {
    Value inner;
    inner.type = ValueType::ARRAY;
    inner.element_type = ValueType::UINT16;
    for (size_t i = 0; i < n; ++i) inner.array.push_back(scalar(ValueType::UINT16, 0, 1 + i, 0));
    nested.array.push_back(inner);
  }
  writer.set_value("t.nested", nested);
  writer.set_u32("t.u32", 7);  // replacing keeps one entry

  // [n_tensors] bytes of each tensor: a pattern that differs per tensor and per byte.
  const std::pair<GgmlType, std::vector<int64_t>> shapes[] = {{GgmlType::F32, {3}},
                                                              {GgmlType::F16, {5, 3}},
                                                              {GgmlType::BF16, {2, 2, 2}},
                                                              {GgmlType::Q4_0, {64, 3}},
                                                              {GgmlType::Q8_0, {32, 1, 1, 2}},
                                                              {GgmlType::Q6_K, {256, 2}},
                                                              {GgmlType::IQ4_XS, {512}},
                                                              {GgmlType::I32, {7}}};
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < std::size(shapes); ++i) {
    const auto& [type, dims] = shapes[i];
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<uint8_t> bytes(row_bytes(type, n));
    for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = uint8_t(j * 31 + i * 7 + 1);
    data.push_back(bytes);
    const std::string name = fmt::format("tensor.{}", i);
    Status s = i % 2 == 0 ? writer.add_tensor(name, type, dims, bytes)
                          : writer.add_tensor(name, type, dims, [&data, i](std::span<uint8_t> dst) {
                              std::memcpy(dst.data(), data[i].data(), dst.size());
                            });
    ASSERT_TRUE(s.ok()) << s.message();
  }
  const std::string path = test::temp_dir() + "/roundtrip.gguf";
  ASSERT_TRUE(writer.write(path).ok());

  auto file = File::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->metadata().size(), 16u);
  EXPECT_EQ(file->get_int("t.u32").value(), 7);
  EXPECT_EQ(file->get_int("t.i32").value(), -123456);
  EXPECT_FALSE(file->get_int("t.u64").ok());  // does not fit int64
  EXPECT_EQ(file->find("t.u64")->u64, 18000000000000000000ull);
  EXPECT_EQ(float(file->get_float("t.f32").value()), 0.1f);
  EXPECT_TRUE(file->get_bool("t.bool").value());
  EXPECT_EQ(file->get_string("t.str").value().size(), 22u);
  EXPECT_EQ(file->get_int("t.i64").value(), INT64_MIN);
  EXPECT_EQ(file->get_float("t.f64").value(), -1.0 / 3.0);
  EXPECT_EQ(file->get_string_array("t.strs").value(), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(file->get_float_array("t.f32s").value(), (std::vector<float>{1.5f, -2.25f}));
  EXPECT_TRUE(file->get_int_array("t.i32s").value().empty());
  ASSERT_NE(file->find("t.nested"), nullptr);
  EXPECT_TRUE(values_equal(*file->find("t.nested"), nested));
  EXPECT_EQ(file->metadata()[0].first, "t.u32");  // insertion order kept

  ASSERT_EQ(file->tensors().size(), std::size(shapes));
  for (size_t i = 0; i < std::size(shapes); ++i) {
    const TensorInfo& t = file->tensors()[i];
    EXPECT_EQ(t.name, fmt::format("tensor.{}", i));
    EXPECT_EQ(t.type, shapes[i].first);
    EXPECT_EQ(t.dims, shapes[i].second);
    EXPECT_EQ(t.offset % 32, 0u);
    ASSERT_EQ(t.bytes, data[i].size());
    EXPECT_EQ(std::memcmp(t.data, data[i].data(), t.bytes), 0) << t.name;
  }
  // Reading and writing again is the identity on bytes.
  const std::string again = test::temp_dir() + "/roundtrip2.gguf";
  ASSERT_TRUE(rewrite(*file, again).ok());
  EXPECT_TRUE(read_bytes(again) == read_bytes(path));
}

TEST(GgufWrite, HonoursGeneralAlignment) {
  Writer writer;
  writer.set_u32("general.alignment", 256);
  ASSERT_TRUE(writer.add_tensor("a", GgmlType::F32, {3}, std::vector<uint8_t>(12, 1)).ok());
  ASSERT_TRUE(writer.add_tensor("b", GgmlType::Q8_0, {32}, std::vector<uint8_t>(34, 2)).ok());
  const std::string path = test::temp_dir() + "/aligned.gguf";
  ASSERT_TRUE(writer.write(path).ok());
  auto file = File::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  EXPECT_EQ(file->alignment(), 256u);
  EXPECT_EQ(file->data_offset() % 256, 0u);
  EXPECT_EQ(file->find_tensor("b")->offset, 256u);
  EXPECT_EQ(file->file_size(), file->data_offset() + 512);  // padded after the last tensor too
}

TEST(GgufWrite, RefusesInvalidInput) {
  Writer writer;
  EXPECT_FALSE(writer.add_tensor("", GgmlType::F32, {4}, std::vector<uint8_t>(16)).ok());
  EXPECT_FALSE(writer.add_tensor("x", GgmlType::F32, {}, std::vector<uint8_t>(4)).ok());
  EXPECT_FALSE(writer.add_tensor("x", GgmlType::F32, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4)).ok());
  EXPECT_FALSE(writer.add_tensor("x", GgmlType::F32, {0}, std::vector<uint8_t>()).ok());
  EXPECT_FALSE(writer.add_tensor("x", GgmlType::Q4_0, {48}, std::vector<uint8_t>(27)).ok());
  EXPECT_FALSE(writer.add_tensor("x", GgmlType::F32, {4}, std::vector<uint8_t>(15)).ok());
  EXPECT_FALSE(writer.add_tensor("x", GgmlType(77), {4}, std::vector<uint8_t>(16)).ok());
  EXPECT_FALSE(
      writer
          .add_tensor("x", GgmlType::F32, {int64_t(1) << 40, int64_t(1) << 40}, Writer::Fill([](std::span<uint8_t>) {}))
          .ok());
  ASSERT_TRUE(writer.add_tensor("x", GgmlType::F32, {4}, std::vector<uint8_t>(16)).ok());
  Status dup = writer.add_tensor("x", GgmlType::F32, {4}, std::vector<uint8_t>(16));
  EXPECT_NE(dup.message().find("duplicate"), std::string::npos) << dup.message();

  Value mixed;  // an array whose elements are not all of the declared element type
  mixed.type = ValueType::ARRAY;
  mixed.element_type = ValueType::INT32;
  mixed.array = {scalar(ValueType::INT32, 1, 0, 0), scalar(ValueType::FLOAT32, 0, 0, 1)};
  writer.set_value("bad.array", mixed);
  const std::string path = test::temp_dir() + "/refused.gguf";
  Status s = writer.write(path);
  EXPECT_NE(s.message().find("bad.array"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(path));

  Writer bad_alignment;
  bad_alignment.set_u32("general.alignment", 48);
  EXPECT_FALSE(bad_alignment.write(path).ok());
  Status unwritable = Writer().write("/nonexistent-dir/x.gguf");
  EXPECT_NE(unwritable.message().find("/nonexistent-dir/x.gguf"), std::string::npos);
}

}  // namespace
}  // namespace kvq::gguf
