#include "adapters/llm/protocol.h"

#include <catch2/catch.hpp>
#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace toolwarden::llm {
namespace {

using Role = Message::Role;
using Kind = Constraint::Kind;
using Headers = std::vector<std::pair<std::string, std::string>>;
using HttpStatus = decltype(HttpReply::status);

constexpr const char* kKey = "sk-test-SECRET-0123456789";

nlohmann::ordered_json RulesSchema() {
  return nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"rules":{"type":"array","items":{"type":"string"}}},)"
      R"("required":["rules"],"additionalProperties":false})");
}

ChatRequest Sample(Kind kind = Kind::kNone) {
  ChatRequest request;
  request.messages = {
      {Role::kSystem, "You draft rules."}, {Role::kSystem, "Answer in JSON."},
      {Role::kUser, "Block `rm -rf`."},    {Role::kAssistant, "deny shell"},
      {Role::kUser, "Say \"why\"."},
  };
  request.max_tokens = 512;
  request.temperature = 0.2;
  request.constraint.kind = kind;
  if (kind == Kind::kJsonSchema) {
    request.constraint.name = "policy_rules";
    request.constraint.schema = RulesSchema();
  }
  if (kind == Kind::kGrammar) request.constraint.grammar = "root ::= \"yes\" | \"no\"";
  return request;
}

Endpoint MakeEndpoint(Protocol protocol, std::string base_url, std::string model,
                      std::string key = kKey) {
  Endpoint endpoint;
  endpoint.protocol = protocol;
  endpoint.base_url = std::move(base_url);
  endpoint.model = std::move(model);
  endpoint.api_key = std::move(key);
  return endpoint;
}

HttpReply Reply(HttpStatus status, std::string body) {
  HttpReply reply;
  reply.status = status;
  reply.body = std::move(body);
  reply.attempts = 1;
  return reply;
}

// True when `text` is valid UTF-8 without control characters: safe to print,
// and nlohmann's dump() does not throw on it.
bool IsSafeText(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x20 || b0 == 0x7f) return false;
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t length = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : 2;
    if (b0 < 0xc2 || b0 > 0xf4 || i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    if (b0 == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0) return false;  // C1
    i += length;
  }
  return true;
}

// --- protocol names -------------------------------------------------------------

TEST_CASE("ParseProtocol accepts every documented spelling", "[protocol]") {
  const std::vector<std::pair<std::string, Protocol>> cases = {
      {"openai", Protocol::kOpenAI},       {"llama.cpp", Protocol::kLlamaCpp},
      {"llamacpp", Protocol::kLlamaCpp},   {"llama-server", Protocol::kLlamaCpp},
      {"anthropic", Protocol::kAnthropic}, {"ollama", Protocol::kOllama},
      {"OpenAI", Protocol::kOpenAI},       {"Llama.CPP", Protocol::kLlamaCpp},
      {"ANTHROPIC", Protocol::kAnthropic}, {"Ollama", Protocol::kOllama},
  };
  for (const auto& [name, want] : cases) {
    INFO(name);
    StatusOr<Protocol> got = ParseProtocol(name);
    REQUIRE(got.ok());
    CHECK(*got == want);
  }
}

TEST_CASE("ProtocolName gives the first spelling and round-trips", "[protocol]") {
  CHECK(ProtocolName(Protocol::kOpenAI) == "openai");
  CHECK(ProtocolName(Protocol::kLlamaCpp) == "llama.cpp");
  CHECK(ProtocolName(Protocol::kAnthropic) == "anthropic");
  CHECK(ProtocolName(Protocol::kOllama) == "ollama");
  for (Protocol p :
       {Protocol::kOpenAI, Protocol::kLlamaCpp, Protocol::kAnthropic, Protocol::kOllama}) {
    StatusOr<Protocol> got = ParseProtocol(ProtocolName(p));
    REQUIRE(got.ok());
    CHECK(*got == p);
  }
}

TEST_CASE("ParseProtocol rejects unknown names and lists the valid ones", "[protocol]") {
  for (const std::string name : {"", "gemini", "open ai", "openai ", "llama_cpp", "vllm"}) {
    INFO(name);
    StatusOr<Protocol> got = ParseProtocol(name);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    CHECK(got.status().message() ==
          "unknown protocol `" + name + "`; expected one of openai, llama.cpp, anthropic, ollama");
  }
}

TEST_CASE("ParseProtocol quotes a hostile name safely and briefly", "[protocol]") {
  const std::string name = "\x1b[2J\n\xff" + std::string(1000, 'x');
  StatusOr<Protocol> got = ParseProtocol(name);
  REQUIRE_FALSE(got.ok());
  CHECK(IsSafeText(got.status().message()));
  CHECK(got.status().message().size() < 200);
  CHECK(got.status().message().rfind("unknown protocol ` [2J ?xxx", 0) == 0);
}

// --- URLs -----------------------------------------------------------------------

TEST_CASE("BuildRequest joins the base URL and the API path", "[protocol]") {
  struct Case {
    Protocol protocol;
    std::string base;
    std::string want;
  };
  const std::vector<Case> cases = {
      {Protocol::kOpenAI, "http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"},
      {Protocol::kOpenAI, "http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/chat/completions"},
      {Protocol::kOpenAI, "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"},
      {Protocol::kOpenAI, "http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"},
      {Protocol::kOpenAI, "https://api.openai.com/v1/chat/completions",
       "https://api.openai.com/v1/chat/completions"},
      {Protocol::kOpenAI, "https://api.openai.com/v1/chat/completions/",
       "https://api.openai.com/v1/chat/completions"},
      {Protocol::kOpenAI, "https://openrouter.ai/api/v1",
       "https://openrouter.ai/api/v1/chat/completions"},
      {Protocol::kOpenAI, "http://host/v1beta", "http://host/v1beta/v1/chat/completions"},
      {Protocol::kLlamaCpp, "http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/chat/completions"},
      {Protocol::kLlamaCpp, "http://127.0.0.1:8080/v1",
       "http://127.0.0.1:8080/v1/chat/completions"},
      {Protocol::kAnthropic, "https://api.anthropic.com", "https://api.anthropic.com/v1/messages"},
      {Protocol::kAnthropic, "https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"},
      {Protocol::kAnthropic, "https://api.anthropic.com/v1",
       "https://api.anthropic.com/v1/messages"},
      {Protocol::kAnthropic, "https://api.anthropic.com/v1/messages",
       "https://api.anthropic.com/v1/messages"},
      {Protocol::kOllama, "http://127.0.0.1:11434", "http://127.0.0.1:11434/api/chat"},
      {Protocol::kOllama, "http://127.0.0.1:11434/", "http://127.0.0.1:11434/api/chat"},
      {Protocol::kOllama, "http://127.0.0.1:11434/api", "http://127.0.0.1:11434/api/chat"},
      {Protocol::kOllama, "http://127.0.0.1:11434/api/chat", "http://127.0.0.1:11434/api/chat"},
      // Only one trailing slash is dropped.
      {Protocol::kOllama, "http://h//", "http://h//api/chat"},
      {Protocol::kOpenAI, "", "/v1/chat/completions"},
  };
  for (const Case& c : cases) {
    INFO(std::string(ProtocolName(c.protocol)) + " " + c.base);
    CHECK(BuildRequest(MakeEndpoint(c.protocol, c.base, "m"), Sample()).url == c.want);
  }
}

