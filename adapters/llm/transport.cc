#include "adapters/llm/transport.h"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>

namespace toolwarden::llm {
namespace {

// The reply's header block (status lines and fields of every response, 1xx
// included) is refused above this size: libcurl 7.x bounds each header line
// but not their number, so a hostile server could otherwise grow it unbounded.
constexpr size_t kMaxReplyHeaderBytes = size_t{256} << 10;

// `Retry-After` delta-seconds above this are read as this (about 31 years),
// so that the conversion to milliseconds cannot overflow.
constexpr int64_t kMaxRetryAfterSeconds = 1'000'000'000;
constexpr double kMaxRetryAfterMs = static_cast<double>(kMaxRetryAfterSeconds) * 1000;

constexpr std::string_view kDayNames[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::string_view kMonthNames[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr int kMonthDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

// The characters besides letters and digits allowed in a header name (RFC 9110 `tchar`).
constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";

Status UnavailableError(std::string message) {
  return Status(StatusCode::kUnavailable, std::move(message));
}

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(c);
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

const std::string* FindHeader(const HttpReply& reply, std::string_view lower_name) {
  for (const auto& [name, value] : reply.headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// `retry-after-ms`: a non-negative decimal number of milliseconds (OpenAI's
// extension, read as a float by its SDKs). -1 when absent or malformed.
int64_t ParseRetryAfterMs(std::string_view text) {
  text = Trim(text);
  if (text.empty() || text.size() > 64) return -1;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || c == '.')) return -1;  // no sign, exponent, inf, nan
  }
  std::string copy(text);
  char* end = nullptr;
  double ms = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || !std::isfinite(ms) || ms < 0) return -1;
  return static_cast<int64_t>(std::ceil(std::min(ms, kMaxRetryAfterMs)));
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool ParseFixedDigits(std::string_view s, int* out) {
  if (!AllDigits(s)) return false;
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  *out = v;
  return true;
}

// An IMF-fixdate (RFC 9110 section 5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT",
// as seconds since the Unix epoch.
bool ParseImfFixdate(std::string_view s, int64_t* epoch_seconds) {
  // 0         1         2
  // 01234567890123456789012345678
  // Sun, 06 Nov 1994 08:49:37 GMT
  if (s.size() != 29) return false;
  if (std::find(std::begin(kDayNames), std::end(kDayNames), s.substr(0, 3)) ==
      std::end(kDayNames)) {
    return false;
  }
  if (s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
      s[22] != ':' || s.substr(25) != " GMT") {
    return false;
  }
  const auto* month_it = std::find(std::begin(kMonthNames), std::end(kMonthNames), s.substr(8, 3));
  if (month_it == std::end(kMonthNames)) return false;
  const unsigned month = static_cast<unsigned>(month_it - std::begin(kMonthNames)) + 1;
  int day, year, hour, minute, second;
  if (!ParseFixedDigits(s.substr(5, 2), &day) || !ParseFixedDigits(s.substr(12, 4), &year) ||
      !ParseFixedDigits(s.substr(17, 2), &hour) || !ParseFixedDigits(s.substr(20, 2), &minute) ||
      !ParseFixedDigits(s.substr(23, 2), &second)) {
    return false;
  }
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int days_in_month = (month == 2 && !leap) ? 28 : kMonthDays[month - 1];
  if (day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60) return false;
  *epoch_seconds = DaysFromCivil(year, month, static_cast<unsigned>(day)) * 86400 +
                   hour * int64_t{3600} + minute * int64_t{60} + second;
  return true;
}

// `Retry-After`: delay-seconds or an HTTP date. -1 when absent or malformed.
int64_t ParseRetryAfter(std::string_view text, std::chrono::system_clock::time_point now_utc) {
  text = Trim(text);
  if (AllDigits(text)) {
    int64_t seconds = 0;
    for (char c : text) {
      seconds = seconds * 10 + (c - '0');
      if (seconds > kMaxRetryAfterSeconds) {
        seconds = kMaxRetryAfterSeconds;
        break;
      }
    }
    return seconds * 1000;
  }
  int64_t date_seconds = 0;
  if (!ParseImfFixdate(text, &date_seconds)) return -1;
  const int64_t now_ms = std::chrono::duration_cast<Millis>(now_utc.time_since_epoch()).count();
  const int64_t date_ms = date_seconds * 1000;
  if (date_ms <= now_ms) return 0;
  return std::min(date_ms - now_ms, kMaxRetryAfterSeconds * 1000);
}

// NOLINTNEXTLINE(google-runtime-int): libcurl's type
bool IsRetryableStatus(long status) {
  return status == 408 || status == 409 || status == 429 || (status >= 500 && status <= 599);
}

bool IsRetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

// Why an attempt failed, in our own words: libcurl's error buffer is not used,
// so nothing the caller or a proxy configuration supplied can leak through it.
struct Failure {
  std::string what;    // "connection refused"
  std::string detail;  // shown after the attempt count: " (attempt timeout 300 ms)"
};

// NOLINTNEXTLINE(google-runtime-int): libcurl's type
const char* ErrnoName(long os_errno) {
  switch (os_errno) {
    case ENETUNREACH:
      return "network unreachable";
    case EHOSTUNREACH:
      return "host unreachable";
    case ETIMEDOUT:
      return "timed out";
    case ECONNRESET:
      return "connection reset";
    case EADDRNOTAVAIL:
      return "address not available";
    default:
      return nullptr;
  }
}

// NOLINTNEXTLINE(google-runtime-int): libcurl's type
Failure DescribeCurlError(CURLcode code, long os_errno, bool connected, Millis connect_timeout,
                          Millis timeout) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
      if (os_errno == ECONNREFUSED) return {"connection refused", ""};
      if (const char* name = ErrnoName(os_errno)) {
        return {"could not connect", std::string(" (") + name + ")"};
      }
      return {"could not connect", ""};
    case CURLE_COULDNT_RESOLVE_HOST:
      return {"could not resolve host", ""};
    case CURLE_COULDNT_RESOLVE_PROXY:
      return {"could not resolve proxy", ""};
    case CURLE_OPERATION_TIMEDOUT:
      if (!connected) {
        return {"connect timed out",
                " (connect timeout " + std::to_string(connect_timeout.count()) + " ms)"};
      }
      return {"timed out", " (attempt timeout " + std::to_string(timeout.count()) + " ms)"};
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      if (os_errno == ECONNRESET) return {"connection reset by the server", ""};
      return {code == CURLE_RECV_ERROR ? "error receiving the reply" : "error sending the request",
              ""};
    case CURLE_GOT_NOTHING:
      return {"the server closed the connection without a reply", ""};
    case CURLE_PARTIAL_FILE:
      return {"the reply was cut off before its end", ""};
    case CURLE_PEER_FAILED_VERIFICATION:
      return {"TLS certificate verification failed", ""};
    default:
      return {curl_easy_strerror(code), ""};
  }
}

struct CurlEasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};

