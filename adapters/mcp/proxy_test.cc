#include "adapters/mcp/proxy.h"

#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/testing.h"

namespace toolwarden::mcp {
namespace {

using nlohmann::json;

constexpr char kPolicy[] = R"(policy fs;
default block "Blocked: {reason}";
trust get_contact;
allow read_file when path(path) matches r"/data/(/.*)?|/data/.*";
allow get_contact;
allow send_message when to from trusted;
allow note when text from query;
forbid write_file when path(path) matches r".*secret.*" priority 1 fallback ask "Writing a secret needs approval";
allow write_file when path(path) matches r"/data/out/.*";
forbid move_file priority 1 fallback terminate "Moving files ends the session";
)";

struct Harness {
  std::vector<std::string> reports;
  std::unique_ptr<DecisionLog> log;
  Proxy proxy;

  explicit Harness(const std::string& policy = kPolicy, std::optional<std::string> query = {},
                   DecisionLog* log_ptr = nullptr)
      : proxy(Options(policy, std::move(query), log_ptr, &reports)) {}

  static ProxyOptions Options(const std::string& policy, std::optional<std::string> query,
                              DecisionLog* log, std::vector<std::string>* reports) {
    ProxyOptions options;
    LoadedPolicy loaded = LoadPolicyText("fs.policy", policy, "");
    INFO(loaded.ErrorText());
    REQUIRE(loaded.ok());
    options.program = loaded.program;
    options.policy_source = loaded.source;
    options.query = std::move(query);
    options.log = log;
    options.report = [reports](const std::string& line) { reports->push_back(line); };
    options.id_prefix = "tw-";
    return options;
  }

  // Initialize, as a client with or without elicitation, and a server with tools.
  void Handshake(bool elicitation) {
    json params = {{"protocolVersion", "2025-06-18"},
                   {"capabilities", json::object()},
                   {"clientInfo", {{"name", "t"}, {"version", "1"}}}};
    if (elicitation) params["capabilities"]["elicitation"] = json::object();
    ProxyOutput out = proxy.FromClient(
        json{{"jsonrpc", "2.0"}, {"id", 0}, {"method", "initialize"}, {"params", params}}.dump());
    REQUIRE(out.to_server.size() == 1);
    out = proxy.FromServer(
        R"({"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"1"}}})");
    REQUIRE(out.to_client.size() == 1);
  }

  ProxyOutput Call(const json& id, const std::string& tool, const json& args) {
    return proxy.FromClient(json{{"jsonrpc", "2.0"},
                                 {"id", id},
                                 {"method", "tools/call"},
                                 {"params", {{"name", tool}, {"arguments", args}}}}
                                .dump());
  }
};

// The client's answer to the approval request `ask`.
std::string Answer(const json& ask, const json& result) {
  return json{{"jsonrpc", "2.0"}, {"id", ask["id"]}, {"result", result}}.dump();
}
const json kApprove = {{"action", "accept"}, {"content", {{"approve", true}}}};

json One(const std::vector<std::string>& lines) {
  REQUIRE(lines.size() == 1);
  return json::parse(lines[0]);
}

bool Refused(const json& response, const json& id, const std::string& text) {
  return response["id"] == id && response["result"]["isError"] == true &&
         response["result"]["content"][0]["type"] == "text" &&
         response["result"]["content"][0]["text"].get<std::string>().find(text) !=
             std::string::npos;
}

TEST_CASE("an allowed call is forwarded as decided, and its answer passes unchanged") {
  Harness h;
  ProxyOutput out = h.Call(7, "read_file", {{"path", "/data/a.txt"}});
  REQUIRE(out.to_client.empty());
  json forwarded = One(out.to_server);
  CHECK(forwarded["id"] == 7);
  CHECK(forwarded["params"]["arguments"]["path"] == "/data/a.txt");
  CHECK(h.proxy.pending() == 1);
  const std::string answer =
      R"({"jsonrpc":"2.0",  "id":7, "result":{"content":[{"type":"text","text":"hi"}]}})";
  out = h.proxy.FromServer(answer);
  REQUIRE(out.to_client == std::vector<std::string>{answer});  // byte for byte
  CHECK(h.proxy.pending() == 0);
}

