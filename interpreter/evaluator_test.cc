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