// --- request bodies ---------------------------------------------------------------

constexpr const char* kOpenAIMessages =
    R"("messages":[{"role":"system","content":"You draft rules."},)"
    R"({"role":"system","content":"Answer in JSON."},)"
    R"({"role":"user","content":"Block `rm -rf`."},)"
    R"({"role":"assistant","content":"deny shell"},)"
    R"({"role":"user","content":"Say \"why\"."}])";

constexpr const char* kSchemaText =
    R"({"type":"object","properties":{"rules":{"type":"array","items":{"type":"string"}}},)"
    R"("required":["rules"],"additionalProperties":false})";

TEST_CASE("OpenAI request without a constraint", "[protocol]") {
  const HttpRequest got =
      BuildRequest(MakeEndpoint(Protocol::kOpenAI, "http://127.0.0.1:8000/v1", "gpt-4o"), Sample());
  CHECK(got.url == "http://127.0.0.1:8000/v1/chat/completions");
  CHECK(got.headers == Headers{{"Content-Type", "application/json"},
                               {"Authorization", "Bearer " + std::string(kKey)}});
  CHECK(got.body == std::string(R"({"model":"gpt-4o",)") + kOpenAIMessages +
                        R"(,"temperature":0.2,"max_tokens":512,"stream":false})");
}

TEST_CASE("OpenAI request with a JSON schema uses response_format", "[protocol]") {
  const HttpRequest got =
      BuildRequest(MakeEndpoint(Protocol::kOpenAI, "https://api.openai.com/v1", "gpt-4o"),
                   Sample(Kind::kJsonSchema));
  CHECK(got.body == std::string(R"({"model":"gpt-4o",)") + kOpenAIMessages +
                        R"(,"temperature":0.2,"max_tokens":512,"stream":false,)"
                        R"("response_format":{"type":"json_schema","json_schema":)"
                        R"({"name":"policy_rules","strict":true,"schema":)" +
                        kSchemaText + "}}}");
}

TEST_CASE("OpenAI request ignores a GBNF grammar", "[protocol]") {
  const Endpoint endpoint = MakeEndpoint(Protocol::kOpenAI, "http://h/v1", "m");
  CHECK(BuildRequest(endpoint, Sample(Kind::kGrammar)).body ==
        BuildRequest(endpoint, Sample()).body);
  CHECK(BuildRequest(endpoint, Sample(Kind::kGrammar)).body.find("grammar") == std::string::npos);
}

TEST_CASE("OpenAI request without a key sends no Authorization header", "[protocol]") {
  const HttpRequest got =
      BuildRequest(MakeEndpoint(Protocol::kOpenAI, "http://h", "m", ""), Sample());
  CHECK(got.headers == Headers{{"Content-Type", "application/json"}});
}

TEST_CASE("llama.cpp request with a grammar", "[protocol]") {
  const HttpRequest got =
      BuildRequest(MakeEndpoint(Protocol::kLlamaCpp, "http://127.0.0.1:8080", "qwen", ""),
                   Sample(Kind::kGrammar));
  CHECK(got.url == "http://127.0.0.1:8080/v1/chat/completions");
  CHECK(got.headers == Headers{{"Content-Type", "application/json"}});
  CHECK(got.body == std::string(R"({"model":"qwen",)") + kOpenAIMessages +
                        R"(,"temperature":0.2,"max_tokens":512,"stream":false,)"
                        R"("grammar":"root ::= \"yes\" | \"no\""})");
}

TEST_CASE("llama.cpp request with a JSON schema uses response_format", "[protocol]") {
  const HttpRequest got =
      BuildRequest(MakeEndpoint(Protocol::kLlamaCpp, "http://127.0.0.1:8080", "qwen", kKey),
                   Sample(Kind::kJsonSchema));
  CHECK(got.headers == Headers{{"Content-Type", "application/json"},
                               {"Authorization", "Bearer " + std::string(kKey)}});
  CHECK(got.body == std::string(R"({"model":"qwen",)") + kOpenAIMessages +
                        R"(,"temperature":0.2,"max_tokens":512,"stream":false,)"
                        R"("response_format":{"type":"json_schema","json_schema":)"
                        R"({"name":"policy_rules","strict":true,"schema":)" +
                        kSchemaText + "}}}");
}

constexpr const char* kAnthropicHead =
    R"({"model":"claude-sonnet-4-5","max_tokens":512,"temperature":0.2,)"
    R"("system":"You draft rules.\n\nAnswer in JSON.",)"
    R"("messages":[{"role":"user","content":"Block `rm -rf`."},)"
    R"({"role":"assistant","content":"deny shell"},)"
    R"({"role":"user","content":"Say \"why\"."}])";

TEST_CASE("Anthropic request without a constraint", "[protocol]") {
  const HttpRequest got = BuildRequest(
      MakeEndpoint(Protocol::kAnthropic, "https://api.anthropic.com", "claude-sonnet-4-5"),
      Sample());
  CHECK(got.url == "https://api.anthropic.com/v1/messages");
  CHECK(got.headers == Headers{{"Content-Type", "application/json"},
                               {"x-api-key", kKey},
                               {"anthropic-version", "2023-06-01"}});
  CHECK(got.body == std::string(kAnthropicHead) + "}");
}

TEST_CASE("Anthropic request with a JSON schema forces a tool", "[protocol]") {
  const HttpRequest got = BuildRequest(
      MakeEndpoint(Protocol::kAnthropic, "https://api.anthropic.com", "claude-sonnet-4-5"),
      Sample(Kind::kJsonSchema));
  CHECK(got.body == std::string(kAnthropicHead) +
                        R"(,"tools":[{"name":"policy_rules","description":"Submit the answer.",)"
                        R"("input_schema":)" +
                        kSchemaText + R"(}],"tool_choice":{"type":"tool","name":"policy_rules"}})");
}

TEST_CASE("Anthropic request ignores a grammar, and omits an empty system", "[protocol]") {
  ChatRequest request = Sample(Kind::kGrammar);
  request.messages = {{Role::kUser, "hi"}};
  request.max_tokens = 4096;
  request.temperature = 0;
  const HttpRequest got = BuildRequest(
      MakeEndpoint(Protocol::kAnthropic, "https://api.anthropic.com/v1", "c", ""), request);
  CHECK(got.url == "https://api.anthropic.com/v1/messages");
  CHECK(got.headers ==
        Headers{{"Content-Type", "application/json"}, {"anthropic-version", "2023-06-01"}});
  CHECK(
      got.body ==
      R"({"model":"c","max_tokens":4096,"temperature":0.0,"messages":[{"role":"user","content":"hi"}]})");
}

