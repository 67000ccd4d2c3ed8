// Transport: one HTTPS POST to a model server, with the timeouts, retries and
// backoff that a flaky or overloaded server needs. libcurl underneath.
//
//   Transport transport(TransportOptions{});
//   StatusOr<HttpReply> reply = transport.Post(HttpRequest{url, headers, body});
//
// What it does, exactly:
//   - connect timeout and a total timeout per attempt, and one overall deadline
//     across all attempts and waits (`TransportOptions`);
//   - retries on HTTP 408, 409, 429 and 5xx and on connection errors (refused,
//     reset, DNS, timeouts), at most `max_attempts` attempts in all;
//   - between attempts, waits a "full jitter" backoff: a uniformly random time in
//     [0, min(backoff_cap, backoff_base * 2^(attempt-1))]; a `retry-after-ms`
//     header (milliseconds) or else a `Retry-After` header (seconds, or an HTTP
//     date) replaces it, capped at `retry_after_cap`; a wait that would pass the
//     deadline is not taken (the last reply or error is returned instead);
//   - never retries any other 4xx; a reply with any status is returned as an
//     HttpReply (the protocol parser turns error bodies into messages);
//   - TLS peer and host verification on, proxies from the environment
//     (`https_proxy`, `no_proxy`, ...) respected, CURLOPT_NOSIGNAL set, redirects
//     not followed, response bodies above `max_response_bytes` refused;
//   - never logs, and never puts a header value (API keys) into an error message.
//
// Tests inject time, sleep and randomness through `TransportHooks`, so retry
// counts and delays are asserted exactly without waiting.
#ifndef TOOLWARDEN_ADAPTERS_LLM_TRANSPORT_H_
#define TOOLWARDEN_ADAPTERS_LLM_TRANSPORT_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "policy/status.h"

namespace toolwarden::llm {

using Millis = std::chrono::milliseconds;

struct TransportOptions {
  Millis connect_timeout{10'000};
  Millis attempt_timeout{300'000};  // one request, connect to last byte
  Millis deadline{600'000};         // all attempts and waits together
  int max_attempts = 5;
  Millis backoff_base{500};
  Millis backoff_cap{30'000};
  Millis retry_after_cap{60'000};
  size_t max_response_bytes = size_t{16} << 20;
};

struct HttpRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // name, value
  std::string body;                                          // sent as is (POST)
};

struct HttpReply {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  int attempts = 0;  // attempts made, this one included
};

// What Post uses for time, waiting and jitter; each defaults to the real thing.
struct TransportHooks {
  std::function<std::chrono::steady_clock::time_point()> now;
  std::function<void(Millis)> sleep;
  std::function<double()> uniform01;  // in [0, 1)
};

class Transport {
 public:
  explicit Transport(TransportOptions options = {}, TransportHooks hooks = {});

  // The reply of the last attempt, whatever its status; Unavailable when no
  // attempt got an HTTP reply (the message says why: refused, timed out,
  // deadline passed, ...); ResourceExhausted for a body over the limit;
  // InvalidArgument for a malformed URL.
  StatusOr<HttpReply> Post(const HttpRequest& request) const;

  const TransportOptions& options() const { return options_; }

 private:
  TransportOptions options_;
  TransportHooks hooks_;
};

// Exposed for tests: the wait a reply asks for, from `retry-after-ms` or
// `Retry-After` (delta seconds or an HTTP date, relative to `now_utc`), or -1
// when it asks for none. Not capped.
long long RetryAfterMillis(const HttpReply& reply, std::chrono::system_clock::time_point now_utc);

}  // namespace toolwarden::llm

#endif  // TOOLWARDEN_ADAPTERS_LLM_TRANSPORT_H_