TEST_CASE("a denied call is answered by the proxy and never reaches the server") {
  Harness h;
  ProxyOutput out = h.Call("a", "read_file", {{"path", "/etc/passwd"}});
  REQUIRE(out.to_server.empty());
  CHECK(Refused(One(out.to_client), "a", "Blocked: no rule allows this call"));
  out = h.Call("b", "delete_everything", json::object());
  REQUIRE(out.to_server.empty());
  CHECK(Refused(One(out.to_client), "b", "Blocked:"));
  CHECK(h.proxy.pending() == 0);
  CHECK(h.reports.size() == 2);
}

TEST_CASE("paths that climb out of the allowed directory are denied") {
  Harness h;
  ProxyOutput out = h.Call(1, "read_file", {{"path", "/data/../etc/passwd"}});
  CHECK(out.to_server.empty());
  CHECK(Refused(One(out.to_client), 1, "Blocked"));
}

TEST_CASE("every other message passes: as read from the client, byte for byte from the server") {
  Harness h;
  const std::vector<std::string> from_client = {
      R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})",
      R"({ "method" : "notifications/cancelled", "jsonrpc":"2.0", "params":{"requestId":1}})",
      R"({"jsonrpc":"2.0","id":"s1","result":{"roots":[]}})",  // answer to a server request
      R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2}})",
      R"([{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"prompts/list"}])",
  };
  for (const std::string& line : from_client) {
    ProxyOutput out = h.proxy.FromClient(line);
    CHECK(out.to_client.empty());
    REQUIRE(out.to_server.size() == 1);
    CHECK(json::parse(out.to_server[0]) == json::parse(line));
  }
  const std::vector<std::string> from_server = {
      R"({"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}})",
      R"({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}})",
      R"({"jsonrpc":"2.0",  "id":2,"result":{}})",
      R"(["not", "a", "message"])",
      R"(17)",
  };
  for (const std::string& line : from_server) {
    ProxyOutput out = h.proxy.FromServer(line);
    CHECK(out.to_server.empty());
    CHECK(out.to_client == std::vector<std::string>{line});
  }
}

TEST_CASE("nothing can hide a second message in a forwarded one") {
  using namespace std::string_literals;
  Harness h;
  // A lone "\r" is JSON whitespace, but a line break to a server reading with
  // universal newlines (Python's TextIOWrapper): forwarded as read, it is gone.
  const std::string hidden =
      R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nuke","arguments":{}}})";
  ProxyOutput out = h.proxy.FromClient(R"({"jsonrpc":"2.0","method":"notifications/x","params":)"s +
                                       "\r" + hidden + "\r}");
  REQUIRE(out.to_server.size() == 1);
  CHECK(out.to_server[0].find('\r') == std::string::npos);
  CHECK(out.to_server[0].find('\n') == std::string::npos);
  // A NUL would end the text for nlohmann, not for the server.
  out = h.proxy.FromClient(R"({"jsonrpc":"2.0","method":"notifications/x"})"s + "\0\r" + hidden);
  CHECK(out.to_server.empty());
  CHECK(One(out.to_client)["error"]["code"] == kParseError);
  // Duplicate keys: the server gets one, the one the proxy read (the last).
  out = h.proxy.FromClient(
      R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"nuke"},"method":"ping"})");
  CHECK(One(out.to_server) ==
        json{{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}, {"params", {{"name", "nuke"}}}});
  // Batches hold objects: a nested batch, or an empty one, is refused.
  for (const char* batch : {"[[", "[]", "[1]"}) {
    std::string text = std::string(batch) == "[[" ? "[[" + hidden + "]]" : batch;
    out = h.proxy.FromClient(text);
    CHECK(out.to_server.empty());
    CHECK(One(out.to_client)["error"]["code"] == kInvalidRequest);
  }
}

