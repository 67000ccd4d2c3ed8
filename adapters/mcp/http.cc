#include "adapters/mcp/http.h"

#include <curl/curl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace toolwarden::mcp {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using nlohmann::json;

volatile sig_atomic_t g_stop = 0;
void OnStop(int) { g_stop = 1; }

// Request headers passed upstream, and reply headers passed back.
constexpr const char* kForwardedRequestHeaders[] = {"accept", "authorization", "mcp-session-id",
                                                    "mcp-protocol-version", "last-event-id"};

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// True when the Origin header is absent or names a loopback host.
bool LoopbackOrigin(std::string_view origin) {
  if (origin.empty()) return true;
  size_t scheme = origin.find("://");
  if (scheme == std::string_view::npos) return false;
  std::string_view host = origin.substr(scheme + 3);
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  return host == "localhost" || host == "127.0.0.1" || host == "[::1]";
}

// Splits an event stream into events: data lines joined by "\n", the last id.
// Lines end at CR, LF or CRLF, as the event-stream format says (a reader that
// split on LF alone would see one event where the client sees two). Bounded
// by kMaxHttpBodyBytes; each byte is scanned once.
class EventParser {
 public:
  template <typename OnEvent>
  bool Feed(std::string_view bytes, OnEvent on_event) {
    buffer_.append(bytes);
    size_t start = 0;
    while (true) {
      size_t end = buffer_.find_first_of("\r\n", std::max(start, scanned_));
      if (end == std::string::npos) break;
      size_t next = end + 1;
      if (buffer_[end] == '\r') {
        if (next == buffer_.size()) {  // a CR last: an LF may follow in the next chunk
          scanned_ = end;
          break;
        }
        if (buffer_[next] == '\n') ++next;
      }
      Line(std::string_view(buffer_.data() + start, end - start), on_event);
      start = next;
      scanned_ = next;
      if (data_.size() > kMaxHttpBodyBytes) return false;
    }
    buffer_.erase(0, start);
    scanned_ -= start;
    return buffer_.size() <= kMaxHttpBodyBytes;
  }

 private:
  template <typename OnEvent>
  void Line(std::string_view line, OnEvent& on_event) {
    if (line.empty()) {
      if (has_data_) on_event(id_, data_);
      data_.clear();
      has_data_ = false;
      return;
    }
    if (line.front() == ':') return;  // a comment (keep-alive)
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (has_data_) data_ += '\n';
      data_.append(value);
      has_data_ = true;
    } else if (field == "id" && value.find('\0') == std::string_view::npos) {
      id_ = std::string(value);
    }
  }

  std::string buffer_;
  size_t scanned_ = 0;  // buffer_ before this holds no line end
  std::string data_;
  bool has_data_ = false;
  std::string id_;
};

// Bodies over this size (or of unknown size) take one of kMaxLargeBodies places.
constexpr size_t kLargeBodyBytes = 1 << 20;
// After refusing a request for its size, the proxy reads and drops up to this
// much of what the client is still sending (for at most kLingerSeconds), so that
// closing the connection does not reset it before the client reads the answer.
constexpr size_t kMaxLingerBytes = 32 << 20;
constexpr int kLingerSeconds = 5;

std::string TooLargeBody() {
  return "Invalid Request: the body is over " + std::to_string(kMaxHttpBodyBytes) +
         " bytes (kMaxHttpBodyBytes)";
}

// A counting semaphore for large bodies (C++17 has none).
class Places {
 public:
  explicit Places(size_t n) : free_(n) {}
  void Take() {
    std::unique_lock<std::mutex> lock(mutex_);
    freed_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void Give() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++free_;
    }
    freed_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable freed_;
  size_t free_;
};

class LargeBody {
 public:
  explicit LargeBody(Places* places) : places_(places) { places_->Take(); }
  ~LargeBody() { places_->Give(); }
  LargeBody(const LargeBody&) = delete;
  LargeBody& operator=(const LargeBody&) = delete;

 private:
  Places* places_;
};

// One MCP session: its Proxy, and the client's headers for the proxy's own
// requests upstream.
struct McpSession {
  std::atomic<int64_t> last_used{
      0};  // steady-clock seconds; guarded by HttpProxy::mutex_ to change
  std::mutex mutex;
  std::unique_ptr<Proxy> proxy;
  std::vector<std::string> headers;  // "Name: value", guarded by mutex
  // The upstream gave no Mcp-Session-Id: the proxy gave the client one of its
  // own, which is not sent upstream.
  bool own_id = false;
};

