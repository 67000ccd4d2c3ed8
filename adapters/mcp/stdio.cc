#include "adapters/mcp/stdio.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <optional>
#include <string_view>

namespace toolwarden::mcp {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
constexpr size_t kReadChunk = 64 << 10;
// How long to keep reading the server's stdout after the child exited, when
// something it started still holds the pipe open.
constexpr auto kDrainAfterExit = std::chrono::seconds(1);

int g_signal_pipe = -1;

void OnSignal(int signo) {
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(signo);
  ssize_t ignored = write(g_signal_pipe, &byte, 1);
  (void)ignored;
  errno = saved;
}

// Splits a byte stream into lines, dropping (and reporting) any longer than
// kMaxMcpMessageBytes without holding more than that in memory. Of a dropped
// line it keeps the first and the last kKeptBytes, where its id may be read.
class LineReader {
 public:
  static constexpr size_t kKeptBytes = 64 << 10;

  template <typename OnLine, typename OnTooLong>
  void Feed(std::string_view data, OnLine on_line, OnTooLong on_too_long) {
    while (!data.empty()) {
      size_t newline = data.find('\n');
      std::string_view head = data.substr(0, newline);
      if (discarding_) {
        dropped_ += head.size();
        Keep(head);
      } else if (buffer_.size() + head.size() > kMaxMcpMessageBytes) {
        discarding_ = true;
        dropped_ = buffer_.size() + head.size();
        first_ = buffer_.substr(0, kKeptBytes);
        if (first_.size() < kKeptBytes) first_.append(head.substr(0, kKeptBytes - first_.size()));
        last_.clear();
        Keep(std::string_view(buffer_).substr(buffer_.size() -
                                              std::min(buffer_.size(), kKeptBytes)));
        Keep(head);
        std::string().swap(buffer_);
      } else if (newline != std::string_view::npos && buffer_.empty()) {
        on_line(head);
      } else {
        buffer_.append(head);
        if (newline != std::string_view::npos) on_line(std::string_view(buffer_));
      }
      if (newline == std::string_view::npos) return;
      if (discarding_) Dropped(on_too_long);
      discarding_ = false;
      buffer_.clear();
      data.remove_prefix(newline + 1);
    }
  }
  // One read(2) from `fd`, its lines delivered; false at the end of the
  // input (or a read error), once a last line without a newline is delivered.
  template <typename OnLine, typename OnTooLong>
  bool ReadFrom(int fd, OnLine on_line, OnTooLong on_too_long) {
    char chunk[kReadChunk];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n > 0) {
      Feed(std::string_view(chunk, static_cast<size_t>(n)), on_line, on_too_long);
      return true;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    Finish(on_line, on_too_long);
    return false;
  }

  // At end of input: a last line without a newline still counts.
  template <typename OnLine, typename OnTooLong>
  void Finish(OnLine on_line, OnTooLong on_too_long) {
    if (discarding_) Dropped(on_too_long);
    if (!discarding_ && !buffer_.empty()) on_line(std::string_view(buffer_));
    discarding_ = false;
    buffer_.clear();
  }

 private:
  // The last kKeptBytes of the dropped line so far.
  void Keep(std::string_view bytes) {
    if (bytes.size() >= kKeptBytes) {
      last_.assign(bytes.substr(bytes.size() - kKeptBytes));
      return;
    }
    last_.append(bytes);
    if (last_.size() > 2 * kKeptBytes) last_.erase(0, last_.size() - kKeptBytes);
  }
  template <typename OnTooLong>
  void Dropped(OnTooLong& on_too_long) {
    std::string_view last(last_);
    if (last.size() > kKeptBytes) last.remove_prefix(last.size() - kKeptBytes);
    on_too_long(dropped_, std::string_view(first_), last);
    std::string().swap(first_);
    std::string().swap(last_);
  }

