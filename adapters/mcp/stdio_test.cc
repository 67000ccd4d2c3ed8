#include "adapters/mcp/stdio.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing.h"

namespace toolwarden::mcp {
namespace {

using nlohmann::json;

// RunStdio on a thread, with pipes for the client's side and a real child.
class Running {
 public:
  Running(std::vector<std::string> command,
          std::chrono::milliseconds grace = std::chrono::seconds(5))
      : proxy_(Options()) {
    REQUIRE(pipe2(to_proxy_, O_CLOEXEC) == 0);
    REQUIRE(pipe2(from_proxy_, O_CLOEXEC) == 0);
    StdioOptions options;
    options.command = std::move(command);
    options.client_in = to_proxy_[0];
    options.client_out = from_proxy_[1];
    options.grace = grace;
    thread_ = std::thread([this, options] {
      code_ = RunStdio(proxy_, options, [this](const std::string& line) {
        std::lock_guard<std::mutex> lock(mutex_);
        reports_.push_back(line);
      });
      done_ = true;
    });
  }
  ~Running() {
    CloseInput();
    if (thread_.joinable()) thread_.join();
    for (int fd : {to_proxy_[0], from_proxy_[0], from_proxy_[1]}) {
      if (fd >= 0) close(fd);
    }
  }

  void Send(const std::string& line) {
    std::string data = line + "\n";
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(to_proxy_[1], data.data() + done, data.size() - done);
      REQUIRE(n > 0);
      done += static_cast<size_t>(n);
    }
  }
  // The next line the proxy writes to the client; "" after `timeout` or at the end.
  std::string Receive(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd fd{from_proxy_[0], POLLIN, 0};
      if (poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[1 << 16];
      ssize_t n = read(from_proxy_[0], chunk, sizeof chunk);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  void CloseInput() {
    if (to_proxy_[1] >= 0) close(to_proxy_[1]);
    to_proxy_[1] = -1;
  }
  void CloseOutput() {
    close(from_proxy_[0]);
    from_proxy_[0] = -1;
  }
  int Finish() {
    CloseInput();
    thread_.join();
    return code_;
  }
  std::string Reports() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string all;
    for (const std::string& r : reports_) all += r + "\n";
    return all;
  }

 private:
  static ProxyOptions Options() {
    ProxyOptions options;
    options.program = testing::MustLoad("allow read_file;\n");
    options.policy_source = Source("t.policy", "allow read_file;\n");
    return options;
  }

  Proxy proxy_;
  int to_proxy_[2] = {-1, -1};
  int from_proxy_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<int> code_{-1};
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::vector<std::string> reports_;
  std::string buffer_;
};

bool NoChildrenLeft() { return waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD; }

TEST_CASE("the server's exit code is the proxy's") {
  Running run({"sh", "-c", "exit 3"});
  CHECK(run.Finish() == 3);
  CHECK(run.Reports().find("the server exited with status 3") != std::string::npos);
  CHECK(NoChildrenLeft());
}

TEST_CASE("a server killed by a signal gives 128 + the signal") {
  Running run({"sh", "-c", "kill -KILL $$"});
  CHECK(run.Finish() == 128 + SIGKILL);
}

TEST_CASE("a command that cannot run gives 127 and says why") {
  Running run({"/nonexistent/mcp-server", "--flag"});
  CHECK(run.Finish() == kExitCannotRun);
  CHECK(run.Reports().find("cannot run `/nonexistent/mcp-server`: No such file or directory") !=
        std::string::npos);
  CHECK(NoChildrenLeft());
}

TEST_CASE("messages of 10 MB pass both ways") {
  // `cat` as the server sends every message back: the client's request comes
  // back as a request from the server, unchanged.
  Running run({"cat"});
  const std::string big = json{{"jsonrpc", "2.0"},
                               {"id", 1},
                               {"method", "echo"},
                               {"params", {{"text", std::string(10 << 20, 'a')}}}}
                              .dump();
  std::thread sender([&] { run.Send(big); });
  std::string back = run.Receive();
  sender.join();
  CHECK(back.size() == big.size());
  CHECK(back == big);
  CHECK(run.Finish() == 0);  // cat ends when its stdin closes
  CHECK(NoChildrenLeft());
}

TEST_CASE("a line over kMaxMcpMessageBytes is dropped with an error, and the next one passes") {
  Running run({"cat"});
  std::thread sender([&] {
    run.Send(std::string(kMaxMcpMessageBytes + 1, 'x'));
    run.Send(R"({"jsonrpc":"2.0","id":2,"method":"ping"})");
  });
  json error = json::parse(run.Receive());
  sender.join();
  CHECK(error["error"]["code"] == kInvalidRequest);
  CHECK(error["error"]["message"].get<std::string>().find("kMaxMcpMessageBytes") !=
        std::string::npos);
  CHECK(json::parse(run.Receive()) == json{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}});
  CHECK(run.Finish() == 0);
}

TEST_CASE("a server that dies mid-call becomes an error for the waiting request") {
  Running run({"sh", "-c", "read line; exit 3"});
  run.Send(
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{}}})");
  json error = json::parse(run.Receive());
  CHECK(error["id"] == 7);
  CHECK(error["error"]["code"] == kInternalError);
  CHECK(error["error"]["message"] == "MCP server exited with status 3 before answering");
  CHECK(run.Finish() == 3);
  CHECK(NoChildrenLeft());
}

TEST_CASE("a server that ignores the end of its stdin gets SIGTERM, then SIGKILL") {
  Running run({"sh", "-c", "trap '' TERM; while :; do sleep 1; done"},
              std::chrono::milliseconds(200));
  CHECK(run.Finish() == 128 + SIGKILL);
  std::string reports = run.Reports();
  CHECK(reports.find("sending SIGTERM") != std::string::npos);
  CHECK(reports.find("sending SIGKILL") != std::string::npos);
  CHECK(NoChildrenLeft());
}

TEST_CASE("a server that stops reading its stdin cannot keep the proxy waiting") {
  // 1 MB waits in the box to the server when the client leaves: the grace
  // still runs out, and the escalation follows.
  Running run({"sh", "-c", "trap '' TERM; sleep 60"}, std::chrono::milliseconds(200));
  std::thread sender([&] {
    run.Send(
        json{{"jsonrpc", "2.0"}, {"method", "x"}, {"params", {{"p", std::string(1 << 20, 'a')}}}}
            .dump());
  });
  sender.join();
  CHECK(run.Finish() == 128 + SIGKILL);
  CHECK(NoChildrenLeft());
}

TEST_CASE("signals to the proxy are forwarded to the server") {
  Running run({"sh", "-c", R"(echo '{"jsonrpc":"2.0","method":"ready"}'; exec sleep 30)"});
  REQUIRE(run.Receive() == R"({"jsonrpc":"2.0","method":"ready"})");
  kill(getpid(), SIGTERM);  // the proxy's handler is in place while it runs
  CHECK(run.Finish() == 128 + SIGTERM);
  CHECK(NoChildrenLeft());
}

TEST_CASE("a client that stops reading ends the session") {
  Running run({"cat"});
  run.CloseOutput();
  run.Send(R"({"jsonrpc":"2.0","id":1,"method":"ping"})");
  CHECK(run.Finish() == 0);
  CHECK(run.Reports().find("the client stopped reading") != std::string::npos);
}

}  // namespace
}  // namespace toolwarden::mcp
