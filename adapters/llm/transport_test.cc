#include "adapters/llm/transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/llm/fake_llm.h"

namespace toolwarden::llm {
namespace {

using json = nlohmann::json;
using testing::FakeLlm;

constexpr char kChatPath[] = "/v1/chat/completions";

// A clock that moves only when Post sleeps, and the list of those sleeps.
struct FakeTime {
  std::chrono::steady_clock::time_point now{};
  std::vector<int64_t> sleeps;
  double uniform = 0.5;
  // How much the clock moves per millisecond slept (> 1: an oversleeping host).
  int64_t drift = 1;

  TransportHooks Hooks() {
    return {[this] { return now; },
            [this](Millis d) {
              sleeps.push_back(d.count());
              now += d * drift;
            },
            [this] { return uniform; }};
  }
};

json Ok(const std::string& content = "hi") {
  return {{"reply", {{"content", content}, {"finish", "stop"}}}};
}
json Raw(int status, json headers = json::object(), std::string body = "") {
  return {{"status", status}, {"headers", std::move(headers)}, {"body", std::move(body)}};
}
json Script(std::vector<json> steps, bool repeat_last = false) {
  return {{"steps", std::move(steps)}, {"repeat_last", repeat_last}};
}

HttpRequest Request(const FakeLlm& fake, const std::string& path = kChatPath) {
  return {fake.url() + path,
          {{"Content-Type", "application/json"}, {"Authorization", "Bearer sk-test"}},
          R"({"model":"m","messages":[]})"};
}

// A loopback port with no listener: bound, never listened on, then closed.
uint16_t UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string HttpDate(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buffer;
}

std::string Header(const HttpReply& reply, const std::string& name) {
  for (const auto& [n, v] : reply.headers) {
    if (n == name) return v;
  }
  return "<absent>";
}

// --- RetryAfterMillis ---------------------------------------------------------

TEST_CASE("RetryAfterMillis reads retry-after-ms, then Retry-After", "[transport]") {
  // 2015-10-21 07:28:00 UTC is 1445412480 s after the epoch.
  const auto date = std::chrono::system_clock::from_time_t(1445412480);
  const auto now = date - std::chrono::seconds(90);
  struct Case {
    std::vector<std::pair<std::string, std::string>> headers;
    int64_t want;
  };
  const std::vector<Case> cases = {
      {{}, -1},
      {{{"content-type", "text/plain"}}, -1},
      {{{"retry-after", "2"}}, 2000},
      {{{"retry-after", "0"}}, 0},
      {{{"retry-after", " 7 "}}, 7000},
      {{{"retry-after", "-1"}}, -1},
      {{{"retry-after", "1.5"}}, -1},  // delay-seconds are an integer
      {{{"retry-after", "soon"}}, -1},
      {{{"retry-after", ""}}, -1},
      {{{"retry-after", "99999999999999999999999"}}, 1'000'000'000'000},  // saturates
      {{{"retry-after-ms", "1500"}}, 1500},
      {{{"retry-after-ms", "1.2"}}, 2},  // rounded up: never earlier than asked
      {{{"retry-after-ms", "0"}}, 0},
      {{{"retry-after-ms", "1500"}, {"retry-after", "5"}}, 1500},
      {{{"retry-after", "5"}, {"retry-after-ms", "1500"}}, 1500},
      {{{"retry-after-ms", "-5"}, {"retry-after", "5"}}, 5000},  // malformed: falls back
      {{{"retry-after-ms", "nan"}, {"retry-after", "5"}}, 5000},
      {{{"retry-after-ms", "1e3"}}, -1},
      {{{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}}, 90'000},
      {{{"retry-after", "Wed, 21 Oct 2015 07:26:00 GMT"}}, 0},  // in the past
      {{{"retry-after", "Wed, 21 Oct 2015 07:26:30 GMT"}}, 0},  // now
      {{{"retry-after", "Thu, 22 Oct 2015 07:26:30 GMT"}}, 86'400'000},
      {{{"retry-after", "Wed, 21 Oct 2015 07:28:00 UTC"}}, -1},
      {{{"retry-after", "Wed, 21 Oct 2015 07:28 GMT"}}, -1},
      {{{"retry-after", "Wed, 32 Oct 2015 07:28:00 GMT"}}, -1},
      {{{"retry-after", "Wed, 29 Feb 2015 07:28:00 GMT"}}, -1},  // not a leap year
      {{{"retry-after", "Wed, 21 Oct 2015 24:28:00 GMT"}}, -1},
      {{{"retry-after", "Wed, 21 Foo 2015 07:28:00 GMT"}}, -1},
      {{{"retry-after", "Wednesday, 21-Oct-15 07:28:00 GMT"}}, -1},  // obsolete RFC 850 form
  };
  for (const Case& c : cases) {
    HttpReply reply;
    reply.headers = c.headers;
    INFO(
        (c.headers.empty() ? "(none)" : c.headers.front().first + ": " + c.headers.front().second));
    CHECK(RetryAfterMillis(reply, now) == c.want);
  }

  HttpReply leap;
  leap.headers = {{"retry-after", "Tue, 29 Feb 2000 00:00:00 GMT"}};
  CHECK(RetryAfterMillis(leap, std::chrono::system_clock::from_time_t(951782400 - 1)) == 1000);
  HttpReply rfc_example;
  rfc_example.headers = {{"retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"}};
  CHECK(RetryAfterMillis(rfc_example, std::chrono::system_clock::from_time_t(784111777 - 60)) ==
        60'000);
}

// --- retries and waits (fake clock, real loopback server) --------------------

TEST_CASE("429 with Retry-After waits that long, then succeeds", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(429, {{"Retry-After", "2"}}), Ok()}));
  FakeTime time;
  Transport transport({}, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 200);
  CHECK(reply->attempts == 2);
  CHECK(time.sleeps == std::vector<int64_t>{2000});
  CHECK(json::parse(reply->body)["choices"][0]["message"]["content"] == "hi");
  CHECK(fake->Requests().size() == 2);
}

TEST_CASE("retry-after-ms wins over Retry-After", "[transport]") {
  auto fake =
      FakeLlm::Start(Script({Raw(503, {{"Retry-After", "5"}, {"retry-after-ms", "1500"}}), Ok()}));
  FakeTime time;
  Transport transport({}, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 200);
  CHECK(time.sleeps == std::vector<int64_t>{1500});
}

TEST_CASE("Retry-After is capped at retry_after_cap", "[transport]") {
  auto fake = FakeLlm::Start(
      Script({Raw(429, {{"Retry-After", "100"}}), Raw(429, {{"retry-after-ms", "99999"}}), Ok()}));
  FakeTime time;
  TransportOptions options;
  options.retry_after_cap = Millis(10'000);
  Transport transport(options, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->attempts == 3);
  CHECK(time.sleeps == std::vector<int64_t>{10'000, 10'000});
}

TEST_CASE("Retry-After as an HTTP date waits until then", "[transport]") {
  // Post reads the real wall clock for dates; the date has whole seconds.
  const std::string date = HttpDate(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto fake = FakeLlm::Start(Script({Raw(503, {{"Retry-After", date}}), Ok()}));
  FakeTime time;
  Transport transport({}, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->attempts == 2);
  REQUIRE(time.sleeps.size() == 1);
  CHECK(time.sleeps[0] > 27'000);
  CHECK(time.sleeps[0] <= 30'000);
}

TEST_CASE("5xx replies back off with full jitter, doubling", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(500), Raw(502), Raw(503), Ok()}));
  FakeTime time;  // uniform01 = 0.5; backoff_base 500 by default
  Transport transport({}, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 200);
  CHECK(reply->attempts == 4);
  CHECK(time.sleeps == std::vector<int64_t>{250, 500, 1000});
}

TEST_CASE("backoff is drawn uniformly below its ceiling", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(500), Raw(500), Raw(500), Ok()}));
  FakeTime time;
  time.uniform = 0.0;
  Transport transport({}, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->attempts == 4);
  CHECK(time.sleeps.empty());  // zero waits are not slept

  auto fake2 = FakeLlm::Start(Script({Raw(500), Raw(500), Ok()}));
  FakeTime time2;
  time2.uniform = 0.999;
  Transport transport2({}, time2.Hooks());
  REQUIRE(transport2.Post(Request(*fake2)).ok());
  CHECK(time2.sleeps == std::vector<int64_t>{499, 999});
}

