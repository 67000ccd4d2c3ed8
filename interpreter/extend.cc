// ExtendProgram: a compiled policy plus appended text -> a new compiled policy
// (plan.h). Session::AddRules is its one user.
#include <algorithm>

#include "interpreter/plan.h"
#include "interpreter/program.h"
#include "policy/parser.h"

namespace toolwarden::internal {

namespace {

constexpr std::string_view kShadowed = "this rule can never decide";

// Moves a position in the combined text into the appended text, or to the
// appended text's start when it lies in the policy before it.
Position IntoSegment(const Position& p, const Segment& segment) {
  if (p.line < segment.first_line || p.offset < segment.first_offset) return Position{1, 1, 0};
  return Position{p.line - segment.first_line + 1, p.column, p.offset - segment.first_offset};
}

}  // namespace

std::string_view SegmentText(const Plan& plan, size_t i) {
  std::string_view all = plan.source_text;
  const size_t begin = std::min(plan.segments[i].first_offset, all.size());
  const size_t end = i + 1 < plan.segments.size() ? plan.segments[i + 1].first_offset : all.size();
  return all.substr(begin, std::max(end, begin) - begin);
}

Extension ExtendProgram(const Program& base, std::string name, std::string text,
                        const ExtendOptions& options) {
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
  segment.drafted = options.drafted;
  segment.first_offset = combined.size();
  segment.first_line = 1 + static_cast<int>(std::count(combined.begin(), combined.end(), '\n'));
  combined += text;

  Source source(checked.source_name, std::move(combined));
  ParseResult parsed = Parse(source);
  Diagnostics found = parsed.diagnostics;
  std::shared_ptr<const CheckedPolicy> policy;
  if (!found.HasErrors()) {
    for (Item& item : parsed.ast.items) {
      if (item.position.offset < segment.first_offset) continue;
      if (item.kind != ItemKind::kRule) {
        // A `let` would be a constant for the file's rules too, where it could
        // hide an argument of the same name and change what they decide.
        found.Error(item.position, "only rules can be added to a session");
        continue;
      }
      if (!options.drafted) continue;
      // Drafted rules only allow, and only after every rule a person wrote, so
      // no reply of a model can get past a `forbid` of the policy.
      Rule& rule = item.rule;
      if (rule.effect != Effect::kAllow) {
        found.Error(item.position, "drafted rules can only be `allow` rules");
      } else if (rule.has_update) {
        found.Error(item.position, "drafted rules cannot have `update` blocks");
      } else if (!rule.priority) {
        // Written out, because the text is parsed again whenever the session
        // grows, and an implicit priority would then be the default, 10.
        found.Error(item.position, "drafted rules state their priority: add `priority " +
                                       std::to_string(options.floor) + "`");
      } else if (*rule.priority < options.floor) {
        found.Error(rule.priority_position, "drafted rules sit at priority " +
                                                std::to_string(options.floor) +
                                                " or above, after every rule of the policy");
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
    } else if (in_text && !(options.drafted && d.message.rfind(kShadowed, 0) == 0)) {
      // A drafted rule shadowed by an earlier one changes nothing (drafted
      // rules only allow, after every other rule); the earlier one may well be
      // in a drafted text this one replaces, which no longer decides.
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