// The URL as it may appear in messages: scheme://host[:port]/path, without
// userinfo, query or fragment (where API keys are sometimes put).
StatusOr<std::string> CheckUrl(const std::string& url) {
  std::unique_ptr<CURLU, CurlUrlDeleter> handle(curl_url());
  if (handle == nullptr) return InternalError("out of memory parsing a URL");
  if (curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) !=
      CURLUE_OK) {
    return InvalidArgumentError("malformed URL (expected http://host[:port]/path or https://...)");
  }
  auto part = [&](CURLUPart which) -> std::string {
    char* value = nullptr;
    if (curl_url_get(handle.get(), which, &value, 0) != CURLUE_OK || value == nullptr) return "";
    std::string out(value);
    curl_free(value);
    return out;
  };
  const std::string scheme = Lower(part(CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https") {
    if (scheme.size() > 16 || !std::all_of(scheme.begin(), scheme.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
                 c == '.';
        })) {
      return InvalidArgumentError("unsupported URL scheme (only http and https)");
    }
    return InvalidArgumentError("unsupported URL scheme `" + scheme + "` (only http and https)");
  }
  const std::string host = part(CURLUPART_HOST);
  if (host.empty()) return InvalidArgumentError("URL without a host");
  std::string shown = scheme + "://" + host;
  const std::string port = part(CURLUPART_PORT);
  if (!port.empty()) shown += ":" + port;
  shown += part(CURLUPART_PATH);
  return shown;
}

bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

bool IsHeaderName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kTokenPunctuation.find(c) != std::string_view::npos;
  });
}

// What the callbacks fill during one attempt.
struct Sink {
  size_t max_body = 0;
  bool body_too_large = false;
  bool headers_too_large = false;
  size_t header_bytes = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (n > sink->max_body - sink->body.size()) {
    sink->body_too_large = true;
    return 0;  // makes libcurl abort the transfer with CURLE_WRITE_ERROR
  }
  sink->body.append(data, n);
  return n;
}