TEST_CASE("backoff never exceeds backoff_cap", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(500), Raw(500), Raw(500), Raw(500), Ok()}));
  FakeTime time;
  TransportOptions options;
  options.backoff_cap = Millis(1200);  // ceilings 500, 1000, 1200, 1200
  Transport transport(options, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->attempts == 5);
  CHECK(time.sleeps == std::vector<int64_t>{250, 500, 600, 600});
}

TEST_CASE("the default jitter is random and below the first ceiling", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(500), Ok()}));
  std::vector<int64_t> sleeps;
  TransportHooks hooks;
  hooks.sleep = [&](Millis d) { sleeps.push_back(d.count()); };
  Transport transport({}, hooks);
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->attempts == 2);
  REQUIRE(sleeps.size() <= 1);
  if (!sleeps.empty()) CHECK(sleeps[0] < 500);
}

TEST_CASE("after max_attempts the last retryable reply is returned", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(500), Raw(503, {}, "still down")}, true));
  FakeTime time;
  TransportOptions options;
  options.max_attempts = 3;
  Transport transport(options, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 503);
  CHECK(reply->body == "still down");
  CHECK(reply->attempts == 3);
  CHECK(time.sleeps.size() == 2);
  CHECK(fake->Requests().size() == 3);
}

TEST_CASE("max_attempts 1 never retries", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(503), Ok()}));
  FakeTime time;
  TransportOptions options;
  options.max_attempts = 1;
  Transport transport(options, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 503);
  CHECK(reply->attempts == 1);
  CHECK(time.sleeps.empty());
}

