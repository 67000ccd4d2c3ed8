#include "interpreter/evaluator.h"

#include <catch2/catch.hpp>

namespace toolwarden::internal {
namespace {

TEST_CASE("token runs for provenance") {
  CHECK(OccursAsTokenRun("send to bob@x.com now", "bob@x.com"));
  CHECK(OccursAsTokenRun("Send to BOB@X.COM", "bob@x.com"));
  CHECK_FALSE(OccursAsTokenRun("send to bobby", "bob"));
  CHECK_FALSE(OccursAsTokenRun("send to abob", "bob"));
  CHECK(OccursAsTokenRun("bob", "bob"));
  CHECK(OccursAsTokenRun("(bob)", "bob"));
  CHECK(OccursAsTokenRun("pay 100.", "100"));
  CHECK_FALSE(OccursAsTokenRun("pay 100.5", "100"));
  CHECK_FALSE(OccursAsTokenRun("pay 1,5", "5"));
  CHECK(OccursAsTokenRun("pay 100.5", "100.5"));
  CHECK_FALSE(OccursAsTokenRun("héllo", "llo"));  // non-ASCII letters are letters
  CHECK_FALSE(OccursAsTokenRun("x", ""));
  CHECK(OccursAsTokenRun("a -x- b", "-x-"));
  // Parts of addresses, hosts and numbers are not tokens of their own.
  CHECK_FALSE(OccursAsTokenRun("share it with john.doe@gmail.com", "doe@gmail.com"));
  CHECK_FALSE(OccursAsTokenRun("share it with john.doe@gmail.com", "john.doe@gmail"));
  CHECK_FALSE(OccursAsTokenRun("write to bob@company.co.uk", "bob@company.co"));
  CHECK_FALSE(OccursAsTokenRun("visit www.dora-website.com", "website.com"));
  CHECK_FALSE(OccursAsTokenRun("visit www.dora-website.com", "www.dora"));
  CHECK(OccursAsTokenRun("visit https://www.dora-website.com/page", "www.dora-website.com"));
  CHECK(OccursAsTokenRun("mail john.doe@gmail.com.", "john.doe@gmail.com"));  // full stop
  CHECK(OccursAsTokenRun("mail (john.doe@gmail.com), thanks", "john.doe@gmail.com"));
  CHECK(OccursAsTokenRun("pay $100 now", "100"));
  CHECK_FALSE(OccursAsTokenRun("call +41 79", "41"));
  CHECK_FALSE(OccursAsTokenRun("email bob@x.com", "@x.com"));  // boundaries hold for any needle
  CHECK_FALSE(OccursAsTokenRun("email bob@x.com", "bob@"));
}

// The position-by-position scan OccursAsTokenRun replaced with a memchr
// search for candidates; both must agree on every input.
bool ReferenceTokenRun(std::string_view haystack, std::string_view needle) {
  if (needle.empty() || needle.size() > haystack.size()) return false;
  const size_t n = haystack.size();
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  auto joiner = [&](size_t i) {
    unsigned char c = static_cast<unsigned char>(haystack[i]);
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c >= 0x80 || c == '.' || c == '-' || c == '_' || c == '@' || c == '+';
  };
  auto digit = [&](size_t i) { return i < n && haystack[i] >= '0' && haystack[i] <= '9'; };
  const bool starts_digit = needle.front() >= '0' && needle.front() <= '9';
  const bool ends_digit = needle.back() >= '0' && needle.back() <= '9';
  for (size_t i = 0; i + needle.size() <= n; ++i) {
    if (i > 0 && joiner(i - 1)) continue;
    if (starts_digit && i >= 2 && haystack[i - 1] == ',' && digit(i - 2)) continue;
    size_t k = 0;
    while (k < needle.size() && lower(haystack[i + k]) == lower(needle[k])) ++k;
    if (k != needle.size()) continue;
    const size_t end = i + needle.size();
    if (end < n && joiner(end)) {
      const bool closing =
          (haystack[end] == '.' || haystack[end] == '-') && (end + 1 == n || !joiner(end + 1));
      if (!closing) continue;
    }
    if (ends_digit && end < n && haystack[end] == ',' && digit(end + 1)) continue;
    return true;
  }
  return false;
}

TEST_CASE("token runs agree with the position-by-position scan") {
  // Small alphabets, so matches, near misses and boundaries are all common.
  const std::string alphabet = "aAbB1 .,-@\xc3\xa9";
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  int agreed = 0, found = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string haystack, needle;
    const size_t h = next() % 24, k = 1 + next() % 4;
    for (size_t i = 0; i < h; ++i) haystack += alphabet[next() % alphabet.size()];
    for (size_t i = 0; i < k; ++i) needle += alphabet[next() % alphabet.size()];
    const bool expected = ReferenceTokenRun(haystack, needle);
    if (OccursAsTokenRun(haystack, needle) != expected) {
      FAIL_CHECK("haystack `" << haystack << "`, needle `" << needle << "`");
    } else {
      ++agreed;
    }
    found += expected;
  }
  CHECK(agreed == 20000);
  CHECK(found > 200);  // the inputs do exercise matches (428 of them)
}

TEST_CASE("shortest numbers") {
  CHECK(ShortestNumber(100) == "100");
  CHECK(ShortestNumber(0.5) == "0.5");
  CHECK(ShortestNumber(-3) == "-3");
  CHECK(ShortestNumber(1e21) == "1000000000000000000000");
  CHECK(ShortestNumber(1e6) == "1000000");
  CHECK(ShortestNumber(1e-4) == "0.0001");
  CHECK(ShortestNumber(0.1) == "0.1");
}

TEST_CASE("deep equality of values") {
  nlohmann::json a = {{"x", {1, 2.0}}}, b = {{"x", {1.0, 2}}}, c = {{"x", {1, 3}}};
  CHECK(ValuesEqual(FromJson(a), FromJson(b)));
  CHECK_FALSE(ValuesEqual(FromJson(a), FromJson(c)));
  CHECK(ValuesEqual(FromJson(nlohmann::json(1)), FromJson(nlohmann::json(1.0))));
  CHECK_FALSE(ValuesEqual(FromJson(nlohmann::json(1)), FromJson(nlohmann::json("1"))));
  CHECK_FALSE(ValuesEqual(FromJson(nlohmann::json(nullptr)), FromJson(nlohmann::json(false))));
  CHECK(Evaluator::Describe(FromJson(nlohmann::json(std::string(200, 'a')))).size() == 80);
}

}  // namespace
}  // namespace toolwarden::internal
