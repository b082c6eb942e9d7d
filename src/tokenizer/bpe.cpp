// Byte-level BPE as llama.cpp runs it: pre-tokenize into words, map every byte to its printable
// code point, then within each word repeatedly merge the adjacent pair with the lowest merge rank
// (leftmost on ties). Final symbols missing from the vocabulary fall back to single-byte tokens.
#include <algorithm>
#include <queue>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace kvq::tokenizer_detail {
namespace {

struct Symbol {
  int32_t prev;   // previous live symbol, -1 at the start
  int32_t next;   // next live symbol, -1 at the end
  size_t offset;  // byte offset into the word
  size_t length;  // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int32_t left;
  int32_t right;
  int32_t rank;
  size_t left_length;  // lengths when queued: the pair is stale if either changed
  size_t right_length;
};

// Max-heap order: lowest rank first, then the leftmost pair.
struct BigramLess {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

class BpeWord {
 public:
  BpeWord(const Vocab& vocab, std::string_view word, std::string& key_buffer)
      : vocab_(vocab), word_(word), key_(key_buffer) {}

  void run(std::vector<int32_t>& out) {
    if (vocab_.ignore_merges) {
      const int32_t id = vocab_.find(word_);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    for (size_t offset = 0; offset < word_.size();) {
      const size_t length = std::min(unicode::utf8_sequence_length(uint8_t(word_[offset])), word_.size() - offset);
      const int32_t index = int32_t(symbols_.size());
      symbols_.push_back({index - 1, offset + length == word_.size() ? -1 : index + 1, offset, length});
      offset += length;
    }
    for (int32_t i = 1; i < int32_t(symbols_.size()); ++i) try_add_bigram(i - 1, i);

    while (!queue_.empty()) {
      const Bigram bigram = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[bigram.left];
      Symbol& right = symbols_[bigram.right];
      // Symbols only grow by absorbing a right neighbour, and the right one of a live pair is
      // still adjacent iff both keep their queued lengths.
      if (left.length != bigram.left_length || right.length != bigram.right_length || left.next != bigram.right) {
        continue;
      }
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = bigram.left;
      try_add_bigram(left.prev, bigram.left);
      try_add_bigram(bigram.left, left.next);
    }

    for (const Symbol& s : symbols_) {
      if (s.length == 0) continue;
      const std::string_view piece = word_.substr(s.offset, s.length);
      const int32_t id = vocab_.find(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      // llama.cpp's fallback: tokens for the single bytes of the piece, skipping bytes that
      // have none (with a complete 256-entry byte alphabet this is never reached).
      for (const char c : piece) {
        const int32_t byte_id = vocab_.find(std::string_view(&c, 1));
        if (byte_id >= 0) out.push_back(byte_id);
      }
    }
  }

 private:
  void try_add_bigram(int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols_[left];
    const Symbol& r = symbols_[right];
    key_.assign(word_.substr(l.offset, l.length));
    key_ += ' ';
    key_.append(word_.substr(r.offset, r.length));
    const int32_t rank = vocab_.merge_rank(key_);
    if (rank < 0) return;
    queue_.push({left, right, rank, l.length, r.length});
  }

  const Vocab& vocab_;
  std::string_view word_;
  std::string& key_;             // scratch "left right" merge key
  std::vector<Symbol> symbols_;  // [n_chars of the word]
  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue_;
};

}  // namespace

void bpe_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  std::string mapped;  // one word, each byte replaced by its byte-level code point
  std::string key;
  for (const std::string& word : pre_tokenize(vocab.pre, text)) {
    mapped.clear();
    for (const char c : word) mapped += unicode::byte_to_unicode(uint8_t(c));
    BpeWord(vocab, mapped, key).run(out);
  }
}

}  // namespace kvq::tokenizer_detail
