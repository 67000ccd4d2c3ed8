#include "policy/ast.h"

#include <catch2/catch.hpp>

namespace toolwarden {
namespace {

TEST_CASE("operator spellings are the language's") {
  CHECK(std::string(OpSpelling(Op::kNotIn)) == "not in");
  CHECK(std::string(OpSpelling(Op::kStartsWith)) == "startswith");
  CHECK(std::string(OpSpelling(Op::kMod)) == "%");
  Target glob{"get_*", true, {}};
  Target name{"get_x", false, {}};
  CHECK(glob.IsGlob());
  CHECK_FALSE(name.IsGlob());
}

}  // namespace
}  // namespace toolwarden
