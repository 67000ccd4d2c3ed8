// HttpServer: HTTP/1.1 over TCP for the sidecar (Boost.Beast; see
// docs/architecture.md for why). It reads requests, hands each to a handler
// function and writes back what it returns.
//
//   Service service(&store, log.get());
//   StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
//       ServerOptions{}, [&](const HttpRequest& r) { return service.Handle(r); });
//   ... (*server)->port() ...
//   (*server)->Stop();   // finishes responses in flight, then returns
//
// A fixed pool of threads (one per core) serves any number of keep-alive
// connections with asynchronous I/O, so an idle connection holds no thread.
// Requests over the size limits are answered with a JSON 413 or 431 and the
// connection is closed; malformed HTTP gets a JSON 400. The handler runs on a
// pool thread and must be thread-safe.
#ifndef TOOLWARDEN_ADAPTERS_HTTP_SERVER_H_
#define TOOLWARDEN_ADAPTERS_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "adapters/http/service.h"
#include "policy/status.h"

namespace toolwarden {

// Largest request head (request line and headers).
inline constexpr size_t kMaxHeaderBytes = 16 << 10;
// Most open connections; past it new connections are closed at once.
inline constexpr size_t kMaxConnections = 10000;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8181;  // 0: any free port (see HttpServer::port)
  int threads = 0;       // 0: one per core
  size_t max_body_bytes = kMaxBodyBytes;
  size_t max_header_bytes = kMaxHeaderBytes;
  size_t max_connections = kMaxConnections;
  // A connection with no complete request for this long is closed.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Called for responses the server makes itself (400, 413, 431), for metrics.
  using ErrorHook = std::function<void(int status)>;

  // Binds, listens and starts the threads. Fails when the address is taken or
  // invalid.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const ServerOptions& options, Handler handler,
                                                     ErrorHook on_error = {});
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  // Stops accepting, lets requests in flight finish (up to 5 s), closes every
  // connection and joins the threads. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace toolwarden

#endif  // TOOLWARDEN_ADAPTERS_HTTP_SERVER_H_