TEST_CASE("Anthropic request joins system messages wherever they are", "[protocol]") {
  ChatRequest request;
  request.messages = {
      {Role::kUser, "u1"}, {Role::kSystem, "s1"}, {Role::kSystem, ""}, {Role::kSystem, "s2"}};
  const HttpRequest got = BuildRequest(MakeEndpoint(Protocol::kAnthropic, "h", "c"), request);
  CHECK(got.body == R"({"model":"c","max_tokens":4096,"temperature":0.0,"system":"s1\n\ns2",)"
                    R"("messages":[{"role":"user","content":"u1"}]})");
}

constexpr const char* kOllamaHead =
    R"({"model":"llama3.2",)"
    R"("messages":[{"role":"system","content":"You draft rules."},)"
    R"({"role":"system","content":"Answer in JSON."},)"
    R"({"role":"user","content":"Block `rm -rf`."},)"
    R"({"role":"assistant","content":"deny shell"},)"
    R"({"role":"user","content":"Say \"why\"."}],)"
    R"("stream":false,"options":{"temperature":0.2,"num_predict":512})";

TEST_CASE("Ollama request without a constraint", "[protocol]") {
  const HttpRequest got = BuildRequest(
      MakeEndpoint(Protocol::kOllama, "http://127.0.0.1:11434", "llama3.2", ""), Sample());
  CHECK(got.url == "http://127.0.0.1:11434/api/chat");
  CHECK(got.headers == Headers{{"Content-Type", "application/json"}});
  CHECK(got.body == std::string(kOllamaHead) + "}");
}

TEST_CASE("Ollama request with a JSON schema uses format", "[protocol]") {
  const HttpRequest got =
      BuildRequest(MakeEndpoint(Protocol::kOllama, "https://ollama.example.com", "llama3.2"),
                   Sample(Kind::kJsonSchema));
  CHECK(got.headers == Headers{{"Content-Type", "application/json"},
                               {"Authorization", "Bearer " + std::string(kKey)}});
  CHECK(got.body == std::string(kOllamaHead) + R"(,"format":)" + kSchemaText + "}");
}

TEST_CASE("Ollama request ignores a grammar", "[protocol]") {
  const Endpoint endpoint = MakeEndpoint(Protocol::kOllama, "http://h", "llama3.2", "");
  CHECK(BuildRequest(endpoint, Sample(Kind::kGrammar)).body == std::string(kOllamaHead) + "}");
}

TEST_CASE("An empty constraint name becomes `answer`", "[protocol]") {
  ChatRequest request;
  request.messages = {{Role::kUser, "hi"}};
  request.constraint.kind = Kind::kJsonSchema;
  request.constraint.schema = nlohmann::ordered_json::parse(R"({"type":"object"})");
  CHECK(BuildRequest(MakeEndpoint(Protocol::kOpenAI, "h", "m", ""), request).body ==
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.0,)"
        R"("max_tokens":4096,"stream":false,"response_format":{"type":"json_schema",)"
        R"("json_schema":{"name":"answer","strict":true,"schema":{"type":"object"}}}})");
  CHECK(BuildRequest(MakeEndpoint(Protocol::kAnthropic, "h", "c", ""), request).body ==
        R"({"model":"c","max_tokens":4096,"temperature":0.0,)"
        R"("messages":[{"role":"user","content":"hi"}],)"
        R"("tools":[{"name":"answer","description":"Submit the answer.",)"
        R"("input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"answer"}})");
}

TEST_CASE("The API key appears only in its header", "[protocol]") {
  for (Protocol p :
       {Protocol::kOpenAI, Protocol::kLlamaCpp, Protocol::kAnthropic, Protocol::kOllama}) {
    for (Kind kind : {Kind::kNone, Kind::kJsonSchema, Kind::kGrammar}) {
      INFO(ProtocolName(p));
      const HttpRequest got = BuildRequest(MakeEndpoint(p, "https://h/v1", "m"), Sample(kind));
      CHECK(got.body.find("SECRET") == std::string::npos);
      CHECK(got.url.find("SECRET") == std::string::npos);
      int in_headers = 0;
      for (const auto& [name, value] : got.headers) {
        CHECK(name.find("SECRET") == std::string::npos);
        if (value.find("SECRET") != std::string::npos) {
          ++in_headers;
          CHECK(name == (p == Protocol::kAnthropic ? "x-api-key" : "Authorization"));
        }
      }
      CHECK(in_headers == 1);
    }
  }
}

TEST_CASE("Control characters never reach a header value", "[protocol]") {
  const Endpoint openai = MakeEndpoint(Protocol::kOpenAI, "h", "m", "sk-abc\n");
  CHECK(BuildRequest(openai, Sample()).headers[1].second == "Bearer sk-abc");
  const Endpoint anthropic =
      MakeEndpoint(Protocol::kAnthropic, "h", "m", "sk\r\nX-Injected: 1\x7f");
  CHECK(BuildRequest(anthropic, Sample()).headers[1].second == "skX-Injected: 1");
}

TEST_CASE("BuildRequest never throws on text that is not UTF-8", "[protocol]") {
  ChatRequest request;
  request.messages = {{Role::kSystem, "s\xff"}, {Role::kUser, "bad \xc3\x28 byte"}};
  request.constraint.kind = Kind::kJsonSchema;
  request.constraint.name = "n\xfe";
  request.constraint.schema = {{"description", "\xe2\x82"}};
  for (Protocol p :
       {Protocol::kOpenAI, Protocol::kLlamaCpp, Protocol::kAnthropic, Protocol::kOllama}) {
    INFO(ProtocolName(p));
    HttpRequest got;
    REQUIRE_NOTHROW(got = BuildRequest(MakeEndpoint(p, "h", "m\x80"), request));
    const auto parsed = nlohmann::json::parse(got.body, nullptr, false);
    REQUIRE_FALSE(parsed.is_discarded());
    CHECK(got.body.find("bad \xef\xbf\xbd( byte") != std::string::npos);  // U+FFFD
  }
}

TEST_CASE("Request bodies parse back to what was asked", "[protocol]") {
  ChatRequest request = Sample(Kind::kJsonSchema);
  request.messages.push_back({Role::kUser, std::string("nul \0 and \x01 and \xc3\xa9", 16)});
  const auto body =
      nlohmann::json::parse(BuildRequest(MakeEndpoint(Protocol::kOllama, "h", "m"), request).body);
  CHECK(body["messages"].back()["content"] == std::string("nul \0 and \x01 and \xc3\xa9", 16));
  CHECK(body["format"] == nlohmann::json::parse(kSchemaText));
}

// --- replies: OpenAI and llama.cpp ------------------------------------------------

