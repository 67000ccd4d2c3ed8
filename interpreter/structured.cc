#include "interpreter/structured.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <utility>
#include <vector>

namespace toolwarden {
namespace {

// Longest stretch of input quoted in an error message. Stops log flooding: an
// 8 KiB URL would otherwise be copied into every message about it.
constexpr size_t kMaxQuotedBytes = 80;

std::string HexByte(unsigned char byte) {
  char out[5];
  std::snprintf(out, sizeof(out), "\\x%02x", byte);
  return out;
}

// `text` in backticks, truncated, with control and non-ASCII bytes as \xNN so
// the message is printable and cannot carry terminal escapes.
std::string Quote(std::string_view text) {
  std::string out = "`";
  const size_t shown = text.size() < kMaxQuotedBytes ? text.size() : kMaxQuotedBytes;
  for (size_t i = 0; i < shown; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7f) {
      out += text[i];
    } else {
      out += HexByte(byte);
    }
  }
  out += '`';
  if (shown < text.size()) out += "...";
  return out;
}

// How to name one byte of input in a message: "`%`" or "byte \xff".
std::string DescribeByte(char ch) {
  const auto byte = static_cast<unsigned char>(ch);
  if (byte > 0x20 && byte < 0x7f) return std::string("`") + ch + "`";
  if (byte == 0x20) return "a space";
  return "byte " + HexByte(byte);
}

Status TooLong(const char* what, size_t size, size_t limit) {
  return ResourceExhaustedError(std::string(what) + " is " + std::to_string(size) +
                                " bytes; the limit is " + std::to_string(limit));
}

Status UrlError(std::string_view text, const std::string& reason) {
  return InvalidArgumentError(Quote(text) + " is not a valid URL: " + reason);
}

Status EmailError(std::string_view text, const std::string& reason) {
  return InvalidArgumentError(Quote(text) + " is not a valid email address: " + reason);
}

Status PathError(std::string_view text, const std::string& reason) {
  return InvalidArgumentError(Quote(text) + " is not a valid path: " + reason);
}

bool IsDigit(char ch) { return ch >= '0' && ch <= '9'; }
bool IsAlpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
int HexValue(char ch) {
  if (IsDigit(ch)) return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}
char ToLower(char ch) { return (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch; }
std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = ToLower(ch);
  return out;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

// --- IPv4, as the WHATWG URL standard reads it --------------------------------
// Browsers (and inet_aton) read `127.1`, `0x7f.0.0.1`, `0177.0.0.1` and
// `2130706433` all as 127.0.0.1. A policy that compares hosts must see the same
// address, so such hosts are parsed the same way and written as a dotted quad.

// One part: decimal, 0x-hex, or 0-prefixed octal. nullopt when invalid or when
// the value exceeds 2^32 (no valid part can).
std::optional<uint64_t> ParseIpv4Number(std::string_view part) {
  if (part.empty()) return std::nullopt;
  int radix = 10;
  if (part.size() >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
    part.remove_prefix(2);
    radix = 16;
  } else if (part.size() >= 2 && part[0] == '0') {
    part.remove_prefix(1);
    radix = 8;
  }
  uint64_t value = 0;
  for (char ch : part) {
    const int digit = HexValue(ch);
    if (digit < 0 || digit >= radix) return std::nullopt;
    value = value * radix + digit;
    if (value > (uint64_t{1} << 32)) return std::nullopt;
  }
  return value;
}

// The WHATWG "ends in a number" test: is the last label (the host has no
// trailing dot by now) all digits, or a valid IPv4 number such as `0x1f`?
bool EndsInNumber(std::string_view host) {
  const size_t dot = host.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (last.empty()) return false;
  bool all_digits = true;
  for (char ch : last) all_digits = all_digits && IsDigit(ch);
  return all_digits || ParseIpv4Number(last).has_value();
}

std::optional<std::string> ParseIpv4(std::string_view host) {
  const std::vector<std::string_view> parts = Split(host, '.');
  if (parts.size() > 4) return std::nullopt;
  std::vector<uint64_t> numbers;
  for (std::string_view part : parts) {
    std::optional<uint64_t> number = ParseIpv4Number(part);
    if (!number) return std::nullopt;
    numbers.push_back(*number);
  }
  for (size_t i = 0; i + 1 < numbers.size(); ++i) {
    if (numbers[i] > 255) return std::nullopt;
  }
  const size_t bytes_left = 5 - numbers.size();  // bytes the last number fills
  if (numbers.back() >= (uint64_t{1} << (8 * bytes_left))) return std::nullopt;
  uint64_t address = numbers.back();
  for (size_t i = 0; i + 1 < numbers.size(); ++i) address += numbers[i] << (8 * (3 - i));
  return std::to_string((address >> 24) & 0xff) + "." + std::to_string((address >> 16) & 0xff) +
         "." + std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

// --- IPv6, as the WHATWG URL standard reads and writes it ---------------------

std::optional<std::array<uint16_t, 8>> ParseIpv6(std::string_view in) {
  std::array<uint16_t, 8> address{};
  int piece = 0;
  int compress = -1;
  size_t i = 0;
  const size_t n = in.size();
  if (i < n && in[i] == ':') {
    if (i + 1 >= n || in[i + 1] != ':') return std::nullopt;
    i += 2;
    compress = ++piece;
  }
  while (i < n) {
    if (piece == 8) return std::nullopt;
    if (in[i] == ':') {
      if (compress != -1) return std::nullopt;
      ++i;
      compress = ++piece;
      continue;
    }
    int value = 0;
    size_t length = 0;
    while (length < 4 && i < n && HexValue(in[i]) >= 0) {
      value = value * 16 + HexValue(in[i]);
      ++i;
      ++length;
    }
    if (i < n && in[i] == '.') {  // embedded IPv4: `::ffff:1.2.3.4`
      if (length == 0 || piece > 6) return std::nullopt;
      i -= length;
      int numbers_seen = 0;
      while (i < n) {
        if (numbers_seen > 0) {
          if (in[i] != '.' || numbers_seen >= 4) return std::nullopt;
          ++i;
        }
        if (i >= n || !IsDigit(in[i])) return std::nullopt;
        int octet = -1;
        while (i < n && IsDigit(in[i])) {
          const int digit = in[i] - '0';
          if (octet == 0) return std::nullopt;  // leading zero
          octet = octet < 0 ? digit : octet * 10 + digit;
          if (octet > 255) return std::nullopt;
          ++i;
        }
        address[piece] = static_cast<uint16_t>(address[piece] * 0x100 + octet);
        ++numbers_seen;
        if (numbers_seen == 2 || numbers_seen == 4) ++piece;
      }
      if (numbers_seen != 4) return std::nullopt;
      break;
    }
    if (i < n && in[i] == ':') {
      ++i;
      if (i >= n) return std::nullopt;
    } else if (i < n) {
      return std::nullopt;
    }
    address[piece] = static_cast<uint16_t>(value);
    ++piece;
  }
  if (compress != -1) {
    int swaps = piece - compress;
    piece = 7;
    while (piece != 0 && swaps > 0) {
      std::swap(address[piece], address[compress + swaps - 1]);
      --piece;
      --swaps;
    }
  } else if (piece != 8) {
    return std::nullopt;
  }
  return address;
}

// Lower-case hex, no leading zeros, the first longest run of two or more zero
// pieces written as "::" (RFC 5952, as browsers serialize).
std::string SerializeIpv6(const std::array<uint16_t, 8>& address) {
  int best_start = -1;
  int best_length = 1;
  for (int start = 0; start < 8;) {
    if (address[start] != 0) {
      ++start;
      continue;
    }
    int end = start;
    while (end < 8 && address[end] == 0) ++end;
    if (end - start > best_length) {
      best_start = start;
      best_length = end - start;
    }
    start = end;
  }
  std::string out = "[";
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += i == 0 ? "::" : ":";
      i += best_length - 1;
      continue;
    }
    char hex[5];
    std::snprintf(hex, sizeof(hex), "%x", address[i]);
    out += hex;
    if (i != 7) out += ':';
  }
  return out + "]";
}

// --- host names (URL hosts and email domains) ---------------------------------

// Returns the normalized host, or an error whose message is the reason only.
// `noun` is "host" or "domain".
StatusOr<std::string> NormalizeHostName(std::string_view in, const std::string& noun) {
  if (in.empty()) return InvalidArgumentError("empty " + noun);
  for (char ch : in) {
    if (!IsAlpha(ch) && !IsDigit(ch) && ch != '.' && ch != '_' && ch != '-') {
      return InvalidArgumentError(DescribeByte(ch) + " is not allowed in a " + noun +
                                  (ch == '%' ? " (no percent-encoding)" : ""));
    }
  }
  std::string host = ToLower(in);
  if (host.back() == '.') host.pop_back();
  if (host.empty()) return InvalidArgumentError("empty " + noun);
  // An empty label: a leading or trailing `.`, or two in a row (no vector of
  // labels, as this runs for every email() and url() a rule applies).
  if (host.front() == '.' || host.back() == '.' || host.find("..") != std::string::npos) {
    return InvalidArgumentError("empty label in the " + noun);
  }
  if (EndsInNumber(host)) {
    std::optional<std::string> ipv4 = ParseIpv4(host);
    if (!ipv4) {
      return InvalidArgumentError(noun + " `" + host +
                                  "` ends in a number but is not an IPv4 address");
    }
    return *std::move(ipv4);
  }
  return host;
}

bool ValidScheme(std::string_view scheme) {
  if (scheme.empty() || !IsAlpha(scheme[0])) return false;
  for (char ch : scheme) {
    if (!IsAlpha(ch) && !IsDigit(ch) && ch != '+' && ch != '.' && ch != '-') return false;
  }
  return true;
}

std::optional<int> DefaultPort(const std::string& scheme) {
  if (scheme == "http" || scheme == "ws") return 80;
  if (scheme == "https" || scheme == "wss") return 443;
  if (scheme == "ftp") return 21;
  return std::nullopt;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

// WHATWG single- and double-dot segments: browsers treat %2e as '.' here, so
// `/public/%2e%2e/admin` reaches `/admin`.
bool IsSingleDot(std::string_view s) { return s == "." || EqualsIgnoreCase(s, "%2e"); }
bool IsDoubleDot(std::string_view s) {
  return s == ".." || EqualsIgnoreCase(s, ".%2e") || EqualsIgnoreCase(s, "%2e.") ||
         EqualsIgnoreCase(s, "%2e%2e");
}

// RFC 3986 section 5.2.4 on a path that starts with '/'. Empty segments are
// kept (`/a//b` stays); ".." at the root stays at the root.
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> segments = Split(path.substr(1), '/');
  std::vector<std::string_view> kept;
  bool trailing_slash = false;
  for (size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    if (IsSingleDot(segments[i])) {
      trailing_slash = last;
    } else if (IsDoubleDot(segments[i])) {
      if (!kept.empty()) kept.pop_back();
      trailing_slash = last;
    } else {
      kept.push_back(segments[i]);
    }
  }
  std::string out;
  for (std::string_view segment : kept) {
    out += '/';
    out += segment;
  }
  if (trailing_slash || out.empty()) out += '/';
  return out;
}

}  // namespace

