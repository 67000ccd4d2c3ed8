// The toolwarden command line; see cli/commands.h and docs/cli.md.
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return toolwarden::RunCli(args, std::cout, std::cerr);
}