TEST_CASE("OpenAI reply that stops", "[protocol]") {
  // From the Chat Completions reference.
  const std::string body = R"({
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
      {
        "index": 0,
        "message": {
          "role": "assistant",
          "content": "Hello! How can I assist you today?",
          "refusal": null,
          "annotations": []
        },
        "logprobs": null,
        "finish_reason": "stop"
      }
    ],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
    "service_tier": "default"
  })";
  for (Protocol p : {Protocol::kOpenAI, Protocol::kLlamaCpp}) {
    StatusOr<ChatReply> got = ParseReply(p, Reply(200, body));
    REQUIRE(got.ok());
    CHECK(got->text == "Hello! How can I assist you today?");
    CHECK(got->finish == Finish::kStop);
    CHECK(got->finish_reason == "stop");
    CHECK(got->refusal.empty());
  }
}

TEST_CASE("vLLM reply cut off by the token limit", "[protocol]") {
  const std::string body = R"({"id":"chatcmpl-8e1f0c6a","object":"chat.completion",)"
                           R"("created":1733000000,"model":"Qwen/Qwen2.5-7B-Instruct",)"
                           R"("choices":[{"index":0,"message":{"role":"assistant",)"
                           R"("reasoning_content":null,"content":"{\"rules\": [\"deny",)"
                           R"("tool_calls":[]},"logprobs":null,"finish_reason":"length",)"
                           R"("stop_reason":null}],"usage":{"prompt_tokens":40,)"
                           R"("total_tokens":56,"completion_tokens":16},"prompt_logprobs":null})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == "{\"rules\": [\"deny");
  CHECK(got->finish == Finish::kLength);
  CHECK(got->finish_reason == "length");
}

TEST_CASE("llama-server reply", "[protocol]") {
  const std::string body =
      R"({"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant",)"
      R"("content":"yes"}}],"created":1738000000,"model":"gpt-3.5-turbo",)"
      R"("system_fingerprint":"b4589-1a24c462","object":"chat.completion",)"
      R"("usage":{"completion_tokens":2,"prompt_tokens":12,"total_tokens":14},)"
      R"("id":"chatcmpl-TnkCuv2nUTjZTvKhvKUyeEh9G6NYffNn","timings":{"prompt_n":12,)"
      R"("prompt_ms":30.1,"predicted_n":2,"predicted_ms":21.7}})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kLlamaCpp, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == "yes");
  CHECK(got->finish == Finish::kStop);
}

TEST_CASE("OpenAI structured-output refusal", "[protocol]") {
  // From the Structured Outputs guide: no `content` at all.
  const std::string body = R"({
    "id": "chatcmpl-9nYAG9LPNonX8DAyrkwYfemr3C8HC",
    "object": "chat.completion",
    "created": 1721596428,
    "model": "gpt-4o-2024-08-06",
    "choices": [
      {
        "index": 0,
        "message": {
          "role": "assistant",
          "refusal": "I'm sorry, I cannot assist with that request."
        },
        "logprobs": null,
        "finish_reason": "stop"
      }
    ],
    "usage": {"prompt_tokens": 81, "completion_tokens": 11, "total_tokens": 92}
  })";
  StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text.empty());
  CHECK(got->finish == Finish::kRefusal);
  CHECK(got->finish_reason == "stop");
  CHECK(got->refusal == "I'm sorry, I cannot assist with that request.");

  const std::string with_null =
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,)"
      R"("refusal":"No."},"finish_reason":"stop"}]})";
  got = ParseReply(Protocol::kOpenAI, Reply(200, with_null));
  REQUIRE(got.ok());
  CHECK(got->finish == Finish::kRefusal);
  CHECK(got->refusal == "No.");
}

TEST_CASE("OpenAI reply stopped by the content filter", "[protocol]") {
  const std::string body =
      R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text.empty());
  CHECK(got->finish == Finish::kRefusal);
  CHECK(got->finish_reason == "content_filter");
}

TEST_CASE("OpenAI reply with other finish reasons", "[protocol]") {
  struct Case {
    std::string body;
    std::string reason;
    std::string text;
  };
  const std::vector<Case> cases = {
      {R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":)"
       R"([{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},)"
       R"("finish_reason":"tool_calls"}]})",
       "tool_calls", ""},
      {R"({"choices":[{"index":0,"message":{"role":"assistant","content":"x"},)"
       R"("finish_reason":"function_call"}]})",
       "function_call", "x"},
      {R"({"choices":[{"index":0,"message":{"role":"assistant","content":"x"},)"
       R"("finish_reason":null}]})",
       "", "x"},
      {R"({"choices":[{"index":0,"message":{"role":"assistant","content":"x"}}]})", "", "x"},
      {R"({"choices":[{"index":0,"message":{"role":"assistant","content":"x","refusal":""},)"
       R"("finish_reason":"abort"}]})",
       "abort", "x"},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, Reply(200, c.body));
    REQUIRE(got.ok());
    CHECK(got->finish == Finish::kOther);
    CHECK(got->finish_reason == c.reason);
    CHECK(got->text == c.text);
    CHECK(got->refusal.empty());
  }
}

TEST_CASE("OpenAI reply with null content after a cut-off is empty text", "[protocol]") {
  // A reasoning model can spend every token thinking.
  const std::string body = R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,)"
                           R"("reasoning_content":"Let me think"},"finish_reason":"length"}]})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text.empty());
  CHECK(got->finish == Finish::kLength);
}

TEST_CASE("OpenAI reply uses only the first choice", "[protocol]") {
  const std::string body =
      R"({"choices":[{"index":0,"message":{"content":"first"},"finish_reason":"stop"},)"
      R"({"index":1,"message":{"content":"second"},"finish_reason":"length"}]})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == "first");
  CHECK(got->finish == Finish::kStop);
}

// --- replies: Anthropic ---------------------------------------------------------------

TEST_CASE("Anthropic reply with text that ends its turn", "[protocol]") {
  // From the Messages reference.
  const std::string body = R"({
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
      {"type": "text", "text": "Hi! My name is Claude."},
      {"type": "text", "text": " How can I help?"}
    ],
    "stop_reason": "end_turn",
    "stop_sequence": null,
    "usage": {"input_tokens": 2095, "output_tokens": 503}
  })";
  StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == "Hi! My name is Claude. How can I help?");
  CHECK(got->finish == Finish::kStop);
  CHECK(got->finish_reason == "end_turn");
}

TEST_CASE("Anthropic forced tool: its input is the text, in the server's key order", "[protocol]") {
  const std::string body = R"({
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
      {"type": "text", "text": "I'll submit the rules."},
      {
        "type": "tool_use",
        "id": "toolu_01A09q90qw90lq917835lq9",
        "name": "policy_rules",
        "input": {"rules": ["deny shell", "allow \"read\""], "zeta": 1, "alpha": {"b": 2, "a": 1}}
      }
    ],
    "stop_reason": "tool_use",
    "stop_sequence": null,
    "usage": {"input_tokens": 472, "output_tokens": 87}
  })";
  StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == R"({"rules":["deny shell","allow \"read\""],"zeta":1,"alpha":{"b":2,"a":1}})");
  CHECK(got->finish == Finish::kStop);
  CHECK(got->finish_reason == "tool_use");
}