struct UpstreamReply {
  CURLcode code = CURLE_OK;
  std::string error;
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // when not an event stream
  bool streamed = false;                       // an event stream, handed to on_event as it came
};

class HttpProxy {
 public:
  HttpProxy(const HttpProxyOptions& options, std::function<void(const std::string&)> report)
      : options_(options), report_(std::move(report)) {}

  int Run();

 private:
  using Socket = tcp::socket;
  struct Client;  // one client request, as it is being answered

  void Serve(Socket socket);
  bool Handle(Socket& socket, const http::request<http::string_body>& request);
  void Refuse(Socket& socket, http::status status, const std::string& message);
  bool Post(Client& client);
  bool GetOrDelete(Client& client);
  void OwnRequests(const std::shared_ptr<McpSession>& session, std::vector<std::string> lines);
  UpstreamReply Call(
      const char* method, const std::string& body, const std::vector<std::string>& headers,
      const std::function<bool(long, const std::map<std::string, std::string>&)>& on_start,
      const std::function<bool(const std::string&, const std::string&)>& on_event,
      int client_fd = -1);
  std::shared_ptr<McpSession> Find(const std::string& id);
  std::shared_ptr<McpSession> NewSession();
  void Say(const std::string& line) {
    if (report_) report_(line);
  }

  HttpProxyOptions options_;
  std::function<void(const std::string&)> report_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;                                             // guards the members below
  std::map<std::string, std::shared_ptr<McpSession>> sessions_;  // by Mcp-Session-Id ("" stateless)
  std::set<int> open_;                                           // client sockets, to shut at stop
  Places large_bodies_{kMaxLargeBodies};
};

// What a handler needs to answer one request.
struct HttpProxy::Client {
  Socket& socket;
  const http::request<http::string_body>& request;
  std::vector<std::string> headers;  // for upstream
  std::string session_id;
  bool keep_alive = true;

  bool Reply(http::status status, const std::string& content_type, std::string body,
             const std::string& session = {}) {
    http::response<http::string_body> response{status, request.version()};
    if (!content_type.empty()) response.set(http::field::content_type, content_type);
    if (!session.empty()) response.set("mcp-session-id", session);
    response.keep_alive(keep_alive);
    response.body() = std::move(body);
    response.prepare_payload();
    beast::error_code ec;
    http::write(socket, response, ec);
    return !ec;
  }
  bool StartStream(long status, const std::string& session) {
    http::response<http::empty_body> response{static_cast<http::status>(status), request.version()};
    response.set(http::field::content_type, "text/event-stream");
    response.set(http::field::cache_control, "no-cache");
    if (!session.empty()) response.set("mcp-session-id", session);
    response.keep_alive(keep_alive);
    response.chunked(true);
    http::response_serializer<http::empty_body> serializer{response};
    beast::error_code ec;
    http::write_header(socket, serializer, ec);
    return !ec;
  }
  bool Event(const std::string& id, const std::string& data) {
    std::string text = id.empty() ? "" : "id: " + id + "\n";
    text += "event: message\ndata: " + data + "\n\n";
    beast::error_code ec;
    net::write(socket, http::make_chunk(net::buffer(text)), ec);
    return !ec;
  }
  bool EndStream() {
    beast::error_code ec;
    net::write(socket, http::make_chunk_last(), ec);
    return !ec;
  }
};

int HttpProxy::Run() {
  net::io_context io;
  beast::error_code ec;
  tcp::endpoint endpoint(net::ip::make_address(options_.host, ec), options_.port);
  if (ec) {
    Say("cannot listen on " + options_.host + ": " + ec.message());
    return 1;
  }
  tcp::acceptor acceptor(io);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    Say("cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
        ec.message());
    return 1;
  }
  g_stop = 0;
  struct sigaction action {
  }, old_int{}, old_term{}, ignore{}, old_pipe{};
  action.sa_handler = OnStop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, &old_pipe);

  const tcp::endpoint bound = acceptor.local_endpoint();
  std::string host = bound.address().to_string();
  if (bound.address().is_v6()) host = "[" + host + "]";
  Say("listening on http://" + host + ":" + std::to_string(bound.port()) + " for " +
      options_.upstream);

  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Worker> workers;
  while (!g_stop) {
    pollfd fd{acceptor.native_handle(), POLLIN, 0};
    if (poll(&fd, 1, 200) <= 0) continue;
    Socket socket(io);
    acceptor.accept(socket, ec);
    if (ec) continue;
    for (auto it = workers.begin(); it != workers.end();) {
      if (*it->done) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
    if (workers.size() >= kMaxHttpConnections) {
      Say("refused a connection: " + std::to_string(kMaxHttpConnections) +
          " are open (kMaxHttpConnections)");
      continue;  // closed as `socket` goes
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    workers.push_back(Worker{std::thread([this, done, s = std::move(socket)]() mutable {
                               Serve(std::move(s));
                               *done = true;
                             }),
                             done});
  }
  stopping_ = true;
  acceptor.close(ec);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int fd : open_) shutdown(fd, SHUT_RDWR);
  }
  for (Worker& worker : workers) worker.thread.join();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  Say("stopped");
  return 0;
}

