// ExtendProgram: a compiled policy plus appended text -> a new compiled policy
// (plan.h). Session::AddRules is its one user.
#include <algorithm>

#include "interpreter/plan.h"
#include "interpreter/program.h"
#include "policy/parser.h"

namespace toolwarden::internal {

namespace {

// Moves a position in the combined text into the appended text, or to the
// appended text's start when it lies in the policy before it.
Position IntoSegment(const Position& p, const Segment& segment) {
  if (p.line < segment.first_line || p.offset < segment.first_offset) return Position{1, 1, 0};
  return Position{p.line - segment.first_line + 1, p.column, p.offset - segment.first_offset};
}

}  // namespace

Extension ExtendProgram(const Program& base, std::string name, std::string text) {
  Extension out;
  const Plan& plan = base.plan();
  out.source = Source(name, text);
  if (plan.checked == nullptr) {
    out.status = FailedPreconditionError("this policy cannot be extended");
    return out;
  }
  const CheckedPolicy& checked = *plan.checked;
  std::string combined = checked.source_text;
  if (!combined.empty() && combined.back() != '\n') combined += '\n';
  Segment segment;
  segment.name = std::move(name);
  segment.first_offset = combined.size();
  segment.first_line = 1 + static_cast<int>(std::count(combined.begin(), combined.end(), '\n'));
  combined += text;

  Source source(checked.source_name, std::move(combined));
  ParseResult parsed = Parse(source);
  Diagnostics found = parsed.diagnostics;
  std::shared_ptr<const CheckedPolicy> policy;
  if (!found.HasErrors()) {
    for (const Item& item : parsed.ast.items) {
      if (item.position.offset < segment.first_offset) continue;
      if (item.kind != ItemKind::kRule) {
        // A `let` would be a constant for the file's rules too, where it could
        // hide an argument of the same name and change what they decide.
        found.Error(item.position, "only rules can be added to a session");
      }
    }
    if (!found.HasErrors()) {
      CheckResult result =
          Check(std::move(parsed.ast), source, checked.catalog ? &*checked.catalog : nullptr);
      found.Append(result.diagnostics);
      policy = std::move(result.policy);
    }
  }
  // Keep what concerns the appended text: the policy's own warnings were
  // there before, and its errors (none: it compiled) cannot be new.
  for (const Diagnostic& d : found.Sorted()) {
    bool in_text = d.position.offset >= segment.first_offset;
    if (d.severity == Severity::kError) {
      out.diagnostics.Error(IntoSegment(d.position, segment),
                            in_text ? d.message : "in the policy: " + d.message);
    } else if (in_text) {
      out.diagnostics.Warning(IntoSegment(d.position, segment), d.message);
    }
  }
  if (found.HasErrors() || policy == nullptr) {
    out.status = InvalidArgumentError("the added text has errors");
    return out;
  }
  std::vector<Segment> segments = plan.segments;
  segments.push_back(std::move(segment));
  StatusOr<std::shared_ptr<const Program>> program =
      CompileSegments(std::move(policy), std::move(segments));
  if (!program.ok()) {
    out.status = program.status();
    return out;
  }
  out.program = *program;
  return out;
}

}  // namespace toolwarden::internal
