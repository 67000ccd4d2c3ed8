#include "tests/llm/fake_llm.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

extern char** environ;

namespace toolwarden::testing {
namespace {

constexpr std::chrono::milliseconds kStartTimeout{10'000};
constexpr std::chrono::milliseconds kStopTimeout{5'000};

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

std::unique_ptr<FakeLlm> FakeLlm::Start(const nlohmann::json& script) {
  // Owned from the start, so that a FAIL below still stops the server and
  // removes the files.
  std::unique_ptr<FakeLlm> fake(new FakeLlm());

  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/toolwarden_fake_llm.XXXXXX";
  if (mkdtemp(dir_template.data()) == nullptr) FAIL("fake_llm: mkdtemp: " << ErrnoText());
  fake->dir_ = dir_template;
  fake->script_path_ = fake->dir_ + "/script.json";
  fake->record_path_ = fake->dir_ + "/record.jsonl";
  {
    std::ofstream out(fake->script_path_);
    out << script.dump();
    if (!out.flush()) FAIL("fake_llm: cannot write " << fake->script_path_);
  }

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) FAIL("fake_llm: pipe2: " << ErrnoText());
  fake->stdout_fd_ = pipe_fds[0];

  const std::string server = std::string(TOOLWARDEN_SOURCE_DIR) + "/tests/llm/fake_llm.py";
  std::vector<std::string> args = {
      "python3",          server,   "--script",  fake->script_path_, "--record",
      fake->record_path_, "--host", "127.0.0.1", "--port",           "0"};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  pid_t pid = -1;
  const int spawn_error = posix_spawnp(&pid, "python3", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawn_error != 0) FAIL("fake_llm: cannot start python3: " << std::strerror(spawn_error));
  fake->pid_ = pid;

  // Read the one line "PORT\n".
  std::string line;
  const auto give_up = std::chrono::steady_clock::now() + kStartTimeout;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      FAIL("fake_llm: " << server << " printed no port within " << kStartTimeout.count() << " ms");
    }
    pollfd pfd{fake->stdout_fd_, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) FAIL("fake_llm: poll: " << ErrnoText());
    if (ready == 0) continue;
    char buffer[64];
    const ssize_t n = read(fake->stdout_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      FAIL("fake_llm: " << server << " exited before printing its port (see stderr above)");
    }
    line.append(buffer, static_cast<size_t>(n));
    if (line.size() > 32) FAIL("fake_llm: unexpected output: " << line);
  }
  line.resize(line.find('\n'));
  char* end = nullptr;
  const int64_t port = std::strtoll(line.c_str(), &end, 10);
  if (line.empty() || *end != '\0' || port <= 0 || port > 65535) {
    FAIL("fake_llm: expected a port, got `" << line << "`");
  }
  fake->port_ = static_cast<uint16_t>(port);
  return fake;
}

FakeLlm::~FakeLlm() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    const auto give_up = std::chrono::steady_clock::now() + kStopTimeout;
    int status = 0;
    pid_t reaped = 0;
    while ((reaped = waitpid(pid_, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (reaped == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (!record_path_.empty()) std::remove(record_path_.c_str());
  if (!script_path_.empty()) std::remove(script_path_.c_str());
  if (!dir_.empty()) rmdir(dir_.c_str());
}

std::string FakeLlm::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::vector<nlohmann::json> FakeLlm::Requests() const {
  std::vector<nlohmann::json> requests;
  std::ifstream in(record_path_);
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json entry = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!entry.is_discarded()) requests.push_back(std::move(entry));
  }
  return requests;
}

}  // namespace toolwarden::testing