void HttpProxy::Serve(Socket socket) {
  const int fd = socket.native_handle();
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(options_.idle_timeout.count() / 1000);
  timeout.tv_usec = static_cast<suseconds_t>((options_.idle_timeout.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    open_.insert(fd);
  }
  beast::flat_buffer buffer;
  while (!stopping_) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kMaxHttpHeaderBytes);
    parser.body_limit(kMaxHttpBodyBytes);
    beast::error_code ec;
    http::read_header(socket, buffer, parser, ec);
    if (ec == http::error::header_limit) {
      Refuse(socket, http::status::request_header_fields_too_large,
             "Invalid Request: the request head is over " + std::to_string(kMaxHttpHeaderBytes) +
                 " bytes (kMaxHttpHeaderBytes)");
      break;
    }
    if (ec == http::error::body_limit) {  // a Content-Length over the limit
      Refuse(socket, http::status::payload_too_large, TooLargeBody());
      break;
    }
    if (ec) break;
    // A large body (or one of unknown length) waits for one of
    // kMaxLargeBodies places before it is read: with 256 connections, each
    // body and its parsed JSON could otherwise take gigabytes at once.
    std::optional<LargeBody> large;
    if (!parser.content_length() || *parser.content_length() > kLargeBodyBytes) {
      large.emplace(&large_bodies_);
    }
    http::read(socket, buffer, parser, ec);
    if (ec == http::error::body_limit) {  // a chunked body over the limit
      // No large-body place is held while the rest is drained.
      large.reset();
      Refuse(socket, http::status::payload_too_large, TooLargeBody());
      break;
    }
    if (ec) break;
    if (!Handle(socket, parser.get())) break;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    open_.erase(fd);
  }
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

// Answers a request refused for its size with a JSON-RPC error, then reads and
// drops what the client still sends (bounded) before the connection closes:
// closing with unread bytes would reset the connection, and the client could
// lose the answer.
void HttpProxy::Refuse(Socket& socket, http::status status, const std::string& message) {
  Say("refused a request: " + message);
  http::response<http::string_body> response{status, 11};
  response.set(http::field::content_type, "application/json");
  response.keep_alive(false);
  response.body() = ErrorResponse(nullptr, kInvalidRequest, message);
  response.prepare_payload();
  beast::error_code ec;
  http::write(socket, response, ec);
  if (ec) return;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  timeval timeout{kLingerSeconds, 0};
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kLingerSeconds);
  char sink[65536];
  size_t dropped = 0;
  while (dropped < kMaxLingerBytes && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = recv(socket.native_handle(), sink, sizeof sink, 0);
    if (n <= 0) break;
    dropped += static_cast<size_t>(n);
  }
}

