// The MCP proxy over Streamable HTTP (docs/mcp.md): an HTTP endpoint for the
// client in front of an upstream MCP server's endpoint, with a Proxy
// (proxy.h) per MCP session deciding every tools/call.
//
//   HttpProxyOptions options;
//   options.upstream = "http://127.0.0.1:3001/mcp";
//   options.new_session = [&] { return ProxyOptions{...}; };
//   int code = RunHttp(options, report);   // until SIGINT or SIGTERM
//
// POST, GET and DELETE on any path are forwarded to the upstream URL with the
// client's Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version and
// Last-Event-ID headers; replies come back with their status, content type
// and Mcp-Session-Id. A reply that is an event stream (text/event-stream) is
// passed on event by event as it arrives, so progress and the server's own
// requests (sampling, elicitation) reach the client during a call. Each
// JSON-RPC message on the way passes through the session's Proxy: a denied
// call is answered by the proxy and never sent upstream. Differences from
// stdio: no batches (JSON-RPC arrays get HTTP 400; MCP 2025-06-18 removed
// them), and `ask` denies, since a client's answer to an elicitation would
// arrive on another request. A request for an MCP session the proxy does not
// know gets 404, as from a server that ended it. An upstream that gives no
// Mcp-Session-Id gets none back; its clients get ids the proxy makes, so each
// still has a policy session of its own. Requests with an Origin header that
// is not a loopback origin get 403 (DNS rebinding).
#ifndef TOOLWARDEN_ADAPTERS_MCP_HTTP_H_
#define TOOLWARDEN_ADAPTERS_MCP_HTTP_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "adapters/mcp/proxy.h"

namespace toolwarden::mcp {

// MCP sessions the proxy keeps at once; a new one past it gets HTTP 503.
inline constexpr size_t kMaxHttpSessions = 1000;
// An MCP session unused for this long may be forgotten to make room for a new
// one when kMaxHttpSessions are open (its client then gets 404 and starts over).
inline constexpr std::chrono::seconds kHttpSessionIdle{1800};
// Client connections served at once (a thread each); more are closed.
inline constexpr size_t kMaxHttpConnections = 256;
// The longest request or reply head.
inline constexpr size_t kMaxHttpHeaderBytes = 64 << 10;
// The longest request body, JSON reply or event from the upstream (over
// stdio a message may be up to kMaxMcpMessageBytes; an HTTP proxy serves many
// clients at once).
inline constexpr size_t kMaxHttpBodyBytes = 16 << 20;
// Request bodies over 1 MiB (or of unknown length) read and handled at once;
// others wait. Bounds memory: a body's parsed JSON can take many times its size.
inline constexpr size_t kMaxLargeBodies = 4;

struct HttpProxyOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;     // 0: any free port (reported once listening)
  std::string upstream;  // the upstream MCP endpoint, http:// or https://
  // The options of the Proxy for each new MCP session.
  std::function<ProxyOptions()> new_session;
  std::chrono::milliseconds connect_timeout{10000};
  // A client connection with no request for this long is closed.
  std::chrono::milliseconds idle_timeout{60000};
};

// Serves until SIGINT or SIGTERM; `report` gets "listening on http://HOST:PORT"
// once ready, and other lines for the operator. Returns 0 after a clean stop,
// 1 when it cannot listen.
int RunHttp(const HttpProxyOptions& options, const std::function<void(const std::string&)>& report);

}  // namespace toolwarden::mcp

#endif  // TOOLWARDEN_ADAPTERS_MCP_HTTP_H_