StatusOr<ParsedUrl> ParseUrl(std::string_view text) {
  if (text.size() > kMaxUrlBytes) return TooLong("URL", text.size(), kMaxUrlBytes);
  if (text.empty()) return UrlError(text, "empty");
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x21 || byte > 0x7e) {
      return UrlError(text, DescribeByte(text[i]) + " at offset " + std::to_string(i) +
                                " (only printable ASCII is allowed)");
    }
  }

  ParsedUrl url;
  std::string_view rest;
  bool has_scheme_or_slashes = true;
  const size_t separator = text.find("://");
  if (separator != std::string_view::npos && separator < text.find_first_of("/?#")) {
    const std::string_view scheme = text.substr(0, separator);
    if (scheme.empty()) return UrlError(text, "empty scheme");
    if (!ValidScheme(scheme)) return UrlError(text, "invalid scheme `" + std::string(scheme) + "`");
    url.scheme = ToLower(scheme);
    rest = text.substr(separator + 3);
  } else if (text.substr(0, 2) == "//") {
    rest = text.substr(2);
  } else {
    rest = text;
    has_scheme_or_slashes = false;
  }

  const size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  const std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('\\') != std::string_view::npos) {
    return UrlError(text, "backslash in the authority");
  }
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    if (!has_scheme_or_slashes) return UrlError(text, "user info (`@`) in a URL without a scheme");
    authority.remove_prefix(at + 1);
  }

  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return UrlError(text, "unterminated IPv6 literal");
    const std::string_view literal = authority.substr(1, close - 1);
    for (char ch : literal) {
      if (HexValue(ch) < 0 && ch != ':' && ch != '.') {
        return UrlError(text, "IPv6 literal may contain only hex digits, `:` and `.`");
      }
    }
    std::optional<std::array<uint16_t, 8>> address = ParseIpv6(literal);
    if (!address) return UrlError(text, "invalid IPv6 literal `" + std::string(literal) + "`");
    url.host = SerializeIpv6(*address);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return UrlError(text, "unexpected text after the IPv6 literal");
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = authority.find(':');
    StatusOr<std::string> host = NormalizeHostName(authority.substr(0, colon), "host");
    if (!host.ok()) return UrlError(text, host.status().message());
    url.host = *std::move(host);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
  }

  if (has_port) {
    if (port_text.empty()) return UrlError(text, "empty port");
    int port = 0;
    for (char ch : port_text) {
      if (!IsDigit(ch)) {
        return UrlError(text, "port `" + std::string(port_text) + "` is not a number");
      }
      port = port * 10 + (ch - '0');
      if (port > 65535) break;
    }
    if (port < 1 || port > 65535) {
      return UrlError(text, "port `" + std::string(port_text) + "` is not in 1..65535");
    }
    url.port = port;
  } else {
    url.port = DefaultPort(url.scheme);
  }

  const size_t path_end = tail.find_first_of("?#");
  const std::string_view raw_path = tail.substr(0, path_end);
  if (raw_path.find('\\') != std::string_view::npos) {
    return UrlError(text, "backslash in the path");
  }
  url.path = raw_path.empty() ? "/" : RemoveDotSegments(raw_path);
  if (path_end != std::string_view::npos && tail[path_end] == '?') {
    const size_t query_end = tail.find('#', path_end);
    url.query = std::string(tail.substr(path_end + 1, query_end == std::string_view::npos
                                                          ? std::string_view::npos
                                                          : query_end - path_end - 1));
  }
  return url;
}