TEST_CASE("Anthropic reply: the first tool_use wins, scalar inputs too", "[protocol]") {
  const std::string body =
      R"({"type":"message","content":[{"type":"tool_use","id":"a","name":"n","input":"s"},)"
      R"({"type":"tool_use","id":"b","name":"n","input":{"x":1}}],"stop_reason":"tool_use"})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == R"("s")");
}

TEST_CASE("Anthropic stop reasons", "[protocol]") {
  struct Case {
    std::string reason_json;
    Finish finish;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {R"("end_turn")", Finish::kStop, "end_turn"},
      {R"("stop_sequence")", Finish::kStop, "stop_sequence"},
      {R"("tool_use")", Finish::kStop, "tool_use"},
      {R"("max_tokens")", Finish::kLength, "max_tokens"},
      {R"("refusal")", Finish::kRefusal, "refusal"},
      {R"("pause_turn")", Finish::kOther, "pause_turn"},
      {R"("model_context_window_exceeded")", Finish::kOther, "model_context_window_exceeded"},
      {R"(null)", Finish::kOther, ""},
  };
  for (const Case& c : cases) {
    INFO(c.reason_json);
    const std::string body =
        R"({"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",)"
        R"("content":[{"type":"text","text":"Partial"}],"stop_reason":)" +
        c.reason_json + R"(,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}})";
    StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, body));
    REQUIRE(got.ok());
    CHECK(got->text == "Partial");
    CHECK(got->finish == c.finish);
    CHECK(got->finish_reason == c.reason);
    CHECK(got->refusal.empty());
  }
}

TEST_CASE("Anthropic reply stopped at a stop sequence", "[protocol]") {
  const std::string body =
      R"({"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5",)"
      R"("content":[{"type":"text","text":"deny shell"}],"stop_reason":"stop_sequence",)"
      R"("stop_sequence":"\n\nEND","usage":{"input_tokens":10,"output_tokens":3}})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->finish == Finish::kStop);
}

TEST_CASE("Anthropic reply: thinking and server-tool blocks carry no answer", "[protocol]") {
  const std::string body = R"({
    "id": "msg_03", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
      {"type": "thinking", "thinking": "Let me search.", "signature": "EqQBCgIYAhIM1gbc"},
      {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
      {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search",
       "input": {"query": "policy"}},
      {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": []},
      {"type": "text", "text": "Searching."}
    ],
    "stop_reason": "pause_turn", "stop_sequence": null,
    "usage": {"input_tokens": 10, "output_tokens": 3}
  })";
  StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == "Searching.");
  CHECK(got->finish == Finish::kOther);
  CHECK(got->finish_reason == "pause_turn");
}

TEST_CASE("Anthropic refusal with empty content", "[protocol]") {
  const std::string body =
      R"({"id":"msg_04","type":"message","role":"assistant","model":"claude-sonnet-4-5",)"
      R"("content":[],"stop_reason":"refusal","stop_sequence":null,)"
      R"("usage":{"input_tokens":10,"output_tokens":0}})";
  StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text.empty());
  CHECK(got->finish == Finish::kRefusal);
}

// --- replies: Ollama ------------------------------------------------------------------

TEST_CASE("Ollama reply that stops", "[protocol]") {
  // From docs/api.md, "Chat request (No streaming)".
  const std::string body = R"({
    "model": "llama3.2",
    "created_at": "2023-12-12T14:13:43.416799Z",
    "message": {"role": "assistant", "content": "Hello! How are you today?"},
    "done_reason": "stop",
    "done": true,
    "total_duration": 5191566416,
    "load_duration": 2154458,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 383809000,
    "eval_count": 298,
    "eval_duration": 4799921000
  })";
  StatusOr<ChatReply> got = ParseReply(Protocol::kOllama, Reply(200, body));
  REQUIRE(got.ok());
  CHECK(got->text == "Hello! How are you today?");
  CHECK(got->finish == Finish::kStop);
  CHECK(got->finish_reason == "stop");
}

TEST_CASE("Ollama finish kinds", "[protocol]") {
  struct Case {
    std::string tail;
    Finish finish;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {R"("done_reason":"stop","done":true)", Finish::kStop, "stop"},
      {R"("done_reason":"length","done":true)", Finish::kLength, "length"},
      {R"("done_reason":"load","done":true)", Finish::kOther, "load"},
      {R"("done_reason":"unload","done":true)", Finish::kOther, "unload"},
      {R"("done":false)", Finish::kOther, ""},
      {R"("done_reason":"stop","done":false)", Finish::kOther, "stop"},
      // Ollama before done_reason existed.
      {R"("done":true)", Finish::kStop, ""},
      {R"("done_reason":null,"done":true)", Finish::kStop, ""},
      {R"("done_reason":"length")", Finish::kLength, "length"},
      {R"("created_at":"2024-01-01T00:00:00Z")", Finish::kOther, ""},
  };
  for (const Case& c : cases) {
    INFO(c.tail);
    const std::string body =
        R"({"model":"llama3.2","message":{"role":"assistant","content":"The"},)" + c.tail + "}";
    StatusOr<ChatReply> got = ParseReply(Protocol::kOllama, Reply(200, body));
    REQUIRE(got.ok());
    CHECK(got->text == "The");
    CHECK(got->finish == c.finish);
    CHECK(got->finish_reason == c.reason);
  }
}

TEST_CASE("Any 2xx status is a reply", "[protocol]") {
  const std::string body = R"({"message":{"content":"ok"},"done":true})";
  for (HttpStatus status : {200, 201, 299}) {
    CHECK(ParseReply(Protocol::kOllama, Reply(status, body)).ok());
  }
}

// --- error bodies ---------------------------------------------------------------------