TEST_CASE("malformed messages from the client get JSON-RPC errors and go nowhere") {
  Harness h;
  ProxyOutput out =
      h.proxy.FromClient("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/call\"");
  CHECK(out.to_server.empty());
  json error = One(out.to_client);
  CHECK(error["id"].is_null());
  CHECK(error["error"]["code"] == kParseError);

  out = h.proxy.FromClient("\"tools/call\"");
  CHECK(out.to_server.empty());
  CHECK(One(out.to_client)["error"]["code"] == kInvalidRequest);

  std::string deep = std::string(200, '[') + std::string(200, ']');
  out = h.proxy.FromClient(deep);
  CHECK(out.to_server.empty());
  CHECK(One(out.to_client)["error"]["code"] == kInvalidRequest);

  out = h.proxy.FromClient("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xff\"}}");
  CHECK(out.to_server.empty());
  CHECK(One(out.to_client)["error"]["code"] == kParseError);
}

TEST_CASE("tools/call with bad params or id is refused, never forwarded") {
  Harness h;
  auto refused = [&](const std::string& line, int code) {
    ProxyOutput out = h.proxy.FromClient(line);
    CHECK(out.to_server.empty());
    CHECK(One(out.to_client)["error"]["code"] == code);
  };
  refused(R"({"jsonrpc":"2.0","id":1,"method":"tools/call"})", kInvalidParams);
  refused(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}})", kInvalidParams);
  refused(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":[]}})",
      kInvalidParams);
  refused(R"({"jsonrpc":"2.0","id":{"x":1},"method":"tools/call","params":{"name":"read_file"}})",
          kInvalidRequest);
  refused(R"({"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"get_contact"}})",
          kInvalidRequest);
  // As a notification it could not be answered: dropped.
  ProxyOutput out = h.proxy.FromClient(
      R"({"jsonrpc":"2.0","method":"tools/call","params":{"name":"get_contact"}})");
  CHECK(out.to_server.empty());
  CHECK(out.to_client.empty());
}

TEST_CASE("duplicate keys decide as the last one, and the server sees the same") {
  Harness h;
  ProxyOutput out = h.proxy.FromClient(
      R"({"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"read_file","arguments":{"path":"/data/x","path":"/etc/passwd"}}})");
  CHECK(out.to_server.empty());
  CHECK(Refused(One(out.to_client), 1, "Blocked"));
  out = h.proxy.FromClient(
      R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/etc/passwd","path":"/data/x"}}})");
  CHECK(One(out.to_server)["params"]["arguments"] == json{{"path", "/data/x"}});
  CHECK(out.to_server[0].find("passwd") == std::string::npos);
}

TEST_CASE("a batch with a tools/call is split; each call is decided") {
  Harness h;
  ProxyOutput out = h.proxy.FromClient(
      R"([{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/etc/shadow"}}},)"
      R"({"jsonrpc":"2.0","id":2,"method":"ping"},)"
      R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/data/a"}}}])");
  REQUIRE(out.to_server.size() == 2);
  CHECK(json::parse(out.to_server[0])["id"] == 2);
  CHECK(json::parse(out.to_server[1])["id"] == 3);
  CHECK(Refused(One(out.to_client), 1, "Blocked"));
}

