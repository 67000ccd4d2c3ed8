// The values behind the policy language's url(s), email(s) and path(s)
// functions. Policies compare these parsed parts (`url(x).host ==
// "example.com"`) instead of matching regexes over raw text, so a parse must
// be exact, and conservative: input that two reasonable consumers could read
// differently is an error, not a guess.
//
// Errors are kInvalidArgument "`x` is not a valid URL: empty host" (likewise
// "email address", "path"); input over a size limit is kResourceExhausted
// "URL is N bytes; the limit is M". Messages quote at most the first 80 bytes
// of the input, with control and non-ASCII bytes written as \xNN.
#ifndef TOOLWARDEN_INTERPRETER_STRUCTURED_H_
#define TOOLWARDEN_INTERPRETER_STRUCTURED_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "policy/status.h"

namespace toolwarden {

// Longest URL accepted. Stops denial of service by huge arguments (each call
// of url() copies and scans its input); browsers and servers commonly cap
// URLs at 8 KiB as well.
inline constexpr size_t kMaxUrlBytes = 8192;
// Longest email address accepted: RFC 5321's 64-byte local part, `@`, and
// 255-byte domain. Stops denial of service by huge arguments.
inline constexpr size_t kMaxEmailBytes = 320;
// Longest path accepted: Linux PATH_MAX. Stops denial of service by huge
// arguments.
inline constexpr size_t kMaxPathBytes = 4096;

struct ParsedUrl {
  std::string scheme;       // lower-case; "" when the input has none
  std::string host;         // lower-case name, dotted-quad IPv4, or "[v6]"
  std::optional<int> port;  // explicit, else the scheme's default, else none
  std::string path;         // starts with '/'; dot segments removed
  std::string query;        // without the '?'; "" when absent
};

// Parses an absolute URL (`https://a.com/x`), a scheme-relative one
// (`//a.com/x`) or a scheme-less one (`www.a.com/x`, as AgentDojo tools pass).
//   - Only printable ASCII (0x21-0x7E): spaces, controls and non-ASCII are
//     errors (IDNs must be given in punycode).
//   - The scheme is the text before a "://" that comes before any '/', '?'
//     or '#'; it must match [A-Za-z][A-Za-z0-9+.-]*. Otherwise "//" starts the
//     authority; otherwise the whole input is authority and path.
//   - The authority ends at the first '/', '?' or '#'. A backslash in it is an
//     error (browsers read it as '/'). User info ends at the LAST '@' and is
//     dropped: `https://trusted.com@evil.com/` has host `evil.com`. A
//     scheme-less URL with user info is an error.
//   - Host: [A-Za-z0-9._-] only, lower-cased, one trailing '.' stripped; empty
//     hosts and labels are errors. A host whose last label is a number is read
//     as IPv4 the way browsers do and written as a dotted quad
//     (`0x7f.1` -> `127.0.0.1`); if that fails it is an error. `[...]` is an
//     IPv6 literal, validated and written in its shortest form
//     (`[0:0::1]` -> `[::1]`).
//   - Port: digits, 1-65535; absent -> 80 for http/ws, 443 for https/wss, 21
//     for ftp, else none. `host:` with no digits is an error.
//   - Path: up to '?' or '#', "/" when empty, dot segments removed (including
//     %2e forms, as browsers do); ".." above the root stays at the root. No
//     percent-decoding otherwise. A backslash in the path is an error.
//   - Query: between '?' and '#'. The fragment is dropped.
// Not supported (errors): empty hosts, so `file:///x`; `mailto:` and other
// URLs without "//".
StatusOr<ParsedUrl> ParseUrl(std::string_view text);

struct ParsedEmail {
  std::string local;   // verbatim, case preserved
  std::string domain;  // lower-case, as a URL host name
};

// Parses a bare address `local@domain`. Exactly one '@'. The local part is a
// dot-atom: non-empty, [A-Za-z0-9!#$%&'*+/=?^_`{|}~.-], no leading, trailing
// or doubled dot; quoted local parts (`"a b"@x.com`) are errors. The domain
// follows the URL host-name rules (no IPv6 brackets, no port). Display-name
// forms (`Bob <bob@x.com>`) and comments are errors.
StatusOr<ParsedEmail> ParseEmail(std::string_view text);

// Normalizes a file path lexically (no file system access, no symlinks):
// splits on '/', drops empty and "." segments, and lets ".." remove the
// segment before it. Returns "/a/b" for absolute input ("/" when nothing is
// left) and "a/b" for relative input ("." when nothing is left). Errors: empty
// input, a NUL byte, and ".." with nothing to remove ("escapes above its
// root": `/etc/../../passwd`, `a/../..`). Backslash and every other byte are
// ordinary characters; nothing is percent-decoded.
StatusOr<std::string> NormalizePath(std::string_view text);

}  // namespace toolwarden

#endif  // TOOLWARDEN_INTERPRETER_STRUCTURED_H_