StatusOr<ParsedEmail> ParseEmail(std::string_view text) {
  if (text.size() > kMaxEmailBytes) return TooLong("email address", text.size(), kMaxEmailBytes);
  if (text.empty()) return EmailError(text, "empty");
  const size_t at = text.find('@');
  if (at == std::string_view::npos) return EmailError(text, "no `@`");
  if (text.find('@', at + 1) != std::string_view::npos) {
    return EmailError(text, "more than one `@`");
  }

  const std::string_view local = text.substr(0, at);
  if (local.empty()) return EmailError(text, "empty local part");
  static constexpr std::string_view kLocalPunctuation = "!#$%&'*+/=?^_`{|}~.-";
  for (char ch : local) {
    if (!IsAlpha(ch) && !IsDigit(ch) && kLocalPunctuation.find(ch) == std::string_view::npos) {
      return EmailError(text, DescribeByte(ch) + " is not allowed in the local part");
    }
  }
  if (local.front() == '.' || local.back() == '.') {
    return EmailError(text, "local part starts or ends with `.`");
  }
  if (local.find("..") != std::string_view::npos) return EmailError(text, "`..` in the local part");

  StatusOr<std::string> domain = NormalizeHostName(text.substr(at + 1), "domain");
  if (!domain.ok()) return EmailError(text, domain.status().message());
  return ParsedEmail{std::string(local), *std::move(domain)};
}

StatusOr<std::string> NormalizePath(std::string_view text) {
  if (text.size() > kMaxPathBytes) return TooLong("path", text.size(), kMaxPathBytes);
  if (text.empty()) return PathError(text, "empty");
  if (text.find('\0') != std::string_view::npos) return PathError(text, "contains a NUL byte");

  const bool absolute = text[0] == '/';
  std::vector<std::string_view> kept;
  for (std::string_view segment : Split(text, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (kept.empty()) return PathError(text, "escapes above its root");
      kept.pop_back();
    } else {
      kept.push_back(segment);
    }
  }
  if (kept.empty()) return std::string(absolute ? "/" : ".");
  std::string out;
  for (std::string_view segment : kept) {
    if (absolute || !out.empty()) out += '/';
    out += segment;
  }
  return out;
}

}  // namespace toolwarden
