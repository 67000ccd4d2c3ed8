#include "adapters/mcp/proxy.h"

#include <cctype>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <utility>

#include "policy/checker.h"
#include "policy/diagnostic.h"
#include "policy/json_limits.h"
#include "policy/parser.h"
#include "policy/tool_catalog.h"

namespace toolwarden::mcp {
namespace {

using nlohmann::json;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string_view Method(const json& message) {
  auto it = message.find("method");
  if (it == message.end() || !it->is_string()) return {};
  return it->get_ref<const std::string&>();
}

// A request or notification has a method; a request also has an id.
bool IsRequest(const json& message) {
  return message.is_object() && !Method(message).empty() && message.contains("id");
}

// JSON-RPC ids are strings or numbers (MCP: strings or integers).
bool ValidId(const json& id) { return id.is_string() || id.is_number(); }

// Numbers by value, so an id the server echoes as 1 matches the client's 1.0.
std::string IdText(const json& id) {
  if (!id.is_number()) return Dump(id);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", id.get<double>());
  return buffer;
}

std::string IdKey(const json& message) { return IdText(message.at("id")); }

// The JSON value text[begin, end), trimmed, when it is a valid id.
std::optional<json> IdValue(std::string_view text, size_t begin, size_t end) {
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  StatusOr<json> value = ParseJson(text.substr(begin, end - begin), {1024, 1});
  if (!value.ok() || !ValidId(*value)) return std::nullopt;
  return *value;
}

// What the visible end of a message too long to parse shows at its top level.
struct Glimpse {
  std::optional<json> id;
  bool method = false;  // a request or notification, not an answer
  bool answer = false;  // a `result` or `error` member
  void Key(std::string_view key) {
    if (key == "\"method\"") method = true;
    if (key == "\"result\"" || key == "\"error\"") answer = true;
  }
};

// The top-level members of a JSON object whose first bytes are `first`, read
// forwards as far as they go.
Glimpse FromFirst(std::string_view first) {
  Glimpse seen;
  size_t i = first.find_first_not_of(" \t\r");
  if (i == std::string_view::npos || first[i] != '{') return seen;
  int depth = 0;
  bool key = false;  // the next string at depth 1 is a key
  for (; i < first.size(); ++i) {
    const char c = first[i];
    if (c == '"') {
      size_t end = i + 1;
      while (end < first.size() && first[end] != '"') end += first[end] == '\\' ? 2 : 1;
      if (end >= first.size()) break;  // the window ends inside a string
      const std::string_view text = first.substr(i, end + 1 - i);
      if (depth == 1 && key) seen.Key(text);
      if (depth == 1 && key && text == "\"id\"") {
        size_t colon = first.find_first_not_of(" \t\r", end + 1);
        if (colon == std::string_view::npos || first[colon] != ':') break;
        size_t value_end = first.find_first_of(",}", colon + 1);
        // A string id may hold `,` or `}`: then it ends at its closing quote.
        size_t start = first.find_first_not_of(" \t\r", colon + 1);
        if (start != std::string_view::npos && first[start] == '"') {
          value_end = start + 1;
          while (value_end < first.size() && first[value_end] != '"')
            value_end += first[value_end] == '\\' ? 2 : 1;
          if (value_end >= first.size()) break;
          ++value_end;
        }
        if (value_end == std::string_view::npos) break;
        seen.id = IdValue(first, colon + 1, value_end);
        end = value_end - 1;  // go on after the id, for `method`
      }
      key = false;
      i = end;
    } else if (c == '{' || c == '[') {
      ++depth;
      key = depth == 1;
    } else if (c == '}' || c == ']') {
      if (--depth <= 0) return Glimpse();  // more after the object: not one message
    } else if (c == ',') {
      key = depth == 1;
    }
  }
  return seen;
}

// Whether the quote at `i` ends or starts a string: not escaped by an odd run
// of backslashes (false when the run reaches the start of `text`).
bool RealQuote(std::string_view text, size_t i, bool* known) {
  size_t backslashes = 0;
  while (backslashes < i && text[i - 1 - backslashes] == '\\') ++backslashes;
  *known = backslashes < i;
  return backslashes % 2 == 0;
}

// The top-level members of a JSON object whose last bytes are `last`, read
// backwards as far as they go. Outside strings at the end, a quote that is
// not escaped toggles in and out of a string.
Glimpse FromLast(std::string_view last) {
  Glimpse seen;
  size_t i = last.find_last_not_of(" \t\r");
  if (i == std::string_view::npos || last[i] != '}') return seen;
  int depth = 1;
  size_t value_end = i;  // where the value of the member being read ends
  while (i-- > 0) {
    const char c = last[i];
    if (c == '"') {
      bool known = true;
      if (!RealQuote(last, i, &known) || !known) {
        if (!known) break;
        continue;
      }
      size_t start = i;  // find the opening quote
      while (true) {
        if (start == 0) return seen;
        start = last.rfind('"', start - 1);
        if (start == std::string_view::npos) return seen;
        if (RealQuote(last, start, &known)) break;
        if (!known) return seen;
      }
      if (depth == 1) {
        size_t after = last.find_first_not_of(" \t\r", i + 1);
        size_t before =
            start == 0 ? std::string_view::npos : last.find_last_not_of(" \t\r", start - 1);
        const bool is_key = after != std::string_view::npos && last[after] == ':' &&
                            before != std::string_view::npos &&
                            (last[before] == ',' || last[before] == '{');
        const std::string_view text = last.substr(start, i + 1 - start);
        if (is_key) seen.Key(text);
        if (is_key && text == "\"id\"") seen.id = IdValue(last, after + 1, value_end);
      }
      i = start;
    } else if (c == '}' || c == ']') {
      ++depth;
    } else if (c == '{' || c == '[') {
      if (--depth == 0) break;
    } else if (c == ',' && depth == 1) {
      value_end = i;
    }
  }
  return seen;
}

const json* Member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// The diagnostics of `source` checked with `catalog` (null: without one).
Diagnostics CheckSource(const Source& source, const ToolCatalog* catalog) {
  ParseResult parsed = Parse(source);
  if (parsed.diagnostics.HasErrors()) return parsed.diagnostics;
  Diagnostics all = parsed.diagnostics;
  all.Append(Check(std::move(parsed.ast), source, catalog).diagnostics);
  return all;
}

auto DiagnosticKey(const Diagnostic& d) {
  return std::make_tuple(d.position.line, d.position.column, d.severity, d.message);
}

// `text` with control characters escaped as \xNN (but newlines, with
// `keep_newlines`), so nothing in it can move the operator's cursor.
std::string Escaped(std::string_view text, bool keep_newlines) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && !(keep_newlines && c == '\n')) || u == 0x7f) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\x%02x", u);
      out += buffer;
    } else {
      out += c;
    }
  }
  return out;
}