TEST_CASE("408, 409, 429 and every 5xx are retried", "[transport]") {
  const std::vector<int> statuses = {408, 409, 429, 500, 501, 502, 503, 504, 529, 599};
  std::vector<json> steps;
  for (int status : statuses) {
    steps.push_back(Raw(status));
    steps.push_back(Ok());
  }
  auto fake = FakeLlm::Start(Script(steps));
  for (int status : statuses) {
    INFO(status);
    FakeTime time;
    Transport transport({}, time.Hooks());
    StatusOr<HttpReply> reply = transport.Post(Request(*fake));
    REQUIRE(reply.ok());
    CHECK(reply->status == 200);
    CHECK(reply->attempts == 2);
    CHECK(time.sleeps == std::vector<int64_t>{250});
  }
}

TEST_CASE("other 4xx replies are returned at once", "[transport]") {
  const std::vector<int> statuses = {400, 401, 403, 404, 413, 422};
  std::vector<json> steps;
  for (int status : statuses) {
    steps.push_back(
        {{"error", {{"status", status}, {"message", "bad"}, {"type", "invalid_request_error"}}}});
    steps.push_back(Ok());
  }
  auto fake = FakeLlm::Start(Script(steps));
  for (int status : statuses) {
    INFO(status);
    FakeTime time;
    Transport transport({}, time.Hooks());
    StatusOr<HttpReply> reply = transport.Post(Request(*fake));
    REQUIRE(reply.ok());
    CHECK(reply->status == status);
    CHECK(reply->attempts == 1);
    CHECK(json::parse(reply->body)["error"]["message"] == "bad");
    CHECK(time.sleeps.empty());
    reply = transport.Post(Request(*fake));  // the next step is still there
    REQUIRE(reply.ok());
    CHECK(reply->status == 200);
  }
  CHECK(fake->Requests().size() == 2 * statuses.size());
}

