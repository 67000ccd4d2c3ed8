#include "adapters/http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

namespace toolwarden {
namespace {

// A blocking loopback client that speaks raw bytes, so tests can send what a
// polite HTTP library never would.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() { close(fd_); }

  void Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close early (413); the reply says why
      sent += static_cast<size_t>(n);
    }
  }

  // Reads one response: head and a Content-Length body. "" on EOF.
  std::string ReadResponse() {
    for (;;) {
      size_t head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t length = 0;
        size_t cl = buffer_.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) length = std::stoul(buffer_.substr(cl + 16));
        if (buffer_.size() >= head_end + 4 + length) {
          std::string response = buffer_.substr(0, head_end + 4 + length);
          buffer_.erase(0, head_end + 4 + length);
          return response;
        }
      }
      char chunk[65536];
      ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  bool Closed() {
    char c;
    return recv(fd_, &c, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

std::string Post(const std::string& target, const std::string& body,
                 const std::string& extra = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

struct Echo {
  std::atomic<int> requests{0};
  std::atomic<int> errors{0};
  std::unique_ptr<HttpServer> server;

  explicit Echo(ServerOptions options = {}) {
    options.port = 0;
    options.threads = 2;
    StatusOr<std::unique_ptr<HttpServer>> started = HttpServer::Start(
        options,
        [this](const HttpRequest& r) {
          ++requests;
          HttpResponse out;
          out.body = "{\"method\":\"" + r.method + "\",\"target\":\"" + r.target +
                     "\",\"bytes\":" + std::to_string(r.body.size()) + "}";
          return out;
        },
        [this](int) { ++errors; });
    REQUIRE(started.ok());
    server = std::move(*started);
  }
};

TEST_CASE("keep-alive: many requests on one connection") {
  Echo echo;
  RawClient client(echo.server->port());
  for (int i = 0; i < 100; ++i) {
    client.Send(Post("/v1/decide", "{\"i\":" + std::to_string(i) + "}"));
    std::string r = client.ReadResponse();
    REQUIRE(r.find("HTTP/1.1 200 OK") == 0);
    CHECK(r.find("Content-Type: application/json") != std::string::npos);
    CHECK(r.find("\"target\":\"/v1/decide\"") != std::string::npos);
  }
  // Pipelined requests are answered in order.
  client.Send(Post("/a", "{}") + Post("/b", "{}"));
  CHECK(client.ReadResponse().find("\"target\":\"/a\"") != std::string::npos);
  CHECK(client.ReadResponse().find("\"target\":\"/b\"") != std::string::npos);
  CHECK(echo.requests == 102);
}

TEST_CASE("an oversize body gets a JSON 413 and the connection closes") {
  ServerOptions options;
  options.max_body_bytes = 1000;
  Echo echo(options);
  RawClient client(echo.server->port());
  client.Send(Post("/v1/decide", std::string(5000, 'x')));
  std::string r = client.ReadResponse();
  CHECK(r.find("HTTP/1.1 413") == 0);
  CHECK(r.find("{\"error\":{\"code\":\"resource_exhausted\"") != std::string::npos);
  CHECK(client.Closed());
  CHECK(echo.requests == 0);
  CHECK(echo.errors == 1);
  // The server still serves others.
  RawClient next(echo.server->port());
  next.Send(Post("/v1/decide", "{}"));
  CHECK(next.ReadResponse().find("HTTP/1.1 200") == 0);
}

TEST_CASE("an oversize head gets 431, malformed HTTP gets 400") {
  Echo echo;
  {
    RawClient client(echo.server->port());
    client.Send(Post("/x", "{}", "X-Big: " + std::string(20000, 'a') + "\r\n"));
    std::string r = client.ReadResponse();
    CHECK(r.find("HTTP/1.1 431") == 0);
    CHECK(r.find("\"code\":\"resource_exhausted\"") != std::string::npos);
  }
  for (std::string garbage : {"GARBAGE\r\n\r\n", "POST /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                              "POST /x HTTP/9.9\r\n\r\n"}) {
    RawClient client(echo.server->port());
    client.Send(garbage);
    std::string r = client.ReadResponse();
    INFO(garbage);
    CHECK(r.find("HTTP/1.1 400") == 0);
    CHECK(r.find("\"code\":\"invalid_argument\"") != std::string::npos);
  }
  CHECK(echo.requests == 0);
}

TEST_CASE("Expect: 100-continue is answered before the body is sent") {
  Echo echo;
  RawClient client(echo.server->port());
  client.Send("POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  CHECK(client.ReadResponse().find("HTTP/1.1 100 Continue") == 0);
  client.Send("{}");
  CHECK(client.ReadResponse().find("\"bytes\":2") != std::string::npos);
}

TEST_CASE("Stop finishes with idle keep-alive connections open") {
  Echo echo;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<RawClient>(echo.server->port()));
    clients.back()->Send(Post("/x", "{}"));
    REQUIRE(clients.back()->ReadResponse().find("200") != std::string::npos);
  }
  auto start = std::chrono::steady_clock::now();
  echo.server->Stop();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
  for (auto& c : clients) CHECK(c->Closed());
  echo.server->Stop();  // idempotent
}

TEST_CASE("a taken port is a clear error") {
  Echo echo;
  ServerOptions options;
  options.port = echo.server->port();
  options.host = "127.0.0.1";
  StatusOr<std::unique_ptr<HttpServer>> second =
      HttpServer::Start(options, [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().message().find("cannot listen on 127.0.0.1:") == 0);
  options.host = "not an address";
  CHECK_FALSE(HttpServer::Start(options, [](const HttpRequest&) { return HttpResponse{}; }).ok());
}

TEST_CASE("the connection cap closes new connections past it") {
  ServerOptions options;
  options.max_connections = 2;
  Echo echo(options);
  RawClient a(echo.server->port()), b(echo.server->port());
  a.Send(Post("/x", "{}"));
  b.Send(Post("/x", "{}"));
  REQUIRE(a.ReadResponse().find("200") != std::string::npos);
  REQUIRE(b.ReadResponse().find("200") != std::string::npos);
  RawClient c(echo.server->port());
  c.Send(Post("/x", "{}"));
  CHECK(c.ReadResponse().empty());
}

}  // namespace
}  // namespace toolwarden