// `text` cut to `max` bytes, all control characters escaped, for names and
// values from the client or server in reports and approval requests.
std::string Printable(std::string_view text, size_t max = 200) {
  return Escaped(Abbreviate(text, max), /*keep_newlines=*/false);
}

// An empty line, or one of only spaces, tabs and carriage returns.
bool Blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

std::string ErrorResponse(const json& id, int code, const std::string& message) {
  return Dump({{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}});
}

std::string RandomHex() {
  std::random_device device;
  std::string out;
  for (int i = 0; i < 4; ++i) {
    char buffer[9];
    std::snprintf(buffer, sizeof buffer, "%08x", static_cast<unsigned>(device()));
    out += buffer;
  }
  return out;
}

Proxy::Proxy(ProxyOptions options) : options_(std::move(options)) {
  if (options_.id_prefix.empty()) options_.id_prefix = "toolwarden-" + RandomHex() + "-";
  session_.emplace(options_.program, options_.query.value_or(""));
  baseline_ = CheckSource(options_.policy_source, nullptr);
}

// Multi-line diagnostics keep their newlines; nothing else can move the cursor.
void Proxy::Report(const std::string& line) const {
  if (options_.report) options_.report(Escaped(line, /*keep_newlines=*/true));
}

std::string Proxy::NextId() { return options_.id_prefix + std::to_string(next_id_++); }

ProxyOutput Proxy::FromClient(std::string_view line) {
  ProxyOutput out;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // a CRLF line ending
  if (Blank(line) || closed_) return out;
  StatusOr<json> parsed = ParseJson(line, {kMaxMcpMessageBytes, kMaxJsonDepth});
  if (!parsed.ok()) {
    bool too_deep = parsed.status().code() == StatusCode::kResourceExhausted;
    Report("rejected a message from the client: " + parsed.status().message());
    out.to_client.push_back(ErrorResponse(
        nullptr, too_deep ? kInvalidRequest : kParseError,
        (too_deep ? "Invalid Request: " : "Parse error: ") + parsed.status().message()));
    return out;
  }
  return FromClientMessage(*parsed);
}

