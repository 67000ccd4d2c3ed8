// Golden files: tests/golden/NAME.policy with NAME.err (what `toolwarden lint`
// prints) and NAME.fmt (what `toolwarden fmt` prints, for valid files). Set
// TOOLWARDEN_UPDATE_GOLDEN=1 to rewrite them after an intended change.
#include <dirent.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/commands.h"

namespace toolwarden {
namespace {

const std::string kDir = std::string(TOOLWARDEN_SOURCE_DIR) + "/tests/golden/";

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Relative(std::string text) {
  const std::string prefix = std::string(TOOLWARDEN_SOURCE_DIR) + "/";
  for (size_t at; (at = text.find(prefix)) != std::string::npos;) text.erase(at, prefix.size());
  return text;
}

void Compare(const std::string& path, const std::string& actual) {
  INFO(path);
  if (std::getenv("TOOLWARDEN_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  std::ifstream probe(path);
  REQUIRE(probe.good());
  CHECK(actual == Read(path));
}

TEST_CASE("golden diagnostics and formatting") {
  DIR* dir = opendir(kDir.c_str());
  REQUIRE(dir != nullptr);
  int files = 0;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() < 8 || name.substr(name.size() - 7) != ".policy") continue;
    std::string stem = kDir + name.substr(0, name.size() - 7);
    std::ostringstream out, err;
    int code = RunCli({"lint", kDir + name}, out, err);
    Compare(stem + ".err", Relative(out.str()));
    if (code == kExitOk) {
      std::ostringstream formatted, ferr;
      REQUIRE(RunCli({"fmt", kDir + name}, formatted, ferr) == kExitOk);
      Compare(stem + ".fmt", formatted.str());
    }
    ++files;
  }
  closedir(dir);
  CHECK(files >= 6);
}

}  // namespace
}  // namespace toolwarden
