// A read-only hash index from strings to their position in a vector: token text -> id and
// "left right" -> merge rank, the lookups that take half of all encoding time. Open addressing with
// the key's hash and (for short keys) the key bytes in the slot, so a lookup touches one cache line
// where std::unordered_map touches a bucket and then a node. The keys stay in the caller's vector.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvq::tokenizer_detail {

class StringIndex {
 public:
  // Indexes keys[i] -> i. On duplicate keys the first index wins, or the last with `last_wins`.
  void build(std::span<const std::string> keys, bool last_wins);

  // The index of `key`, or -1. `keys` must be the vector given to build (long keys are compared
  // against it rather than copied).
  int32_t find(std::string_view key, std::span<const std::string> keys) const {
    if (slots_.empty()) return -1;
    const uint64_t hash = hash_of(key);
    const uint32_t tag = uint32_t(hash >> 32);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.index < 0) return -1;
      if (slot.tag == tag && matches(slot, key, keys)) return slot.index;
    }
  }

 private:
  static constexpr size_t kInlineBytes = 22;
  static constexpr uint8_t kLongKey = 0xFF;  // Slot::length of a key longer than kInlineBytes

  struct Slot {
    uint32_t tag = 0;    // high half of the key's hash
    int32_t index = -1;  // -1: empty
    uint8_t length = 0;  // the key's length, or kLongKey
    char bytes[kInlineBytes + 1] = {};
  };
  static_assert(sizeof(Slot) == 32, "two slots per cache line");

  static uint64_t hash_of(std::string_view key) { return std::hash<std::string_view>{}(key); }

  static bool matches(const Slot& slot, std::string_view key, std::span<const std::string> keys) {
    if (slot.length != kLongKey)
      return slot.length == key.size() && std::memcmp(slot.bytes, key.data(), key.size()) == 0;
    return keys[size_t(slot.index)] == key;
  }

  std::vector<Slot> slots_;  // [power of two, at most 5/8 full]
  size_t mask_ = 0;
};

}  // namespace kvq::tokenizer_detail