ProxyOutput Proxy::FromClientMessage(const json& message) {
  ProxyOutput out;
  if (closed_) return out;
  if (message.is_array()) {
    // JSON-RPC batch elements are objects; anything else (a nested batch, say)
    // might be read as a batch of its own by a lenient server.
    bool objects = !message.empty();
    bool split = false;
    size_t requests = 0;
    for (const json& element : message) {
      objects = objects && element.is_object();
      split = split || Intercepted(element);
      requests += IsRequest(element) ? 1 : 0;
    }
    if (!objects) {
      out.to_client.push_back(ErrorResponse(
          nullptr, kInvalidRequest, "Invalid Request: a batch is a non-empty array of objects"));
      return out;
    }
    if (split || pending() + requests > kMaxPendingRequests) {  // each as if sent alone
      for (const json& element : message) Client(element, &out);
      return out;
    }
    for (const json& element : message) {
      if (IsRequest(element) && ValidId(element["id"])) {
        forwarded_[IdKey(element)] = Forwarded{element["id"], std::string(Method(element)), {}, {}};
      }
    }
    out.to_server.push_back(Dump(message));
    return out;
  }
  if (!message.is_object()) {
    out.to_client.push_back(ErrorResponse(nullptr, kInvalidRequest,
                                          "Invalid Request: a message is a JSON object or array"));
    return out;
  }
  Client(message, &out);
  return out;
}

bool Proxy::Intercepted(const json& message) const {
  if (!message.is_object()) return false;
  std::string_view method = Method(message);
  if (method == "tools/call" || method == kQueryNotification) return true;
  if (!method.empty()) return false;
  const json* id = Member(message, "id");
  return id != nullptr && id->is_string() && asks_.count(id->get<std::string>()) > 0;
}

void Proxy::Client(const json& message, ProxyOutput* out) {
  if (closed_) return;
  std::string_view method = Method(message);
  if (method.empty()) {
    ClientResponse(message, out);
    return;
  }
  const bool request = message.contains("id");
  if (method == "tools/call") {
    if (request) {
      Call(message, out);
    } else {
      Report("dropped a tools/call sent as a notification (no id): it cannot be answered");
    }
    return;
  }
  if (method == kQueryNotification && !request) {
    const json* params = Member(message, "params");
    const json* query = params ? Member(*params, "query") : nullptr;
    if (query == nullptr || !query->is_string()) {
      Report("ignored " + std::string(kQueryNotification) + ": params.query is not a string");
    } else if (options_.query) {
      Report("ignored " + std::string(kQueryNotification) + ": the query was set by --query");
    } else if (decided_any_) {
      Report("ignored " + std::string(kQueryNotification) +
             ": a tools/call was already decided under the previous query");
    } else {
      session_.emplace(options_.program, query->get<std::string>());
    }
    return;
  }
  if (method == "initialize" && request) {
    const json* params = Member(message, "params");
    const json* capabilities = params ? Member(*params, "capabilities") : nullptr;
    const json* elicitation = capabilities ? Member(*capabilities, "elicitation") : nullptr;
    client_elicits_ = options_.elicitation && elicitation != nullptr && elicitation->is_object();
  }
  if (method == "notifications/cancelled" && !request) {
    // A call still waiting for approval never reached the server: forget it.
    const json* params = Member(message, "params");
    const json* target = params ? Member(*params, "requestId") : nullptr;
    if (target != nullptr) {
      for (auto it = asks_.begin(); it != asks_.end(); ++it) {
        if (it->second.id == *target) {  // and close the person's dialog
          out->to_client.push_back(Dump(
              {{"jsonrpc", "2.0"},
               {"method", "notifications/cancelled"},
               {"params",
                {{"requestId", it->first}, {"reason", "the call it asked about was cancelled"}}}}));
          asks_.erase(it);
          return;
        }
      }
    }
  }
  Forward(message, out);
  if (method == "notifications/initialized" && !request) {
    initialized_ = true;
    if (server_has_tools_) RequestTools(out);
  }
}

