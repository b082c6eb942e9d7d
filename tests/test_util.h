// Helpers shared by the tests: where ../shared lives, reading fixture files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvq::test {

// Absolute path of a file under ../shared (the repository's sibling folder).
std::string shared_path(const std::string& relative);
std::string read_text_file(const std::string& path);
std::vector<int> read_ids_file(const std::string& path);  // one integer per line
// Logits of an independent engine (fixtures/README.md): tokens and the logits after each of them.
struct LogitsFixture {
  std::vector<int32_t> tokens;  // [n_tokens]
  std::vector<float> logits;    // [n_tokens, n_vocab] (stored as F32 or F16)
  int n_vocab = 0;
};
// Fails the calling test (and returns an empty fixture) when the file is unreadable.
LogitsFixture read_logits_fixture(const std::string& path);

struct Agreement {
  double mean_kld = 0;  // mean over positions of KL(reference || other)
  double argmax = 0;    // fraction of positions with the same top token
};
// reference, other: [n_tokens, n_vocab]
Agreement compare_logits(const float* reference, const float* other, int n_tokens, int n_vocab);

// The kvq executable of this build; a cross build's emulator (qemu-aarch64), when there is one.
std::string kvq_executable();
const char* kvq_emulator();  // "" on a native build
// True in the ASan/UBSan run (scripts/test.sh sets KVQ_TEST_SANITIZED=1): tests that repeat one code path
// many times run fewer repetitions there.
bool sanitized();
// The kvq executable of this build, run through the shell with `args`.
struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout, and stderr too when merge_stderr
};
CommandResult run_kvq(const std::string& args, bool merge_stderr = false);

}  // namespace kvq::test
namespace kvq {
class Tokenizer;
}
namespace kvq::test {
// The tokenizer of a GGUF under ../shared, loaded once per test process (the large vocabularies take a
// noticeable fraction of a second; the load time is printed). Throws if the file does not load.
const Tokenizer& load_tokenizer(const std::string& relative);

// A fresh temporary directory for this test process.
std::string temp_dir();

}  // namespace kvq::test
