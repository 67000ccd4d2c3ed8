#include "interpreter/decision.h"

namespace toolwarden {

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAllow:
      return "allow";
    case Outcome::kDeny:
      return "deny";
    case Outcome::kAsk:
      return "ask";
    case Outcome::kTerminate:
      return "terminate";
  }
  return "deny";
}

const char* FallbackName(FallbackKind kind) {
  switch (kind) {
    case FallbackKind::kBlock:
      return "block";
    case FallbackKind::kAsk:
      return "ask";
    case FallbackKind::kTerminate:
      return "terminate";
  }
  return "block";
}

std::string ReasonOf(const Decision& d) {
  if (d.reason.empty() && d.outcome == Outcome::kAllow && d.rule) {
    return "allowed by " + std::string(d.rule->id);
  }
  return d.reason;
}

nlohmann::ordered_json DecisionToJson(const Decision& d) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  out["decision"] = OutcomeName(d.outcome);
  out["tool"] = d.tool;
  if (d.rule) {
    out["rule"] = {{"id", std::string(d.rule->id)},
                   {"effect", d.rule->effect == Effect::kAllow ? "allow" : "forbid"},
                   {"priority", d.rule->priority}};
  } else {
    out["rule"] = nullptr;
  }
  out["fallback"] =
      d.fallback ? nlohmann::ordered_json(FallbackName(*d.fallback)) : nlohmann::ordered_json();
  out["message"] = d.message;
  out["reason"] = ReasonOf(d);
  out["errors"] = d.errors;
  out["policy"] = std::string(d.policy);
  out["eval_ns"] = d.eval_ns;
  if (d.call) out["call"] = *d.call;
  return out;
}

}  // namespace toolwarden
