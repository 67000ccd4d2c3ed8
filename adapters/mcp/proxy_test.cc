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

TEST_CASE("every other message passes byte for byte, both ways") {
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
    CHECK(out.to_server == std::vector<std::string>{line});
  }
  const std::vector<std::string> from_server = {
      R"({"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}})",
      R"({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}})",
      R"({"jsonrpc":"2.0","id":2,"result":{}})",
      R"(["not", "a", "message"])",
      R"(17)",
  };
  for (const std::string& line : from_server) {
    ProxyOutput out = h.proxy.FromServer(line);
    CHECK(out.to_server.empty());
    CHECK(out.to_client == std::vector<std::string>{line});
  }
}

TEST_CASE("a final carriage return and empty lines are ignored") {
  Harness h;
  CHECK(h.proxy.FromClient("").to_server.empty());
  CHECK(h.proxy.FromClient("  \t \r").to_client.empty());
  CHECK(h.proxy.FromServer(" ").to_client.empty());
  ProxyOutput out = h.proxy.FromClient("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r");
  CHECK(out.to_server == std::vector<std::string>{R"({"jsonrpc":"2.0","id":1,"method":"ping"})"});
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
  CHECK(ask["id"] == "tw-0");
  CHECK(ask["params"]["message"].get<std::string>().find("Writing a secret needs approval") == 0);
  CHECK(ask["params"]["requestedSchema"]["properties"]["approve"]["type"] == "boolean");
  CHECK(h.proxy.pending() == 1);

  SECTION("accept with approve: true forwards the call") {
    out = h.proxy.FromClient(
        R"({"jsonrpc":"2.0","id":"tw-0","result":{"action":"accept","content":{"approve":true}}})");
    json forwarded = One(out.to_server);
    CHECK(forwarded["id"] == 5);
    CHECK(forwarded["params"]["arguments"] == args);
    CHECK(out.to_client.empty());
    CHECK(h.proxy.session().history().size() == 1);
  }
  SECTION("decline, cancel, approve: false or an error deny it") {
    for (
        const char* reply :
        {R"({"jsonrpc":"2.0","id":"tw-0","result":{"action":"decline"}})",
         R"({"jsonrpc":"2.0","id":"tw-0","result":{"action":"cancel"}})",
         R"({"jsonrpc":"2.0","id":"tw-0","result":{"action":"accept","content":{"approve":false}}})",
         R"({"jsonrpc":"2.0","id":"tw-0","result":{"action":"accept","content":{"approve":"true"}}})",
         R"({"jsonrpc":"2.0","id":"tw-0","error":{"code":-1,"message":"no"}})"}) {
      Harness again;
      again.Handshake(true);
      again.Call(5, "write_file", args);
      out = again.proxy.FromClient(reply);
      CHECK(out.to_server.empty());
      CHECK(Refused(One(out.to_client), 5, "Writing a secret needs approval"));
      CHECK(again.proxy.session().history().empty());
      CHECK(again.proxy.pending() == 0);
    }
  }
  SECTION("a cancelled call is forgotten, and the approval that follows goes nowhere") {
    out = h.proxy.FromClient(
        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}})");
    CHECK(out.to_server.empty());
    CHECK(h.proxy.pending() == 0);
    out = h.proxy.FromClient(
        R"({"jsonrpc":"2.0","id":"tw-0","result":{"action":"accept","content":{"approve":true}}})");
    CHECK(json::parse(out.to_server.at(0))["id"] == "tw-0");  // not ours any more: passes on
    CHECK(h.proxy.session().history().empty());
  }
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

TEST_CASE("malformed lines from the server are dropped and reported") {
  Harness h;
  h.Call(1, "read_file", {{"path", "/data/a"}});
  ProxyOutput out = h.proxy.FromServer("this is not json");
  CHECK(out.to_client.empty());
  CHECK(h.reports.back().find("not JSON") != std::string::npos);
  CHECK(h.proxy.pending() == 1);
  h.proxy.ServerLineTooLong(kMaxMcpMessageBytes + 1);
  CHECK(h.reports.back().find("kMaxMcpMessageBytes") != std::string::npos);
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
  h.Call(3, "write_file", {{"path", "/data/out/secret"}, {"content", "x"}});
  h.proxy.FromClient(
      R"({"jsonrpc":"2.0","id":"tw-0","result":{"action":"accept","content":{"approve":true}}})");
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
