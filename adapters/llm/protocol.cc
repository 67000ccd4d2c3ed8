#include "adapters/llm/protocol.h"

#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <utility>

#include "policy/json_limits.h"

namespace toolwarden::llm {
namespace {

using OJson = nlohmann::ordered_json;

// Limits on what outside text (a server's error body, a mistyped protocol name)
// can put into a Status message. Stop a hostile or broken server from flooding
// logs and terminals through us.
constexpr size_t kMaxServerMessageBytes = 500;
constexpr size_t kMaxServerTypeBytes = 64;
constexpr size_t kMaxRawBodyBytes = 200;  // a body that is not JSON (an HTML page)
constexpr size_t kMaxQuotedNameBytes = 64;

constexpr std::string_view kSubmitDescription = "Submit the answer.";
constexpr std::string_view kDefaultConstraintName = "answer";

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Length of the valid UTF-8 sequence at text[i], or 0 when the bytes there are
// not one (overlong forms, surrogates and code points above U+10FFFF included).
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3;
    if (b0 == 0xe0) low = 0xa0;
    if (b0 == 0xed) high = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4;
    if (b0 == 0xf0) low = 0x90;
    if (b0 == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return length;
}

// Text from a server, made safe to print and to put in JSON: control
// characters (C0, DEL, C1) become spaces, bytes that are not UTF-8 become `?`,
// and the result is cut at a character boundary to at most `cap` bytes plus
// "...".
std::string Sanitize(std::string_view text, size_t cap) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t length = Utf8SequenceLength(text, i);
    std::string_view piece;
    const auto b0 = static_cast<unsigned char>(text[i]);
    const bool c1_control =
        length == 2 && b0 == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0;
    if (length == 0) {
      piece = "?";
    } else if ((length == 1 && (b0 < 0x20 || b0 == 0x7f)) || c1_control) {
      piece = " ";
    } else {
      piece = text.substr(i, length);
    }
    if (out.size() + piece.size() > cap) {
      out += "...";
      return out;
    }
    out += piece;
    i += length == 0 ? 1 : length;
  }
  return out;
}

std::string Quoted(std::string_view text) {
  return "`" + Sanitize(text, kMaxQuotedNameBytes) + "`";
}

std::string Dump(const OJson& value) {
  // `replace`: a string that is not UTF-8 is sent with U+FFFD instead of throwing.
  return value.dump(-1, ' ', false, OJson::error_handler_t::replace);
}

// Drops control characters from a header value, and so from the request line:
// a key read from a file often ends in "\n", and a CR or LF inside a header
// would start a new header.
std::string HeaderValue(std::string_view value) {
  std::string out;
  for (char ch : value) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte >= 0x20 && byte != 0x7f) out += ch;
  }
  return out;
}

// The endpoint URL: `path` appended to `base` (one trailing slash dropped)
// unless `base` already ends with it; after a trailing `prefix` (/v1, /api),
// only the rest of the path is appended.
std::string JoinUrl(std::string_view base, std::string_view path, std::string_view prefix) {
  if (!base.empty() && base.back() == '/') base.remove_suffix(1);
  std::string url(base);
  if (EndsWith(base, path)) return url;
  if (EndsWith(base, prefix)) return url + std::string(path.substr(prefix.size()));
  return url + std::string(path);
}

std::string_view RoleName(Message::Role role) {
  switch (role) {
    case Message::Role::kSystem:
      return "system";
    case Message::Role::kUser:
      return "user";
    case Message::Role::kAssistant:
      return "assistant";
  }
  return "user";
}

std::string ConstraintName(const Constraint& constraint) {
  return constraint.name.empty() ? std::string(kDefaultConstraintName) : constraint.name;
}

OJson ChatMessages(const std::vector<Message>& messages) {
  OJson out = OJson::array();
  for (const Message& message : messages) {
    OJson item = OJson::object();
    item["role"] = RoleName(message.role);
    item["content"] = message.content;
    out.push_back(std::move(item));
  }
  return out;
}

