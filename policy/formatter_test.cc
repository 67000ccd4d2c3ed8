#include "policy/formatter.h"

#include <dirent.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "policy/parser.h"

namespace toolwarden {
namespace {

// An S-expression of the AST without positions: equal dumps mean equal meaning.
std::string Dump(const Expr& e) {
  std::string out = "(" + std::to_string(static_cast<int>(e.kind)) + " " + OpSpelling(e.op) + " " +
                    e.name + " " + e.literal.dump();
  for (const auto& c : e.children) out += " " + Dump(*c);
  return out + ")";
}

std::string Dump(const Rule& r) {
  std::string out = r.effect == Effect::kAllow ? "allow" : "forbid";
  for (const Target& t : r.targets) out += " " + t.text;
  if (r.condition) out += " when " + Dump(*r.condition);
  if (r.priority) out += " priority " + std::to_string(*r.priority);
  if (r.fallback) {
    out += " fallback " + std::to_string(static_cast<int>(r.fallback->kind)) + " " +
           r.fallback->message.value_or("<none>");
  }
  if (r.has_update) out += " update";
  for (const Rule& u : r.updates) out += " {" + Dump(u) + "}";
  return out;
}

std::string Dump(const PolicyAst& ast) {
  std::string out;
  for (const Item& item : ast.items) {
    out += std::to_string(static_cast<int>(item.kind)) + " " + item.name + " " + item.path;
    for (const Target& t : item.trust) out += " " + t.text;
    if (item.value) out += " " + Dump(*item.value);
    if (item.kind == ItemKind::kDefault) {
      out += " " + std::to_string(static_cast<int>(item.fallback.kind)) +
             item.fallback.message.value_or("");
    }
    if (item.kind == ItemKind::kRule) out += " " + Dump(item.rule);
    out += "\n";
  }
  for (const Comment& c : ast.comments) out += c.text + "\n";
  return out;
}

std::string Fmt(const std::string& text) {
  Source source("f.policy", text);
  ParseResult parsed = Parse(source);
  INFO(FormatDiagnostics(source, parsed.diagnostics));
  REQUIRE_FALSE(parsed.diagnostics.HasErrors());
  return Format(parsed.ast, source);
}

// Formatting keeps the meaning (same AST, same comments) and is idempotent.
void CheckRoundTrip(const std::string& name, const std::string& text) {
  INFO(name);
  Source source(name, text);
  ParseResult original = Parse(source);
  REQUIRE_FALSE(original.diagnostics.HasErrors());
  std::string once = Format(original.ast, source);
  Source formatted_source(name, once);
  ParseResult reparsed = Parse(formatted_source);
  INFO(once);
  REQUIRE_FALSE(reparsed.diagnostics.HasErrors());
  CHECK(Dump(reparsed.ast) == Dump(original.ast));
  CHECK(Format(reparsed.ast, formatted_source) == once);
}

TEST_CASE("canonical spelling and minimal parentheses") {
  CHECK(Fmt("allow   t when (x==1)and(y or z);") == "allow t when x == 1 and (y or z);\n");
  CHECK(Fmt("allow t when not (a and b);") == "allow t when not (a and b);\n");
  CHECK(Fmt("allow t when (not a) and b;") == "allow t when not a and b;\n");
  CHECK(Fmt("allow t when a - (b - c) == (a - b) - c;") ==
        "allow t when a - (b - c) == a - b - c;\n");
  CHECK(Fmt("allow t when -(-x) < - 5;") == "allow t when --x < -5;\n");
  CHECK(Fmt("allow t when (x from query) and (y.z[0][\"k\"] in [1,2,]);") ==
        "allow t when x from query and y.z[0][\"k\"] in [1, 2];\n");
  CHECK(Fmt("allow t when x matches r\"a\\d\" or x matches \"a\\\\d\";") ==
        "allow t when x matches r\"a\\d\" or x matches \"a\\\\d\";\n");
  CHECK(Fmt("allow \"get_*\", \"plain\", *, \"when\";") ==
        "allow \"get_*\", plain, *, \"when\";\n");
  CHECK(Fmt("forbid t fallback ask;") == "forbid t fallback ask;\n");
  CHECK(Fmt("let x=1.5e3;") == "let x = 1500.0;\n");
}

TEST_CASE("long rules break before their clauses; update blocks indent") {
  std::string long_condition(90, 'x');
  CHECK(Fmt("forbid t when " + long_condition + " priority 1 fallback block \"m\";") ==
        "forbid t\n  when " + long_condition + "\n  priority 1\n  fallback block \"m\";\n");
  CHECK(Fmt("allow a update { forbid b; allow c update {}; };") ==
        "allow a update {\n  forbid b;\n  allow c update {};\n};\n");
}

TEST_CASE("comments and blank lines are kept") {
  CHECK(Fmt("# head\n\n\n\nallow a; # trailing\n# before b\nallow b\n  # inside\n  when x;\n# "
            "end\n") ==
        "# head\n\nallow a;  # trailing\n# before b\n# inside\nallow b when x;\n# end\n");
}

TEST_CASE("round trip: examples, golden files and tricky text") {
  CheckRoundTrip(
      "tricky",
      "allow t when not not x and -(1) * -2 % 3 >= 0 or [] == [[]] and \"é\" in [\"\\u00e9\"];");
  const std::string dirs[] = {std::string(TOOLWARDEN_SOURCE_DIR) + "/policies/examples",
                              std::string(TOOLWARDEN_SOURCE_DIR) + "/tests/golden"};
  int files = 0;
  for (const std::string& dir : dirs) {
    DIR* d = opendir(dir.c_str());
    REQUIRE(d != nullptr);
    while (dirent* entry = readdir(d)) {
      std::string name = entry->d_name;
      if (name.size() < 7 || name.substr(name.size() - 7) != ".policy") continue;
      std::ifstream in(dir + "/" + name);
      std::stringstream text;
      text << in.rdbuf();
      Source source(name, text.str());
      if (Parse(source).diagnostics.HasErrors()) continue;  // golden files with syntax errors
      CheckRoundTrip(name, text.str());
      ++files;
    }
    closedir(d);
  }
  CHECK(files >= 2);
}

}  // namespace
}  // namespace toolwarden
