#include "cli/serve.h"

#include <catch2/catch.hpp>
#include <sstream>

#include "cli/commands.h"

namespace toolwarden {
namespace {

TEST_CASE("serve: --listen HOST:PORT") {
  ServerOptions o;
  REQUIRE(ParseListen("127.0.0.1:9000", &o));
  CHECK(o.host == "127.0.0.1");
  CHECK(o.port == 9000);
  REQUIRE(ParseListen(":0", &o));
  CHECK(o.host == "127.0.0.1");
  CHECK(o.port == 0);
  REQUIRE(ParseListen("[::1]:8181", &o));
  CHECK(o.host == "::1");
  for (const char* bad : {"", "8181", "host:", "h:65536", "h:99999999999", "h:-1", "h:8a"}) {
    INFO(bad);
    CHECK_FALSE(ParseListen(bad, &o));
  }
}

TEST_CASE("serve: usage errors exit 2 before anything starts") {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"serve"},
           {"serve", "--policies"},
           {"serve", "--policies", "d", "--listen", "nope"},
           {"serve", "--policies", "d", "--threads", "0"},
           {"serve", "--policies", "d", "--threads", "x"},
           {"serve", "--policies", "d", "--max-sessions", "-3"},
           {"serve", "--policies", "d", "--reload-interval", "0"},
           {"serve", "--policies", "d", "extra"},
           {"serve", "--policies", "/nonexistent/dir", "--listen", "127.0.0.1:0"},
       }) {
    std::ostringstream out, err;
    INFO(args.back());
    CHECK(RunCli(args, out, err) == 2);
    CHECK_FALSE(err.str().empty());
  }
}

}  // namespace
}  // namespace toolwarden