// Client messages go to the server as the JSON the proxy read, never as the
// client's bytes: a server must not read into them anything the proxy did not
// see (a second message after a lone "\r", the first of two duplicate keys).
void Proxy::Forward(const json& message, ProxyOutput* out) {
  if (IsRequest(message) && ValidId(message["id"])) {
    if (pending() >= kMaxPendingRequests) {
      out->to_client.push_back(
          ErrorResponse(message["id"], kInternalError,
                        "toolwarden: " + std::to_string(kMaxPendingRequests) +
                            " requests are already waiting for an answer (kMaxPendingRequests)"));
      return;
    }
    forwarded_[IdKey(message)] = Forwarded{message["id"], std::string(Method(message)), {}, {}};
  }
  out->to_server.push_back(Dump(message));
}

void Proxy::Call(const json& message, ProxyOutput* out) {
  const json& id = message["id"];
  if (!ValidId(id)) {
    out->to_client.push_back(ErrorResponse(nullptr, kInvalidRequest,
                                           "Invalid Request: the id is not a string or number"));
    return;
  }
  if (pending() >= kMaxPendingRequests) {
    out->to_client.push_back(
        ErrorResponse(id, kInternalError,
                      "toolwarden: " + std::to_string(kMaxPendingRequests) +
                          " requests are already waiting for an answer (kMaxPendingRequests)"));
    return;
  }
  const json* params = Member(message, "params");
  const json* name = params ? Member(*params, "name") : nullptr;
  const json* arguments = params ? Member(*params, "arguments") : nullptr;
  if (name == nullptr || !name->is_string()) {
    out->to_client.push_back(
        ErrorResponse(id, kInvalidParams, "Invalid params: tools/call needs a string params.name"));
    return;
  }
  if (arguments != nullptr && !arguments->is_object()) {
    out->to_client.push_back(ErrorResponse(
        id, kInvalidParams, "Invalid params: tools/call params.arguments must be an object"));
    return;
  }
  const std::string& tool = name->get_ref<const std::string&>();
  const json args = arguments ? *arguments : json::object();
  decided_any_ = true;
  bool logged = true;
  Decision decision = session_->Decide(tool, args, [&](const Decision& d) {
    logged = Log("decide", args, d);
    return logged;
  });
  if (!logged) {
    out->to_client.push_back(
        ErrorResponse(id, kInternalError,
                      "toolwarden: the decision log cannot be written; the call was not run"));
    return;
  }
  switch (decision.outcome) {
    case Outcome::kAllow:
      Allowed(message, decision, out);
      return;
    case Outcome::kAsk:
      if (client_elicits_) {
        // Unguessable, and unlike any id the server sees (NextId's): a server
        // cannot send the client a question of its own under this id and
        // have the answer taken for the person's approval of this call.
        std::string ask_id = "toolwarden-ask-" + RandomHex();
        std::string text = decision.message + "\n\nTool: " + Printable(tool) + "\nArguments:";
        size_t shown = 0;
        for (const auto& [key, value] : args.items()) {
          if (shown++ == kMaxQuotedArgs) {
            text += "\n  (" + std::to_string(args.size() - kMaxQuotedArgs) + " more not shown)";
            break;
          }
          std::string rendered = Dump(value);
          text += "\n  " + Printable(key, 100) + ": " + Printable(rendered, kMaxQuotedValueBytes);
          if (rendered.size() > kMaxQuotedValueBytes) {
            text += " (" + std::to_string(rendered.size()) + " bytes, shortened)";
          }
        }
        if (args.empty()) text += " none";
        json schema = {
            {"type", "object"},
            {"properties",
             {{"approve",
               {{"type", "boolean"},
                {"title", "Allow this call"},
                {"description", "Allow " + Printable(tool) + " to run with these arguments"}}}}},
            {"required", {"approve"}}};
        out->to_client.push_back(
            Dump({{"jsonrpc", "2.0"},
                  {"id", ask_id},
                  {"method", "elicitation/create"},
                  {"params", {{"message", text}, {"requestedSchema", schema}}}}));
        asks_[ask_id] = Ask{id, message, tool, args};
        Report("asking the client to approve " + Printable(tool) + " (" +
               Printable(ReasonOf(decision), 2000) + ")");
        return;
      }
      Refuse(id, decision, out);
      return;
    case Outcome::kDeny:
    case Outcome::kTerminate:
      Refuse(id, decision, out);
      return;
  }
}

