#include "interpreter/structured.h"

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

namespace toolwarden {
namespace {

struct UrlCase {
  std::string input;
  std::string scheme;
  std::string host;
  std::optional<int> port;
  std::string path;
  std::string query;
};

TEST_CASE("ParseUrl splits valid URLs into parts", "[structured]") {
  const std::optional<int> none;
  const std::vector<UrlCase> cases = {
      {"https://example.com", "https", "example.com", 443, "/", ""},
      {"http://example.com/a/b?x=1&y=2#frag", "http", "example.com", 80, "/a/b", "x=1&y=2"},
      {"HTTPS://WWW.Example.COM.", "https", "www.example.com", 443, "/", ""},
      {"HtTp://A.B:8080/Path/CASE?Q=V", "http", "a.b", 8080, "/Path/CASE", "Q=V"},
      {"ws://a.b", "ws", "a.b", 80, "/", ""},
      {"wss://a.b", "wss", "a.b", 443, "/", ""},
      {"ftp://a.b", "ftp", "a.b", 21, "/", ""},
      {"gopher://a.b", "gopher", "a.b", none, "/", ""},
      {"git+ssh://a.b/repo", "git+ssh", "a.b", none, "/repo", ""},
      {"http://a.b:80", "http", "a.b", 80, "/", ""},
      {"http://a.b:0080", "http", "a.b", 80, "/", ""},
      {"http://a.b:1", "http", "a.b", 1, "/", ""},
      {"http://a.b:65535", "http", "a.b", 65535, "/", ""},
      {"https://a.b?", "https", "a.b", 443, "/", ""},
      {"https://a.b?q", "https", "a.b", 443, "/", "q"},
      {"https://a.b#x?y", "https", "a.b", 443, "/", ""},
      {"https://a.b/p?q=1?2#f?x", "https", "a.b", 443, "/p", "q=1?2"},
      {"https://a.b/%41%2F", "https", "a.b", 443, "/%41%2F", ""},  // no decoding
      {"https://a_b-c.d", "https", "a_b-c.d", 443, "/", ""},
      // Look-alikes: the host is what a browser would connect to.
      {"https://bluesparrowtech.com.evil.com", "https", "bluesparrowtech.com.evil.com", 443, "/",
       ""},
      {"https://evil.com#@bluesparrowtech.com", "https", "evil.com", 443, "/", ""},
      {"https://evil.com?@bluesparrowtech.com", "https", "evil.com", 443, "/",
       "@bluesparrowtech.com"},
      {"https://evil.com/@bluesparrowtech.com", "https", "evil.com", 443, "/@bluesparrowtech.com",
       ""},
      {"https://user@evil.com", "https", "evil.com", 443, "/", ""},
      {"https://trusted.com@evil.com/", "https", "evil.com", 443, "/", ""},
      {"https://a@b@evil.com", "https", "evil.com", 443, "/", ""},
      {"https://user:pass@evil.com:8443/x", "https", "evil.com", 8443, "/x", ""},
      {"https://trusted.com:443@evil.com", "https", "evil.com", 443, "/", ""},
      {"https://@a.b", "https", "a.b", 443, "/", ""},
      // Scheme-less and scheme-relative.
      {"www.informations.com", "", "www.informations.com", none, "/", ""},
      {"www.informations.com/path?q", "", "www.informations.com", none, "/path", "q"},
      {"localhost:8080/x", "", "localhost", 8080, "/x", ""},
      {"//a.b/c", "", "a.b", none, "/c", ""},
      {"//user@a.b/c", "", "a.b", none, "/c", ""},
      // "://" after the authority belongs to the path or query, not a scheme.
      {"www.a.com/redirect?u=http://evil.com", "", "www.a.com", none, "/redirect",
       "u=http://evil.com"},
      {"https://a.com/?next=https://evil.com", "https", "a.com", 443, "/", "next=https://evil.com"},
      // Dot segments (RFC 3986 5.2.4 and the WHATWG %2e forms).
      {"http://a.b/a/./b/../c", "http", "a.b", 80, "/a/c", ""},
      {"http://a.b/a/b/c/./../../g", "http", "a.b", 80, "/a/g", ""},
      {"http://a.b/../../x", "http", "a.b", 80, "/x", ""},
      {"http://a.b/..", "http", "a.b", 80, "/", ""},
      {"http://a.b/.", "http", "a.b", 80, "/", ""},
      {"http://a.b/a/..", "http", "a.b", 80, "/", ""},
      {"http://a.b/a/b/..", "http", "a.b", 80, "/a/", ""},
      {"http://a.b/a/.", "http", "a.b", 80, "/a/", ""},
      {"http://a.b/a/", "http", "a.b", 80, "/a/", ""},
      {"http://a.b/a//b", "http", "a.b", 80, "/a//b", ""},
      {"http://a.b/a//../b", "http", "a.b", 80, "/a/b", ""},
      {"http://a.b/public/%2e%2e/admin", "http", "a.b", 80, "/admin", ""},
      {"http://a.b/public/.%2E/admin", "http", "a.b", 80, "/admin", ""},
      {"http://a.b/public/%2E./admin", "http", "a.b", 80, "/admin", ""},
      {"http://a.b/x/%2e/y", "http", "a.b", 80, "/x/y", ""},
      {"http://a.b/x/...", "http", "a.b", 80, "/x/...", ""},
      {"http://a.b/x/..y", "http", "a.b", 80, "/x/..y", ""},
      {"http://a.b/x/%2e%2e%2e", "http", "a.b", 80, "/x/%2e%2e%2e", ""},
      {"http://a.b/x/..?q=/../", "http", "a.b", 80, "/", "q=/../"},
      // IPv4 as browsers read it.
      {"http://127.0.0.1/", "http", "127.0.0.1", 80, "/", ""},
      {"http://127.1/", "http", "127.0.0.1", 80, "/", ""},
      {"http://2130706433/", "http", "127.0.0.1", 80, "/", ""},
      {"http://0x7F.0.0.1/", "http", "127.0.0.1", 80, "/", ""},
      {"http://0177.0.0.1/", "http", "127.0.0.1", 80, "/", ""},
      {"http://127.0.0.1./", "http", "127.0.0.1", 80, "/", ""},
      {"http://0/", "http", "0.0.0.0", 80, "/", ""},
      {"http://255.255.255.255/", "http", "255.255.255.255", 80, "/", ""},
      {"http://1.2.65535/", "http", "1.2.255.255", 80, "/", ""},
      {"http://1e100.com/", "http", "1e100.com", 80, "/", ""},
      // IPv6 literals, written in their shortest form.
      {"http://[::1]:8080/x", "http", "[::1]", 8080, "/x", ""},
      {"http://[::1]", "http", "[::1]", 80, "/", ""},
      {"http://[0:0:0:0:0:0:0:1]/", "http", "[::1]", 80, "/", ""},
      {"http://[2001:DB8::0:1]/", "http", "[2001:db8::1]", 80, "/", ""},
      {"http://[::]/", "http", "[::]", 80, "/", ""},
      {"http://[1:0:0:2:0:0:0:3]/", "http", "[1:0:0:2::3]", 80, "/", ""},
      {"http://[1:2:3:4:5:6:7::]/", "http", "[1:2:3:4:5:6:7:0]", 80, "/", ""},
      {"http://[::ffff:127.0.0.1]/", "http", "[::ffff:7f00:1]", 80, "/", ""},
      {"http://[::1.2.3.4]/", "http", "[::102:304]", 80, "/", ""},
      {"http://[1:2:3:4:5:6:1.2.3.4]/", "http", "[1:2:3:4:5:6:102:304]", 80, "/", ""},
      {"http://[0:0:1:0:0:1:0:0]/", "http", "[::1:0:0:1:0:0]", 80, "/", ""},
      {"http://u@[::1]:1/", "http", "[::1]", 1, "/", ""},
  };
  for (const UrlCase& c : cases) {
    INFO(c.input);
    StatusOr<ParsedUrl> got = ParseUrl(c.input);
    REQUIRE(got.status().message() == "");
    CHECK(got->scheme == c.scheme);
    CHECK(got->host == c.host);
    CHECK(got->port == c.port);
    CHECK(got->path == c.path);
    CHECK(got->query == c.query);
  }
}

struct ErrorCase {
  std::string input;
  std::string message;
};

TEST_CASE("ParseUrl rejects malformed and ambiguous URLs", "[structured]") {
  const std::vector<ErrorCase> cases = {
      {"", "`` is not a valid URL: empty"},
      {"http://a b.com",
       "`http://a b.com` is not a valid URL: a space at offset 8 (only printable "
       "ASCII is allowed)"},
      {" http://a.b",
       "` http://a.b` is not a valid URL: a space at offset 0 (only printable ASCII "
       "is allowed)"},
      {"http://a.b/\n",
       "`http://a.b/\\x0a` is not a valid URL: byte \\x0a at offset 11 (only "
       "printable ASCII is allowed)"},
      {"http://a.b/\t",
       "`http://a.b/\\x09` is not a valid URL: byte \\x09 at offset 11 (only "
       "printable ASCII is allowed)"},
      {"http://a.b/\x7f",
       "`http://a.b/\\x7f` is not a valid URL: byte \\x7f at offset 11 (only "
       "printable ASCII is allowed)"},
      {"http://b\xc3\xbc"
       "cher.de",
       "`http://b\\xc3\\xbccher.de` is not a valid URL: byte \\xc3 at "
       "offset 8 (only printable ASCII is allowed)"},
      {"http://\xd0\xb0pple.com",
       "`http://\\xd0\\xb0pple.com` is not a valid URL: byte \\xd0 at "
       "offset 7 (only printable ASCII is allowed)"},
      {"://a.b", "`://a.b` is not a valid URL: empty scheme"},
      {"1http://a.b", "`1http://a.b` is not a valid URL: invalid scheme `1http`"},
      {"ht_tp://a.b", "`ht_tp://a.b` is not a valid URL: invalid scheme `ht_tp`"},
      {"ht@tp://a.b", "`ht@tp://a.b` is not a valid URL: invalid scheme `ht@tp`"},
      {"http://", "`http://` is not a valid URL: empty host"},
      {"http:///x", "`http:///x` is not a valid URL: empty host"},
      {"file:///etc/passwd", "`file:///etc/passwd` is not a valid URL: empty host"},
      {"//", "`//` is not a valid URL: empty host"},
      {"/just/a/path", "`/just/a/path` is not a valid URL: empty host"},
      {"?q", "`?q` is not a valid URL: empty host"},
      {"http://user@/x", "`http://user@/x` is not a valid URL: empty host"},
      {"http://.", "`http://.` is not a valid URL: empty host"},
      {"http://:80", "`http://:80` is not a valid URL: empty host"},
      {"http://a..b", "`http://a..b` is not a valid URL: empty label in the host"},
      {"http://.a.b", "`http://.a.b` is not a valid URL: empty label in the host"},
      {"http://a.b..", "`http://a.b..` is not a valid URL: empty label in the host"},
      {"http://a%2eb.com",
       "`http://a%2eb.com` is not a valid URL: `%` is not allowed in a host "
       "(no percent-encoding)"},
      {"http://a*b.com", "`http://a*b.com` is not a valid URL: `*` is not allowed in a host"},
      {"http://a.b\\@c.d/", "`http://a.b\\@c.d/` is not a valid URL: backslash in the authority"},
      {"https://evil.com\\.good.com/",
       "`https://evil.com\\.good.com/` is not a valid URL: "
       "backslash in the authority"},
      {"https:\\\\evil.com",
       "`https:\\\\evil.com` is not a valid URL: backslash in the "
       "authority"},
      {"http://a.b/x\\..\\admin",
       "`http://a.b/x\\..\\admin` is not a valid URL: backslash in the "
       "path"},
      {"www.a.com@evil.com",
       "`www.a.com@evil.com` is not a valid URL: user info (`@`) in a URL "
       "without a scheme"},
      {"mailto:a@b.com",
       "`mailto:a@b.com` is not a valid URL: user info (`@`) in a URL without a "
       "scheme"},
      {"javascript:alert(1)",
       "`javascript:alert(1)` is not a valid URL: port `alert(1)` is not a "
       "number"},
      {"http:evil.com", "`http:evil.com` is not a valid URL: port `evil.com` is not a number"},
      {"http:/evil.com", "`http:/evil.com` is not a valid URL: empty port"},
      {"http://a.b:", "`http://a.b:` is not a valid URL: empty port"},
      {"http://a.b:/x", "`http://a.b:/x` is not a valid URL: empty port"},
      {"http://a.b:0", "`http://a.b:0` is not a valid URL: port `0` is not in 1..65535"},
      {"http://a.b:00", "`http://a.b:00` is not a valid URL: port `00` is not in 1..65535"},
      {"http://a.b:65536",
       "`http://a.b:65536` is not a valid URL: port `65536` is not in "
       "1..65535"},
      {"http://a.b:99999999999999999999",
       "`http://a.b:99999999999999999999` is not a valid URL: "
       "port `99999999999999999999` is not in 1..65535"},
      {"http://a.b:-1", "`http://a.b:-1` is not a valid URL: port `-1` is not a number"},
      {"http://a.b:+80", "`http://a.b:+80` is not a valid URL: port `+80` is not a number"},
      {"http://a.b:8:8", "`http://a.b:8:8` is not a valid URL: port `8:8` is not a number"},
      {"http://a.b:0x50", "`http://a.b:0x50` is not a valid URL: port `0x50` is not a number"},
      // Hosts that end in a number must be IPv4 addresses.
      {"http://1.2.3.256",
       "`http://1.2.3.256` is not a valid URL: host `1.2.3.256` ends in a "
       "number but is not an IPv4 address"},
      {"http://1.2.3.4.5",
       "`http://1.2.3.4.5` is not a valid URL: host `1.2.3.4.5` ends in a "
       "number but is not an IPv4 address"},
      {"http://4294967296",
       "`http://4294967296` is not a valid URL: host `4294967296` ends in a "
       "number but is not an IPv4 address"},
      {"http://08.0.0.1",
       "`http://08.0.0.1` is not a valid URL: host `08.0.0.1` ends in a number "
       "but is not an IPv4 address"},
      {"http://example.123",
       "`http://example.123` is not a valid URL: host `example.123` ends in "
       "a number but is not an IPv4 address"},
      {"http://a.0x1f",
       "`http://a.0x1f` is not a valid URL: host `a.0x1f` ends in a number but "
       "is not an IPv4 address"},
      // IPv6 literals.
      {"http://[::1", "`http://[::1` is not a valid URL: unterminated IPv6 literal"},
      {"http://[]/", "`http://[]/` is not a valid URL: invalid IPv6 literal ``"},
      {"http://[::1]x/",
       "`http://[::1]x/` is not a valid URL: unexpected text after the IPv6 "
       "literal"},
      {"http://[::1]:/", "`http://[::1]:/` is not a valid URL: empty port"},
      {"http://[::1%25eth0]/",
       "`http://[::1%25eth0]/` is not a valid URL: IPv6 literal may "
       "contain only hex digits, `:` and `.`"},
      {"http://[v1.x]/",
       "`http://[v1.x]/` is not a valid URL: IPv6 literal may contain only hex "
       "digits, `:` and `.`"},
      {"http://[1.2.3.4]/",
       "`http://[1.2.3.4]/` is not a valid URL: invalid IPv6 literal "
       "`1.2.3.4`"},
      {"http://[1:2]/", "`http://[1:2]/` is not a valid URL: invalid IPv6 literal `1:2`"},
      {"http://[1:::2]/", "`http://[1:::2]/` is not a valid URL: invalid IPv6 literal `1:::2`"},
      {"http://[1::2::3]/",
       "`http://[1::2::3]/` is not a valid URL: invalid IPv6 literal "
       "`1::2::3`"},
      {"http://[:1]/", "`http://[:1]/` is not a valid URL: invalid IPv6 literal `:1`"},
      {"http://[1:]/", "`http://[1:]/` is not a valid URL: invalid IPv6 literal `1:`"},
      {"http://[12345::]/",
       "`http://[12345::]/` is not a valid URL: invalid IPv6 literal "
       "`12345::`"},
      {"http://[1:2:3:4:5:6:7:8:9]/",
       "`http://[1:2:3:4:5:6:7:8:9]/` is not a valid URL: invalid "
       "IPv6 literal `1:2:3:4:5:6:7:8:9`"},
      {"http://[::1:2:3:4:5:6:7:8]/",
       "`http://[::1:2:3:4:5:6:7:8]/` is not a valid URL: invalid "
       "IPv6 literal `::1:2:3:4:5:6:7:8`"},
      {"http://[::1.2.3.04]/",
       "`http://[::1.2.3.04]/` is not a valid URL: invalid IPv6 literal "
       "`::1.2.3.04`"},
      {"http://[1:2:3:4:5:6:7:1.2.3.4]/",
       "`http://[1:2:3:4:5:6:7:1.2.3.4]/` is not a valid URL: "
       "invalid IPv6 literal `1:2:3:4:5:6:7:1.2.3.4`"},
      {"http://[::1.2.3]/",
       "`http://[::1.2.3]/` is not a valid URL: invalid IPv6 literal "
       "`::1.2.3`"},
      {"http://a[::1]/", "`http://a[::1]/` is not a valid URL: `[` is not allowed in a host"},
  };
  for (const ErrorCase& c : cases) {
    INFO(c.input);
    StatusOr<ParsedUrl> got = ParseUrl(c.input);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    CHECK(got.status().message() == c.message);
  }
}

TEST_CASE("ParseUrl enforces kMaxUrlBytes", "[structured]") {
  const std::string prefix = "https://a.b/";
  const std::string at_limit = prefix + std::string(kMaxUrlBytes - prefix.size(), 'x');
  StatusOr<ParsedUrl> got = ParseUrl(at_limit);
  REQUIRE(got.ok());
  CHECK(got->path.size() == kMaxUrlBytes - prefix.size() + 1);

  got = ParseUrl(at_limit + "x");
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "URL is 8193 bytes; the limit is 8192");
}

TEST_CASE("ParseUrl quotes at most 80 bytes of a long input", "[structured]") {
  const std::string long_host = std::string(200, 'a') + "..b";
  StatusOr<ParsedUrl> got = ParseUrl("http://" + long_host);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().message() ==
        "`http://" + std::string(73, 'a') + "`... is not a valid URL: empty label in the host");
}