TEST_CASE("a 2xx or 3xx reply is returned as is, redirects not followed", "[transport]") {
  auto fake = FakeLlm::Start(Script({Raw(302, {{"Location", "/v1/elsewhere"}}, "moved"),
                                     Raw(201, {{"X-Mixed-Case", "Value"}}, "made")}));
  Transport transport;
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 302);
  CHECK(reply->body == "moved");
  CHECK(Header(*reply, "location") == "/v1/elsewhere");
  reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 201);
  CHECK(Header(*reply, "x-mixed-case") == "Value");  // names lower-cased, values untouched
  CHECK(Header(*reply, "content-length") == "4");
  CHECK(fake->Requests().size() == 2);
}

// --- connection errors ----------------------------------------------------------

TEST_CASE("connection refused is retried, then Unavailable", "[transport]") {
  const uint16_t port = UnusedPort();
  FakeTime time;
  TransportOptions options;
  options.max_attempts = 3;
  Transport transport(options, time.Hooks());
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions";
  StatusOr<HttpReply> reply = transport.Post({url, {}, "{}"});
  REQUIRE_FALSE(reply.ok());
  CHECK(reply.status().code() == StatusCode::kUnavailable);
  CHECK(reply.status().message() == "POST " + url + ": connection refused after 3 attempts");
  CHECK(time.sleeps == std::vector<int64_t>{250, 500});
}

TEST_CASE("a closed connection counts as a connection error", "[transport]") {
  auto fake = FakeLlm::Start(Script({{{"close", true}}, Ok()}));
  FakeTime time;
  Transport transport({}, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->status == 200);
  CHECK(reply->attempts == 2);
  CHECK(time.sleeps == std::vector<int64_t>{250});

  auto always = FakeLlm::Start(Script({{{"close", true}}}, true));
  TransportOptions options;
  options.max_attempts = 2;
  Transport transport2(options, time.Hooks());
  StatusOr<HttpReply> failed = transport2.Post(Request(*always));
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().code() == StatusCode::kUnavailable);
  CHECK_THAT(failed.status().message(),
             Catch::Contains("closed the connection without a reply after 2 attempts"));
}

TEST_CASE("a cut-off body counts as a connection error", "[transport]") {
  auto fake =
      FakeLlm::Start(Script({{{"partial", true}, {"reply", {{"content", "half"}}}}, Ok("whole")}));
  FakeTime time;
  Transport transport({}, time.Hooks());
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->attempts == 2);
  CHECK(json::parse(reply->body)["choices"][0]["message"]["content"] == "whole");

  auto always = FakeLlm::Start(Script({{{"partial", true}, {"reply", {{"content", "x"}}}}}, true));
  TransportOptions options;
  options.max_attempts = 2;
  Transport transport2(options, time.Hooks());
  StatusOr<HttpReply> failed = transport2.Post(Request(*always));
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().code() == StatusCode::kUnavailable);
  CHECK_THAT(failed.status().message(), Catch::Contains("cut off"));
}

TEST_CASE("a reply slower than attempt_timeout times out and is retried", "[transport]") {
  // Real time: two attempts of 300 ms at most; the server would answer in 3 s.
  auto fake = FakeLlm::Start(Script({{{"delay_ms", 3000}, {"reply", {{"content", "late"}}}},
                                     {{"delay_ms", 3000}, {"reply", {{"content", "late"}}}},
                                     Ok("prompt")}));
  std::vector<int64_t> sleeps;
  TransportHooks hooks;
  hooks.sleep = [&](Millis d) { sleeps.push_back(d.count()); };  // no real backoff
  TransportOptions options;
  options.attempt_timeout = Millis(300);
  options.max_attempts = 2;
  Transport transport(options, hooks);

  const auto start = std::chrono::steady_clock::now();
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(reply.ok());
  CHECK(reply.status().code() == StatusCode::kUnavailable);
  CHECK_THAT(reply.status().message(),
             Catch::Contains("timed out after 2 attempts (attempt timeout 300 ms)"));
  CHECK(elapsed >= std::chrono::milliseconds(550));
  CHECK(elapsed < std::chrono::milliseconds(1500));
  CHECK(sleeps.size() == 1);

  reply = transport.Post(Request(*fake));  // the third step answers at once
  REQUIRE(reply.ok());
  CHECK(reply->attempts == 1);
}