TEST_CASE("ask: a client with elicitation approves or declines") {
  Harness h;
  h.Handshake(/*elicitation=*/true);
  const json args = {{"path", "/data/out/secret.txt"}, {"content", "x"}};
  ProxyOutput out = h.Call(5, "write_file", args);
  REQUIRE(out.to_server.empty());
  json ask = One(out.to_client);
  CHECK(ask["method"] == "elicitation/create");
  // Unguessable, and not from the counter whose ids the server sees.
  CHECK(ask["id"].get<std::string>().rfind("toolwarden-ask-", 0) == 0);
  CHECK(ask["id"].get<std::string>().size() == 15 + 32);
  CHECK(ask["params"]["message"] ==
        "Writing a secret needs approval\n\nTool: write_file\nArguments:\n  content: \"x\"\n  "
        "path: \"/data/out/secret.txt\"");
  CHECK(ask["params"]["requestedSchema"]["properties"]["approve"]["type"] == "boolean");
  CHECK(h.proxy.pending() == 1);

  SECTION("accept with approve: true forwards the call") {
    out = h.proxy.FromClient(Answer(ask, kApprove));
    json forwarded = One(out.to_server);
    CHECK(forwarded["id"] == 5);
    CHECK(forwarded["params"]["arguments"] == args);
    CHECK(out.to_client.empty());
    CHECK(h.proxy.session().history().size() == 1);
  }
  SECTION("decline, cancel, approve: false or an error deny it") {
    for (const json& reply :
         {json{{"result", {{"action", "decline"}}}}, json{{"result", {{"action", "cancel"}}}},
          json{{"result", {{"action", "accept"}, {"content", {{"approve", false}}}}}},
          json{{"result", {{"action", "accept"}, {"content", {{"approve", "true"}}}}}},
          json{{"error", {{"code", -1}, {"message", "no"}}}}}) {
      Harness again;
      again.Handshake(true);
      json question = One(again.Call(5, "write_file", args).to_client);
      json answer = reply;
      answer["jsonrpc"] = "2.0";
      answer["id"] = question["id"];
      out = again.proxy.FromClient(answer.dump());
      CHECK(out.to_server.empty());
      CHECK(Refused(One(out.to_client), 5, "Writing a secret needs approval"));
      CHECK(again.proxy.session().history().empty());
      CHECK(again.proxy.pending() == 0);
    }
  }
  SECTION(
      "a cancelled call is forgotten, the person's dialog closed, and a late approval goes "
      "nowhere") {
    out = h.proxy.FromClient(
        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}})");
    CHECK(out.to_server.empty());
    json cancel = One(out.to_client);
    CHECK(cancel["method"] == "notifications/cancelled");
    CHECK(cancel["params"]["requestId"] == ask["id"]);
    CHECK(h.proxy.pending() == 0);
    out = h.proxy.FromClient(Answer(ask, kApprove));
    CHECK(json::parse(out.to_server.at(0))["id"] == ask["id"]);  // not ours any more: passes on
    CHECK(h.proxy.session().history().empty());
  }
  SECTION("a server's question under a guessed id cannot answer for the person") {
    // The server sees the proxy's own request ids; asks never use them.
    h.proxy.FromClient(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    h.proxy.FromServer(
        R"({"jsonrpc":"2.0","id":"tw-1","method":"elicitation/create","params":{}})");
    out = h.proxy.FromClient(
        R"({"jsonrpc":"2.0","id":"tw-1","result":{"action":"accept","content":{"approve":true}}})");
    CHECK(json::parse(out.to_server.at(0))["id"] == "tw-1");  // the server's, passed on
    CHECK(h.proxy.session().history().empty());
    CHECK(h.proxy.pending() == 1);
  }
}

TEST_CASE("ask: every argument is shown, each value shortened on its own") {
  Harness h;
  h.Handshake(true);
  json args = {{"content", std::string(5000, 'a')}, {"path", "/data/out/secret"}};
  for (int i = 0; i < 60; ++i) args["x" + std::to_string(100 + i)] = i;
  std::string text = One(h.Call(1, "write_file", args).to_client)["params"]["message"];
  CHECK(text.find("path: \"/data/out/secret\"") != std::string::npos);
  CHECK(text.find("(5002 bytes, shortened)") != std::string::npos);
  CHECK(text.find("(12 more not shown)") != std::string::npos);
  CHECK(text.size() < 4000);
}

TEST_CASE("ask: a client without elicitation gets the deny result") {
  Harness h;
  h.Handshake(/*elicitation=*/false);
  ProxyOutput out = h.Call(5, "write_file", {{"path", "/data/out/secret"}, {"content", "x"}});
  CHECK(out.to_server.empty());
  CHECK(Refused(One(out.to_client), 5, "Writing a secret needs approval"));
}

TEST_CASE("terminate answers the call, denies waiting approvals and closes") {
  Harness h;
  h.Handshake(true);
  h.Call(1, "write_file", {{"path", "/data/out/secret"}, {"content", "x"}});
  ProxyOutput out = h.Call(2, "move_file", {{"source", "/data/a"}, {"destination", "/data/b"}});
  CHECK(out.close);
  CHECK(out.to_server.empty());
  REQUIRE(out.to_client.size() == 2);
  CHECK(Refused(json::parse(out.to_client[0]), 2, "Moving files ends the session"));
  CHECK(Refused(json::parse(out.to_client[1]), 1, "Moving files ends the session"));
  // Nothing from the client counts any more.
  out = h.Call(3, "read_file", {{"path", "/data/a"}});
  CHECK(out.to_server.empty());
  CHECK(out.to_client.empty());
}