// A JSON POST with the key, if any, as `Authorization: Bearer` (OpenAI,
// llama-server and Ollama all take it so).
HttpRequest BearerRequest(const Endpoint& endpoint, std::string url, const OJson& body) {
  HttpRequest out;
  out.url = std::move(url);
  out.headers.emplace_back("Content-Type", "application/json");
  if (!endpoint.api_key.empty()) {
    out.headers.emplace_back("Authorization", "Bearer " + HeaderValue(endpoint.api_key));
  }
  out.body = Dump(body);
  return out;
}

HttpRequest BuildOpenAI(const Endpoint& endpoint, const ChatRequest& request) {
  OJson body = OJson::object();
  body["model"] = endpoint.model;
  body["messages"] = ChatMessages(request.messages);
  body["temperature"] = request.temperature;
  body["max_tokens"] = request.max_tokens;
  body["stream"] = false;
  const Constraint& constraint = request.constraint;
  if (constraint.kind == Constraint::Kind::kJsonSchema) {
    OJson json_schema = OJson::object();
    json_schema["name"] = ConstraintName(constraint);
    json_schema["strict"] = true;
    json_schema["schema"] = constraint.schema;
    OJson format = OJson::object();
    format["type"] = "json_schema";
    format["json_schema"] = std::move(json_schema);
    body["response_format"] = std::move(format);
  } else if (constraint.kind == Constraint::Kind::kGrammar &&
             endpoint.protocol == Protocol::kLlamaCpp) {
    body["grammar"] = constraint.grammar;
  }
  return BearerRequest(endpoint, JoinUrl(endpoint.base_url, "/v1/chat/completions", "/v1"), body);
}

HttpRequest BuildAnthropic(const Endpoint& endpoint, const ChatRequest& request) {
  std::string system;
  OJson messages = OJson::array();
  for (const Message& message : request.messages) {
    if (message.role == Message::Role::kSystem) {
      if (message.content.empty()) continue;
      if (!system.empty()) system += "\n\n";
      system += message.content;
      continue;
    }
    OJson item = OJson::object();
    item["role"] = RoleName(message.role);
    item["content"] = message.content;
    messages.push_back(std::move(item));
  }
  OJson body = OJson::object();
  body["model"] = endpoint.model;
  body["max_tokens"] = request.max_tokens;
  body["temperature"] = request.temperature;
  if (!system.empty()) body["system"] = system;
  body["messages"] = std::move(messages);
  const Constraint& constraint = request.constraint;
  if (constraint.kind == Constraint::Kind::kJsonSchema) {
    const std::string name = ConstraintName(constraint);
    OJson tool = OJson::object();
    tool["name"] = name;
    tool["description"] = kSubmitDescription;
    tool["input_schema"] = constraint.schema;
    body["tools"] = OJson::array({std::move(tool)});
    OJson choice = OJson::object();
    choice["type"] = "tool";
    choice["name"] = name;
    body["tool_choice"] = std::move(choice);
  }
  HttpRequest out;
  out.url = JoinUrl(endpoint.base_url, "/v1/messages", "/v1");
  out.headers.emplace_back("Content-Type", "application/json");
  if (!endpoint.api_key.empty()) {
    out.headers.emplace_back("x-api-key", HeaderValue(endpoint.api_key));
  }
  out.headers.emplace_back("anthropic-version", "2023-06-01");
  out.body = Dump(body);
  return out;
}

HttpRequest BuildOllama(const Endpoint& endpoint, const ChatRequest& request) {
  OJson body = OJson::object();
  body["model"] = endpoint.model;
  body["messages"] = ChatMessages(request.messages);
  body["stream"] = false;
  OJson options = OJson::object();
  options["temperature"] = request.temperature;
  options["num_predict"] = request.max_tokens;
  body["options"] = std::move(options);
  if (request.constraint.kind == Constraint::Kind::kJsonSchema) {
    body["format"] = request.constraint.schema;
  }
  return BearerRequest(endpoint, JoinUrl(endpoint.base_url, "/api/chat", "/api"), body);
}