TEST_CASE("the overall deadline stops retries", "[transport]") {
  SECTION("a Retry-After past the deadline is not waited for") {
    auto fake = FakeLlm::Start(Script({Raw(429, {{"Retry-After", "2"}}), Ok()}));
    FakeTime time;
    TransportOptions options;
    options.deadline = Millis(1000);
    Transport transport(options, time.Hooks());
    StatusOr<HttpReply> reply = transport.Post(Request(*fake));
    REQUIRE(reply.ok());
    CHECK(reply->status == 429);
    CHECK(reply->attempts == 1);
    CHECK(time.sleeps.empty());
    CHECK(fake->Requests().size() == 1);
  }
  SECTION("backoff stops when the next wait would pass the deadline") {
    auto fake = FakeLlm::Start(Script({Raw(503)}, true));
    FakeTime time;
    TransportOptions options;
    options.deadline = Millis(1000);  // waits 250 (t=250), 500 (t=750), then 1000: too late
    Transport transport(options, time.Hooks());
    StatusOr<HttpReply> reply = transport.Post(Request(*fake));
    REQUIRE(reply.ok());
    CHECK(reply->status == 503);
    CHECK(reply->attempts == 3);
    CHECK(time.sleeps == std::vector<int64_t>{250, 500});
  }
  SECTION("a clock past the deadline after a wait ends the retries") {
    auto fake = FakeLlm::Start(Script({Raw(503)}, true));
    FakeTime time;
    time.drift = 10;  // the 250 ms wait takes 2.5 s
    TransportOptions options;
    options.deadline = Millis(1000);
    Transport transport(options, time.Hooks());
    StatusOr<HttpReply> reply = transport.Post(Request(*fake));
    REQUIRE(reply.ok());
    CHECK(reply->status == 503);
    CHECK(reply->attempts == 1);
    CHECK(fake->Requests().size() == 1);
  }
  SECTION("connection errors end Unavailable, naming the deadline") {
    FakeTime time;
    TransportOptions options;
    options.deadline = Millis(1000);
    Transport transport(options, time.Hooks());
    const std::string url = "http://127.0.0.1:" + std::to_string(UnusedPort()) + "/v1/messages";
    StatusOr<HttpReply> reply = transport.Post({url, {}, "{}"});
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.status().code() == StatusCode::kUnavailable);
    CHECK(reply.status().message() ==
          "POST " + url +
              ": connection refused after 3 attempts; the deadline of 1000 ms leaves no time "
              "for another");
    CHECK(time.sleeps == std::vector<int64_t>{250, 500});
  }
  SECTION("a zero deadline makes no attempt") {
    FakeTime time;
    TransportOptions options;
    options.deadline = Millis(0);
    Transport transport(options, time.Hooks());
    StatusOr<HttpReply> reply = transport.Post({"http://127.0.0.1:9/x", {}, "{}"});
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.status().code() == StatusCode::kUnavailable);
    CHECK_THAT(reply.status().message(), Catch::Contains("before the first attempt"));
  }
}

// --- limits ------------------------------------------------------------------------

