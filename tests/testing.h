// Helpers shared by the Catch2 tests.
#ifndef TOOLWARDEN_TESTS_TESTING_H_
#define TOOLWARDEN_TESTS_TESTING_H_

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "interpreter/loader.h"

namespace toolwarden::testing {

// Writes `text` to a file in the temporary directory and returns its path.
inline std::string TempFile(const std::string& name, const std::string& text) {
  std::string path = std::string(P_tmpdir) + "/toolwarden_test_" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Loads policy text named `name`; fails the test (with the diagnostics) if it does not load.
inline std::shared_ptr<const Program> MustLoad(const std::string& text,
                                               const std::string& name = "t.policy") {
  LoadedPolicy loaded = LoadPolicyText(name, text, "");
  INFO(loaded.ErrorText());
  REQUIRE(loaded.ok());
  return loaded.program;
}

}  // namespace toolwarden::testing

#endif  // TOOLWARDEN_TESTS_TESTING_H_
