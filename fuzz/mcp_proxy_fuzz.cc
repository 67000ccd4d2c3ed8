// mcp_proxy_fuzz: the MCP proxy's state machine (adapters/mcp/proxy.h) driven
// by arbitrary lines from both sides, with a policy that allows, denies, asks
// and terminates (byte 0 picks it: the proxy tests' own, or
// policies/mcp/filesystem.policy or policies/mcp/everything.policy).
//
// Input: the rest, split on '\n', one line per event. The first byte of a line
// says what it is: 'x' the server exits (ServerGone), 'u' the server will not
// answer the last line sent to it (Unanswered), 'l' the client sent a line too
// long to read, 'L' the server did (its first and last bytes, split at \x01,
// from which the proxy may read the id of the request it answers); otherwise a line from the server
// when bit 0x10 is set ('s'), else from the client ('c'). In a client line `@ASK@` stands for the
// id of the proxy's last approval request, which is random, so that answers to it can be fuzzed
// too. Checks what proxy.h promises:
//   - nothing throws;
//   - every line to the server is JSON the proxy wrote (an object or array);
//     every line to the client is JSON, or a line from the server passed on
//     byte for byte;
//   - a tools/call the session would not allow right then (Check: deny, ask
//     or terminate) never reaches the server: the server sees only decided,
//     allowed calls;
//   - a dropped server line answers at most one request, and only the client;
//   - after a `terminate` (ProxyOutput::close) the client is not read and
//     nothing more comes from it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/mcp/proxy.h"
#include "fuzz/fuzz_check.h"
#include "interpreter/loader.h"
#include "nlohmann/json.hpp"
#include "policy/json_limits.h"