TEST_CASE("Error bodies of every documented shape", "[protocol]") {
  struct Case {
    Protocol protocol;
    HttpStatus status;
    std::string body;
    StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      // OpenAI.
      {Protocol::kOpenAI, 401,
       R"({"error":{"message":"Incorrect API key provided: sk-abc***def.","type":)"
       R"("invalid_request_error","param":null,"code":"invalid_api_key"}})",
       StatusCode::kInvalidArgument,
       "the server answered 401 (invalid_request_error): Incorrect API key provided: "
       "sk-abc***def."},
      {Protocol::kOpenAI, 429,
       R"({"error":{"message":"Rate limit reached for gpt-4o on tokens per min (TPM).",)"
       R"("type":"tokens","param":null,"code":"rate_limit_exceeded"}})",
       StatusCode::kUnavailable,
       "the server answered 429 (tokens): Rate limit reached for gpt-4o on tokens per min (TPM)."},
      {Protocol::kOpenAI, 404,
       R"({"error":{"message":"The model `gpt-9` does not exist","type":null,)"
       R"("param":null,"code":"model_not_found"}})",
       StatusCode::kInvalidArgument,
       "the server answered 404 (model_not_found): The model `gpt-9` does not exist"},
      // vLLM, current: the OpenAI shape with a numeric code.
      {Protocol::kOpenAI, 400,
       R"({"error":{"message":"This model's maximum context length is 4096 tokens.",)"
       R"("type":"BadRequestError","param":null,"code":400}})",
       StatusCode::kInvalidArgument,
       "the server answered 400 (BadRequestError): This model's maximum context length is 4096 "
       "tokens."},
      // vLLM, older: flat.
      {Protocol::kOpenAI, 404,
       R"({"object":"error","message":"The model `gpt-5` does not exist.",)"
       R"("type":"NotFoundError","param":null,"code":404})",
       StatusCode::kInvalidArgument,
       "the server answered 404 (NotFoundError): The model `gpt-5` does not exist."},
      // llama-server.
      {Protocol::kLlamaCpp, 503,
       R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})",
       StatusCode::kUnavailable, "the server answered 503 (unavailable_error): Loading model"},
      {Protocol::kLlamaCpp, 400,
       R"({"error":{"code":400,"message":"Either \"json_schema\" or \"grammar\" can be )"
       R"(specified, but not both","type":"invalid_request_error"}})",
       StatusCode::kInvalidArgument,
       "the server answered 400 (invalid_request_error): Either \"json_schema\" or \"grammar\" "
       "can be specified, but not both"},
      // Anthropic.
      {Protocol::kAnthropic, 529,
       R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},)"
       R"("request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"})",
       StatusCode::kUnavailable, "the server answered 529 (overloaded_error): Overloaded"},
      {Protocol::kAnthropic, 400,
       R"({"type":"error","error":{"type":"invalid_request_error",)"
       R"("message":"max_tokens: Field required"},"request_id":"req_01"})",
       StatusCode::kInvalidArgument,
       "the server answered 400 (invalid_request_error): max_tokens: Field required"},
      {Protocol::kAnthropic, 429,
       R"({"type":"error","error":{"type":"rate_limit_error","message":"Number of request )"
       R"(tokens has exceeded your per-minute rate limit"}})",
       StatusCode::kUnavailable,
       "the server answered 429 (rate_limit_error): Number of request tokens has exceeded your "
       "per-minute rate limit"},
      {Protocol::kAnthropic, 500,
       R"({"type":"error","error":{"type":"api_error","message":"Internal server error"}})",
       StatusCode::kUnavailable, "the server answered 500 (api_error): Internal server error"},
      // Ollama.
      {Protocol::kOllama, 404, R"({"error":"model \"llama9\" not found, try pulling it first"})",
       StatusCode::kInvalidArgument,
       "the server answered 404: model \"llama9\" not found, try pulling it first"},
      {Protocol::kOllama, 400, R"({"error":"invalid format: expected \"json\" or a JSON schema"})",
       StatusCode::kInvalidArgument,
       "the server answered 400: invalid format: expected \"json\" or a JSON schema"},
      {Protocol::kOllama, 500, R"({"error":"llama runner process has terminated: signal: killed"})",
       StatusCode::kUnavailable,
       "the server answered 500: llama runner process has terminated: signal: killed"},
      // Not JSON, or JSON of no known shape: the start of the body.
      {Protocol::kOpenAI, 502,
       "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>\r\n",
       StatusCode::kUnavailable,
       "the server answered 502: <html>  <head><title>502 Bad Gateway</title></head>  </html>  "},
      {Protocol::kOllama, 404, "404 page not found", StatusCode::kInvalidArgument,
       "the server answered 404: 404 page not found"},
      {Protocol::kOpenAI, 422, R"({"detail":"Not Found"})", StatusCode::kInvalidArgument,
       R"(the server answered 422: {"detail":"Not Found"})"},
      {Protocol::kOpenAI, 400, R"({"error":{"message":""}})", StatusCode::kInvalidArgument,
       R"(the server answered 400: {"error":{"message":""}})"},
      {Protocol::kOpenAI, 400, R"({"error":{"message":7,"type":"x"}})",
       StatusCode::kInvalidArgument,
       R"(the server answered 400: {"error":{"message":7,"type":"x"}})"},
      {Protocol::kOpenAI, 400, R"(["error"])", StatusCode::kInvalidArgument,
       R"(the server answered 400: ["error"])"},
      {Protocol::kAnthropic, 500, "", StatusCode::kUnavailable,
       "the server answered 500 with an empty body"},
      // Which statuses are worth retrying.
      {Protocol::kOpenAI, 408, "", StatusCode::kUnavailable,
       "the server answered 408 with an empty body"},
      {Protocol::kOpenAI, 409, "", StatusCode::kUnavailable,
       "the server answered 409 with an empty body"},
      {Protocol::kOpenAI, 599, "", StatusCode::kUnavailable,
       "the server answered 599 with an empty body"},
      {Protocol::kOpenAI, 403, "", StatusCode::kInvalidArgument,
       "the server answered 403 with an empty body"},
      {Protocol::kOpenAI, 413, "", StatusCode::kInvalidArgument,
       "the server answered 413 with an empty body"},
      {Protocol::kOpenAI, 301, "", StatusCode::kInvalidArgument,
       "the server answered 301 with an empty body"},
      {Protocol::kOpenAI, 199, "", StatusCode::kInvalidArgument,
       "the server answered 199 with an empty body"},
      {Protocol::kOpenAI, 600, "", StatusCode::kInvalidArgument,
       "the server answered 600 with an empty body"},
      {Protocol::kOpenAI, 0, "", StatusCode::kInvalidArgument,
       "the server answered 0 with an empty body"},
  };
  for (const Case& c : cases) {
    INFO(std::to_string(c.status) + " " + c.body);
    StatusOr<ChatReply> got = ParseReply(c.protocol, Reply(c.status, c.body));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == c.code);
    CHECK(got.status().message() == c.message);
  }
}

TEST_CASE("Error bodies are read whatever the protocol", "[protocol]") {
  // A proxy (LiteLLM, a gateway) may answer in another API's shape.
  const std::string body =
      R"({"type":"error","error":{"type":"overloaded_error","message":"Busy"}})";
  for (Protocol p :
       {Protocol::kOpenAI, Protocol::kLlamaCpp, Protocol::kAnthropic, Protocol::kOllama}) {
    StatusOr<ChatReply> got = ParseReply(p, Reply(503, body));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message() == "the server answered 503 (overloaded_error): Busy");
  }
}