TEST_CASE("results of trusted tools feed `from trusted`") {
  Harness h;
  ProxyOutput out = h.Call(1, "send_message", {{"to", "bob@example.com"}});
  CHECK(Refused(One(out.to_client), 1, "Blocked"));
  out = h.Call(2, "get_contact", json::object());
  REQUIRE(out.to_server.size() == 1);
  h.proxy.FromServer(
      R"({"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"bob@example.com"}]}})");
  out = h.Call(3, "send_message", {{"to", "bob@example.com"}});
  CHECK(One(out.to_server)["id"] == 3);
}

TEST_CASE("the query comes from the flag or from the client's notification") {
  const std::string note =
      R"({"jsonrpc":"2.0","method":"notifications/toolwarden/query","params":{"query":"note that the sky is blue"}})";
  SECTION("the notification sets it, and is not forwarded") {
    Harness h;
    CHECK(h.proxy.FromClient(note).to_server.empty());
    ProxyOutput out = h.Call(1, "note", {{"text", "the sky is blue"}});
    CHECK(One(out.to_server)["id"] == 1);
  }
  SECTION("after the first call it is ignored") {
    Harness h;
    h.Call(1, "read_file", {{"path", "/data/a"}});
    h.proxy.FromClient(note);
    CHECK(h.reports.back().find("already decided") != std::string::npos);
    ProxyOutput out = h.Call(2, "note", {{"text", "the sky is blue"}});
    CHECK(Refused(One(out.to_client), 2, "Blocked"));
  }
  SECTION("the flag wins") {
    Harness h(kPolicy, std::string("write nothing"));
    h.proxy.FromClient(note);
    CHECK(h.reports.back().find("--query") != std::string::npos);
    CHECK(Refused(One(h.Call(1, "note", {{"text", "the sky is blue"}}).to_client), 1, "Blocked"));
    CHECK(One(h.Call(2, "note", {{"text", "nothing"}}).to_server)["id"] == 2);
  }
}

TEST_CASE("the server's tools are checked against the policy, page by page") {
  Harness h;
  h.Handshake(false);
  ProxyOutput out = h.proxy.FromClient(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  REQUIRE(out.to_server.size() == 2);
  json list = json::parse(out.to_server[1]);
  CHECK(list["method"] == "tools/list");
  CHECK(list["id"] == "tw-0");
  auto tool = [](const std::string& name, const json& properties) {
    return json{{"name", name}, {"inputSchema", {{"type", "object"}, {"properties", properties}}}};
  };
  json page1 = {
      {"jsonrpc", "2.0"},
      {"id", "tw-0"},
      {"result",
       {{"tools", {tool("read_file", {{"path", {{"type", "string"}}}})}}, {"nextCursor", "p2"}}}};
  out = h.proxy.FromServer(page1.dump());
  CHECK(out.to_client.empty());  // the proxy's own request: answered to the proxy only
  json next = One(out.to_server);
  CHECK(next["params"]["cursor"] == "p2");
  json page2 = {{"jsonrpc", "2.0"},
                {"id", next["id"]},
                {"result",
                 {{"tools",
                   {tool("get_contact", json::object()),
                    tool("send_message", {{"recipient", {{"type", "string"}}}}),
                    tool("write_file", {{"path", {{"type", "string"}}}}),
                    tool("move_file", json::object())}}}}};
  out = h.proxy.FromServer(page2.dump());
  CHECK(out.to_client.empty());
  CHECK(out.to_server.empty());
  REQUIRE(!h.reports.empty());
  const std::string& report = h.reports.back();
  CHECK(report.find("5 tools disagree") != std::string::npos);
  CHECK(report.find("unknown tool `note`") != std::string::npos);
  CHECK(report.find("unknown argument `to`") != std::string::npos);
  CHECK(report.find("fs.policy:6:") != std::string::npos);

  // list_changed: forwarded, and the proxy asks again; the same answer is not reported twice.
  const size_t reports = h.reports.size();
  out = h.proxy.FromServer(R"({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})");
  CHECK(out.to_client.size() == 1);
  json again = One(out.to_server);
  CHECK(again["method"] == "tools/list");
  json whole = page2;
  whole["id"] = again["id"];
  whole["result"]["tools"].push_back(page1["result"]["tools"][0]);
  CHECK(h.proxy.FromServer(whole.dump()).to_client.empty());
  CHECK(h.reports.size() == reports);
}

TEST_CASE("a policy that agrees with the server says so") {
  Harness h("allow ping_tool;\n");
  h.Handshake(false);
  h.proxy.FromClient(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  h.proxy.FromServer(
      R"({"jsonrpc":"2.0","id":"tw-0","result":{"tools":[{"name":"ping_tool","inputSchema":{"type":"object"}}]}})");
  CHECK(h.reports.back() == "the policy agrees with the server's 1 tools");
}

TEST_CASE("a server without tools is not asked for them") {
  Harness h;
  h.proxy.FromClient(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{}})");
  h.proxy.FromServer(R"({"jsonrpc":"2.0","id":0,"result":{"capabilities":{}}})");
  ProxyOutput out = h.proxy.FromClient(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  CHECK(out.to_server.size() == 1);
}

TEST_CASE("lines from the server the proxy cannot read are passed on and reported") {
  Harness h;
  h.Call(1, "read_file", {{"path", "/data/a"}});
  ProxyOutput out = h.proxy.FromServer("this is not json");
  CHECK(out.to_client == std::vector<std::string>{"this is not json"});
  CHECK(h.reports.back().find("cannot read as JSON") != std::string::npos);
  // A lone surrogate, as JSON.stringify writes a string cut inside an emoji.
  const std::string answer =
      R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"\ud83d"}]}})";
  CHECK(h.proxy.FromServer(answer).to_client == std::vector<std::string>{answer});
  h.proxy.ServerLineTooLong(kMaxMcpMessageBytes + 1);
  CHECK(h.reports.back().find("kMaxMcpMessageBytes") != std::string::npos);
}