// --- replies ------------------------------------------------------------------

const OJson* Member(const OJson& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

const std::string* StringMember(const OJson& object, std::string_view key) {
  const OJson* value = Member(object, key);
  return value != nullptr && value->is_string() ? value->get_ptr<const std::string*>() : nullptr;
}

struct ServerError {
  std::string type;     // sanitised, may be empty
  std::string message;  // sanitised, never empty
};

// The error from any of the documented error bodies:
//   OpenAI, llama-server, vLLM:  {"error": {"message", "type", "code", ...}}
//   Anthropic:                   {"type": "error", "error": {"type", "message"}}
//   vLLM (older):                {"object": "error", "message", "type", "code"}
//   Ollama:                      {"error": "..."}
std::optional<ServerError> ErrorFromBody(const OJson& root) {
  if (!root.is_object()) return std::nullopt;
  const std::string* message = nullptr;
  const std::string* type = nullptr;
  const OJson* code = nullptr;
  if (const OJson* error = Member(root, "error"); error != nullptr) {
    if (error->is_string()) {
      message = error->get_ptr<const std::string*>();
    } else if (error->is_object()) {
      message = StringMember(*error, "message");
      type = StringMember(*error, "type");
      code = Member(*error, "code");
    }
  } else if (const std::string* object = StringMember(root, "object");
             object != nullptr && *object == "error") {
    message = StringMember(root, "message");
    type = StringMember(root, "type");
    code = Member(root, "code");
  }
  if (message == nullptr || message->empty()) return std::nullopt;
  ServerError out;
  out.message = Sanitize(*message, kMaxServerMessageBytes);
  if (type != nullptr && !type->empty()) {
    out.type = Sanitize(*type, kMaxServerTypeBytes);
  } else if (code != nullptr && code->is_string() && !code->get_ref<const std::string&>().empty()) {
    out.type = Sanitize(code->get_ref<const std::string&>(), kMaxServerTypeBytes);
  }
  return out;
}

// The body as JSON, with toolwarden's size and depth limits checked first (a
// reply nested a million deep would otherwise overflow the stack in dump()).
// The second parse keeps the server's key order, for a tool's input.
StatusOr<OJson> ParseBody(std::string_view body) {
  StatusOr<nlohmann::json> checked = ParseJson(body);
  if (!checked.ok()) {
    return Status(checked.status().code(), "the reply is not JSON: " + checked.status().message());
  }
  OJson parsed = OJson::parse(body, nullptr, false);
  if (parsed.is_discarded()) return InvalidArgumentError("the reply is not JSON");
  return parsed;
}

Status ErrorStatus(const HttpReply& reply) {
  const auto status = reply.status;
  const bool retryable =
      status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
  std::string message = "the server answered " + std::to_string(status);
  std::optional<ServerError> error;
  if (StatusOr<OJson> root = ParseBody(reply.body); root.ok()) error = ErrorFromBody(*root);
  if (error.has_value()) {
    if (!error->type.empty()) message += " (" + error->type + ")";
    message += ": " + error->message;
  } else if (reply.body.empty()) {
    message += " with an empty body";
  } else {
    message += ": " + Sanitize(reply.body, kMaxRawBodyBytes);
  }
  return Status(retryable ? StatusCode::kUnavailable : StatusCode::kInvalidArgument,
                std::move(message));
}

// A 2xx body of the wrong shape: names what is missing, and adds the server's
// error when the body is an error body after all (some proxies answer 200).
Status ShapeError(const OJson& root, std::string what) {
  if (std::optional<ServerError> error = ErrorFromBody(root); error.has_value()) {
    what += "; the server said";
    if (!error->type.empty()) what += " (" + error->type + ")";
    what += ": " + error->message;
  }
  return InvalidArgumentError(std::move(what));
}

StatusOr<ChatReply> ParseOpenAI(const OJson& root) {
  const OJson* choices = Member(root, "choices");
  const OJson* message = nullptr;
  const OJson* choice = nullptr;
  if (choices != nullptr && choices->is_array() && !choices->empty()) {
    choice = &(*choices)[0];
    message = Member(*choice, "message");
  }
  if (message == nullptr || !message->is_object()) {
    return ShapeError(root, "the reply has no `choices[0].message`");
  }
  ChatReply out;
  if (const OJson* reason = Member(*choice, "finish_reason");
      reason != nullptr && !reason->is_null()) {
    if (!reason->is_string()) {
      return InvalidArgumentError("`choices[0].finish_reason` is not a string");
    }
    out.finish_reason = reason->get<std::string>();
  }
  if (out.finish_reason == "stop") {
    out.finish = Finish::kStop;
  } else if (out.finish_reason == "length") {
    out.finish = Finish::kLength;
  } else if (out.finish_reason == "content_filter") {
    out.finish = Finish::kRefusal;
  } else {
    out.finish = Finish::kOther;
  }
  if (const OJson* refusal = Member(*message, "refusal");
      refusal != nullptr && !refusal->is_null()) {
    if (!refusal->is_string()) {
      return InvalidArgumentError("`choices[0].message.refusal` is not a string");
    }
    out.refusal = refusal->get<std::string>();
    if (!out.refusal.empty()) out.finish = Finish::kRefusal;
  }
  const OJson* content = Member(*message, "content");
  if (content != nullptr && content->is_string()) {
    out.text = content->get<std::string>();
  } else if (content != nullptr && !content->is_null()) {
    return InvalidArgumentError("`choices[0].message.content` is not a string");
  } else if (out.finish == Finish::kStop) {
    // Null content is an answer only when something says why: a refusal, a
    // filter, a cut-off (a reasoning model can spend every token thinking).
    return InvalidArgumentError("the reply has no `choices[0].message.content`");
  }
  return out;
}

StatusOr<ChatReply> ParseAnthropic(const OJson& root) {
  const OJson* content = Member(root, "content");
  if (content == nullptr || !content->is_array()) {
    return ShapeError(root, "the reply has no `content` array");
  }
  ChatReply out;
  std::optional<std::string> tool_input;
  for (size_t i = 0; i < content->size(); ++i) {
    const OJson& block = (*content)[i];
    const std::string where = "`content[" + std::to_string(i) + "]";
    const std::string* type = StringMember(block, "type");
    if (type == nullptr) return InvalidArgumentError(where + ".type` is missing");
    if (*type == "text") {
      const std::string* text = StringMember(block, "text");
      if (text == nullptr) return InvalidArgumentError(where + ".text` is missing");
      out.text += *text;
    } else if (*type == "tool_use") {
      const OJson* input = Member(block, "input");
      if (input == nullptr) return InvalidArgumentError(where + ".input` is missing");
      if (!tool_input.has_value()) tool_input = Dump(*input);
    }
    // Other blocks (thinking, redacted_thinking, server tools) carry no answer.
  }
  if (tool_input.has_value()) out.text = std::move(*tool_input);
  if (const OJson* reason = Member(root, "stop_reason"); reason != nullptr && !reason->is_null()) {
    if (!reason->is_string()) return InvalidArgumentError("`stop_reason` is not a string");
    out.finish_reason = reason->get<std::string>();
  }
  const std::string& reason = out.finish_reason;
  if (reason == "end_turn" || reason == "stop_sequence" || reason == "tool_use") {
    out.finish = Finish::kStop;
  } else if (reason == "max_tokens") {
    out.finish = Finish::kLength;
  } else if (reason == "refusal") {
    out.finish = Finish::kRefusal;
  } else {
    out.finish = Finish::kOther;
  }
  return out;
}

StatusOr<ChatReply> ParseOllama(const OJson& root) {
  const OJson* message = Member(root, "message");
  if (message == nullptr || !message->is_object()) {
    return ShapeError(root, "the reply has no `message.content`");
  }
  const OJson* content = Member(*message, "content");
  if (content == nullptr) return ShapeError(root, "the reply has no `message.content`");
  if (!content->is_string()) return InvalidArgumentError("`message.content` is not a string");
  ChatReply out;
  out.text = content->get<std::string>();
  std::optional<bool> done;
  if (const OJson* value = Member(root, "done"); value != nullptr && !value->is_null()) {
    if (!value->is_boolean()) return InvalidArgumentError("`done` is not a boolean");
    done = value->get<bool>();
  }
  bool has_reason = false;
  if (const OJson* reason = Member(root, "done_reason"); reason != nullptr && !reason->is_null()) {
    if (!reason->is_string()) return InvalidArgumentError("`done_reason` is not a string");
    out.finish_reason = reason->get<std::string>();
    has_reason = true;
  }
  out.finish = Finish::kOther;
  const bool running = done.has_value() && !*done;  // a streamed chunk, not an answer
  if (!running) {
    if (out.finish_reason == "stop" || (done.has_value() && !has_reason)) {
      // Ollama before 0.1.3x sent `done: true` without a `done_reason`.
      out.finish = Finish::kStop;
    } else if (out.finish_reason == "length") {
      out.finish = Finish::kLength;
    }
  }
  return out;
}

StatusOr<ChatReply> ParseReplyUnguarded(Protocol protocol, const HttpReply& reply) {
  if (reply.status < 200 || reply.status > 299) return ErrorStatus(reply);
  StatusOr<OJson> root = ParseBody(reply.body);
  if (!root.ok()) return root.status();
  if (!root->is_object()) return InvalidArgumentError("the reply is not a JSON object");
  switch (protocol) {
    case Protocol::kOpenAI:
    case Protocol::kLlamaCpp:
      return ParseOpenAI(*root);
    case Protocol::kAnthropic:
      return ParseAnthropic(*root);
    case Protocol::kOllama:
      return ParseOllama(*root);
  }
  return InvalidArgumentError("unknown protocol");
}

}  // namespace