TEST_CASE("A server's error message is capped and sanitised", "[protocol]") {
  SECTION("a huge message") {
    const std::string body = R"({"error":{"message":")" + std::string(100000, 'A') +
                             R"(","type":")" + std::string(5000, 't') + R"("}})";
    StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, Reply(400, body));
    REQUIRE_FALSE(got.ok());
    const std::string& m = got.status().message();
    CHECK(m == "the server answered 400 (" + std::string(64, 't') +
                   "...): " + std::string(500, 'A') + "...");
  }
  SECTION("a huge body that is not JSON") {
    StatusOr<ChatReply> got = ParseReply(Protocol::kOllama, Reply(500, std::string(1 << 20, 'x')));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message() == "the server answered 500: " + std::string(200, 'x') + "...");
  }
  SECTION("control characters and escape sequences") {
    const std::string body = R"({"error":"line1\nline2\u001b[31m red\u0000 \u0085 end\t"})";
    StatusOr<ChatReply> got = ParseReply(Protocol::kOllama, Reply(400, body));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message() == "the server answered 400: line1 line2 [31m red    end ");
  }
  SECTION("bytes that are not UTF-8, and a cut inside a character") {
    StatusOr<ChatReply> got =
        ParseReply(Protocol::kOpenAI, Reply(502, "bad \xff\xfe \xc3\x28 \xe2\x82\xac ok"));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message() == "the server answered 502: bad ?? ?( \xe2\x82\xac ok");
    // 199 ASCII bytes then a 3-byte character: the character does not fit in 200.
    got = ParseReply(Protocol::kOpenAI, Reply(502, std::string(199, 'y') + "\xe2\x82\xac tail"));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message() == "the server answered 502: " + std::string(199, 'y') + "...");
  }
  SECTION("non-ASCII text is kept") {
    StatusOr<ChatReply> got =
        ParseReply(Protocol::kOllama, Reply(404, R"({"error":"modèle introuvable \u00e9"})"));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().message() == "the server answered 404: mod\xc3\xa8le introuvable \xc3\xa9");
  }
}

TEST_CASE("An error message never carries the request's key", "[protocol]") {
  // ParseReply sees only the reply; a server echoing the key back is its own choice,
  // but the request's headers are never consulted.
  HttpReply reply = Reply(401, R"({"error":{"message":"bad key","type":"auth"}})");
  reply.headers = {{"www-authenticate", "Bearer"}};
  StatusOr<ChatReply> got = ParseReply(Protocol::kOpenAI, reply);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().message() == "the server answered 401 (auth): bad key");
}

// --- malformed 2xx bodies ------------------------------------------------------------

TEST_CASE("2xx bodies of the wrong shape name what is missing", "[protocol]") {
  struct Case {
    Protocol protocol;
    std::string body;
    std::string message;
  };
  const std::vector<Case> cases = {
      {Protocol::kOpenAI, "[]", "the reply is not a JSON object"},
      {Protocol::kOpenAI, "\"text\"", "the reply is not a JSON object"},
      {Protocol::kAnthropic, "null", "the reply is not a JSON object"},
      {Protocol::kOllama, "42", "the reply is not a JSON object"},
      {Protocol::kOpenAI, "{}", "the reply has no `choices[0].message`"},
      {Protocol::kOpenAI, R"({"choices":{}})", "the reply has no `choices[0].message`"},
      {Protocol::kOpenAI, R"({"choices":[]})", "the reply has no `choices[0].message`"},
      {Protocol::kOpenAI, R"({"choices":[null]})", "the reply has no `choices[0].message`"},
      {Protocol::kOpenAI, R"({"choices":[{"text":"legacy"}]})",
       "the reply has no `choices[0].message`"},
      {Protocol::kOpenAI, R"({"choices":[{"message":"hi"}]})",
       "the reply has no `choices[0].message`"},
      {Protocol::kLlamaCpp, R"({"content":"raw /completion reply","stop":true})",
       "the reply has no `choices[0].message`"},
      {Protocol::kOpenAI, R"({"choices":[{"message":{"content":5},"finish_reason":"stop"}]})",
       "`choices[0].message.content` is not a string"},
      {Protocol::kOpenAI,
       R"({"choices":[{"message":{"content":[{"type":"text","text":"x"}]},"finish_reason":"stop"}]})",
       "`choices[0].message.content` is not a string"},
      {Protocol::kOpenAI, R"({"choices":[{"message":{"content":null},"finish_reason":"stop"}]})",
       "the reply has no `choices[0].message.content`"},
      {Protocol::kOpenAI, R"({"choices":[{"message":{},"finish_reason":"stop"}]})",
       "the reply has no `choices[0].message.content`"},
      {Protocol::kOpenAI, R"({"choices":[{"message":{"content":"x"},"finish_reason":1}]})",
       "`choices[0].finish_reason` is not a string"},
      {Protocol::kOpenAI,
       R"({"choices":[{"message":{"content":"x","refusal":true},"finish_reason":"stop"}]})",
       "`choices[0].message.refusal` is not a string"},
      // An error body with a 200 status, as some gateways send.
      {Protocol::kOpenAI,
       R"({"error":{"message":"Provider returned error","type":"upstream","code":502}})",
       "the reply has no `choices[0].message`; the server said (upstream): Provider returned "
       "error"},
      {Protocol::kAnthropic, "{}", "the reply has no `content` array"},
      {Protocol::kAnthropic, R"({"content":"hi","stop_reason":"end_turn"})",
       "the reply has no `content` array"},
      {Protocol::kAnthropic, R"({"content":[5]})", "`content[0].type` is missing"},
      {Protocol::kAnthropic, R"({"content":[{"text":"x"}]})", "`content[0].type` is missing"},
      {Protocol::kAnthropic, R"({"content":[{"type":"text","text":"a"},{"type":"text"}]})",
       "`content[1].text` is missing"},
      {Protocol::kAnthropic, R"({"content":[{"type":"text","text":["a"]}]})",
       "`content[0].text` is missing"},
      {Protocol::kAnthropic, R"({"content":[{"type":"tool_use","id":"t","name":"n"}]})",
       "`content[0].input` is missing"},
      {Protocol::kAnthropic, R"({"content":[],"stop_reason":{"x":1}})",
       "`stop_reason` is not a string"},
      {Protocol::kAnthropic,
       R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
       "the reply has no `content` array; the server said (overloaded_error): Overloaded"},
      {Protocol::kOllama, "{}", "the reply has no `message.content`"},
      {Protocol::kOllama, R"({"message":"hi","done":true})", "the reply has no `message.content`"},
      {Protocol::kOllama, R"({"message":{"role":"assistant"},"done":true})",
       "the reply has no `message.content`"},
      {Protocol::kOllama, R"({"response":"from /api/generate","done":true})",
       "the reply has no `message.content`"},
      {Protocol::kOllama, R"({"message":{"content":null},"done":true})",
       "`message.content` is not a string"},
      {Protocol::kOllama, R"({"message":{"content":"x"},"done":"true"})",
       "`done` is not a boolean"},
      {Protocol::kOllama, R"({"message":{"content":"x"},"done":true,"done_reason":1})",
       "`done_reason` is not a string"},
      {Protocol::kOllama, R"({"error":"model requires more system memory"})",
       "the reply has no `message.content`; the server said: model requires more system memory"},
  };
  for (const Case& c : cases) {
    INFO(std::string(ProtocolName(c.protocol)) + " " + c.body);
    StatusOr<ChatReply> got = ParseReply(c.protocol, Reply(200, c.body));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    CHECK(got.status().message() == c.message);
  }
}