TEST_CASE("an answer over kMaxMcpMessageBytes becomes an error for the request it answers") {
  Harness h;
  h.Call(1, "read_file", {{"path", "/data/a"}});
  h.Call("a,}\"b", "read_file", {{"path", "/data/b"}});
  h.Call(3, "read_file", {{"path", "/data/c"}});
  REQUIRE(h.proxy.pending() == 3);
  const size_t bytes = kMaxMcpMessageBytes + 1;
  auto error_for = [&](std::string_view first, std::string_view last) {
    ProxyOutput out = h.proxy.ServerLineTooLong(bytes, first, last);
    CHECK(h.reports.back().find("kMaxMcpMessageBytes") != std::string::npos);
    return out.to_client;
  };
  // The id before the result, read from the first bytes of the line.
  std::vector<std::string> out =
      error_for(R"({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"text": "xxx)", "xxx\"}]}");
  REQUIRE(out.size() == 1);
  json error = json::parse(out[0]);
  CHECK(error["id"] == 1);
  CHECK(error["error"]["code"] == kInternalError);
  CHECK(error["error"]["message"] ==
        "toolwarden: the answer was a message of " + std::to_string(bytes) +
            " bytes from the server: over the limit of " + std::to_string(kMaxMcpMessageBytes) +
            " (kMaxMcpMessageBytes)");
  // The id after the result, read backwards from the last bytes; a
  // string id holding `,`, `}` and an escaped quote.
  out = error_for(R"({"result":{"content":[{"text":"xx)",
                  R"(xx\"id\":3}","id":1}]},"jsonrpc":"2.0","id":"a,}\"b"})");
  REQUIRE(out.size() == 1);
  CHECK(json::parse(out[0])["id"] == "a,}\"b");
  // Nested ids, ids inside strings, ids of no waiting request and unreadable
  // ends are not taken: the request waits, as before.
  CHECK(error_for(R"({"result":{"id":3,"content":"xx)", R"(x"},"id":9})").empty());
  CHECK(error_for(R"({"result":"\"id\":3)", R"(xx","nope":[{"id":3}]})").empty());
  // Not an object at the start (a debug dump, say): nothing is taken.
  CHECK(error_for("DEBUG xxxx", R"(xx "result": {"jsonrpc":"2.0","id":3})").empty());
  // The server's own request (a sampling prompt) has ids of its own, however
  // alike: it answers nothing.
  CHECK(error_for(R"({"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"x":"xx)",
                  "xx\"}}")
            .empty());
  CHECK(error_for(R"({"method":"sampling/createMessage","params":{"x":"xx)",
                  R"(xx"},"jsonrpc":"2.0","id":3})")
            .empty());
  // No `result` or `error` in sight, or two different ids: not taken.
  CHECK(error_for(R"({"jsonrpc":"2.0","id":3,"other":"xx)", "xx\"}").empty());
  CHECK(error_for(R"({"id":3,"result":"xx)", R"(xx","id":2})").empty());
  CHECK(h.proxy.pending() == 1);
  CHECK(error_for(R"({"result":"xx)", R"(xx\"}, "id": 3})").size() == 1);  // 3 is waiting: taken
  CHECK(error_for("", "").empty());
  CHECK(h.proxy.pending() == 0);
}