bool HttpProxy::Handle(Socket& socket, const http::request<http::string_body>& request) {
  Client client{socket, request, {}, {}, request.keep_alive()};
  for (const char* name : kForwardedRequestHeaders) {
    auto it = request.find(name);
    if (it != request.end())
      client.headers.push_back(std::string(name) + ": " + std::string(it->value()));
  }
  auto session = request.find("mcp-session-id");
  if (session != request.end()) client.session_id = std::string(session->value());
  auto origin = request.find(http::field::origin);
  if (origin != request.end() &&
      !LoopbackOrigin(std::string_view(origin->value().data(), origin->value().size()))) {
    Say("refused a request from origin " +
        std::string(origin->value().data(), origin->value().size()));
    return client.Reply(
               http::status::forbidden, "application/json",
               ErrorResponse(nullptr, kInvalidRequest, "Forbidden: not a loopback origin")) &&
           client.keep_alive;
  }
  switch (request.method()) {
    case http::verb::post:
      return Post(client) && client.keep_alive;
    case http::verb::get:
    case http::verb::delete_:
      return GetOrDelete(client) && client.keep_alive;
    default: {
      http::response<http::string_body> response{http::status::method_not_allowed,
                                                 request.version()};
      response.set(http::field::allow, "GET, POST, DELETE");
      response.keep_alive(client.keep_alive);
      response.prepare_payload();
      beast::error_code ec;
      http::write(socket, response, ec);
      return !ec && client.keep_alive;
    }
  }
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::shared_ptr<McpSession> HttpProxy::Find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  it->second->last_used = NowSeconds();
  return it->second;
}

std::shared_ptr<McpSession> HttpProxy::NewSession() {
  auto session = std::make_shared<McpSession>();
  session->last_used = NowSeconds();
  session->proxy = std::make_unique<Proxy>(options_.new_session());
  return session;
}

// The headers for the upstream: the client's, without a session id the proxy
// made up itself.
std::vector<std::string> UpstreamHeaders(const std::vector<std::string>& headers, bool own_id) {
  if (!own_id) return headers;
  std::vector<std::string> out;
  for (const std::string& h : headers) {
    if (h.rfind("mcp-session-id:", 0) != 0) out.push_back(h);
  }
  return out;
}

