// The MCP proxy's protocol logic (docs/mcp.md), as a state machine with no
// I/O: each line read from the client or the server goes in, and the lines to
// write to each side come out. adapters/mcp/stdio.h runs it between a real
// client and a child process.
//
//   Proxy proxy(options);
//   ProxyOutput out = proxy.FromClient(line);   // one JSON-RPC message, no newline
//   write out.to_server lines to the server, out.to_client lines to the client;
//   if (out.close) stop reading the client and shut the server down.
//
// Every message passes in both directions except the client's `tools/call`
// requests, which the policy decides first. The server's messages reach the
// client byte for byte; the client's reach the server as the JSON the proxy
// read, written out again, so a server cannot read into them anything the
// proxy did not see (a message after a lone "\r", the first of two duplicate
// keys). For tools/call:
//   - allow: forwarded; a trusted tool's result is kept in the session when
//     the server answers (for `from trusted`);
//   - deny: answered here with a CallToolResult {"content": [{"type": "text",
//     "text": MESSAGE}], "isError": true}; the server never sees the call;
//   - ask: with a client that declared the `elicitation` capability, the
//     client is asked (`elicitation/create`, a one-field form {approve:
//     boolean}) and the call goes through only on accept with approve = true;
//     otherwise it is denied as above;
//   - terminate: denied as above, and ProxyOutput::close is set.
// The proxy also asks the server for `tools/list` itself, after the handshake
// and on every `notifications/tools/list_changed`, and reports (through
// ProxyOptions::report) what the policy names that the server's tools lack.
#ifndef TOOLWARDEN_ADAPTERS_MCP_PROXY_H_
#define TOOLWARDEN_ADAPTERS_MCP_PROXY_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/log/decision_log.h"
#include "interpreter/program.h"
#include "interpreter/session.h"
#include "nlohmann/json.hpp"
#include "policy/source.h"

namespace toolwarden::mcp {

// The longest message, in bytes without its newline, taken from either side.
// A longer line is dropped (the client gets an error; a server's is reported).
// Bounds the memory one message can take: its text and its parsed JSON.
inline constexpr size_t kMaxMcpMessageBytes = 64 << 20;
// Requests waiting for an answer: the client's, forwarded to the server, and
// calls waiting for a person's approval. A client past it gets an error for
// each new request until answers come back; stops unbounded growth of the
// tables that let the proxy answer everything when the server dies.
inline constexpr size_t kMaxPendingRequests = 10000;
// Pages of `tools/list` the proxy follows (nextCursor) for one check.
inline constexpr size_t kMaxToolListPages = 100;
// An approval request shows each argument (at most kMaxQuotedArgs of them),
// each value cut to kMaxQuotedValueBytes, so no argument can hide another.
inline constexpr size_t kMaxQuotedArgs = 50;
inline constexpr size_t kMaxQuotedValueBytes = 300;
// Results of tools the policy `trust`s are kept for `from trusted`, up to
// this many bytes (as JSON text) per session; past it a result is not kept,
// so values from it are not trusted (others' results are never kept).
inline constexpr size_t kMaxTrustedResultBytes = 64 << 20;

// JSON-RPC error codes the proxy answers with.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

// The notification a client may send, before its first tools/call, to set the
// session's user query (for `from query` and `{query}`) when the command line
// did not: {"jsonrpc": "2.0", "method": "notifications/toolwarden/query",
// "params": {"query": "..."}}. It is not forwarded.
inline constexpr char kQueryNotification[] = "notifications/toolwarden/query";

// {"jsonrpc": "2.0", "id": ID, "error": {"code": CODE, "message": MESSAGE}}.
std::string ErrorResponse(const nlohmann::json& id, int code, const std::string& message);
// 128 bits from std::random_device as 32 hex digits, for ids no one can guess.
std::string RandomHex();

struct ProxyOptions {
  std::shared_ptr<const Program> program;  // decides every tools/call; required
  // The policy's source, to check it again against the server's tools.
  Source policy_source{"", ""};
  std::optional<std::string> query;  // from the command line: fixed for the session
  DecisionLog* log = nullptr;        // when set, every decision is written first
  std::string session_name = "mcp";  // the decision log's `session`
  // Lines for the operator (stderr), without a final newline.
  std::function<void(const std::string&)> report;
  // Whether `ask` may use elicitation at all (the HTTP transport cannot: the
  // client's answer would come on another request). Without it `ask` denies.
  bool elicitation = true;
  // A prefix that makes the proxy's own request ids unique ("toolwarden-" and
  // random hex, by default drawn at construction).
  std::string id_prefix;
};

struct ProxyOutput {
  std::vector<std::string> to_client;  // whole messages, without newlines
  std::vector<std::string> to_server;
  bool close = false;  // a `terminate`: read no more from the client, end the server
};

class Proxy {
 public:
  explicit Proxy(ProxyOptions options);

