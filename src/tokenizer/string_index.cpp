// StringIndex::build: one pass over the keys, linear probing.
#include "tokenizer/string_index.h"

namespace kvq::tokenizer_detail {

void StringIndex::build(std::span<const std::string> keys, bool last_wins) {
  // At most 5/8 full: probe runs stay short, and the table is 32 * 1.6..3.2 bytes per key.
  size_t capacity = 16;
  while (capacity * 5 < keys.size() * 8) capacity *= 2;
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (size_t index = 0; index < keys.size(); ++index) {
    const std::string& key = keys[index];
    const uint64_t hash = hash_of(key);
    const uint32_t tag = uint32_t(hash >> 32);
    size_t i = hash & mask_;
    for (; slots_[i].index >= 0; i = (i + 1) & mask_) {
      if (slots_[i].tag == tag && matches(slots_[i], key, keys)) break;  // a duplicate key
    }
    Slot& slot = slots_[i];
    if (slot.index >= 0 && !last_wins) continue;
    slot.tag = tag;
    slot.index = int32_t(index);
    if (key.size() <= kInlineBytes) {
      slot.length = uint8_t(key.size());
      key.copy(slot.bytes, key.size());
    } else {
      slot.length = kLongKey;
    }
  }
}

}  // namespace kvq::tokenizer_detail
