#include "adapters/http/server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace toolwarden {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

class Connection;

// Most bytes read and dropped after an error reply before the connection closes.
constexpr size_t kMaxLingerBytes = 16 << 20;

class HttpServer::Impl {
 public:
  Impl(const ServerOptions& options, Handler handler, ErrorHook on_error)
      : options_(options),
        handler_(std::move(handler)),
        on_error_(std::move(on_error)),
        ioc_(std::max(1, options.threads)),
        acceptor_(net::make_strand(ioc_)),
        retry_(acceptor_.get_executor()) {}

  Status Listen() {
    beast::error_code ec;
    net::ip::address address = net::ip::make_address(options_.host, ec);
    if (ec) return InvalidArgumentError("invalid listen address `" + options_.host + "`");
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable, "cannot listen on " + options_.host + ":" +
                                                  std::to_string(options_.port) + ": " +
                                                  ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
    return OkStatus();
  }

  void Stop();
  void Accept();
  void Forget(Connection* c) {
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.erase(c);
  }

  const ServerOptions options_;
  const Handler handler_;
  const ErrorHook on_error_;
  // Declared before ioc_, so they outlive it: destroying the io_context
  // destroys pending handlers, whose connections then Forget() themselves.
  std::mutex mutex_;  // guards connections_
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;  // waits after a failed accept (out of descriptors)
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::once_flag stopped_;
};

namespace {

http::response<http::string_body> MakeResponse(HttpResponse r, unsigned version, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "toolwarden");
  res.set(http::field::content_type, r.content_type);
  res.keep_alive(keep_alive);
  res.body() = std::move(r.body);
  res.prepare_payload();
  return res;
}

}  // namespace

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, HttpServer::Impl* server)
      : stream_(std::move(socket)), server_(server) {}
  ~Connection() { server_->Forget(this); }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  // From Stop(): ends the connection once its current request is answered.
  void Shutdown() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.socket().close(ec);
      }
    });
  }

 private:
  void Read() {
    if (server_->stopping_) return Close();
    parser_.emplace();
    parser_->body_limit(server_->options_.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(server_->options_.max_header_bytes));
    stream_.expires_after(server_->options_.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Connection::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (ec) return OnError(ec);
    auto& req = parser_->get();
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      continue_.emplace(http::status::continue_, req.version());
      http::async_write(stream_, *continue_,
                        beast::bind_front_handler(&Connection::OnContinue, shared_from_this()));
      return;
    }
    ReadBody();
  }

  void OnContinue(beast::error_code ec, size_t) {
    if (ec) return Close();
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Connection::OnRead, shared_from_this()));
  }

  void OnError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      return Fail(413, "request body is larger than " +
                           std::to_string(server_->options_.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return Fail(431, "request head is larger than " +
                           std::to_string(server_->options_.max_header_bytes) + " bytes");
    }
    if (ec.category() == http::make_error_code(http::error::body_limit).category() ||
        ec == http::error::partial_message) {
      return Fail(400, "malformed HTTP request: " + ec.message());
    }
    Close();
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec) return OnError(ec);
    http::request<http::string_body> req = parser_->release();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.body = std::move(req.body());
    busy_ = true;
    HttpResponse response = server_->handler_(request);
    const bool keep_alive = req.keep_alive() && !server_->stopping_;
    Write(MakeResponse(std::move(response), req.version(), keep_alive));
  }

  // Answers with a JSON error and closes the connection.
  void Fail(int status, const std::string& message) {
    if (server_->on_error_) server_->on_error_(status);
    busy_ = true;
    failed_ = true;
    Write(MakeResponse(
        ErrorResponse(status, status == 400 ? "invalid_argument" : "resource_exhausted", message),
        11, false));
  }

  void Write(http::response<http::string_body> res) {
    response_ = std::move(res);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Connection::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    busy_ = false;
    if (!ec && failed_) return Linger();
    if (ec || !response_.keep_alive()) return Close();
    Read();
  }

  // After an error reply, reads and drops what the client is still sending (up
  // to a bound) before closing, so the client gets to read the reply instead of
  // a reset (as web servers' "lingering close").
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (lingered_ >= kMaxLingerBytes) return Close();
    stream_.expires_after(std::chrono::seconds(1));
    stream_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec) return self->Close();
                              self->Linger();
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  http::response<http::string_body> response_;
  bool busy_ = false;    // a request is being answered
  bool failed_ = false;  // answered with an error; the connection ends
  size_t lingered_ = 0;  // bytes dropped while lingering
  std::array<char, 16384> drain_;
};

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || stopping_) return;
    if (ec) {
      // Out of file descriptors (EMFILE/ENFILE) and the like: the pending
      // connection stays queued, so accepting again at once would spin. Wait.
      retry_.expires_after(std::chrono::milliseconds(50));
      retry_.async_wait([this](beast::error_code wait_error) {
        if (!wait_error && !stopping_) Accept();
      });
      return;
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (connections_.size() >= options_.max_connections) {
        lock.unlock();
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        auto c = std::make_shared<Connection>(std::move(socket), this);
        connections_.emplace(c.get(), c);
        lock.unlock();
        c->Start();
      }
    }
    Accept();
  });
}

void HttpServer::Impl::Stop() {
  std::call_once(stopped_, [this] {
    stopping_ = true;
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      retry_.cancel();
    });
    std::vector<std::shared_ptr<Connection>> live;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [raw, weak] : connections_) {
        if (auto c = weak.lock()) live.push_back(std::move(c));
      }
    }
    for (auto& c : live) c->Shutdown();
    live.clear();
    // Connections end on their own once answered; a stuck one is cut off.
    std::thread watchdog([this] {
      for (int i = 0; i < 500 && !ioc_.stopped(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ioc_.stop();
    });
    for (std::thread& t : threads_) t.join();
    watchdog.join();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const ServerOptions& options,
                                                        Handler handler, ErrorHook on_error) {
  ServerOptions o = options;
  if (o.threads <= 0)
    o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto impl = std::make_unique<Impl>(o, std::move(handler), std::move(on_error));
  Status status = impl->Listen();
  if (!status.ok()) return status;
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port_; }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace toolwarden