TEST_CASE("a body over max_response_bytes is ResourceExhausted, not retried", "[transport]") {
  // A 5xx body counts too: an error page is no excuse.
  auto fake = FakeLlm::Start(
      Script({Raw(200, {}, std::string(1000, 'x')), Raw(200, {}, std::string(1001, 'x')), Ok(),
              Raw(503, {}, std::string(1001, 'x')), Ok()}));
  TransportOptions options;
  options.max_response_bytes = 1000;
  FakeTime time;
  Transport transport(options, time.Hooks());

  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->body.size() == 1000);
  for (int i = 0; i < 2; ++i) {
    INFO(i);
    reply = transport.Post(Request(*fake));
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.status().code() == StatusCode::kResourceExhausted);
    CHECK_THAT(reply.status().message(), Catch::Contains("max_response_bytes (1000 bytes)"));
    reply = transport.Post(Request(*fake));  // the next step was not consumed by a retry
    REQUIRE(reply.ok());
    CHECK(reply->status == 200);
  }
  CHECK(time.sleeps.empty());
}

TEST_CASE("reply headers over 256 KiB are ResourceExhausted", "[transport]") {
  // libcurl 7.x bounds each header line but not how many there are.
  auto headers = [](int count) {
    json h = json::object();
    for (int i = 0; i < count; ++i) h["X-Pad-" + std::to_string(i)] = std::string(1000, 'p');
    return h;
  };
  auto fake = FakeLlm::Start(Script({Raw(200, headers(200), "ok"),  // about 200 KB
                                     Raw(200, headers(300), "ok"), Ok()}));
  Transport transport;
  StatusOr<HttpReply> reply = transport.Post(Request(*fake));
  REQUIRE(reply.ok());
  CHECK(reply->body == "ok");
  CHECK(Header(*reply, "x-pad-199") == std::string(1000, 'p'));
  reply = transport.Post(Request(*fake));
  REQUIRE_FALSE(reply.ok());
  CHECK(reply.status().code() == StatusCode::kResourceExhausted);
  CHECK_THAT(reply.status().message(), Catch::Contains("reply headers larger than 262144 bytes"));
  CHECK(fake->Requests().size() == 2);
}

// --- input checks --------------------------------------------------------------------

TEST_CASE("malformed URLs and other schemes are InvalidArgument", "[transport]") {
  // (libcurl reads "http:///path" as the host "path", as browsers do.)
  Transport transport;
  for (const std::string url :
       {"", "not a url", "127.0.0.1:8000/v1", "http://", "ftp://127.0.0.1/x", "file:///etc/passwd",
        "gopher://127.0.0.1:70/", "ldap://127.0.0.1/", "http://[::1/x", "http://host:99999/"}) {
    INFO(url);
    StatusOr<HttpReply> reply = transport.Post({url, {}, "{}"});
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.status().code() == StatusCode::kInvalidArgument);
  }
  StatusOr<HttpReply> ftp = transport.Post({"ftp://127.0.0.1/x", {}, ""});
  CHECK(ftp.status().message() == "unsupported URL scheme `ftp` (only http and https)");
}

