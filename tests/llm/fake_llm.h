// FakeLlm: runs tests/llm/fake_llm.py, the scripted fake model server, on
// loopback for one test, and reads back what it was sent. Test-only code: it
// fails the running Catch2 test (rather than returning a Status) when the
// server cannot be started.
//
//   auto fake = testing::FakeLlm::Start({{"steps", {{{"status", 429}}, {{"reply", ...}}}}});
//   transport.Post({fake->url() + "/v1/chat/completions", headers, body});
//   std::vector<nlohmann::json> sent = fake->Requests();
//
// The script format is documented at the top of fake_llm.py.
#ifndef TOOLWARDEN_TESTS_LLM_FAKE_LLM_H_
#define TOOLWARDEN_TESTS_LLM_FAKE_LLM_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace toolwarden::testing {

class FakeLlm {
 public:
  // Writes `script` to a temporary directory, starts `python3 fake_llm.py
  // --script F --record R` and waits (at most 10 s) for the port it prints.
  static std::unique_ptr<FakeLlm> Start(const nlohmann::json& script);

  // SIGTERM (SIGKILL if it is still alive after 5 s), reap, remove the files.
  ~FakeLlm();
  FakeLlm(const FakeLlm&) = delete;
  FakeLlm& operator=(const FakeLlm&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"

  // One JSON object per POST received so far, in arrival order:
  // {"n", "method", "path", "headers" (lower-case names), "body", "t"}.
  std::vector<nlohmann::json> Requests() const;

 private:
  FakeLlm() = default;

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  std::string dir_;  // the temporary directory holding the two files below
  std::string script_path_;
  std::string record_path_;
};

}  // namespace toolwarden::testing

#endif  // TOOLWARDEN_TESTS_LLM_FAKE_LLM_H_