bool HttpProxy::Post(Client& client) {
  const std::string& body = client.request.body();
  StatusOr<json> parsed = ParseJson(body, {kMaxHttpBodyBytes, kMaxJsonDepth});
  if (parsed.ok() && parsed->is_array()) {  // as parsed: a byte order mark hides no batch
    return client.Reply(http::status::bad_request, "application/json",
                        ErrorResponse(nullptr, kInvalidRequest,
                                      "Invalid Request: toolwarden does not take JSON-RPC batches "
                                      "over HTTP; send one message per request"));
  }
  // The session: a known one, or a new one for `initialize` without an id.
  std::shared_ptr<McpSession> session;
  bool fresh = false;
  if (!client.session_id.empty()) {
    session = Find(client.session_id);
    if (session == nullptr) {
      return client.Reply(http::status::not_found, "application/json",
                          ErrorResponse(nullptr, -32001, "Session not found"));
    }
  } else {
    bool initialize = parsed.ok() && parsed->is_object() && parsed->contains("method") &&
                      (*parsed)["method"] == "initialize";
    if (!initialize) {
      return client.Reply(http::status::bad_request, "application/json",
                          ErrorResponse(nullptr, -32000,
                                        "Bad Request: no Mcp-Session-Id; start with "
                                        "initialize"));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (sessions_.size() >= kMaxHttpSessions) {  // make room: forget sessions long idle
      const int64_t cutoff = NowSeconds() - kHttpSessionIdle.count();
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        it = it->second->last_used < cutoff ? sessions_.erase(it) : std::next(it);
      }
    }
    if (sessions_.size() >= kMaxHttpSessions) {
      return client.Reply(http::status::service_unavailable, "application/json",
                          ErrorResponse(nullptr, kInternalError,
                                        "toolwarden: " + std::to_string(kMaxHttpSessions) +
                                            " MCP sessions are open (kMaxHttpSessions)"));
    }
    session = NewSession();
    fresh = true;
  }
  ProxyOutput out;
  std::vector<std::string> upstream_headers;
  {
    std::lock_guard<std::mutex> lock(session->mutex);
    upstream_headers = UpstreamHeaders(client.headers, session->own_id);
    session->headers = upstream_headers;
    out =
        parsed.ok() ? session->proxy->FromClientMessage(*parsed) : session->proxy->FromClient(body);
  }
  if (out.to_server.empty()) {
    if (out.close) {  // terminate: end the upstream session too, and forget it here
      if (!session->own_id) Call("DELETE", "", upstream_headers, nullptr, nullptr);
      std::lock_guard<std::mutex> lock(mutex_);
      sessions_.erase(client.session_id);
    }
    if (out.to_client.empty()) return client.Reply(http::status::accepted, "", "");
    return client.Reply(http::status::ok, "application/json", out.to_client.front());
  }
  const std::string forwarded = out.to_server.front();
  std::vector<std::string> own(out.to_server.begin() + 1, out.to_server.end());
  std::string upstream_id;  // the session id the upstream gave, if any
  std::string session_id = client.session_id;
  bool client_ok = true;
  auto id_from = [&](const std::map<std::string, std::string>& headers) {
    auto it = headers.find("mcp-session-id");
    if (it != headers.end()) upstream_id = it->second;
    if (fresh) session_id = upstream_id.empty() ? "toolwarden-" + RandomHex() : upstream_id;
  };
  UpstreamReply reply = Call(
      "POST", forwarded, upstream_headers,
      [&](long status, const std::map<std::string, std::string>& headers) {
        id_from(headers);
        client_ok = client.StartStream(status, session_id);
        return client_ok;
      },
      [&](const std::string& id, const std::string& data) {
        ProxyOutput events;
        {
          std::lock_guard<std::mutex> lock(session->mutex);
          events = session->proxy->FromServer(data);
        }
        own.insert(own.end(), events.to_server.begin(), events.to_server.end());
        for (const std::string& line : events.to_client) {
          client_ok = client_ok && client.Event(id, line);
        }
        return client_ok;
      },
      client.socket.native_handle());
  if (reply.streamed) {
    ProxyOutput left;  // the stream ended without the answer
    {
      std::lock_guard<std::mutex> lock(session->mutex);
      left = session->proxy->Unanswered(
          forwarded, "the upstream MCP server's event stream ended before it answered");
    }
    for (const std::string& line : left.to_client) client_ok = client_ok && client.Event("", line);
    client_ok = client_ok && client.EndStream();
  } else if (reply.code != CURLE_OK || reply.status == 0) {
    ProxyOutput failed;
    {
      std::lock_guard<std::mutex> lock(session->mutex);
      failed = session->proxy->Unanswered(forwarded, "upstream MCP server: " + reply.error);
    }
    Say("upstream: " + reply.error);
    client_ok = client.Reply(
        http::status::bad_gateway, "application/json",
        failed.to_client.empty()
            ? ErrorResponse(nullptr, kInternalError, "upstream MCP server: " + reply.error)
            : failed.to_client.front());
    fresh = false;
  } else {
    id_from(reply.headers);
    ProxyOutput answer;
    std::string content_type = "application/json";
    if (reply.status >= 200 && reply.status < 300 && !reply.body.empty()) {
      std::lock_guard<std::mutex> lock(session->mutex);
      answer = session->proxy->FromServer(reply.body);
    } else {
      std::lock_guard<std::mutex> lock(session->mutex);
      session->proxy->Unanswered(forwarded, "");  // the server's own error reply goes back as is
      answer.to_client.push_back(reply.body);
      auto type = reply.headers.find("content-type");
      content_type = type == reply.headers.end() ? "" : type->second;
    }
    own.insert(own.end(), answer.to_server.begin(), answer.to_server.end());
    std::string text = answer.to_client.empty() ? "" : answer.to_client.front();
    http::status status = static_cast<http::status>(reply.status);
    if (text.empty()) {  // a request the server's reply did not answer
      std::lock_guard<std::mutex> lock(session->mutex);
      ProxyOutput left = session->proxy->Unanswered(
          forwarded, "the upstream MCP server's reply (HTTP " + std::to_string(reply.status) +
                         ") held no answer");
      if (!left.to_client.empty()) {
        text = left.to_client.front();
        status = http::status::bad_gateway;
        content_type = "application/json";
      }
    }
    if (text.empty()) content_type.clear();
    client_ok = client.Reply(status, content_type, std::move(text), session_id);
  }
  if (fresh && reply.status >= 200 && reply.status < 300) {
    std::lock_guard<std::mutex> lock(mutex_);
    session->own_id = upstream_id.empty();
    if (sessions_.size() < kMaxHttpSessions) sessions_[session_id] = session;
  }
  if (fresh && !upstream_id.empty()) {  // the proxy's own requests join the new session
    std::lock_guard<std::mutex> lock(session->mutex);
    session->headers.push_back("mcp-session-id: " + upstream_id);
  }
  if (!own.empty()) OwnRequests(session, std::move(own));
  return client_ok;
}

