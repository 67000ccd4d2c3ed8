// The `toolwarden` command line (docs/cli.md). Subcommands are thin layers over
// the library; RunCli is main() without the process, so tests can call it.
#ifndef TOOLWARDEN_CLI_COMMANDS_H_
#define TOOLWARDEN_CLI_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace toolwarden {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // errors found, a call not allowed, tests failed
inline constexpr int kExitUsage = 2;  // bad command line, unreadable input, policy errors for check

// `args` excludes the program name.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace toolwarden

#endif  // TOOLWARDEN_CLI_COMMANDS_H_