StatusOr<Protocol> ParseProtocol(std::string_view name) {
  std::string lower(name);
  for (char& ch : lower) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  if (lower == "openai") return Protocol::kOpenAI;
  if (lower == "llama.cpp" || lower == "llamacpp" || lower == "llama-server") {
    return Protocol::kLlamaCpp;
  }
  if (lower == "anthropic") return Protocol::kAnthropic;
  if (lower == "ollama") return Protocol::kOllama;
  return InvalidArgumentError("unknown protocol " + Quoted(name) +
                              "; expected one of openai, llama.cpp, anthropic, ollama");
}

std::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kOpenAI:
      return "openai";
    case Protocol::kLlamaCpp:
      return "llama.cpp";
    case Protocol::kAnthropic:
      return "anthropic";
    case Protocol::kOllama:
      return "ollama";
  }
  return "openai";
}

HttpRequest BuildRequest(const Endpoint& endpoint, const ChatRequest& request) {
  switch (endpoint.protocol) {
    case Protocol::kAnthropic:
      return BuildAnthropic(endpoint, request);
    case Protocol::kOllama:
      return BuildOllama(endpoint, request);
    case Protocol::kOpenAI:
    case Protocol::kLlamaCpp:
      break;
  }
  return BuildOpenAI(endpoint, request);
}

StatusOr<ChatReply> ParseReply(Protocol protocol, const HttpReply& reply) {
  // The parse boundary: whatever a server sends, nothing escapes as an exception.
  try {
    return ParseReplyUnguarded(protocol, reply);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory reading the reply");
  } catch (const std::exception& e) {
    return InternalError(std::string("reading the reply failed: ") + Sanitize(e.what(), 200));
  }
}

}  // namespace toolwarden::llm