void Proxy::Allowed(const json& message, const Decision& decision, ProxyOutput* out) {
  forwarded_[IdKey(message)] = Forwarded{message["id"], "tools/call", decision.call, decision.tool};
  out->to_server.push_back(Dump(message));
}

void Proxy::Refuse(const json& id, const Decision& decision, ProxyOutput* out) {
  json result = {{"content", {{{"type", "text"}, {"text", decision.message}}}}, {"isError", true}};
  out->to_client.push_back(Dump({{"jsonrpc", "2.0"}, {"id", id}, {"result", result}}));
  Report(std::string(decision.outcome == Outcome::kTerminate ? "terminated on " : "denied ") +
         Printable(decision.tool) + ": " + Printable(ReasonOf(decision), 2000));
  if (decision.outcome != Outcome::kTerminate) return;
  // The session ends: calls still waiting for approval are denied with it.
  for (auto& [ask_id, ask] : asks_) {
    out->to_client.push_back(Dump(
        {{"jsonrpc", "2.0"},
         {"id", ask.id},
         {"result",
          {{"content", {{{"type", "text"}, {"text", decision.message}}}}, {"isError", true}}}}));
  }
  asks_.clear();
  closed_ = true;
  out->close = true;
}

void Proxy::ClientResponse(const json& message, ProxyOutput* out) {
  const json* id = Member(message, "id");
  auto it = id != nullptr && id->is_string() ? asks_.find(id->get<std::string>()) : asks_.end();
  if (it == asks_.end()) {
    Forward(message, out);  // an answer to the server's own request
    return;
  }
  Ask ask = std::move(it->second);
  asks_.erase(it);
  const json* result = Member(message, "result");
  const json* action = result ? Member(*result, "action") : nullptr;
  const json* content = result ? Member(*result, "content") : nullptr;
  const json* approve = content ? Member(*content, "approve") : nullptr;
  const bool approved = action != nullptr && *action == "accept" && approve != nullptr &&
                        approve->is_boolean() && approve->get<bool>();
  bool logged = true;
  auto gate = [&](const char* kind) {
    return [&, kind](const Decision& d) {
      logged = Log(kind, ask.args, d);
      return logged;
    };
  };
  Decision decision = approved ? session_->Approve(ask.tool, ask.args, gate("approve"))
                               : session_->Check(ask.tool, ask.args);
  if (!approved) {
    Report("the client did not approve " + Printable(ask.tool));
    logged = Log("decline", ask.args, decision);
  }
  if (!logged) {
    out->to_client.push_back(
        ErrorResponse(ask.id, kInternalError,
                      "toolwarden: the decision log cannot be written; the call was not run"));
    return;
  }
  if (approved && decision.allowed()) {
    Allowed(ask.message, decision, out);
    return;
  }
  if (decision.allowed()) {  // declined, though the policy now allows it: still not run
    decision.outcome = Outcome::kDeny;
    decision.message = "The call was not approved.";
  }
  Refuse(ask.id, decision, out);
}

bool Proxy::Log(std::string_view kind, const json& args, const Decision& decision) {
  if (options_.log == nullptr) return true;
  Status status = options_.log->Append(
      DecisionLogEntry(kind, options_.session_name, args, DecisionToJson(decision)));
  if (!status.ok()) Report("decision log: " + status.message());
  return status.ok();
}

ProxyOutput Proxy::FromServer(std::string_view line) {
  ProxyOutput out;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (Blank(line)) return out;
  StatusOr<json> parsed = ParseJson(line, {kMaxMcpMessageBytes, kMaxJsonDepth});
  if (!parsed.ok()) {
    // Nothing from the server needs a decision, and the client's parser may
    // take what nlohmann does not (a lone surrogate escape, deeper nesting):
    // pass it on, so an answer in it is not lost.
    Report("passed on a line from the server that toolwarden cannot read as JSON (" +
           std::to_string(line.size()) + " bytes): " + parsed.status().message());
    out.to_client.emplace_back(line);
    return out;
  }
  const json& message = *parsed;
  if (message.is_array()) {
    bool ours = false;
    for (const json& element : message) {
      const json* id = Member(element, "id");
      ours = ours || (Method(element).empty() && id != nullptr && id->is_string() &&
                      lists_.count(id->get<std::string>()) > 0);
    }
    if (ours) {
      for (const json& element : message) Server(element, Dump(element), &out);
      return out;
    }
    for (const json& element : message) Server(element, {}, &out);
    out.to_client.emplace_back(line);
    return out;
  }
  Server(message, line, &out);
  return out;
}