TEST_CASE("reports escape control characters from the agent and the server") {
  Harness h;
  h.Call(1, "\x1b[2K\rfake line\nnext", json::object());
  const std::string& report = h.reports.back();
  CHECK(report.find('\x1b') == std::string::npos);
  CHECK(report.find('\r') == std::string::npos);
  CHECK(report.find('\n') == std::string::npos);
  CHECK(report.find("\\x1b[2K\\x0dfake line\\x0anext") != std::string::npos);
}

TEST_CASE("ids match by value: the server may echo 1.0 as 1") {
  Harness h;
  h.proxy.FromClient(R"({"jsonrpc":"2.0","id":1.0,"method":"ping"})");
  h.proxy.FromClient(R"({"jsonrpc":"2.0","id":12345678901234567890,"method":"ping"})");
  CHECK(h.proxy.pending() == 2);
  h.proxy.FromServer(R"({"jsonrpc":"2.0","id":1,"result":{}})");
  h.proxy.FromServer(R"({"jsonrpc":"2.0","id":12345678901234567000,"result":{}})");
  CHECK(h.proxy.pending() == 0);
}

TEST_CASE("only results of trusted tools are kept") {
  Harness h;
  h.Call(1, "read_file", {{"path", "/data/a"}});
  h.Call(2, "get_contact", json::object());
  h.proxy.FromServer(
      R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"big"}]}})");
  h.proxy.FromServer(
      R"({"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"bob"}]}})");
  REQUIRE(h.proxy.session().history().size() == 2);
  CHECK_FALSE(h.proxy.session().history()[0].result.has_value());
  CHECK(h.proxy.session().history()[1].result.has_value());
}

