#include "serve/text_stream.h"

#include <algorithm>

namespace kvq::serve {

size_t complete_utf8_prefix(std::string_view text) {
  // Walk back over at most 3 continuation bytes to the lead byte of the last character.
  size_t i = text.size();
  int continuation = 0;
  while (i > 0 && continuation < 4 && (uint8_t(text[i - 1]) & 0xC0) == 0x80) --i, ++continuation;
  if (i == 0) return continuation > 0 ? 0 : text.size();
  const uint8_t lead = uint8_t(text[i - 1]);
  const int length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
  return continuation + 1 >= length ? text.size() : i - 1;
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return "";
  pending_.append(piece);
  // A complete stop string ends the text right before it.
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) {
    if (s.empty()) continue;
    const size_t at = pending_.find(s);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    stopped_ = true;
    sent_ += out;
    return out;
  }
  // Hold back the longest suffix that is a prefix of some stop string, and an incomplete character.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n) {
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  const size_t ready = complete_utf8_prefix(std::string_view(pending_).substr(0, pending_.size() - hold));
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  sent_ += out;
  return out;
}

std::string TextStream::finish() {
  if (stopped_) return "";
  std::string out = std::move(pending_);
  pending_.clear();
  sent_ += out;
  return out;
}

}  // namespace kvq::serve
