// A per-layer KV spec as a JSON file (what `kvq tune` writes, what `--kvq-layers @FILE` reads), carrying
// the model it was made for so that it is refused on another one:
//
//   {"kvq_spec": 1,
//    "model": {"name": "stories15M", "n_layer": 6, "fingerprint": "9c0f3a1e5d2b4c77"},
//    "layers": [{"layer": 0, "k": "q8_0", "v": "q4_0"}, ...],      // every layer exactly once; optional
//                                                                 // "sinks", "window", "keep" (KvKept)
//    "tuned": {...}}                                                 // optional, informational
//
// The parser returns errors (never throws) so that it can be fuzzed (fuzz/kv_spec_file_fuzz.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_types.h"
#include "util/result.h"

namespace kvq {

// What a spec file says about the model it fits. The fingerprint hashes every tensor's name and shape
// (model/identity.h), so a requantized copy of the same model matches and another model does not.
struct ModelIdentity {
  std::string name;  // general.name, may be empty
  int n_layer = 0;
  uint64_t fingerprint = 0;
};

struct KvSpecFile {
  static constexpr int kVersion = 1;
  ModelIdentity model;
  std::vector<KvTypes> layers;  // [n_layer]
  std::string tuned_json;       // the optional "tuned" object as JSON text ("" when absent)
};

// Errors name the key and what was expected: malformed JSON, a missing or mistyped field, a bad type
// name, a layer missing, repeated or out of range.
Result<KvSpecFile> parse_kv_spec_file(std::string_view json_text);

// The file's text (pretty-printed JSON); tuned_json, when not empty, must be a JSON object.
std::string kv_spec_file_text(const KvSpecFile& spec);

// Refuses a spec made for another model; the message names both models and what differs.
Status check_kv_spec_model(const KvSpecFile& spec, const ModelIdentity& model);

// "9c0f3a1e5d2b4c77"
std::string fingerprint_hex(uint64_t fingerprint);

}  // namespace kvq
