// llm_reply_fuzz: arbitrary HTTP replies of a model server through
// llm::ParseReply (adapters/llm/protocol.h), for each chat API.
//
// Input: byte 0 picks the protocol, bytes 1-2 the HTTP status (big-endian,
// taken modulo 600), the rest is the body. Checks what protocol.h promises:
//   - nothing throws;
//   - a status other than 2xx is an error: Unavailable for 408, 409, 429 and
//     5xx, InvalidArgument for any other;
//   - a 2xx body gives a reply or InvalidArgument / ResourceExhausted;
//   - error messages are printable: no control characters and valid UTF-8
//     (they are shown to people and put into JSON replies), within the
//     documented caps.
#include <cstddef>
#include <cstdint>
#include <string>

#include "adapters/llm/protocol.h"
#include "fuzz/fuzz_check.h"
#include "nlohmann/json.hpp"
#include "policy/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace toolwarden;
  using namespace toolwarden::llm;
  if (size < 3) return 0;
  const Protocol protocols[] = {Protocol::kOpenAI, Protocol::kLlamaCpp, Protocol::kAnthropic,
                                Protocol::kOllama};
  Protocol protocol = protocols[data[0] % 4];
  HttpReply reply;
  reply.status = ((data[1] << 8) | data[2]) % 600;
  reply.body.assign(reinterpret_cast<const char*>(data) + 3, size - 3);
  reply.attempts = 1;

  StatusOr<ChatReply> parsed = ParseReply(protocol, reply);
  const bool success = reply.status >= 200 && reply.status < 300;
  if (!success) {
    FUZZ_CHECK(!parsed.ok(), "a reply with status " + std::to_string(reply.status) + " parsed");
    const long s = reply.status;
    const StatusCode want = (s == 408 || s == 409 || s == 429 || s >= 500)
                                ? StatusCode::kUnavailable
                                : StatusCode::kInvalidArgument;
    FUZZ_CHECK(parsed.status().code() == want, parsed.status().message());
  } else if (!parsed.ok()) {
    StatusCode code = parsed.status().code();
    FUZZ_CHECK(code == StatusCode::kInvalidArgument || code == StatusCode::kResourceExhausted,
               parsed.status().message());
  } else {
    (void)parsed->text.size();
  }
  if (!parsed.ok()) {
    const std::string& message = parsed.status().message();
    FUZZ_CHECK(FindInvalidUtf8(message) == std::string::npos, "invalid UTF-8 in: " + message);
    for (unsigned char c : message) {
      FUZZ_CHECK(c >= 0x20 && c != 0x7f, "a control character in: " + message);
    }
    // The error body in JSON must print.
    (void)nlohmann::json(message).dump();
  }
  return 0;
}