  std::string buffer_;
  bool discarding_ = false;
  size_t dropped_ = 0;
  std::string first_, last_;  // of a line being dropped
};

// Lines waiting to be written to one file descriptor.
class Outbox {
 public:
  explicit Outbox(size_t max_write) : max_write_(max_write) {}
  void Push(std::string line) {
    line.push_back('\n');
    bytes_ += line.size();
    lines_.push_back(std::move(line));
  }
  bool empty() const { return lines_.empty(); }
  size_t bytes() const { return bytes_; }
  void Clear() {
    lines_.clear();
    bytes_ = 0;
    offset_ = 0;
  }
  // One write(2) of at most max_write bytes; false on an error (the reader is
  // gone), when the box is cleared.
  bool WriteSome(int fd) {
    const std::string& line = lines_.front();
    size_t n = std::min(max_write_, line.size() - offset_);
    ssize_t written = write(fd, line.data() + offset_, n);
    if (written < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return true;
      Clear();
      return false;
    }
    offset_ += static_cast<size_t>(written);
    bytes_ -= static_cast<size_t>(written);
    if (offset_ == line.size()) {
      lines_.pop_front();
      offset_ = 0;
    }
    return true;
  }

 private:
  size_t max_write_;
  std::deque<std::string> lines_;
  size_t offset_ = 0;  // into lines_.front()
  size_t bytes_ = 0;
};

std::string Describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "stopped";
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

struct Pipe {
  int read = -1;
  int write = -1;
};

bool MakePipe(Pipe* p) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  p->read = fds[0];
  p->write = fds[1];
  return true;
}

void Close(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Installs the handlers, and puts the old ones back when it goes.
class SignalScope {
 public:
  explicit SignalScope(int pipe_write) {
    g_signal_pipe = pipe_write;
    struct sigaction action {};
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int signo : kForwardedSignals) sigaction(signo, &action, &saved_[Index(signo)]);
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &action, &saved_chld_);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &saved_pipe_);
  }
  ~SignalScope() {
    for (int signo : kForwardedSignals) sigaction(signo, &saved_[Index(signo)], nullptr);
    sigaction(SIGCHLD, &saved_chld_, nullptr);
    sigaction(SIGPIPE, &saved_pipe_, nullptr);
    g_signal_pipe = -1;
  }

 private:
  static size_t Index(int signo) {
    size_t i = 0;
    while (kForwardedSignals[i] != signo) ++i;
    return i;
  }
  struct sigaction saved_[sizeof kForwardedSignals / sizeof kForwardedSignals[0]]{};
  struct sigaction saved_chld_ {};
  struct sigaction saved_pipe_ {};
};

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void ExecChild(const std::vector<char*>& argv, const Pipe& in, const Pipe& out,
                            int error_write, pid_t parent) {
  struct sigaction deflt {};
  deflt.sa_handler = SIG_DFL;
  sigemptyset(&deflt.sa_mask);
  for (int signo : kForwardedSignals) sigaction(signo, &deflt, nullptr);
  sigaction(SIGCHLD, &deflt, nullptr);
  sigaction(SIGPIPE, &deflt, nullptr);
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(kExitCannotRun);  // the proxy died before prctl
  if (dup2(in.read, 0) < 0 || dup2(out.write, 1) < 0) {
    int e = errno;
    ssize_t ignored = write(error_write, &e, sizeof e);
    (void)ignored;
    _exit(kExitCannotRun);
  }
  execvp(argv[0], argv.data());
  int e = errno;
  ssize_t ignored = write(error_write, &e, sizeof e);
  (void)ignored;
  _exit(kExitCannotRun);
}

}  // namespace

