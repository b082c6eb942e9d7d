#include "serve/request.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace kvq::serve {
namespace {

using nlohmann::json;

// Reads an optional number field within [lo, hi]; null counts as absent, as in OpenAI's API.
template <typename T>
Status read_number(const json& j, const char* field, T lo, T hi, T& out) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) return make_error("'{}' must be a number", field);
  if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer() && !(it->is_number_float() && std::floor(it->get<double>()) == it->get<double>())) {
      return make_error("'{}' must be an integer", field);
    }
    const double v = it->get<double>();
    if (!(v >= double(lo) && v <= double(hi))) return make_error("'{}' must be in [{}, {}]", field, lo, hi);
    out = T(v);
  } else {
    const double v = it->get<double>();
    if (!(v >= double(lo) && v <= double(hi))) return make_error("'{}' must be in [{}, {}]", field, lo, hi);
    out = T(v);
  }
  return Status::Ok();
}

Result<std::string> text_content(const json& content, size_t index) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return std::string();
  if (!content.is_array()) return make_error("'messages[{}].content' must be a string or an array of parts", index);
  // Content parts: text only (kvq runs text models).
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
      return make_error("'messages[{}].content': only parts of type 'text' are supported", index);
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

Status read_messages(const json& j, CompletionRequest& r) {
  const auto it = j.find("messages");
  if (it == j.end()) return make_error("'messages' is required");
  if (!it->is_array() || it->empty()) return make_error("'messages' must be a non-empty array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object()) return make_error("'messages[{}]' must be an object", i);
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return make_error("'messages[{}].role' must be a string", i);
    const std::string role_name = role->get<std::string>();
    if (role_name != "system" && role_name != "user" && role_name != "assistant" && role_name != "tool" &&
        role_name != "developer") {
      return make_error("'messages[{}].role' '{}' is not one of system, developer, user, assistant, tool", i,
                        role_name);
    }
    auto content = text_content(m.contains("content") ? m["content"] : json(), i);
    if (!content) return content.error();
    r.messages.push_back({role_name == "developer" ? "system" : role_name, std::move(*content)});
  }
  return Status::Ok();
}

Status read_stop(const json& j, CompletionRequest& r) {
  const auto it = j.find("stop");
  if (it == j.end() || it->is_null()) return Status::Ok();
  const auto add = [&](const json& s) -> Status {
    if (!s.is_string()) return make_error("'stop' must be a string or an array of strings");
    const std::string text = s.get<std::string>();
    if (text.empty() || text.size() > kMaxStopLength) {
      return make_error("each 'stop' string must have 1 to {} bytes", kMaxStopLength);
    }
    r.stop.push_back(text);
    return Status::Ok();
  };
  if (it->is_array()) {
    if (it->size() > kMaxStopStrings) return make_error("'stop' takes at most {} strings", kMaxStopStrings);
    for (const json& s : *it) KVQ_RETURN_IF_ERROR(add(s));
    return Status::Ok();
  }
  return add(*it);
}

}  // namespace

Result<CompletionRequest> parse_completion_request(std::string_view body, Endpoint endpoint,
                                                   const SamplerParams& defaults) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("the body is not valid JSON");
  if (!j.is_object()) return make_error("the body must be a JSON object");
  CompletionRequest r;
  r.endpoint = endpoint;
  r.sampling = defaults;
  if (const auto it = j.find("model"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return make_error("'model' must be a string");
    r.model = it->get<std::string>();
  }
  if (endpoint == Endpoint::kChatCompletions) {
    KVQ_RETURN_IF_ERROR(read_messages(j, r));
  } else {
    const auto it = j.find("prompt");
    if (it == j.end()) return make_error("'prompt' is required");
    if (it->is_string()) {
      r.prompt = it->get<std::string>();
    } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
      r.prompt = (*it)[0].get<std::string>();
    } else {
      return make_error("'prompt' must be a string (batches of prompts are not supported)");
    }
  }
  KVQ_RETURN_IF_ERROR(read_number(j, "max_tokens", -1, 1 << 24, r.max_tokens));
  KVQ_RETURN_IF_ERROR(read_number(j, "max_completion_tokens", -1, 1 << 24, r.max_tokens));
  KVQ_RETURN_IF_ERROR(read_number(j, "temperature", 0.0f, 2.0f, r.sampling.temperature));
  KVQ_RETURN_IF_ERROR(read_number(j, "top_p", 0.0f, 1.0f, r.sampling.top_p));
  KVQ_RETURN_IF_ERROR(read_number(j, "top_k", 0, 1 << 20, r.sampling.top_k));
  KVQ_RETURN_IF_ERROR(read_number(j, "min_p", 0.0f, 1.0f, r.sampling.min_p));
  int64_t seed = -1;
  KVQ_RETURN_IF_ERROR(read_number(j, "seed", int64_t(-1), int64_t(1) << 53, seed));
  if (seed >= 0) r.sampling.seed = uint64_t(seed), r.seeded = true;
  if (const auto it = j.find("n"); it != j.end() && !it->is_null() && *it != 1) {
    return make_error("'n' must be 1 (one choice per request)");
  }
  KVQ_RETURN_IF_ERROR(read_stop(j, r));
  if (const auto it = j.find("stream"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return make_error("'stream' must be a boolean");
    r.stream = it->get<bool>();
  }
  if (const auto it = j.find("stream_options"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return make_error("'stream_options' must be an object");
    if (const auto u = it->find("include_usage"); u != it->end() && !u->is_null()) {
      if (!u->is_boolean()) return make_error("'stream_options.include_usage' must be a boolean");
      r.include_usage = u->get<bool>();
    }
  }
  return r;
}

}  // namespace kvq::serve