TEST_CASE("ParseEmail splits valid addresses", "[structured]") {
  struct Case {
    std::string input;
    std::string local;
    std::string domain;
  };
  const std::vector<Case> cases = {
      {"bob@x.com", "bob", "x.com"},
      {"Bob.Smith@Example.COM", "Bob.Smith", "example.com"},
      {"bob@x.com.", "bob", "x.com"},
      {"a+tag@x.com", "a+tag", "x.com"},
      {"!#$%&'*+/=?^_`{|}~-@x.com", "!#$%&'*+/=?^_`{|}~-", "x.com"},
      {"a.b.c@x-y_z.example", "a.b.c", "x-y_z.example"},
      {"a@localhost", "a", "localhost"},
      {"a@b.c.d.e.f", "a", "b.c.d.e.f"},
  };
  for (const Case& c : cases) {
    INFO(c.input);
    StatusOr<ParsedEmail> got = ParseEmail(c.input);
    REQUIRE(got.status().message() == "");
    CHECK(got->local == c.local);
    CHECK(got->domain == c.domain);
  }
}

TEST_CASE("ParseEmail rejects malformed and display-name addresses", "[structured]") {
  const std::vector<ErrorCase> cases = {
      {"", "`` is not a valid email address: empty"},
      {"bob", "`bob` is not a valid email address: no `@`"},
      {"a@b@c.com", "`a@b@c.com` is not a valid email address: more than one `@`"},
      {"@x.com", "`@x.com` is not a valid email address: empty local part"},
      {"bob@", "`bob@` is not a valid email address: empty domain"},
      {"bob@.", "`bob@.` is not a valid email address: empty domain"},
      {"\"a\"@b.com",
       "`\"a\"@b.com` is not a valid email address: `\"` is not allowed in the local part"},
      {"\"a@b\"@c.com", "`\"a@b\"@c.com` is not a valid email address: more than one `@`"},
      {"Bob <bob@x.com>",
       "`Bob <bob@x.com>` is not a valid email address: a space is not allowed in the local part"},
      {"<bob@x.com>",
       "`<bob@x.com>` is not a valid email address: `<` is not allowed in the local part"},
      {"bob@x.com (Bob)",
       "`bob@x.com (Bob)` is not a valid email address: a space is not allowed in a domain"},
      {"b\xc3\xb6"
       "b@x.com",
       "`b\\xc3\\xb6b@x.com` is not a valid email address: byte \\xc3 is not allowed in the local "
       "part"},
      {"bob@b\xc3\xbc"
       "cher.de",
       "`bob@b\\xc3\\xbccher.de` is not a valid email address: byte \\xc3 is not allowed in a "
       "domain"},
      {"a\\b@x.com",
       "`a\\b@x.com` is not a valid email address: `\\` is not allowed in the local "
       "part"},
      {"a,b@x.com",
       "`a,b@x.com` is not a valid email address: `,` is not allowed in the local part"},
      {".bob@x.com",
       "`.bob@x.com` is not a valid email address: local part starts or ends with "
       "`.`"},
      {"bob.@x.com",
       "`bob.@x.com` is not a valid email address: local part starts or ends with "
       "`.`"},
      {"b..ob@x.com", "`b..ob@x.com` is not a valid email address: `..` in the local part"},
      {"bob@x..com", "`bob@x..com` is not a valid email address: empty label in the domain"},
      {"bob@.x.com", "`bob@.x.com` is not a valid email address: empty label in the domain"},
      {"bob@[1.2.3.4]",
       "`bob@[1.2.3.4]` is not a valid email address: `[` is not allowed in a domain"},
      {"bob@x.com:25",
       "`bob@x.com:25` is not a valid email address: `:` is not allowed in a domain"},
      {"bob@1.2.3.999",
       "`bob@1.2.3.999` is not a valid email address: domain `1.2.3.999` ends in "
       "a number but is not an IPv4 address"},
      {"bob@x.com\n",
       "`bob@x.com\\x0a` is not a valid email address: byte \\x0a is not allowed in a domain"},
  };
  for (const ErrorCase& c : cases) {
    INFO(c.input);
    StatusOr<ParsedEmail> got = ParseEmail(c.input);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    CHECK(got.status().message() == c.message);
  }
}

