// The kvq executable as a user meets it: figures printed by `info`, files written by `synth`,
// clear errors for bad input.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "test_util.h"

namespace kvq {
namespace {

using test::CommandResult;
using test::run_kvq;

nlohmann::json info_json(const std::string& model, const std::string& extra = "") {
  const CommandResult r = run_kvq("info " + model + " --json " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return nlohmann::json::parse(r.out, nullptr, false);
}

uint64_t bytes_per_token(const nlohmann::json& info, const std::string& k, const std::string& v) {
  for (const auto& row : info["kv_table"]) {
    if (row["key"] == k && row["value"] == v) return row["bytes_per_token"].get<uint64_t>();
  }
  ADD_FAILURE() << "no row " << k << "/" << v;
  return 0;
}

TEST(Info, Stories260KFigures) {
  const auto j = info_json(test::shared_path("data/models/stories260K/stories260K.gguf"));
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["hparams"]["n_layer"], 5);
  EXPECT_EQ(j["hparams"]["n_head"], 8);
  EXPECT_EQ(j["hparams"]["n_head_kv"], 4);
  EXPECT_EQ(j["hparams"]["head_dim"], 8);
  EXPECT_EQ(j["hparams"]["n_ctx_train"], 2048);
  EXPECT_EQ(j["weight_types"]["f32"], 48);
  EXPECT_EQ(j["tokenizer"]["n_tokens"], 512);
  EXPECT_EQ(j["file_bytes"], 1185376);
  // 5 layers x 4 heads x 8 dims = 32 values per token per layer for K and for V each.
  EXPECT_EQ(bytes_per_token(j, "f16", "f16"), 5u * 32 * 2 * 2);
  EXPECT_EQ(bytes_per_token(j, "f32", "f32"), 5u * 32 * 4 * 2);
  EXPECT_EQ(bytes_per_token(j, "q8_0", "q4_0"), 5u * (34 + 18));  // one 32-value block each
}

TEST(Info, SynthMiniFiguresForEveryWeightType) {
  for (const auto& entry : std::filesystem::directory_iterator(test::shared_path("fixtures/models"))) {
    const auto j = info_json(entry.path().string());
    ASSERT_FALSE(j.is_discarded()) << entry.path();
    EXPECT_EQ(j["hparams"]["n_layer"], 4);
    EXPECT_EQ(j["hparams"]["n_embd"], 256);
    EXPECT_EQ(j["hparams"]["n_head_kv"], 2);
    EXPECT_EQ(j["hparams"]["head_dim"], 64);
    EXPECT_EQ(j["hparams"]["n_ff"], 768);
    EXPECT_EQ(bytes_per_token(j, "f16", "f16"), 4u * 2 * 64 * 2 * 2);
    EXPECT_EQ(j["file_bytes"].get<uint64_t>(), std::filesystem::file_size(entry.path()));
  }
}

// A model with TinyLlama-1.1B's KV shape (22 layers, 4 KV heads, head_dim 64), kept narrow elsewhere.
// Gemma 3's windows (5 of 6 layers see 64 positions): rings of 64 + 512 - 1 rows rounded to 576, global layers
// every position; the budget answer is the exact inverse of that arithmetic.
TEST(Info, WindowedModelMemoryIsExact) {
  const std::string model = test::shared_path("fixtures/arch/models/synth-gemma3.gguf");
  const auto j = info_json(model, "--kv-types f16,q8_0,q4_0 --mem-budget 64MiB");
  ASSERT_FALSE(j.is_discarded());
  const uint64_t f16_row = 2 * 64 * 2;  // one layer's K (or V) row: 2 KV heads x 64 dims x 2 bytes
  EXPECT_EQ(j["windows"]["ring_rows_at_32768"], 576);
  EXPECT_EQ(j["windows"]["f16_at_32768"]["bytes"], (5u * 576 + 32768) * 2 * f16_row);
  EXPECT_EQ(j["windows"]["f16_at_32768"]["bytes_without_windows"], 6u * 32768 * 2 * f16_row);
  const uint64_t room = 64ull * 1048576 - j["weight_bytes"].get<uint64_t>();
  for (const auto& row : j["kv_table"]) {
    const uint64_t per_layer = row["bytes_per_token"].get<uint64_t>() / 6;  // K + V row of one layer
    EXPECT_EQ(row["bytes_at_context"]["32768"], (5u * 576 + 32768) * per_layer);
    EXPECT_EQ(row["bytes_at_context"]["2048"], (5u * 576 + 2048) * per_layer);
    EXPECT_EQ(row["max_context_in_budget"], room / per_layer - 5 * 576) << row["key"] << "/" << row["value"];
  }
  const CommandResult text = run_kvq("info " + model);
  EXPECT_NE(text.out.find("5 of 6 layers see the last 64 positions"), std::string::npos) << text.out;
}

// Sinks and a recent window (kv/kv_cache.h): kvq info counts their rows at every context, a run with them
// works, and bad values are clear errors.
TEST(Info, KeptRowsInEveryFigure) {
  const std::string model = test::shared_path("data/models/stories260K/stories260K.gguf");
  const auto plain = info_json(model, "--kv-types q8_0,q4_0");
  const auto kept = info_json(model, "--kv-types q8_0,q4_0 --kvq-sinks 4 --kvq-window 32");
  ASSERT_FALSE(plain.is_discarded() || kept.is_discarded());
  const uint64_t f16_row = 4 * 8 * 2;                      // 4 KV heads x 8 dims at f16
  const uint64_t kept_rows = 4 + 32 + kKvRecentSlice - 1;  // sinks + window + the slice's ring rows
  for (size_t i = 0; i < plain["kv_table"].size(); ++i) {  // q8_0/q8_0 ... q4_0/q4_0: two quantized sides
    const auto& a = plain["kv_table"][i]["bytes_at_context"];
    const auto& b = kept["kv_table"][i]["bytes_at_context"];
    EXPECT_EQ(b["8192"].get<uint64_t>() - a["8192"].get<uint64_t>(), 5 * 2 * kept_rows * f16_row);
  }
  const CommandResult run = run_kvq("run -m " + model +
                                    " -p \"Once upon a time\" -n 40 --temp 0 -ctk q4_0 -ctv q4_0 --kvq-sinks 2 "
                                    "--kvq-window 8 --kvq-keep q8_0");
  EXPECT_EQ(run.exit_code, 0) << run.out;
  EXPECT_EQ(run.out.rfind("Once upon a time", 0), 0u) << run.out;
  const CommandResult bad_keep = run_kvq("info " + model + " --kvq-window 8 --kvq-keep q4_K", true);
  EXPECT_EQ(bad_keep.exit_code, 1);
  EXPECT_NE(bad_keep.out.find("--kvq-keep"), std::string::npos) << bad_keep.out;
  const CommandResult negative = run_kvq("run -m " + model + " --kvq-sinks -3 -n 1", true);
  EXPECT_NE(negative.exit_code, 0);
  EXPECT_NE(negative.out.find("--kvq-sinks"), std::string::npos) << negative.out;
}

TEST(Run, GemmaRunsPastItsWindow) {
  const CommandResult r = run_kvq("run -m " + test::shared_path("fixtures/arch/models/synth-gemma2.gguf") +
                                      " -p \"Once upon a time\" -n 150 --temp 0 -c 256 -ctk q8_0 -ctv q4_0",
                                  true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

// Ctrl-C while an answer is written stops that answer, not the program: the next line gets its own answer.
// The first answer would run to its limit of 300 tokens (greedy stories15M loops), so the signal arrives well
// before it ends.
TEST(Chat, InterruptStopsTheAnswerNotTheProgram) {
  const std::string kvq = test::kvq_executable();
  const std::string emulator = test::kvq_emulator();
  const std::string model = test::shared_path("data/models/stories15M/stories15M.gguf");
  const std::string tmpl = test::shared_path("data/chat-templates/templates/microsoft-Phi-3.5-mini-instruct.jinja");
  int to_child[2], from_child[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(from_child), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(to_child[0], STDIN_FILENO);
    dup2(from_child[1], STDOUT_FILENO);
    dup2(from_child[1], STDERR_FILENO);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) close(fd);
    std::vector<const char*> argv = {kvq.c_str(),  "chat",   "-m", model.c_str(), "--chat-template",
                                     tmpl.c_str(), "--temp", "0",  "-c",          "1024",
                                     "-n",         "300",    "-t", "1",           nullptr};
    if (!emulator.empty()) argv.insert(argv.begin(), emulator.c_str());  // qemu-aarch64 .../kvq chat ...
    execvp(argv[0], const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  std::string out;
  // Reads what the child printed until `done` holds or EOF; false after 120 s without output.
  const auto read_until = [&](const auto& done) {
    char buffer[4096];
    while (!done()) {
      pollfd p{from_child[0], POLLIN, 0};
      if (poll(&p, 1, 120000) <= 0) return false;
      const ssize_t n = read(from_child[0], buffer, sizeof(buffer));
      if (n <= 0) return true;
      out.append(buffer, size_t(n));
    }
    return true;
  };
  const std::string first = "Tell me a story.\n";
  ASSERT_EQ(write(to_child[1], first.data(), first.size()), ssize_t(first.size()));
  // Answer text after the banner line (stderr, "kvq chat: MODEL, context ...") means generation is under way.
  const bool answering = read_until([&] {
    const size_t banner = out.find("kvq chat: ");
    const size_t banner_end = banner == std::string::npos ? banner : out.find('\n', banner);
    return banner_end != std::string::npos && out.size() > banner_end + 16;
  });
  kill(pid, SIGINT);
  const std::string second = "Hello\n";
  EXPECT_EQ(write(to_child[1], second.data(), second.size()), ssize_t(second.size()));
  close(to_child[1]);
  const bool finished = read_until([] { return false; });
  if (!finished) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(from_child[0]);
  ASSERT_TRUE(answering && finished) << out;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  const size_t stopped = out.find("kvq chat: stopped; ");
  ASSERT_NE(stopped, std::string::npos) << out;
  const std::string stats = out.substr(stopped, out.find('\n', stopped) - stopped);
  EXPECT_EQ(stats.find("300 generated"), std::string::npos) << out;           // the first answer was cut short
  EXPECT_NE(out.find(" generated", stopped + 20), std::string::npos) << out;  // and "Hello" was answered
}

TEST(Chat, PipedConversationWithTemplateAndClearErrorWithout) {
  const std::string model = test::shared_path("data/models/stories15M/stories15M.gguf");
  const std::string tmpl = test::shared_path("data/chat-templates/templates/microsoft-Phi-3.5-mini-instruct.jinja");
  const std::string input = test::temp_dir() + "/chat-input.txt";
  std::ofstream(input) << "Tell me a story.\nAnd then?\n/reset\nHello\n";
  const CommandResult r =
      run_kvq("chat -m " + model + " --chat-template " + tmpl + " -n 8 --temp 0 -c 256 < " + input, true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  // Three answers with their stats; the second turn reuses the first turn's cache.
  size_t turns = 0;
  for (size_t at = r.out.find("generated"); at != std::string::npos; at = r.out.find("generated", at + 1)) ++turns;
  EXPECT_EQ(turns, 3u) << r.out;
  EXPECT_NE(r.out.find("conversation cleared"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("(0 reused), 8 generated", r.out.find("conversation cleared")), std::string::npos) << r.out;
  const CommandResult none = run_kvq("chat -m " + model + " < /dev/null", true);
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.out.find("--chat-template"), std::string::npos) << none.out;
}

TEST(Cli, UsageNamesTheProgramAndEmptyPromptHasNoLeadingSpace) {
  EXPECT_NE(run_kvq("--help").out.find("Usage: kvq "), std::string::npos);
  const CommandResult r =
      run_kvq("run -m " + test::shared_path("data/models/stories260K/stories260K.gguf") + " -p \"\" -n 8 --temp 0");
  ASSERT_EQ(r.exit_code, 0);
  ASSERT_FALSE(r.out.empty());
  EXPECT_NE(r.out[0], ' ') << r.out;
}

// Batched decode: one row per count, the counts run in turn in every repetition, and the ratio against one
// stream taken within each repetition (1.0 for one stream itself).
TEST(Bench, StreamsRowsPerCountWithSameRepetitionRatios) {
  const std::string model = test::shared_path("data/models/stories260K/stories260K.gguf");
  const CommandResult r =
      run_kvq("bench -m " + model + " --streams 1,3 --depth 16 -n 4 -p 8 -r 2 --kv-pairs q8_0/q4_0 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json rows = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0]["streams"], 1);
  EXPECT_EQ(rows[1]["streams"], 3);
  EXPECT_DOUBLE_EQ(rows[0]["vs_1_stream_median"].get<double>(), 1.0);
  // Two repetitions: the median of the two same-repetition ratios is their mean.
  const auto& one = rows[0]["tok_s_runs"];
  const auto& three = rows[1]["tok_s_runs"];
  ASSERT_EQ(one.size(), 2u);
  ASSERT_EQ(three.size(), 2u);
  const double expected =
      (three[0].get<double>() / one[0].get<double>() + three[1].get<double>() / one[1].get<double>()) / 2;
  EXPECT_NEAR(rows[1]["vs_1_stream_median"].get<double>(), expected, 1e-9 * expected);
  for (const auto& row : rows) {
    EXPECT_EQ(row["depth"], 16);
    EXPECT_GT(row["tok_s_median"].get<double>(), 0.0);
    EXPECT_GT(row["vs_1_stream_median"].get<double>(), 0.0);
    EXPECT_TRUE(row.contains("ttft_ms_median"));
  }
  const CommandResult bad = run_kvq("bench -m " + model + " --streams 2,0", true);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("--streams: counts must be at least 1"), std::string::npos) << bad.out;
}

TEST(Synth, TinyLlamaKvShapeAndMemoryBudget) {
  const std::string path = test::temp_dir() + "/tinyllama-kv.gguf";
  const CommandResult synth = run_kvq(
      "synth --preset tinyllama-1.1b --n-embd 256 --n-head 4 --n-ff 256 "
      "--type q8_0 -o " +
          path,
      true);
  ASSERT_EQ(synth.exit_code, 0) << synth.out;
  const auto j = info_json(path, "--mem-budget 1GiB --kvq-key 8 --kvq-val 4");
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["hparams"]["n_layer"], 22);
  EXPECT_EQ(j["hparams"]["n_vocab"], 32000);
  EXPECT_EQ(j["weight_types"]["q8_0"], 22 * 7 + 2);
  EXPECT_EQ(bytes_per_token(j, "f16", "f16"), 22528u);  // DESIGN.md §2
  EXPECT_EQ(bytes_per_token(j, "q8_0", "q4_0"), 22u * 8 * (34 + 18));
  const auto& selected = j["selected_kv"];
  EXPECT_EQ(selected["key_bytes_per_token"], 22u * 8 * 34);
  EXPECT_EQ(selected["value_bytes_per_token"], 22u * 8 * 18);
  EXPECT_NEAR(selected["saved_vs_f16"].get<double>(), 0.594, 0.001);
  const uint64_t weights = j["weight_bytes"].get<uint64_t>();
  EXPECT_EQ(selected["max_context_in_budget"].get<uint64_t>(), ((1ull << 30) - weights) / 9152);
}

// llama.cpp's Q4_K_M mix: q6_K for output and, in 10 of TinyLlama's 22 layers (0, 1, 4, 7, ..., 19, 20,
// 21), attn_v and ffn_down; q4_K elsewhere, the embedding included. The model then runs.
TEST(Synth, Q4KMMixFollowsLlamaCppRule) {
  const std::string path = test::temp_dir() + "/tinyllama-q4km.gguf";
  const CommandResult synth =
      run_kvq("synth --preset tinyllama-1.1b --n-embd 256 --n-head 4 --n-ff 512 --type q4_k_m -o " + path, true);
  ASSERT_EQ(synth.exit_code, 0) << synth.out;
  const auto j = info_json(path, "");
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["weight_types"]["q6_K"], 2 * 10 + 1);
  EXPECT_EQ(j["weight_types"]["q4_K"], 22 * 7 - 2 * 10 + 1);
  const CommandResult run = run_kvq("run -m " + path + " -p \"Once upon a time\" -n 4 --temp 0", true);
  EXPECT_EQ(run.exit_code, 0) << run.out;
}

TEST(Synth, IsDeterministic) {
  const std::string a = test::temp_dir() + "/det-a.gguf", b = test::temp_dir() + "/det-b.gguf";
  const std::string shape = "synth --preset mini --n-layer 1 --type q4_0 --seed 7 -o ";
  ASSERT_EQ(run_kvq(shape + a).exit_code, 0);
  ASSERT_EQ(run_kvq(shape + b + " -t 1").exit_code, 0);
  EXPECT_EQ(test::read_text_file(a), test::read_text_file(b));
}

TEST(Run, GreedyStoryOnRealModel) {
  const CommandResult r = run_kvq("run -m " + test::shared_path("data/models/stories260K/stories260K.gguf") +
                                  " -p \"Once upon a time\" -n 12 --temp 0 -ctk q8_0 -ctv q4_0");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("Once upon a time").size() + 12);
}

TEST(Errors, ClearMessagesAndExitCode1) {
  const std::string model = test::shared_path("data/models/stories260K/stories260K.gguf");
  const CommandResult bad_type = run_kvq("info " + model + " --kvq-key 3", true);
  EXPECT_EQ(bad_type.exit_code, 1);
  EXPECT_NE(bad_type.out.find("q4_0"), std::string::npos) << bad_type.out;  // lists valid values

  const std::string truncated = test::temp_dir() + "/truncated.gguf";
  {
    const std::string bytes = test::read_text_file(model);
    std::ofstream(truncated, std::ios::binary).write(bytes.data(), 5000);
  }
  const CommandResult trunc = run_kvq("info " + truncated, true);
  EXPECT_EQ(trunc.exit_code, 1);
  EXPECT_NE(trunc.out.find("truncated.gguf"), std::string::npos) << trunc.out;

  const CommandResult vocab_only =
      run_kvq("info " + test::shared_path("data/llama.cpp-vocab/ggml-vocab-gpt-2.gguf"), true);
  EXPECT_EQ(vocab_only.exit_code, 1);
  EXPECT_NE(vocab_only.out.find("gpt2"), std::string::npos) << vocab_only.out;  // names the arch

  const CommandResult huge = run_kvq("run -m " + model + " -c 2000000000 -n 1", true);
  EXPECT_EQ(huge.exit_code, 1);
  EXPECT_NE(huge.out.find("does not fit"), std::string::npos) << huge.out;
  EXPECT_EQ(run_kvq("bench -m " + model + " -o xml", true).exit_code, 1);
}

}  // namespace
}  // namespace kvq
