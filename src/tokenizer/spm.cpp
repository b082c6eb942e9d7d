// SentencePiece-style BPE as llama.cpp runs it: start from UTF-8 characters, repeatedly merge the
// adjacent pair whose concatenation is the highest-scoring vocabulary token (leftmost on ties),
// then emit each final symbol, falling back to <0xXX> byte tokens for symbols not in the vocabulary.
#include <algorithm>
#include <queue>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace kvq::tokenizer_detail {
namespace {

struct Symbol {
  int32_t prev;   // index of the previous live symbol, -1 at the start
  int32_t next;   // index of the next live symbol, -1 at the end
  size_t offset;  // byte offset into the text
  size_t length;  // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int32_t left;
  int32_t right;
  float score;
  size_t length;  // bytes of left + right when queued: detects stale entries
};

// Max-heap order: higher score first, then the leftmost pair.
struct BigramLess {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmSession {
 public:
  SpmSession(const Vocab& vocab, std::string_view text) : vocab_(vocab), text_(text) {}

  void run(std::vector<int32_t>& out) {
    // One symbol per UTF-8 character; a malformed sequence is cut at the text's end.
    for (size_t offset = 0; offset < text_.size();) {
      const size_t length = std::min(unicode::utf8_sequence_length(uint8_t(text_[offset])), text_.size() - offset);
      const int32_t index = int32_t(symbols_.size());
      symbols_.push_back({index - 1, offset + length == text_.size() ? -1 : index + 1, offset, length});
      offset += length;
    }
    for (int32_t i = 1; i < int32_t(symbols_.size()); ++i) try_add_bigram(i - 1, i);

    while (!queue_.empty()) {
      const Bigram bigram = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[bigram.left];
      Symbol& right = symbols_[bigram.right];
      // Either side already merged elsewhere (sizes only grow, so a length mismatch means stale).
      if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.length) {
        continue;
      }
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = bigram.left;
      try_add_bigram(left.prev, bigram.left);
      try_add_bigram(bigram.left, left.next);
    }

    if (symbols_.empty()) return;
    for (int32_t i = 0; i != -1; i = symbols_[i].next) emit(symbols_[i], out);
  }

 private:
  std::string_view text_of(const Symbol& s) const { return text_.substr(s.offset, s.length); }

  void try_add_bigram(int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols_[left];
    const Symbol& r = symbols_[right];
    const int32_t id = vocab_.find(text_.substr(l.offset, l.length + r.length));
    if (id < 0) return;
    queue_.push({left, right, vocab_.score[id], l.length + r.length});
  }

  // A merged symbol is always a vocabulary token (merges only form tokens), so only single
  // characters can miss the vocabulary; those become byte tokens. (llama.cpp's rev_merge
  // re-segmentation is therefore never reached and is not needed.)
  // byte_token is never -1 here: it falls back to unk, and a SentencePiece vocabulary always has
  // one (0 by default).
  void emit(const Symbol& s, std::vector<int32_t>& out) const {
    const std::string_view piece = text_of(s);
    const int32_t id = vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
    for (const char c : piece) out.push_back(vocab_.byte_token[uint8_t(c)]);
  }

  const Vocab& vocab_;
  std::string_view text_;
  std::vector<Symbol> symbols_;  // [n_chars]
  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue_;
};

}  // namespace

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  SpmSession session(vocab, text);
  session.run(out);
}

}  // namespace kvq::tokenizer_detail