TEST_CASE("bad header names, values and options are InvalidArgument", "[transport]") {
  Transport transport;
  const std::string url = "http://127.0.0.1:9/v1/chat/completions";
  for (const auto& header :
       std::vector<std::pair<std::string, std::string>>{{"", "v"},
                                                        {"Bad Name", "v"},
                                                        {"Bad:Name", "v"},
                                                        {"X-Key", "a\r\nInjected: 1"},
                                                        {"X-Key", "a\nb"},
                                                        {"X-Key", std::string("a\0b", 3)}}) {
    INFO(header.first);
    StatusOr<HttpReply> reply = transport.Post({url, {header}, "{}"});
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.status().code() == StatusCode::kInvalidArgument);
    CHECK(reply.status().message().find("Injected") == std::string::npos);
  }
  for (int which = 0; which < 4; ++which) {
    INFO(which);
    TransportOptions options;
    if (which == 0) options.max_attempts = 0;
    if (which == 1) options.attempt_timeout = Millis(0);
    if (which == 2) options.connect_timeout = Millis(-1);
    if (which == 3) options.backoff_base = Millis(-1);
    StatusOr<HttpReply> reply = Transport(options).Post({url, {}, "{}"});
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.status().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("the request's headers and body arrive exactly as sent", "[transport]") {
  auto fake = FakeLlm::Start(Script({Ok()}, true));
  Transport transport;
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"caf\u00e9 \"q\""}]})";
  StatusOr<HttpReply> reply = transport.Post({fake->url() + "/v1/messages",
                                              {{"Content-Type", "application/json"},
                                               {"x-api-key", "sk-ant-test"},
                                               {"anthropic-version", "2023-06-01"},
                                               {"X-Empty", ""}},
                                              body});
  REQUIRE(reply.ok());
  const std::string big(100'000, 'b');  // large enough that libcurl would otherwise send Expect
  reply = transport.Post(
      {fake->url() + "/api/chat", {{"Content-Type", "text/plain"}}, "not json " + big});
  REQUIRE(reply.ok());

  const std::vector<json> requests = fake->Requests();
  REQUIRE(requests.size() == 2);
  const json& first = requests[0];
  CHECK(first["n"] == 1);
  CHECK(first["method"] == "POST");
  CHECK(first["path"] == "/v1/messages");
  CHECK(first["body"] == json::parse(body));
  CHECK(first["headers"]["content-type"] == "application/json");
  CHECK(first["headers"]["x-api-key"] == "sk-ant-test");
  CHECK(first["headers"]["anthropic-version"] == "2023-06-01");
  CHECK(first["headers"]["x-empty"] == "");
  CHECK(first["headers"]["content-length"] == std::to_string(body.size()));
  CHECK_FALSE(first["headers"].contains("expect"));
  const json& second = requests[1];
  CHECK(second["path"] == "/api/chat");
  CHECK(second["body"] == "not json " + big);
  CHECK_FALSE(second["headers"].contains("expect"));
}

TEST_CASE("no error message carries a header value, userinfo or query", "[transport]") {
  const std::string secret = "SECRET-3f9a";
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Authorization", "Bearer " + secret}, {"x-api-key", secret}, {"api-key", secret}};
  std::vector<Status> failures;

  FakeTime time;
  TransportOptions options;
  options.max_attempts = 2;
  Transport transport(options, time.Hooks());
  const std::string refused = "http://user:" + secret +
                              "@127.0.0.1:" + std::to_string(UnusedPort()) +
                              "/v1/chat/completions?key=" + secret + "#" + secret;
  failures.push_back(transport.Post({refused, headers, "{}"}).status());
  CHECK_THAT(failures.back().message(), Catch::StartsWith("POST http://127.0.0.1:"));

  auto fake = FakeLlm::Start(Script({{{"close", true}}}, true));
  failures.push_back(
      transport.Post({fake->url() + "/v1/chat/completions?key=" + secret, headers, "{}"}).status());

  TransportOptions small;
  small.max_response_bytes = 10;
  auto big = FakeLlm::Start(Script({Raw(200, {}, std::string(100, 'x'))}));
  failures.push_back(
      Transport(small).Post({big->url() + "/v1/messages?key=" + secret, headers, "{}"}).status());

  failures.push_back(
      transport.Post({"ftp://u:" + secret + "@h/?k=" + secret, headers, ""}).status());
  failures.push_back(transport.Post({"http://[" + secret, headers, ""}).status());
  failures.push_back(
      transport.Post({"http://127.0.0.1:9/", {{"X-Key", secret + "\r\n"}}, ""}).status());

  for (const Status& status : failures) {
    INFO(status.message());
    CHECK_FALSE(status.ok());
    CHECK(status.message().find("SECRET") == std::string::npos);
  }
}

// --- concurrency ---------------------------------------------------------------------

