"""The decision record as a small immutable value."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

OUTCOMES = ("allow", "deny", "ask", "terminate")


@dataclasses.dataclass(frozen=True)
class Decision:
    """One decision: the JSON decision record of docs/language.md section 3, as attributes.

    ``decision`` is ``"allow"``, ``"deny"``, ``"ask"`` or ``"terminate"``; ``rule`` is
    ``{"id", "effect", "priority"}`` of the deciding rule or ``None`` for the default fallback;
    ``fallback`` is ``None`` for an allow; ``message`` is what goes back to the agent when the call does
    not run; ``call`` is the index to attach the result to (only for an allowed ``decide``); ``raw`` is
    the whole record.
    """

    decision: str
    tool: str
    rule: Optional[Dict[str, Any]] = dataclasses.field(default=None, hash=False)
    fallback: Optional[str] = None
    message: str = ""
    reason: str = ""
    errors: Tuple[str, ...] = ()
    policy: str = ""
    eval_ns: int = 0
    call: Optional[int] = None
    raw: Dict[str, Any] = dataclasses.field(default_factory=dict, hash=False, compare=False,
                                            repr=False)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def rule_id(self) -> Optional[str]:
        """The deciding rule's id ("FILE:LINE"), or None for the default fallback."""
        return self.rule.get("id") if isinstance(self.rule, dict) else None

    @classmethod
    def from_json(cls, record: Dict[str, Any]) -> "Decision":
        """Builds a Decision from a decision record. Anything unexpected in it becomes a deny, so a
        malformed record never reads as an allow."""
        if not isinstance(record, dict):
            record = {}
        outcome = record.get("decision")
        if outcome not in OUTCOMES:
            outcome = "deny"
        errors = record.get("errors")
        call = record.get("call")
        eval_ns = record.get("eval_ns")
        rule = record.get("rule")
        return cls(
            decision=outcome,
            tool=str(record.get("tool", "")),
            rule=dict(rule) if isinstance(rule, dict) else None,
            fallback=record.get("fallback") if isinstance(record.get("fallback"), str) else None,
            message=record.get("message") if isinstance(record.get("message"), str) else "",
            reason=record.get("reason") if isinstance(record.get("reason"), str) else "",
            errors=tuple(str(e) for e in errors) if isinstance(errors, list) else (),
            policy=str(record.get("policy", "")),
            eval_ns=eval_ns if isinstance(eval_ns, int) else 0,
            call=call if isinstance(call, int) and not isinstance(call, bool) else None,
            raw=record,
        )

    @classmethod
    def engine_failure(cls, tool: str, error: BaseException) -> "Decision":
        """The deny that stands in for a decision the engine could not make (fail closed)."""
        code = getattr(error, "code", type(error).__name__)
        text = f"{code}: {error}"
        message = f"Call blocked: the policy engine could not decide this call ({text})"
        record = {"decision": "deny", "tool": tool, "rule": None, "fallback": "block",
                  "message": message, "reason": "the policy engine failed: " + text,
                  "errors": [text], "policy": "", "eval_ns": 0}
        return cls.from_json(record)
