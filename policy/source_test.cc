#include "policy/source.h"

#include <catch2/catch.hpp>

namespace toolwarden {
namespace {

TEST_CASE("lines and positions") {
  Source s("f", "ab\r\ncé\n\nx");
  CHECK(s.Line(1) == "ab");
  CHECK(s.Line(2) == "cé");
  CHECK(s.Line(3) == "");
  CHECK(s.Line(4) == "x");
  CHECK(s.Line(0) == "");
  CHECK(s.Line(5) == "");
  Position p = s.PositionAt(7);  // after "cé"
  CHECK(p.line == 2);
  CHECK(p.column == 3);  // code points, not bytes
  CHECK(s.PositionAt(0).column == 1);
  CHECK(s.PositionAt(1000).line == 4);
}

}  // namespace
}  // namespace toolwarden