// The proxy's own requests (tools/list, page by page): their answers go to
// the proxy only.
void HttpProxy::OwnRequests(const std::shared_ptr<McpSession>& session,
                            std::vector<std::string> lines) {
  for (size_t i = 0; i < lines.size() && !stopping_; ++i) {
    std::vector<std::string> headers;
    {
      std::lock_guard<std::mutex> lock(session->mutex);
      headers = session->headers;
    }
    std::vector<std::string> more;
    auto feed = [&](const std::string& data) {
      std::lock_guard<std::mutex> lock(session->mutex);
      ProxyOutput out = session->proxy->FromServer(data);
      more.insert(more.end(), out.to_server.begin(), out.to_server.end());
    };
    UpstreamReply reply = Call(
        "POST", lines[i], headers,
        [](long, const std::map<std::string, std::string>&) { return true; },
        [&](const std::string&, const std::string& data) {
          feed(data);
          return true;
        });
    if (!reply.streamed && reply.status >= 200 && reply.status < 300) feed(reply.body);
    lines.insert(lines.end(), more.begin(), more.end());
  }
}

bool HttpProxy::GetOrDelete(Client& client) {
  const bool get = client.request.method() == http::verb::get;
  std::shared_ptr<McpSession> session = Find(client.session_id);
  if (session == nullptr) {
    return client.Reply(http::status::not_found, "application/json",
                        ErrorResponse(nullptr, -32001, "Session not found"));
  }
  if (session->own_id && !get) {  // the upstream keeps no sessions: end ours only
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sessions_.erase(client.session_id);
    }
    return client.Reply(http::status::ok, "", "");
  }
  bool client_ok = true;
  UpstreamReply reply = Call(
      get ? "GET" : "DELETE", "", UpstreamHeaders(client.headers, session->own_id),
      [&](long status, const std::map<std::string, std::string>&) {
        client_ok = client.StartStream(status, client.session_id);
        return client_ok;
      },
      [&](const std::string& id, const std::string& data) {
        ProxyOutput out;
        {
          std::lock_guard<std::mutex> lock(session->mutex);
          out = session->proxy->FromServer(data);
        }
        for (const std::string& line : out.to_client)
          client_ok = client_ok && client.Event(id, line);
        if (!out.to_server.empty()) OwnRequests(session, out.to_server);
        return client_ok;
      },
      client.socket.native_handle());
  if (reply.streamed) return client_ok && client.EndStream();
  if (reply.code != CURLE_OK || reply.status == 0) {
    return client.Reply(
        http::status::bad_gateway, "application/json",
        ErrorResponse(nullptr, kInternalError, "upstream MCP server: " + reply.error));
  }
  if (!get && ((reply.status >= 200 && reply.status < 300) || reply.status == 404)) {
    std::lock_guard<std::mutex> lock(mutex_);
    sessions_.erase(client.session_id);
  }
  auto type = reply.headers.find("content-type");
  return client.Reply(static_cast<http::status>(reply.status),
                      type == reply.headers.end() ? "" : type->second, reply.body);
}