// `raw` empty: observe only (the caller forwards the whole batch).
void Proxy::Server(const json& message, std::string_view raw, ProxyOutput* out) {
  const bool forward = !raw.empty();
  if (!message.is_object()) {
    if (forward) out->to_client.emplace_back(raw);
    return;
  }
  std::string_view method = Method(message);
  if (method.empty()) {
    const json* id = Member(message, "id");
    if (id != nullptr && id->is_string()) {
      auto list = lists_.find(id->get<std::string>());
      if (list != lists_.end()) {
        ToolList pages = std::move(list->second);
        lists_.erase(list);
        ToolsPage(std::move(pages), message, out);
        return;
      }
    }
    if (id != nullptr) {
      auto it = forwarded_.find(IdText(*id));
      if (it != forwarded_.end()) {
        const json* result = Member(message, "result");
        if (it->second.method == "initialize" && result != nullptr) {
          const json* capabilities = Member(*result, "capabilities");
          const json* tools = capabilities ? Member(*capabilities, "tools") : nullptr;
          server_has_tools_ = tools != nullptr && tools->is_object();
          // A client that said `initialized` before this answer came.
          if (initialized_ && server_has_tools_) RequestTools(out);
        }
        if (it->second.call && result != nullptr && options_.program->trusts(it->second.tool)) {
          const size_t bytes = Dump(*result).size();
          if (trusted_bytes_ + bytes > kMaxTrustedResultBytes) {
            Report("did not keep a result of " + Printable(it->second.tool) +
                   " for `from trusted`: " + "over " + std::to_string(kMaxTrustedResultBytes) +
                   " bytes of results (kMaxTrustedResultBytes)");
          } else if (Status status = session_->AttachResult(*it->second.call, *result);
                     !status.ok()) {
            Report("cannot record a result of " + Printable(it->second.tool) + ": " +
                   status.message());
          } else {
            trusted_bytes_ += bytes;
          }
        }
        forwarded_.erase(it);
      }
    }
  }
  if (forward) out->to_client.emplace_back(raw);
  if (method == "notifications/tools/list_changed" && initialized_ && server_has_tools_) {
    RequestTools(out);
  }
}

// One page of the proxy's own tools/list: ask for the next, or check them all.
void Proxy::ToolsPage(ToolList pages, const json& message, ProxyOutput* out) {
  const json* result = Member(message, "result");
  const json* tools = result ? Member(*result, "tools") : nullptr;
  if (tools == nullptr || !tools->is_array()) {
    const json* error = Member(message, "error");
    Report("cannot check the policy against the server's tools: tools/list answered " +
           Printable(Dump(error ? *error : message), 500));
    CheckAgain(out);
    return;
  }
  for (const json& tool : *tools) pages.tools.push_back(tool);
  ++pages.pages;
  const json* cursor = Member(*result, "nextCursor");
  if (cursor != nullptr && cursor->is_string()) {
    if (pages.pages < kMaxToolListPages) {
      std::string next = NextId();
      lists_[next] = std::move(pages);
      out->to_server.push_back(Dump({{"jsonrpc", "2.0"},
                                     {"id", next},
                                     {"method", "tools/list"},
                                     {"params", {{"cursor", *cursor}}}}));
      return;
    }
    Report("checked only the first " + std::to_string(kMaxToolListPages) +
           " pages of the server's tools (kMaxToolListPages)");
  }
  CheckTools(pages.tools);
  CheckAgain(out);
}

// The tools changed while a check was in flight: check them again.
void Proxy::CheckAgain(ProxyOutput* out) {
  if (!recheck_) return;
  recheck_ = false;
  RequestTools(out);
}