TEST_CASE("2xx bodies that are not JSON", "[protocol]") {
  for (const std::string& body :
       {std::string(), std::string("not json"), std::string("{\"choices\":["),
        std::string("data: {\"choices\":[]}\n\n"), std::string("{\"a\":\"\xff\"}"),
        std::string("{} {}"), std::string("\x00", 1)}) {
    for (Protocol p :
         {Protocol::kOpenAI, Protocol::kLlamaCpp, Protocol::kAnthropic, Protocol::kOllama}) {
      INFO(body);
      StatusOr<ChatReply> got = ParseReply(p, Reply(200, body));
      REQUIRE_FALSE(got.ok());
      CHECK(got.status().code() == StatusCode::kInvalidArgument);
      CHECK(got.status().message().rfind("the reply is not JSON: invalid JSON at byte ", 0) == 0);
      CHECK(IsSafeText(got.status().message()));
    }
  }
}

TEST_CASE("Deeply nested replies hit the JSON depth limit", "[protocol]") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  StatusOr<ChatReply> got = ParseReply(Protocol::kAnthropic, Reply(200, deep));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "the reply is not JSON: JSON nests deeper than 128 at byte 128");

  // A tool input nested just within the limit is dumped back as text.
  const std::string input = std::string(120, '[') + std::string(120, ']');
  got = ParseReply(Protocol::kAnthropic, Reply(200, R"({"content":[{"type":"tool_use","input":)" +
                                                        input + R"(}],"stop_reason":"tool_use"})"));
  REQUIRE(got.ok());
  CHECK(got->text == input);

  // As an error body it falls back to the start of the body.
  got = ParseReply(Protocol::kOpenAI, Reply(500, deep));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kUnavailable);
  CHECK(got.status().message() == "the server answered 500: " + std::string(200, '[') + "...");
}

// --- garbage --------------------------------------------------------------------------

std::vector<std::string> Seeds() {
  return {
      std::string(
          R"({"id":"c","object":"chat.completion","choices":[{"index":0,"message":)"
          R"({"role":"assistant","content":"Hi","refusal":null},"finish_reason":"stop"}]})"),
      std::string(R"({"choices":[{"index":0,"message":{"role":"assistant","refusal":"No"},)"
                  R"("finish_reason":"content_filter"}]})"),
      std::string(R"({"type":"message","content":[{"type":"text","text":"a"},{"type":"tool_use",)"
                  R"("id":"t","name":"n","input":{"rules":["deny"],"n":[1,2.5e3,null,true]}}],)"
                  R"("stop_reason":"tool_use"})"),
      std::string(R"({"model":"llama3.2","message":{"role":"assistant","content":"x"},)"
                  R"("done_reason":"length","done":true})"),
      R"({"error":{"message":"m","type":"t","param":null,"code":"c"}})",
      R"({"object":"error","message":"m","type":"t","code":404})",
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
      R"({"error":"model not found"})",
      "<html><body>502</body></html>",
  };
}

// Bytes that make interesting JSON damage.
constexpr std::string_view kMutationBytes =
    "{}[]\":,0123456789.eE-+nulltruefalse\\u \n\t\x01\xff\xc3";

std::string Mutate(const std::string& seed, std::mt19937& rng) {
  std::string out = seed;
  const int edits = 1 + static_cast<int>(rng() % 8);
  for (int e = 0; e < edits; ++e) {
    const size_t at = out.empty() ? 0 : rng() % out.size();
    switch (rng() % 5) {
      case 0:  // replace a byte
        if (!out.empty()) out[at] = kMutationBytes[rng() % kMutationBytes.size()];
        break;
      case 1:  // insert a byte
        out.insert(out.begin() + at, kMutationBytes[rng() % kMutationBytes.size()]);
        break;
      case 2:  // delete a run
        if (!out.empty()) out.erase(at, 1 + rng() % 4);
        break;
      case 3:  // truncate
        out.resize(at);
        break;
      default:  // a random raw byte
        if (!out.empty()) out[at] = static_cast<char>(rng() % 256);
        break;
    }
  }
  return out;
}

TEST_CASE("ParseReply never throws on random and mutated bodies", "[protocol]") {
  std::mt19937 rng(20240607);
  std::vector<std::string> bodies = Seeds();
  for (const std::string& seed : Seeds()) {
    for (int i = 0; i < 40; ++i) bodies.push_back(Mutate(seed, rng));
  }
  for (int i = 0; i < 100; ++i) {
    std::string random(rng() % 300, '\0');
    for (char& ch : random) ch = static_cast<char>(rng() % 256);
    bodies.push_back(std::move(random));
  }
  // Valid JSON of the right names but every wrong type, field by field.
  for (const std::string value : {"null", "1", "\"s\"", "[]", "{}", "true", "[{}]", "[null]"}) {
    for (const std::string& tpl :
         {std::string(R"({"choices":V})"), std::string(R"({"choices":[{"message":V}]})"),
          std::string(R"({"choices":[{"message":{"content":V,"refusal":V},"finish_reason":V}]})"),
          std::string(R"({"content":V,"stop_reason":V})"),
          std::string(R"({"content":[{"type":"tool_use","input":V},{"type":V,"text":V}]})"),
          std::string(R"({"message":V,"done":V,"done_reason":V})"),
          std::string(R"({"message":{"content":V},"done":V,"done_reason":V})"),
          std::string(R"({"error":V})"),
          std::string(R"({"error":{"message":V,"type":V,"code":V}})"),
          std::string(R"({"object":"error","message":V,"type":V,"code":V})")}) {
      std::string body = tpl;
      for (size_t at = body.find('V'); at != std::string::npos; at = body.find('V', at)) {
        body.replace(at, 1, value);
        at += value.size();
      }
      bodies.push_back(std::move(body));
    }
  }
  REQUIRE(bodies.size() > 500);
  int ok = 0;
  for (const std::string& body : bodies) {
    for (Protocol p :
         {Protocol::kOpenAI, Protocol::kLlamaCpp, Protocol::kAnthropic, Protocol::kOllama}) {
      for (HttpStatus status : {200, 400, 429, 500}) {
        StatusOr<ChatReply> got = Status(StatusCode::kInternal, "not run");
        REQUIRE_NOTHROW(got = ParseReply(p, Reply(status, body)));
        if (got.ok()) {
          ++ok;
          CHECK(status == 200);
          // The text is valid UTF-8 (it came out of a JSON parser or dump()).
          CHECK_NOTHROW(nlohmann::json(got->text).dump());
        } else {
          INFO(body);
          CHECK(got.status().code() != StatusCode::kInternal);
          CHECK(IsSafeText(got.status().message()));
          CHECK(got.status().message().size() < 700);
        }
      }
    }
  }
  CHECK(ok > 0);  // the seeds themselves parse
}

}  // namespace
}  // namespace toolwarden::llm