// The state of one upstream transfer, for libcurl's callbacks.
struct Transfer {
  UpstreamReply* reply;
  const std::function<bool(long, const std::map<std::string, std::string>&)>* on_start;
  const std::function<bool(const std::string&, const std::string&)>* on_event;
  const std::atomic<bool>* stopping;
  int client_fd;  // the client's socket, watched for a hang-up; -1 for none
  EventParser events;
  bool decided = false;  // streamed or not, once the first body bytes came
  size_t header_bytes = 0;
  std::string over_limit;  // why the transfer was cut off, when a limit did it
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  t->header_bytes += line.size();
  if (t->header_bytes > kMaxHttpHeaderBytes) {
    t->over_limit = "the reply head is over " + std::to_string(kMaxHttpHeaderBytes) +
                    " bytes (kMaxHttpHeaderBytes)";
    return 0;
  }
  if (line.rfind("HTTP/", 0) == 0) {  // a new status line (after a 100 Continue, say)
    t->reply->headers.clear();
    size_t space = line.find(' ');
    t->reply->status = 0;
    for (size_t i = space + 1; space != std::string_view::npos && i < line.size() && i < space + 4;
         ++i) {
      if (!std::isdigit(static_cast<unsigned char>(line[i]))) break;
      t->reply->status = t->reply->status * 10 + (line[i] - '0');
    }
    return line.size();
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    // The blank line after the head: an event stream starts now, so the
    // client sees its head before the first event (which may be long coming).
    if (t->reply->status >= 200 && !t->decided && (line == "\r\n" || line == "\n")) {
      t->decided = true;
      auto type = t->reply->headers.find("content-type");
      if (type != t->reply->headers.end() && t->on_event != nullptr && *t->on_event != nullptr &&
          Lower(type->second).rfind("text/event-stream", 0) == 0) {
        t->reply->streamed = true;
        if (*t->on_start && !(*t->on_start)(t->reply->status, t->reply->headers)) return 0;
      }
    }
    return line.size();
  }
  std::string value(line.substr(colon + 1));
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.pop_back();
  }
  value.erase(0, value.find_first_not_of(' '));
  t->reply->headers[Lower(std::string(line.substr(0, colon)))] = value;
  return line.size();
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (!t->decided) {
    t->decided = true;
    auto type = t->reply->headers.find("content-type");
    bool stream = type != t->reply->headers.end() && t->on_event != nullptr &&
                  *t->on_event != nullptr && Lower(type->second).rfind("text/event-stream", 0) == 0;
    if (stream) {
      t->reply->streamed = true;
      if (*t->on_start && !(*t->on_start)(t->reply->status, t->reply->headers)) return 0;
    }
  }
  if (!t->reply->streamed) {
    if (t->reply->body.size() + n > kMaxHttpBodyBytes) {
      t->over_limit =
          "the reply is over " + std::to_string(kMaxHttpBodyBytes) + " bytes (kMaxHttpBodyBytes)";
      return 0;
    }
    t->reply->body.append(data, n);
    return n;
  }
  bool delivered = true;
  bool parsed =
      t->events.Feed(std::string_view(data, n), [&](const std::string& id, const std::string& d) {
        delivered = delivered && (*t->on_event)(id, d);
      });
  if (!parsed) {
    t->over_limit = "an event of the reply is over " + std::to_string(kMaxHttpBodyBytes) +
                    " bytes (kMaxHttpBodyBytes)";
  }
  return parsed && delivered ? n : 0;
}

// Ends the transfer when the proxy stops or the client hangs up (an
// abandoned event stream must not hold a thread and an upstream connection).
int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->stopping->load()) return 1;
  if (t->client_fd >= 0) {
    pollfd fd{t->client_fd, POLLRDHUP, 0};
    if (poll(&fd, 1, 0) > 0 && (fd.revents & (POLLRDHUP | POLLHUP | POLLERR))) return 1;
  }
  return 0;
}

UpstreamReply HttpProxy::Call(
    const char* method, const std::string& body, const std::vector<std::string>& headers,
    const std::function<bool(long, const std::map<std::string, std::string>&)>& on_start,
    const std::function<bool(const std::string&, const std::string&)>& on_event, int client_fd) {
  UpstreamReply reply;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    reply.code = CURLE_FAILED_INIT;
    reply.error = "cannot start libcurl";
    return reply;
  }
  Transfer transfer{&reply, &on_start, &on_event, &stopping_, client_fd, {}, false, 0, {}};
  curl_slist* list = nullptr;
  bool has_accept = false;
  for (const std::string& h : headers) {
    if (h.rfind("accept:", 0) == 0) has_accept = true;
    list = curl_slist_append(list, h.c_str());
  }
  if (!has_accept) list = curl_slist_append(list, "accept: application/json, text/event-stream");
  if (std::string(method) == "POST")
    list = curl_slist_append(list, "content-type: application/json");
  list = curl_slist_append(list, "expect:");
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, options_.upstream.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  if (std::string(method) == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (std::string(method) == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  reply.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  if (reply.code != CURLE_OK) {
    reply.error = !transfer.over_limit.empty() ? transfer.over_limit
                  : error[0]                   ? error
                                               : curl_easy_strerror(reply.code);
  }
  // A reply with no body never reached OnBody: still an event stream to end.
  if (reply.code == CURLE_OK && !transfer.decided) {
    auto type = reply.headers.find("content-type");
    if (type != reply.headers.end() && on_event &&
        Lower(type->second).rfind("text/event-stream", 0) == 0) {
      reply.streamed = true;
      if (on_start) on_start(reply.status, reply.headers);
    }
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return reply;
}

}  // namespace

int RunHttp(const HttpProxyOptions& options,
            const std::function<void(const std::string&)>& report) {
  curl_global_init(CURL_GLOBAL_DEFAULT);  // before any thread; counted, so safe to repeat
  HttpProxy proxy(options, report);
  return proxy.Run();
}

}  // namespace toolwarden::mcp