size_t WriteHeader(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  sink->header_bytes += n;
  if (sink->header_bytes > kMaxReplyHeaderBytes) {
    sink->headers_too_large = true;
    return 0;
  }
  std::string_view line(data, n);
  if (line.substr(0, 5) == "HTTP/") {
    sink->headers.clear();  // a new response (after a 1xx): keep only the final one's fields
    return n;
  }
  if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
    if (!sink->headers.empty()) {  // obsolete line folding: continues the previous field
      std::string& value = sink->headers.back().second;
      value += ' ';
      value += Trim(line);
    }
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;  // the blank line, or junk
  sink->headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                             std::string(Trim(line.substr(colon + 1))));
  return n;
}

std::once_flag curl_init_once;
CURLcode curl_init_result = CURLE_OK;

std::string Attempts(int n) { return std::to_string(n) + (n == 1 ? " attempt" : " attempts"); }

}  // namespace

// NOLINTNEXTLINE(google-runtime-int): the header's type
long long RetryAfterMillis(const HttpReply& reply, std::chrono::system_clock::time_point now_utc) {
  if (const std::string* ms = FindHeader(reply, "retry-after-ms")) {
    const int64_t wait = ParseRetryAfterMs(*ms);
    if (wait >= 0) return wait;
  }
  if (const std::string* value = FindHeader(reply, "retry-after")) {
    return ParseRetryAfter(*value, now_utc);
  }
  return -1;
}

Transport::Transport(TransportOptions options, TransportHooks hooks)
    : options_(options), hooks_(std::move(hooks)) {
  if (!hooks_.now) hooks_.now = [] { return std::chrono::steady_clock::now(); };
  if (!hooks_.sleep) hooks_.sleep = [](Millis d) { std::this_thread::sleep_for(d); };
  if (!hooks_.uniform01) {
    // Shared by copies of this Transport; the mutex makes Post thread-safe.
    struct Random {
      std::mutex mutex;
      std::mt19937_64 engine{std::random_device{}()};
      std::uniform_real_distribution<double> dist{0.0, 1.0};
    };
    auto random = std::make_shared<Random>();
    hooks_.uniform01 = [random] {
      std::lock_guard<std::mutex> lock(random->mutex);
      return random->dist(random->engine);
    };
  }
}