TEST_CASE("ParseEmail enforces kMaxEmailBytes", "[structured]") {
  const std::string suffix = "@x.com";
  const std::string at_limit = std::string(kMaxEmailBytes - suffix.size(), 'a') + suffix;
  StatusOr<ParsedEmail> got = ParseEmail(at_limit);
  REQUIRE(got.ok());
  CHECK(got->local.size() == kMaxEmailBytes - suffix.size());

  got = ParseEmail("a" + at_limit);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "email address is 321 bytes; the limit is 320");
}

TEST_CASE("NormalizePath removes dot segments lexically", "[structured]") {
  struct Case {
    std::string input;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"/", "/"},
      {"//", "/"},
      {"/.", "/"},
      {"/a/b", "/a/b"},
      {"/a/b/", "/a/b"},
      {"//a///b//", "/a/b"},
      {"/a/./b/../c", "/a/c"},
      {"/a/..", "/"},
      {"/etc/passwd/..", "/etc"},
      {".", "."},
      {"./", "."},
      {"a/..", "."},
      {"a", "a"},
      {"./a/b/", "a/b"},
      {"a/b/../../c", "c"},
      {"a\\..\\b", "a\\..\\b"},  // backslash is an ordinary character
      {"a/%2e%2e/b", "a/%2e%2e/b"},
      {"...", "..."},
      {"/a/..b/c", "/a/..b/c"},
      {"~/x", "~/x"},
      {"/a b/\xc3\xa9", "/a b/\xc3\xa9"},
  };
  for (const Case& c : cases) {
    INFO(c.input);
    StatusOr<std::string> got = NormalizePath(c.input);
    REQUIRE(got.status().message() == "");
    CHECK(*got == c.want);
  }
}