  // One line from the client or the server (without its newline; a final
  // "\r" is dropped). A line of only spaces, tabs and carriage returns is
  // skipped: JSON allows them around a message anyway.
  ProxyOutput FromClient(std::string_view line);
  ProxyOutput FromServer(std::string_view line);
  // A message from the client already parsed (with ParseJson's limits and
  // kMaxJsonDepth), as FromClient after its parse.
  ProxyOutput FromClientMessage(const nlohmann::json& message);
  // A line longer than kMaxMcpMessageBytes that the reader dropped. For the
  // server's, `first` and `last` are its first and last bytes (any number):
  // when they show the top-level id of an answer to a request the client is
  // waiting for, that request gets an error saying the answer was too long.
  ProxyOutput ClientLineTooLong(size_t bytes);
  ProxyOutput ServerLineTooLong(size_t bytes, std::string_view first = {},
                                std::string_view last = {});
  // The server is gone (`why`: "exited with status 3", ...): every request
  // still waiting for it is answered with an error.
  ProxyOutput ServerGone(const std::string& why);

  // The server will not answer the request `forwarded` (a line of to_server):
  // it is answered with an error (code kInternalError, message `why`) instead,
  // unless it was a notification or already answered.
  ProxyOutput Unanswered(std::string_view forwarded, const std::string& why);

  // Requests waiting for an answer (forwarded, or waiting for approval).
  size_t pending() const { return forwarded_.size() + asks_.size(); }
  const Session& session() const { return *session_; }

 private:
  struct Forwarded {
    nlohmann::json id;
    std::string method;
    std::optional<size_t> call;  // the session's record of an allowed tools/call
    std::string tool;            // its tool
  };
  struct Ask {
    nlohmann::json id;  // the client's tools/call id
    nlohmann::json message;
    std::string tool;
    nlohmann::json args;
  };
  struct ToolList {  // one check against the server's tools, page by page
    nlohmann::json tools = nlohmann::json::array();
    size_t pages = 0;
  };

  void Client(const nlohmann::json& message, ProxyOutput* out);
  void Call(const nlohmann::json& message, ProxyOutput* out);
  void ClientResponse(const nlohmann::json& message, ProxyOutput* out);
  void Server(const nlohmann::json& message, std::string_view raw, ProxyOutput* out);
  bool Intercepted(const nlohmann::json& message) const;
  void Forward(const nlohmann::json& message, ProxyOutput* out);
  void Allowed(const nlohmann::json& message, const Decision& decision, ProxyOutput* out);
  void Refuse(const nlohmann::json& id, const Decision& decision, ProxyOutput* out);
  bool Log(std::string_view kind, const nlohmann::json& args, const Decision& decision);
  void RequestTools(ProxyOutput* out);
  void CheckAgain(ProxyOutput* out);
  void ToolsPage(ToolList pages, const nlohmann::json& message, ProxyOutput* out);
  void CheckTools(const nlohmann::json& tools);
  std::string NextId();
  void Report(const std::string& line) const;

  ProxyOptions options_;
  std::optional<Session> session_;
  Diagnostics baseline_;  // the policy's own diagnostics, without the server's tools
  bool decided_any_ = false;
  bool client_elicits_ = false;
  bool server_has_tools_ = false;
  bool initialized_ = false;
  bool closed_ = false;
  uint64_t next_id_ = 0;
  size_t trusted_bytes_ = 0;                    // results kept for `from trusted`
  bool recheck_ = false;                        // tools changed while a check was in flight
  std::map<std::string, Forwarded> forwarded_;  // by the id's JSON text
  std::map<std::string, Ask> asks_;             // by our elicitation request's id
  std::map<std::string, ToolList> lists_;       // by our tools/list request's id
  std::string last_check_;                      // the last report, to print changes only
};

}  // namespace toolwarden::mcp

#endif  // TOOLWARDEN_ADAPTERS_MCP_PROXY_H_
