// Generated tokens -> text that can be sent as it comes: whole UTF-8 characters only, and never a piece
// that might turn out to be the start of a stop string. Used by the server's streaming and by chat.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvq::serve {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {}

  // Appends a token's decoded bytes. Returns the text now safe to send (possibly empty).
  std::string push(std::string_view piece);
  // True once a stop string was seen; the text before it has been returned, the rest dropped.
  bool stopped() const { return stopped_; }
  // Returns what is still held back (an incomplete character or a partial stop string) at the end of
  // generation: a partial stop string that never completed is text.
  std::string finish();
  // All text returned so far.
  const std::string& sent() const { return sent_; }

 private:
  std::vector<std::string> stop_;
  std::string pending_;  // bytes received, not yet sent
  std::string sent_;
  bool stopped_ = false;
};

// Returns the length of the longest prefix of `text` that ends on a complete UTF-8 character.
size_t complete_utf8_prefix(std::string_view text);

}  // namespace kvq::serve