StatusOr<HttpReply> Transport::Post(const HttpRequest& request) const {
  StatusOr<std::string> shown_url = CheckUrl(request.url);
  if (!shown_url.ok()) return shown_url.status();
  const std::string where = "POST " + *shown_url + ": ";

  for (const auto& [name, value] : request.headers) {
    if (!IsHeaderName(name)) {
      return InvalidArgumentError(where + "invalid request header name");
    }
    if (HasControlChar(value)) {  // the value itself is never shown (it may be a key)
      std::string message = where;
      message += "request header `";
      message += name;
      message += "` has a line break or NUL in its value";
      return InvalidArgumentError(std::move(message));
    }
  }
  if (options_.max_attempts < 1 || options_.connect_timeout <= Millis(0) ||
      options_.attempt_timeout <= Millis(0) || options_.deadline < Millis(0) ||
      options_.backoff_base < Millis(0) || options_.backoff_cap < Millis(0) ||
      options_.retry_after_cap < Millis(0)) {
    return InvalidArgumentError(
        "transport options out of range (max_attempts and timeouts must be positive, the "
        "deadline and waits not negative)");
  }

  std::call_once(curl_init_once, [] { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (curl_init_result != CURLE_OK) {
    return InternalError(std::string("libcurl initialisation failed: ") +
                         curl_easy_strerror(curl_init_result));
  }

  std::unique_ptr<curl_slist, CurlSlistDeleter> header_list;
  auto append = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(header_list.get(), line.c_str());
    if (next == nullptr) return false;  // the list so far is still owned
    if (next != header_list.get()) {    // the first append makes the head
      static_cast<void>(header_list.release());
      header_list.reset(next);
    }
    return true;
  };
  // "Expect:" stops libcurl from waiting for a 100 Continue on large bodies.
  bool appended = append("Expect:");
  for (const auto& [name, value] : request.headers) {
    // "Name;" is libcurl's spelling of a header with an empty value.
    std::string line = name;
    if (value.empty()) {
      line += ';';
    } else {
      line += ": ";
      line += value;
    }
    appended = appended && append(line);
  }
  std::unique_ptr<CURL, CurlEasyDeleter> curl(curl_easy_init());
  if (!appended || curl == nullptr) return InternalError("out of memory setting up a request");

  Sink sink;
  sink.max_body = options_.max_response_bytes;
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85.0
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &WriteHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);

  using Clock = std::chrono::steady_clock;
  // At most a century, so that adding it to the clock cannot overflow.
  const Clock::time_point deadline =
      hooks_.now() + std::min(options_.deadline, Millis(3'155'760'000'000LL));
  auto remaining = [&] { return std::chrono::duration_cast<Millis>(deadline - hooks_.now()); };

  HttpReply last_reply;
  bool have_reply = false;
  Failure last_error;  // why the last attempt got no reply
  auto failed = [&](int attempts, const std::string& tail) {
    return UnavailableError(where + last_error.what + " after " + Attempts(attempts) +
                            last_error.detail + tail);
  };
  for (int attempt = 1;; ++attempt) {
    const Millis left = remaining();
    if (left <= Millis(0)) {
      // Only reachable when a wait overran (an inaccurate sleep) or the deadline is zero.
      if (have_reply) return last_reply;
      if (attempt == 1) {
        return UnavailableError(where + "the deadline of " +
                                std::to_string(options_.deadline.count()) +
                                " ms passed before the first attempt");
      }
      return failed(attempt - 1, "; the deadline of " + std::to_string(options_.deadline.count()) +
                                     " ms has passed");
    }
    const Millis timeout = std::max(Millis(1), std::min(options_.attempt_timeout, left));
    const Millis connect_timeout = std::max(Millis(1), std::min(options_.connect_timeout, timeout));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));

    sink.body.clear();
    sink.headers.clear();
    sink.header_bytes = 0;
    const CURLcode code = curl_easy_perform(h);

    if (sink.body_too_large) {
      return ResourceExhaustedError(where + "reply body larger than max_response_bytes (" +
                                    std::to_string(options_.max_response_bytes) + " bytes)");
    }
    if (sink.headers_too_large) {
      return ResourceExhaustedError(where + "reply headers larger than " +
                                    std::to_string(kMaxReplyHeaderBytes) + " bytes");
    }

    int64_t wait_ms = -1;
    bool retry = false;
    if (code == CURLE_OK) {
      HttpReply reply;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
      reply.headers = std::move(sink.headers);
      reply.body = std::move(sink.body);
      reply.attempts = attempt;
      retry = IsRetryableStatus(reply.status);
      if (retry) {
        const int64_t asked = RetryAfterMillis(reply, std::chrono::system_clock::now());
        if (asked >= 0) wait_ms = std::min<int64_t>(asked, options_.retry_after_cap.count());
      }
      last_reply = std::move(reply);
      have_reply = true;
      if (!retry) return last_reply;
    } else {
      long os_errno = 0;  // NOLINT(google-runtime-int): libcurl's type
      curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
      curl_off_t pretransfer_us = 0;  // > 0 once connected and about to send
      curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
      last_error =
          DescribeCurlError(code, os_errno, pretransfer_us > 0 || connect_timeout >= timeout,
                            connect_timeout, timeout);
      have_reply = false;
      if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL) {
        return InvalidArgumentError(where + last_error.what);
      }
      if (!IsRetryableCurlError(code)) {
        return UnavailableError(where + last_error.what + last_error.detail);
      }
      retry = true;
    }

    auto give_up = [&](const std::string& why) -> StatusOr<HttpReply> {
      if (have_reply) return last_reply;
      return failed(attempt, why);
    };
    if (attempt >= options_.max_attempts) return give_up("");

    if (wait_ms < 0) {  // full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]
      const double ceiling = std::min(static_cast<double>(options_.backoff_cap.count()),
                                      static_cast<double>(options_.backoff_base.count()) *
                                          std::ldexp(1.0, std::min(attempt - 1, 62)));
      const double u = std::clamp(hooks_.uniform01(), 0.0, 1.0);
      wait_ms = static_cast<int64_t>(std::floor(u * std::max(ceiling, 0.0)));
    }
    if (Millis(wait_ms) >= remaining()) {
      return give_up("; the deadline of " + std::to_string(options_.deadline.count()) +
                     " ms leaves no time for another");
    }
    if (wait_ms > 0) hooks_.sleep(Millis(wait_ms));
  }
}

}  // namespace toolwarden::llm
