// Protocol: one request builder and one reply parser per chat API, exact to
// each server's documented fields. No I/O here: BuildRequest makes the bytes,
// Transport sends them, ParseReply reads what came back.
//
//   kOpenAI     OpenAI Chat Completions: vLLM, SGLang, Ollama's /v1, OpenAI;
//               constraint: `response_format` {type: json_schema}
//   kLlamaCpp   the same API as served by llama.cpp's `llama-server`, which
//               also takes a GBNF `grammar`
//   kAnthropic  Anthropic Messages; constraint: a forced tool whose
//               `input_schema` is the schema
//   kOllama     Ollama's native /api/chat; constraint: `format` (a schema)
//
// URLs: `base_url` is the server's address, e.g. http://127.0.0.1:8000/v1,
// https://api.anthropic.com or http://127.0.0.1:11434. The path is appended
// unless the URL already ends with it: /v1/chat/completions (or
// /chat/completions after a trailing /v1), /v1/messages (or /messages after
// /v1), /api/chat (or /chat after /api). One trailing `/` on the base is
// dropped first.
#ifndef TOOLWARDEN_ADAPTERS_LLM_PROTOCOL_H_
#define TOOLWARDEN_ADAPTERS_LLM_PROTOCOL_H_

#include <string>
#include <string_view>
#include <vector>

#include "adapters/llm/transport.h"
#include "nlohmann/json.hpp"
#include "policy/status.h"

namespace toolwarden::llm {

enum class Protocol { kOpenAI, kLlamaCpp, kAnthropic, kOllama };

// "openai", "llama.cpp" (also "llamacpp", "llama-server"), "anthropic", "ollama",
// in any ASCII case. Anything else: InvalidArgument listing these.
StatusOr<Protocol> ParseProtocol(std::string_view name);
std::string_view ProtocolName(Protocol protocol);  // the first spelling above

struct Endpoint {
  std::string base_url;
  Protocol protocol = Protocol::kOpenAI;
  std::string model;
  std::string api_key;  // empty: no key header is sent; control characters
                        // (a trailing newline from a key file) are dropped
};

struct Message {
  enum class Role { kSystem, kUser, kAssistant };
  Role role = Role::kUser;
  std::string content;
};

// How the server should constrain its output, when it can.
struct Constraint {
  enum class Kind { kNone, kJsonSchema, kGrammar };
  Kind kind = Kind::kNone;
  std::string name;               // kJsonSchema: the schema's (or forced tool's)
                                  // name; empty sends "answer"
  nlohmann::ordered_json schema;  // kJsonSchema: an object schema
  std::string grammar;            // kGrammar: GBNF; only kLlamaCpp sends it,
                                  // the others send no constraint for it
};

struct ChatRequest {
  std::vector<Message> messages;  // system messages first (Anthropic: joined
                                  // with "\n\n" into `system`, empty ones skipped)
  Constraint constraint;
  int max_tokens = 4096;
  double temperature = 0;
};

// The request as it goes on the wire: URL, headers (Content-Type, and the key
// as `Authorization: Bearer` or Anthropic's `x-api-key` with
// `anthropic-version: 2023-06-01`) and the JSON body (non-streaming). Text
// that is not UTF-8 is sent with U+FFFD in its place; never throws.
HttpRequest BuildRequest(const Endpoint& endpoint, const ChatRequest& request);

enum class Finish {
  kStop,     // the model finished (stop, end_turn, tool_use, stop_sequence, done)
  kLength,   // cut off by the token limit (length, max_tokens)
  kRefusal,  // the model or the server's filter refused (refusal, content_filter)
  kOther,    // anything else, named in ChatReply::finish_reason
};

struct ChatReply {
  std::string text;  // the answer; for a forced tool, its input as JSON text
  Finish finish = Finish::kOther;
  std::string finish_reason;  // as the server spelled it
  std::string refusal;        // OpenAI's `message.refusal`, when set
};

// Reads a reply. A status other than 2xx becomes Unavailable (for 408, 409,
// 429, 5xx) or InvalidArgument (any other) whose message carries the server's
// own error message from its documented error body, e.g.
//   "the server answered 400 (invalid_request_error): max_tokens: ..."
// The server's message is capped at 500 bytes (a body that is not a known
// error shape: its first 200 bytes), with control characters replaced and
// bytes that are not UTF-8 shown as `?`. A 2xx body that is not JSON or not
// the documented shape is InvalidArgument naming the missing field (or
// ResourceExhausted past the JSON size and depth limits of
// policy/json_limits.h). Never includes the request's headers; never throws.
StatusOr<ChatReply> ParseReply(Protocol protocol, const HttpReply& reply);

}  // namespace toolwarden::llm

#endif  // TOOLWARDEN_ADAPTERS_LLM_PROTOCOL_H_