TEST_CASE("Post is safe to call from several threads at once", "[transport]") {
  // Four 503s shared among twelve requests, then successes: 16 attempts in all.
  const json busy = Raw(503, {{"retry-after-ms", "1"}});
  auto fake = FakeLlm::Start(Script({busy, busy, busy, busy, Ok()}, true));
  const Transport transport;  // real clock, sleep and jitter
  std::atomic<int> ok{0};
  std::atomic<int> attempts{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        StatusOr<HttpReply> reply = transport.Post(Request(*fake));
        if (reply.ok() && reply->status == 200) ++ok;
        if (reply.ok()) attempts += reply->attempts;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(ok == 12);
  CHECK(attempts == 16);
}

// --- the fake server itself ----------------------------------------------------------

TEST_CASE("fake_llm formats replies and errors per protocol", "[fake_llm]") {
  auto fake = FakeLlm::Start(Script({
      Ok("{\"a\":1}"),
      Ok("{\"a\":1}"),
      Ok("hello"),
      {{"reply", {{"content", "no"}, {"finish", "refusal"}}}},
      {{"error", {{"status", 529}, {"message", "busy"}, {"type", "overloaded_error"}}}},
  }));
  TransportOptions options;
  options.max_attempts = 1;  // the 529 is returned, not retried
  Transport transport(options);
  auto post = [&](const std::string& path, const json& body) {
    StatusOr<HttpReply> reply =
        transport.Post({fake->url() + path, {{"Content-Type", "application/json"}}, body.dump()});
    REQUIRE(reply.ok());
    return *reply;
  };
  HttpReply openai = post("/v1/chat/completions", {{"model", "qwen"}, {"messages", json::array()}});
  json o = json::parse(openai.body);
  CHECK(o["id"] == "chatcmpl-fake-1");
  CHECK(o["object"] == "chat.completion");
  CHECK(o["model"] == "qwen");
  CHECK(o["choices"][0]["message"] == json{{"role", "assistant"}, {"content", "{\"a\":1}"}});
  CHECK(o["choices"][0]["finish_reason"] == "stop");
  CHECK(o["usage"]["total_tokens"] ==
        o["usage"]["prompt_tokens"].get<int>() + o["usage"]["completion_tokens"].get<int>());

  HttpReply anthropic = post("/v1/messages", {{"model", "claude"},
                                              {"tool_choice", {{"type", "tool"}, {"name", "emit"}}},
                                              {"messages", json::array()}});
  json a = json::parse(anthropic.body);
  CHECK(a["id"] == "msg_fake_2");
  CHECK(a["type"] == "message");
  CHECK(a["stop_reason"] == "tool_use");
  CHECK(a["content"][0]["type"] == "tool_use");
  CHECK(a["content"][0]["name"] == "emit");
  CHECK(a["content"][0]["input"] == json{{"a", 1}});

  HttpReply ollama = post("/api/chat", {{"model", "llama"}, {"stream", false}});
  json l = json::parse(ollama.body);
  CHECK(l["message"]["content"] == "hello");
  CHECK(l["done"] == true);
  CHECK(l["done_reason"] == "stop");

  json r = json::parse(post("/v1/chat/completions", {{"model", "m"}}).body);
  CHECK(r["choices"][0]["message"]["content"].is_null());
  CHECK(r["choices"][0]["message"]["refusal"] == "no");

  HttpReply error = post("/v1/messages", {{"model", "m"}});
  CHECK(error.status == 529);
  CHECK(json::parse(error.body) ==
        json{{"type", "error"}, {"error", {{"type", "overloaded_error"}, {"message", "busy"}}}});

  HttpReply unknown = post("/v1/completions", {{"model", "m"}});  // no step consumed
  CHECK(unknown.status == 404);
  HttpReply exhausted = post("/api/chat", {{"model", "m"}});
  CHECK(exhausted.status == 500);
  CHECK(json::parse(exhausted.body) == json{{"error", "fake_llm: script exhausted"}});

  const std::vector<json> requests = fake->Requests();
  REQUIRE(requests.size() == 7);
  CHECK(requests[5]["n"].is_null());
  CHECK(requests[6]["n"] == 6);
}

}  // namespace
}  // namespace toolwarden::llm