int RunStdio(Proxy& proxy, const StdioOptions& options,
             const std::function<void(const std::string&)>& report) {
  auto say = [&](const std::string& line) {
    if (report) report(line);
  };
  if (options.command.empty()) {
    say("no server command");
    return kExitCannotRun;
  }
  Pipe signals, to_child, from_child, exec_error;
  if (!MakePipe(&signals) || !MakePipe(&to_child) || !MakePipe(&from_child) ||
      !MakePipe(&exec_error)) {
    say(std::string("cannot create pipes: ") + strerror(errno));
    for (Pipe* p : {&signals, &to_child, &from_child, &exec_error}) {
      Close(&p->read);
      Close(&p->write);
    }
    return kExitCannotRun;
  }
  fcntl(signals.read, F_SETFL, O_NONBLOCK);
  fcntl(signals.write, F_SETFL, O_NONBLOCK);
  std::optional<SignalScope> scope(std::in_place, signals.write);

  std::vector<std::string> args = options.command;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child == 0) ExecChild(argv, to_child, from_child, exec_error.write, parent);
  int exec_errno = 0;
  if (child > 0) {
    setpgid(child, child);  // also here, so it holds before we ever signal the group
    Close(&exec_error.write);
    ssize_t n;
    do {
      n = read(exec_error.read, &exec_errno, sizeof exec_errno);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof exec_errno)) exec_errno = 0;
  } else {
    exec_errno = errno;
  }
  Close(&exec_error.read);
  Close(&exec_error.write);
  Close(&to_child.read);
  Close(&from_child.write);
  if (child < 0 || exec_errno != 0) {
    say("cannot run `" + options.command[0] + "`: " + strerror(exec_errno));
    if (child > 0) waitpid(child, nullptr, 0);
    scope.reset();
    Close(&to_child.write);
    Close(&from_child.read);
    Close(&signals.read);
    Close(&signals.write);
    return kExitCannotRun;
  }
  fcntl(to_child.write, F_SETFL, O_NONBLOCK);
  fcntl(from_child.read, F_SETFL, O_NONBLOCK);

  // Writes to the client go out PIPE_BUF bytes at a time after poll(2) says
  // the descriptor is writable, so they never block without making it
  // non-blocking (the client's stdout may be a terminal it shares with others).
  Outbox to_client(PIPE_BUF), to_server(kReadChunk);
  LineReader client_lines, server_lines;
  bool client_reading = true;               // still reading the client's stdin
  bool client_writable = true;              // the client still reads our stdout
  bool server_reading = true;               // the server's stdout is open
  std::optional<int> status;                // the child's, once reaped
  std::optional<Clock::time_point> ending;  // when the end of the session was asked for
  std::optional<Clock::time_point> exited;  // when the child was reaped
  bool end_server = false;                  // close its stdin once its box is empty
  int stage = 0;                            // signals sent at the end: 1 = TERM, 2 = KILL

  auto apply = [&](ProxyOutput out) {
    for (std::string& line : out.to_client) {
      if (client_writable) to_client.Push(std::move(line));
    }
    for (std::string& line : out.to_server) {
      if (to_child.write >= 0) to_server.Push(std::move(line));
    }
    if (out.close) {
      client_reading = false;
      end_server = true;
    }
  };
  auto reap = [&] {
    int st = 0;
    if (!status && waitpid(child, &st, WNOHANG) == child) {
      status = st;
      exited = Clock::now();
    }
  };

  while (true) {
    reap();
    if (status && (!server_reading || Clock::now() - *exited >= kDrainAfterExit)) break;
    // The grace runs from when the end was asked for, not from when the
    // server's stdin could be closed: a server that stops reading would
    // otherwise keep its box full, and the proxy waiting, for ever.
    if (end_server && !ending) ending = Clock::now();
    if (to_child.write >= 0 && end_server &&
        (to_server.empty() || Clock::now() - *ending >= options.grace)) {
      to_server.Clear();
      Close(&to_child.write);
    }
    if (ending && !status) {
      auto since = Clock::now() - *ending;
      if (stage == 0 && since >= options.grace) {
        say("the server did not exit " + std::to_string(options.grace.count()) +
            " ms after the session ended; sending SIGTERM");
        kill(-child, SIGTERM);
        stage = 1;
      } else if (stage == 1 && since >= 2 * options.grace) {
        say("the server ignored SIGTERM; sending SIGKILL");
        kill(-child, SIGKILL);
        stage = 2;
      }
    }

    std::vector<pollfd> fds;
    auto watch = [&](int fd, short events) {
      fds.push_back(pollfd{fd, events, 0});
      return fds.size() - 1;
    };
    size_t sig_i = watch(signals.read, POLLIN);
    size_t cin_i = SIZE_MAX, cout_i = SIZE_MAX, sin_i = SIZE_MAX, sout_i = SIZE_MAX;
    if (client_reading && to_server.bytes() < kMaxQueuedBytes) {
      cin_i = watch(options.client_in, POLLIN);
    }
    if (client_writable && !to_client.empty()) cout_i = watch(options.client_out, POLLOUT);
    if (to_child.write >= 0 && !to_server.empty()) sin_i = watch(to_child.write, POLLOUT);
    if (server_reading && to_client.bytes() < kMaxQueuedBytes) {
      sout_i = watch(from_child.read, POLLIN);
    }
    int timeout = 1000;
    if (exited) timeout = 50;
    if (ending && !status) timeout = std::min(timeout, 100);
    int ready = poll(fds.data(), fds.size(), timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      say(std::string("poll failed: ") + strerror(errno));
      kill(-child, SIGKILL);
      break;
    }
    if (fds[sig_i].revents & POLLIN) {
      unsigned char signos[64];
      ssize_t n;
      while ((n = read(signals.read, signos, sizeof signos)) > 0) {
        for (ssize_t i = 0; i < n; ++i) {
          if (signos[i] != SIGCHLD) kill(-child, signos[i]);
        }
      }
    }
    if (cin_i != SIZE_MAX && fds[cin_i].revents &&
        !client_lines.ReadFrom(
            options.client_in, [&](std::string_view line) { apply(proxy.FromClient(line)); },
            [&](size_t bytes, std::string_view, std::string_view) {
              apply(proxy.ClientLineTooLong(bytes));
            })) {
      client_reading = false;
      end_server = true;
    }
    if (cout_i != SIZE_MAX && fds[cout_i].revents) {
      if (!to_client.WriteSome(options.client_out)) {
        say("the client stopped reading; ending the session");
        client_writable = false;
        client_reading = false;
        end_server = true;
      }
    }
    if (sin_i != SIZE_MAX && fds[sin_i].revents) {
      if (!to_server.WriteSome(to_child.write)) {
        say("the server stopped reading its stdin");
        Close(&to_child.write);
        end_server = true;
      }
    }
    if (sout_i != SIZE_MAX && fds[sout_i].revents &&
        !server_lines.ReadFrom(
            from_child.read, [&](std::string_view line) { apply(proxy.FromServer(line)); },
            [&](size_t bytes, std::string_view first, std::string_view last) {
              apply(proxy.ServerLineTooLong(bytes, first, last));
            })) {
      server_reading = false;
      // Nothing more can come back: end the server if it has not ended.
      end_server = true;
      to_server.Clear();
    }
  }

  if (!status) {  // poll failed: we killed it
    int st = 0;
    waitpid(child, &st, 0);
    status = st;
  }
  kill(-child, SIGTERM);  // anything it started that still runs in its group
  say("the server " + Describe(*status));
  apply(proxy.ServerGone(Describe(*status)));
  // Deliver what is left to the client, for as long as it reads.
  const auto deadline = Clock::now() + options.grace;
  while (client_writable && !to_client.empty() && Clock::now() < deadline) {
    pollfd fd{options.client_out, POLLOUT, 0};
    int ready = poll(&fd, 1, 100);
    if (ready > 0 && !to_client.WriteSome(options.client_out)) break;
  }
  scope.reset();
  Close(&to_child.write);
  Close(&from_child.read);
  Close(&signals.read);
  Close(&signals.write);
  return ExitCode(*status);
}

}  // namespace toolwarden::mcp