void Proxy::RequestTools(ProxyOutput* out) {
  if (!lists_.empty()) {  // one check at a time; the next starts when it ends
    recheck_ = true;
    return;
  }
  std::string id = NextId();
  lists_[id] = ToolList{};
  out->to_server.push_back(Dump({{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/list"}}));
}

void Proxy::CheckTools(const json& tools) {
  StatusOr<ToolCatalog> catalog = ToolCatalogFromJson(json{{"tools", tools}});
  if (!catalog.ok()) {
    Report("cannot check the policy against the server's tools: " + catalog.status().message());
    return;
  }
  std::set<decltype(DiagnosticKey(Diagnostic{}))> known;
  for (const Diagnostic& d : baseline_.Sorted()) known.insert(DiagnosticKey(d));
  Diagnostics found;
  size_t count = 0;
  for (const Diagnostic& d : CheckSource(options_.policy_source, &*catalog).Sorted()) {
    if (known.count(DiagnosticKey(d)) > 0) continue;
    ++count;
    if (d.severity == Severity::kError) {
      found.Error(d.position, d.message);
    } else {
      found.Warning(d.position, d.message);
    }
  }
  const std::string tools_text = std::to_string(catalog->tools().size()) + " tools";
  std::string text = count == 0
                         ? "the policy agrees with the server's " + tools_text
                         : "the policy and the server's " + tools_text + " disagree (" +
                               std::to_string(count) + (count == 1 ? " problem" : " problems") +
                               "; the rules decide as written):\n" +
                               FormatDiagnostics(options_.policy_source, found);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (text == last_check_) return;
  last_check_ = text;
  Report(text);
}

ProxyOutput Proxy::ClientLineTooLong(size_t bytes) {
  ProxyOutput out;
  std::string message = "a message of " + std::to_string(bytes) + " bytes is over the limit of " +
                        std::to_string(kMaxMcpMessageBytes) + " (kMaxMcpMessageBytes)";
  Report("dropped a message from the client: " + message);
  if (!closed_) {
    out.to_client.push_back(ErrorResponse(nullptr, kInvalidRequest, "Invalid Request: " + message));
  }
  return out;
}

ProxyOutput Proxy::ServerLineTooLong(size_t bytes, std::string_view first, std::string_view last) {
  ProxyOutput out;
  const std::string message = "a message of " + std::to_string(bytes) +
                              " bytes from the server: over the limit of " +
                              std::to_string(kMaxMcpMessageBytes) + " (kMaxMcpMessageBytes)";
  Report("dropped " + message);
  // An answer to a request the client waits for: the client gets an error
  // instead of waiting for ever. Its id is read from either end of the line,
  // which must be an object that shows a `result` or an `error` and no
  // `method` (the server's own requests count their ids apart).
  const Glimpse head = FromFirst(first);
  const Glimpse tail = FromLast(last);
  if (head.method || tail.method || !(head.answer || tail.answer)) return out;
  if (head.id && tail.id && *head.id != *tail.id) return out;
  const std::optional<json>& id = head.id ? head.id : tail.id;
  if (!id) return out;
  auto it = forwarded_.find(IdText(*id));
  if (it == forwarded_.end()) return out;
  out.to_client.push_back(
      ErrorResponse(it->second.id, kInternalError, "toolwarden: the answer was " + message));
  forwarded_.erase(it);
  return out;
}

ProxyOutput Proxy::Unanswered(std::string_view forwarded, const std::string& why) {
  ProxyOutput out;
  StatusOr<json> parsed = ParseJson(forwarded, {kMaxMcpMessageBytes, kMaxJsonDepth});
  if (!parsed.ok() || !IsRequest(*parsed)) return out;
  auto it = forwarded_.find(IdKey(*parsed));
  if (it == forwarded_.end()) return out;
  out.to_client.push_back(ErrorResponse(it->second.id, kInternalError, why));
  forwarded_.erase(it);
  return out;
}

ProxyOutput Proxy::ServerGone(const std::string& why) {
  ProxyOutput out;
  const std::string message = "MCP server " + why + " before answering";
  for (const auto& [key, forwarded] : forwarded_) {
    out.to_client.push_back(ErrorResponse(forwarded.id, kInternalError, message));
  }
  for (const auto& [key, ask] : asks_) {
    out.to_client.push_back(ErrorResponse(ask.id, kInternalError, message));
  }
  if (!forwarded_.empty() || !asks_.empty()) {
    const size_t n = forwarded_.size() + asks_.size();
    Report("answered " + std::to_string(n) + (n == 1 ? " waiting request" : " waiting requests") +
           " with an error: " + message);
  }
  forwarded_.clear();
  asks_.clear();
  lists_.clear();
  closed_ = true;
  return out;
}

}  // namespace toolwarden::mcp