namespace toolwarden::mcp {
namespace {

using nlohmann::json;

constexpr char kPolicy[] = R"(policy fs;
default block "Blocked: {reason}";
trust get_contact;
allow read_file when path(path) matches r"/data/(/.*)?|/data/.*";
allow get_contact;
allow send_message when to from trusted;
allow note when text from query;
forbid write_file when path(path) matches r".*secret.*" priority 1 fallback ask "Writing a secret needs approval";
allow write_file when path(path) matches r"/data/out/.*";
forbid move_file priority 1 fallback terminate "Moving files ends the session";
allow open update { allow delete_file when len(path) < 20; };
)";

std::vector<LoadedPolicy> LoadAll() {
  std::vector<LoadedPolicy> all;
  all.push_back(LoadPolicyText("fs.policy", kPolicy, ""));
  const std::string root = TOOLWARDEN_SOURCE_DIR;
  all.push_back(LoadPolicyFile(root + "/policies/mcp/filesystem.policy"));
  all.push_back(LoadPolicyFile(root + "/policies/mcp/everything.policy"));
  for (const LoadedPolicy& loaded : all) FUZZ_CHECK(loaded.ok(), loaded.ErrorText());
  return all;
}

// A single tools/call request's tool and arguments, as the proxy reads them.
struct ToolCall {
  std::string tool;
  json args;
};
std::optional<ToolCall> AsToolCall(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  StatusOr<json> message = ParseJson(line);
  if (!message.ok() || !message->is_object()) return std::nullopt;
  auto method = message->find("method");
  auto params = message->find("params");
  if (method == message->end() || *method != "tools/call" || !message->contains("id") ||
      params == message->end() || !params->is_object()) {
    return std::nullopt;
  }
  auto name = params->find("name");
  auto arguments = params->find("arguments");
  if (name == params->end() || !name->is_string()) return std::nullopt;
  if (arguments != params->end() && !arguments->is_object()) return std::nullopt;
  return ToolCall{name->get<std::string>(),
                  arguments == params->end() ? json::object() : *arguments};
}

bool IsToolCall(const json& message) {
  return message.is_object() && message.contains("method") && message["method"] == "tools/call";
}

// Whether a line to the server carries a tools/call for `tool`.
bool CarriesCall(const json& message, const std::string& tool) {
  auto one = [&](const json& m) {
    return IsToolCall(m) && m.contains("params") && m["params"].is_object() &&
           m["params"].value("name", json()) == tool;
  };
  if (message.is_array()) {
    for (const json& element : message) {
      if (one(element)) return true;
    }
    return false;
  }
  return one(message);
}

}  // namespace
}  // namespace toolwarden::mcp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace toolwarden;
  using namespace toolwarden::mcp;
  static const std::vector<LoadedPolicy>* policies = new std::vector<LoadedPolicy>(LoadAll());
  if (size < 1) return 0;
  const LoadedPolicy& policy = (*policies)[data[0] % policies->size()];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  ProxyOptions options;
  options.program = policy.program;
  options.policy_source = policy.source;
  options.report = [](const std::string&) {};
  options.id_prefix = "tw-";
  Proxy proxy(options);

  bool closed = false;
  std::string last_to_server;
  std::string ask_id = "none";
  int events = 0;
  while (!rest.empty() && events++ < 64) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.empty()) continue;
    const char kind = line[0];
    std::string text(line.substr(1));
    ProxyOutput out;
    std::optional<ToolCall> call;
    std::optional<Decision> expected;
    bool from_server = false;
    if (kind == 'x') {
      out = proxy.ServerGone("exited with status 1");
    } else if (kind == 'u') {
      out = proxy.Unanswered(last_to_server, "the server did not answer");
    } else if (kind == 'l') {
      if (closed) continue;
      out = proxy.ClientLineTooLong(kMaxMcpMessageBytes + text.size());
    } else if (kind == 'L') {
      // A server line too long to read: its first and last bytes, split at \x01.
      const size_t split = std::min(text.find('\x01'), text.size());
      const std::string_view first = std::string_view(text).substr(0, split);
      const std::string_view last = std::string_view(text).substr(std::min(split + 1, text.size()));
      out = proxy.ServerLineTooLong(kMaxMcpMessageBytes + text.size(), first, last);
      FUZZ_CHECK(out.to_client.size() <= 1 && out.to_server.empty(),
                 "a dropped server line answered more than one request");
    } else if (kind & 0x10) {
      from_server = true;
      out = proxy.FromServer(text);
    } else {
      for (size_t at = text.find("@ASK@"); at != std::string::npos; at = text.find("@ASK@", at)) {
        text.replace(at, 5, ask_id);
        at += ask_id.size();
      }
      call = AsToolCall(text);
      if (call) expected = proxy.session().Check(call->tool, call->args);
      out = proxy.FromClient(text);
      if (closed) {
        FUZZ_CHECK(out.to_client.empty() && out.to_server.empty(),
                   "the proxy answered the client after a terminate");
      }
    }
    std::string passed = text;
    if (!passed.empty() && passed.back() == '\r') passed.pop_back();
    for (const std::string& sent : out.to_server) {
      StatusOr<json> message = ParseJson(sent);
      FUZZ_CHECK(message.ok() && (message->is_object() || message->is_array()),
                 "not JSON to the server: " + sent);
      if (expected && !expected->allowed()) {
        FUZZ_CHECK(!CarriesCall(*message, call->tool), std::string("a call decided ") +
                                                           OutcomeName(expected->outcome) +
                                                           " reached the server: " + sent);
      }
      last_to_server = sent;
    }
    for (const std::string& sent : out.to_client) {
      StatusOr<json> message = ParseJson(sent);
      if (from_server && sent == passed) continue;
      FUZZ_CHECK(message.ok(), "not JSON to the client: " + sent);
      if (message->is_object() && message->value("method", json()) == "elicitation/create" &&
          message->contains("id") && message->at("id").is_string()) {
        ask_id = message->at("id").get<std::string>();
      }
    }
    if (out.close) closed = true;
  }
  return 0;
}