TEST_CASE("a flood of tools/list_changed keeps one check in flight") {
  Harness h;
  h.Handshake(false);
  ProxyOutput out = h.proxy.FromClient(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  REQUIRE(out.to_server.size() == 2);  // the notification, and the proxy's tools/list
  for (int i = 0; i < 1000; ++i) {
    out = h.proxy.FromServer(R"({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})");
    CHECK(out.to_server.empty());
    CHECK(out.to_client.size() == 1);
  }
  // The answer to the first check starts one more, and no other.
  out = h.proxy.FromServer(R"({"jsonrpc":"2.0","id":"tw-0","result":{"tools":[]}})");
  json again = One(out.to_server);
  CHECK(again["method"] == "tools/list");
  out = h.proxy.FromServer(
      json{{"jsonrpc", "2.0"}, {"id", again["id"]}, {"result", {{"tools", json::array()}}}}.dump());
  CHECK(out.to_server.empty());
}

TEST_CASE("a batch counts against kMaxPendingRequests") {
  Harness h;
  json batch = json::array();
  for (size_t i = 0; i < kMaxPendingRequests + 5; ++i) {
    batch.push_back({{"jsonrpc", "2.0"}, {"id", i}, {"method", "ping"}});
  }
  ProxyOutput out = h.proxy.FromClient(batch.dump());
  CHECK(out.to_server.size() == kMaxPendingRequests);  // split, each as if sent alone
  CHECK(out.to_client.size() == 5);
  CHECK(h.proxy.pending() == kMaxPendingRequests);
}

TEST_CASE("a line over kMaxMcpMessageBytes from the client gets an error") {
  Harness h;
  json error = One(h.proxy.ClientLineTooLong(kMaxMcpMessageBytes + 1).to_client);
  CHECK(error["error"]["code"] == kInvalidRequest);
  CHECK(error["id"].is_null());
}

TEST_CASE("when the server goes, every waiting request gets an error") {
  Harness h;
  h.Handshake(true);
  h.Call(1, "read_file", {{"path", "/data/a"}});
  h.proxy.FromClient(R"({"jsonrpc":"2.0","id":"r","method":"resources/list"})");
  h.Call(2, "write_file",
         {{"path", "/data/out/secret"}, {"content", "x"}});  // waiting for approval
  CHECK(h.proxy.pending() == 3);
  ProxyOutput out = h.proxy.ServerGone("exited with status 3");
  REQUIRE(out.to_client.size() == 3);
  std::set<std::string> ids;
  for (const std::string& line : out.to_client) {
    json error = json::parse(line);
    CHECK(error["error"]["code"] == kInternalError);
    CHECK(error["error"]["message"] == "MCP server exited with status 3 before answering");
    ids.insert(error["id"].dump());
  }
  CHECK(ids == std::set<std::string>{"1", "2", "\"r\""});
  CHECK(h.proxy.pending() == 0);
}

TEST_CASE("no more than kMaxPendingRequests requests wait at once") {
  Harness h;
  for (size_t i = 0; i < kMaxPendingRequests; ++i) {
    REQUIRE(h.proxy.FromClient(json{{"jsonrpc", "2.0"}, {"id", i}, {"method", "ping"}}.dump())
                .to_server.size() == 1);
  }
  ProxyOutput out = h.proxy.FromClient(R"({"jsonrpc":"2.0","id":"x","method":"ping"})");
  CHECK(out.to_server.empty());
  CHECK(One(out.to_client)["error"]["message"].get<std::string>().find("kMaxPendingRequests") !=
        std::string::npos);
  out = h.Call("c", "read_file", {{"path", "/data/a"}});
  CHECK(out.to_server.empty());
  // An answer frees a place, and the next call is decided as before.
  h.proxy.FromServer(R"({"jsonrpc":"2.0","id":0,"result":{}})");
  out = h.Call("c", "read_file", {{"path", "/data/a"}});
  CHECK(One(out.to_server)["id"] == "c");
}

TEST_CASE("decisions are logged before they take effect; a log that fails stops the call") {
  const std::string path = testing::TempFile("mcp_log.jsonl", "");
  unlink(path.c_str());
  StatusOr<std::unique_ptr<DecisionLog>> log = DecisionLog::Open(path);
  REQUIRE(log.ok());
  Harness h(kPolicy, std::nullopt, log->get());
  h.Handshake(true);
  h.Call(1, "read_file", {{"path", "/data/a"}});
  h.Call(2, "read_file", {{"path", "/etc/passwd"}});
  json ask =
      One(h.Call(3, "write_file", {{"path", "/data/out/secret"}, {"content", "x"}}).to_client);
  h.proxy.FromClient(Answer(ask, kApprove));
  CHECK((*log)->seq() == 4);
  // A line the log refuses (over kMaxLogLineBytes): the call is not forwarded.
  ProxyOutput out =
      h.Call(4, "read_file", {{"path", "/data/a"}, {"pad", std::string(kMaxLogLineBytes, 'x')}});
  CHECK(out.to_server.empty());
  CHECK(One(out.to_client)["error"]["code"] == kInternalError);
  CHECK((*log)->seq() == 4);
  REQUIRE((*log)->Flush().ok());
  StatusOr<LogVerification> verified = VerifyLog(path);
  REQUIRE(verified.ok());
  CHECK(verified->intact());
  std::ifstream in(path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  REQUIRE(lines.size() == 4);
  CHECK(lines[0]["kind"] == "decide");
  CHECK(lines[0]["decision"] == "allow");
  CHECK(lines[0]["session"] == "mcp");
  CHECK(lines[1]["decision"] == "deny");
  CHECK(lines[2]["decision"] == "ask");
  CHECK(lines[3]["kind"] == "approve");
  CHECK(lines[3]["decision"] == "allow");
  unlink(path.c_str());
}

}  // namespace
}  // namespace toolwarden::mcp
