#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <cmath>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "gguf/gguf.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/half.h"

namespace kvq::test {

std::string shared_path(const std::string& relative) { return KVQ_SHARED_DIR "/" + relative; }

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

LogitsFixture read_logits_fixture(const std::string& path) {
  auto file = gguf::File::open(path);
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message);
  LogitsFixture f;
  if (!file.ok()) return f;
  const gguf::TensorInfo* tokens = file->find_tensor("tokens");
  const gguf::TensorInfo* logits = file->find_tensor("logits");
  EXPECT_TRUE(tokens && logits && tokens->type == GgmlType::I32) << path;
  if (!tokens || !logits || tokens->type != GgmlType::I32) return f;
  const auto* ids = reinterpret_cast<const int32_t*>(tokens->data);
  f.tokens.assign(ids, ids + tokens->n_elements());
  f.logits.resize(size_t(logits->n_elements()));
  if (logits->type == GgmlType::F16) {
    const auto* half = reinterpret_cast<const uint16_t*>(logits->data);
    for (size_t i = 0; i < f.logits.size(); ++i) f.logits[i] = fp16_to_f32(half[i]);
  } else {
    EXPECT_EQ(logits->type, GgmlType::F32) << path;
    const auto* values = reinterpret_cast<const float*>(logits->data);
    std::copy(values, values + f.logits.size(), f.logits.begin());
  }
  f.n_vocab = int(logits->dims[0]);
  return f;
}

Agreement compare_logits(const float* reference, const float* other, int n_tokens, int n_vocab) {
  Agreement a;
  std::vector<double> lr, lo;  // [n_vocab] log-softmax of one position
  auto log_softmax = [n_vocab](const float* x, std::vector<double>& out) {
    double max = x[0];
    for (int i = 1; i < n_vocab; ++i) max = std::max(max, double(x[i]));
    double sum = 0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(x[i]) - max);
    out.resize(size_t(n_vocab));
    for (int i = 0; i < n_vocab; ++i) out[size_t(i)] = double(x[i]) - max - std::log(sum);
  };
  for (int t = 0; t < n_tokens; ++t) {
    const float* r = reference + size_t(t) * n_vocab;
    const float* o = other + size_t(t) * n_vocab;
    log_softmax(r, lr);
    log_softmax(o, lo);
    double kld = 0;
    for (int i = 0; i < n_vocab; ++i) kld += std::exp(lr[size_t(i)]) * (lr[size_t(i)] - lo[size_t(i)]);
    a.mean_kld += kld / n_tokens;
    a.argmax += (argmax(r, n_vocab) == argmax(o, n_vocab)) ? 1.0 / n_tokens : 0.0;
  }
  return a;
}

const Tokenizer& load_tokenizer(const std::string& relative) {
  static std::map<std::string, Tokenizer> cache;
  if (const auto it = cache.find(relative); it != cache.end()) return it->second;
  const auto start = std::chrono::steady_clock::now();
  Result<gguf::File> file = gguf::File::open(shared_path(relative));
  if (!file.ok()) throw std::runtime_error(file.error().message);
  Result<Tokenizer> tok = Tokenizer::from_gguf(*file);
  if (!tok.ok()) throw std::runtime_error(tok.error().message);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ %s ] %d tokens loaded in %.1f ms\n", relative.c_str(), tok->n_vocab(), ms);
  return cache.emplace(relative, std::move(*tok)).first->second;
}

std::string kvq_executable() { return KVQ_BINARY_DIR "/kvq"; }
const char* kvq_emulator() { return KVQ_TEST_EMULATOR; }
bool sanitized() {
  const char* env = std::getenv("KVQ_TEST_SANITIZED");
  return env && *env && std::string(env) != "0";
}

CommandResult run_kvq(const std::string& args, bool merge_stderr) {
  const std::string emulator = kvq_emulator();
  const std::string command = (emulator.empty() ? "" : emulator + " ") + kvq_executable() + " " + args +
                              (merge_stderr ? " 2>&1" : " 2>/dev/null");
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.out.append(buffer, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<int> read_ids_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<int> ids;
  int id;
  while (in >> id) ids.push_back(id);
  return ids;
}

std::string temp_dir() {
  static const std::string dir = [] {
    auto path = std::filesystem::temp_directory_path() / ("kvq-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(path);
    return path.string();
  }();
  return dir;
}

}  // namespace kvq::test