TEST_CASE("NormalizePath rejects paths that escape their root", "[structured]") {
  const std::vector<ErrorCase> cases = {
      {"", "`` is not a valid path: empty"},
      {"/etc/../../passwd", "`/etc/../../passwd` is not a valid path: escapes above its root"},
      {"a/../..", "`a/../..` is not a valid path: escapes above its root"},
      {"..", "`..` is not a valid path: escapes above its root"},
      {"/..", "`/..` is not a valid path: escapes above its root"},
      {"../a", "`../a` is not a valid path: escapes above its root"},
      {"./../a", "`./../a` is not a valid path: escapes above its root"},
      {"a/./../b/../../c", "`a/./../b/../../c` is not a valid path: escapes above its root"},
      {std::string("/etc/passwd\0.png", 16),
       "`/etc/passwd\\x00.png` is not a valid path: contains a NUL byte"},
  };
  for (const ErrorCase& c : cases) {
    INFO(c.input);
    StatusOr<std::string> got = NormalizePath(c.input);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    CHECK(got.status().message() == c.message);
  }
}

TEST_CASE("NormalizePath enforces kMaxPathBytes", "[structured]") {
  const std::string at_limit = "/" + std::string(kMaxPathBytes - 1, 'p');
  StatusOr<std::string> got = NormalizePath(at_limit);
  REQUIRE(got.ok());
  CHECK(*got == at_limit);

  got = NormalizePath(at_limit + "p");
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "path is 4097 bytes; the limit is 4096");
}

}  // namespace
}  // namespace toolwarden
