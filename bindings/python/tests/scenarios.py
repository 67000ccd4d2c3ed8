"""Session and guard scenarios, run against every session type (in-process and sidecar).

A subclass sets up `self.new_session(query=..., trusted=...)` returning a fresh session under
support.UNIT_POLICY, named `unit.policy` (so rule ids are `unit.policy:LINE` for both), and
`self.broken_session()` returning a session whose engine fails on every call.
"""

from __future__ import annotations

import asyncio
import datetime
import math

import toolwarden
from toolwarden import Decision, ToolCallDenied, ToolCallTerminated, guard
from support import ATTACKER_IBAN, TRUSTED_IBAN, USER_QUERY

SEND_RULE = "unit.policy:9"
COUNT_RULE = "unit.policy:10"
ASK_RULE = "unit.policy:11"
TERMINATE_RULE = "unit.policy:13"


class Scenarios:
    """Mixed into a unittest.TestCase."""

    def new_session(self, query: str = USER_QUERY, trusted=()):
        raise NotImplementedError

    def broken_session(self):
        raise NotImplementedError

    # --- helpers ----------------------------------------------------------------------------------

    def tools(self, session, on_deny="raise", on_ask=None):
        ran = []

        @guard(session, on_deny=on_deny, on_ask=on_ask)
        def get_iban():
            ran.append(("get_iban",))
            return {"iban": TRUSTED_IBAN, "opened": datetime.date(2020, 1, 2)}

        @guard(session, on_deny=on_deny, on_ask=on_ask)
        def send_money(recipient, amount, subject="", date="2024-01-01"):
            ran.append(("send_money", recipient, amount))
            return f"sent {amount} to {recipient}"

        @guard(session, on_deny=on_deny, on_ask=on_ask)
        def wire(amount):
            ran.append(("wire", amount))
            return "wired"

        @guard(session, on_deny=on_deny, on_ask=on_ask)
        def delete_account():
            ran.append(("delete_account",))
            return "deleted"

        return ran, get_iban, send_money, wire, delete_account

    # --- decide, check and the session ------------------------------------------------------------

    def test_decide_records_allowed_calls_only(self):
        session = self.new_session()
        allowed = session.decide("get_iban", {})
        self.assertTrue(allowed.allowed)
        self.assertEqual(allowed.call, 0)
        self.assertEqual(allowed.rule, {"id": "unit.policy:8", "effect": "allow", "priority": 10})
        self.assertIsNone(allowed.fallback)
        self.assertTrue(allowed.policy.startswith("sha256:"))
        denied = session.decide("send_money", {"recipient": ATTACKER_IBAN, "amount": 5})
        self.assertEqual(denied.decision, "deny")
        self.assertFalse(denied.allowed)
        self.assertIsNone(denied.call)
        self.assertIsNone(denied.rule)
        self.assertEqual(denied.fallback, "block")
        self.assertIn(SEND_RULE, denied.reason)
        self.assertTrue(denied.message.startswith("Blocked send_money: no rule allows this call"))
        self.assertEqual(denied.raw["decision"], "deny")
        history = session.state()["history"]
        self.assertEqual([h["tool"] for h in history], ["get_iban"])
        session.close()

    def test_check_changes_nothing(self):
        session = self.new_session()
        self.assertTrue(session.check("search", {}).allowed)
        self.assertIsNone(session.check("search", {}).call)
        self.assertEqual(session.check("open_result", {}).decision, "deny")  # no update applied
        self.assertEqual(session.state()["history"], [])
        self.assertTrue(session.decide("search", {}).allowed)
        self.assertTrue(session.decide("open_result", {}).allowed)  # the update block was added
        session.close()

    def test_arguments_that_are_not_an_object_are_denied_by_the_engine(self):
        session = self.new_session()
        for args in (None, [1], "x", 3):
            decision = session.decide("get_iban", args)
            self.assertEqual(decision.decision, "deny", args)
            self.assertTrue(decision.errors, args)
        self.assertTrue(session.decide("get_iban").allowed)  # no arguments: {}
        session.close()

    def test_arguments_that_are_not_json_raise(self):
        session = self.new_session()
        for args in ({"x": math.nan}, {"x": math.inf}, {"x": object()}):
            with self.assertRaises(toolwarden.InvalidArgumentError):
                session.decide("get_iban", args)
        session.close()

    def test_trusted_values(self):
        session = self.new_session(trusted=[TRUSTED_IBAN])
        self.assertTrue(session.decide("send_money", {"recipient": TRUSTED_IBAN, "amount": 5}).allowed)
        other = "CH9300762011623852957"
        self.assertFalse(session.check("send_money", {"recipient": other, "amount": 5}).allowed)
        session.add_trusted(other)
        self.assertTrue(session.check("send_money", {"recipient": other, "amount": 5}).allowed)
        self.assertIn(other, session.state()["trusted"])
        session.close()

    def test_record_result_errors(self):
        session = self.new_session()
        allowed = session.decide("get_iban", {})
        session.record_result(allowed, TRUSTED_IBAN)
        with self.assertRaises(toolwarden.FailedPreconditionError):
            session.record_result(allowed.call, "again")
        denied = session.decide("delete_account", {})
        with self.assertRaises(toolwarden.InvalidArgumentError):
            session.record_result(denied, "x")
        with self.assertRaises(toolwarden.NotFoundError):
            session.record_result(99, "x")
        session.close()

    def test_add_rules_narrow_only(self):
        session = self.new_session()
        self.assertTrue(session.check("read_file", {"path": "secret.txt"}).allowed)
        added = session.add_rules('forbid read_file when path == "secret.txt";', name="llm")
        self.assertEqual(added["rules"], ["llm:1"])
        self.assertTrue(added["policy"].startswith("sha256:"))
        denied = session.check("read_file", {"path": "secret.txt"})
        self.assertEqual(denied.decision, "deny")
        self.assertEqual(denied.rule_id, "llm:1")
        self.assertTrue(session.check("read_file", {"path": "notes.txt"}).allowed)
        # Widening is refused in narrow-only mode, and nothing is added.
        with self.assertRaises(toolwarden.PolicyError) as caught:
            session.add_rules("allow delete_account;")
        self.assertIn("narrow-only", str(caught.exception))
        with self.assertRaises(toolwarden.PolicyError) as caught:
            session.add_rules("forbid read_file when ;", name="bad")
        self.assertTrue(caught.exception.diagnostics)
        self.assertEqual(caught.exception.diagnostics[0]["file"], "bad")
        self.assertIn("bad:1:", str(caught.exception))
        self.assertEqual(len(session.state()["added_rules"]), 1)
        # "any" may widen.
        session.add_rules("allow delete_account priority 0;", mode="any", name="wide")
        self.assertTrue(session.check("delete_account", {}).allowed)
        with self.assertRaises(toolwarden.InvalidArgumentError):
            session.add_rules("forbid wire;", mode="sometimes")
        session.close()

    # --- guard ------------------------------------------------------------------------------------

    def test_guard_allows_runs_and_records_the_result(self):
        session = self.new_session()
        ran, get_iban, *_ = self.tools(session)
        result = get_iban()
        self.assertEqual(result["iban"], TRUSTED_IBAN)
        self.assertEqual(ran, [("get_iban",)])
        history = session.state()["history"]
        self.assertEqual(history, [{"tool": "get_iban", "args": {},
                                    "result": {"iban": TRUSTED_IBAN, "opened": "2020-01-02"}}])
        session.close()

    def test_guard_arguments_are_bound_with_defaults(self):
        session = self.new_session()
        calls = []

        @guard(session, tool="read_file")
        def fetch(path, *, encoding="utf-8", **extra):
            calls.append(path)
            return "content"

        self.assertEqual(fetch("a.txt", mode="r"), "content")
        self.assertEqual(session.state()["history"][0]["args"],
                         {"path": "a.txt", "encoding": "utf-8", "mode": "r"})
        self.assertEqual(fetch.__name__, "fetch")
        self.assertEqual(fetch.toolwarden_tool, "read_file")
        with self.assertRaises(TypeError):  # a call that does not fit the signature: Python's error
            fetch()
        self.assertEqual(len(session.state()["history"]), 1)

        class Client:
            @guard(session)
            def log_line(self, text):
                return text.upper()

        self.assertEqual(Client().log_line("hi"), "HI")
        self.assertEqual(session.state()["history"][1], {"tool": "log_line", "args": {"text": "hi"},
                                                        "result": "HI"})
        session.close()

    def test_guard_raise_mode(self):
        session = self.new_session()
        ran, _, send_money, *_ = self.tools(session)
        with self.assertRaises(ToolCallDenied) as caught:
            send_money(ATTACKER_IBAN, 10)
        decision = caught.exception.decision
        self.assertEqual(decision.decision, "deny")
        self.assertEqual(decision.tool, "send_money")
        self.assertIn(SEND_RULE, decision.reason)
        self.assertEqual(str(caught.exception), decision.message)
        self.assertEqual(ran, [])
        self.assertEqual(session.state()["history"], [])
        session.close()

    def test_guard_message_mode_returns_the_fallback_message(self):
        session = self.new_session()
        ran, _, send_money, *_ = self.tools(session, on_deny="message")
        message = send_money(ATTACKER_IBAN, 10)
        self.assertTrue(message.startswith("Blocked send_money: no rule allows this call"), message)
        self.assertEqual(ran, [])
        session.close()

    def test_guard_recorded_result_feeds_from_trusted_and_count(self):
        # Without the trusted tool's result, the IBAN is not trusted.
        fresh = self.new_session()
        _, _, send_money, *_ = self.tools(fresh, on_deny="message")
        self.assertTrue(send_money(TRUSTED_IBAN, 50).startswith("Blocked send_money"))
        fresh.close()
        # With it (guard records get_iban's result), the same call goes through.
        session = self.new_session()
        ran, get_iban, send_money, *_ = self.tools(session, on_deny="message")
        get_iban()
        self.assertEqual(send_money(TRUSTED_IBAN, 50), f"sent 50 to {TRUSTED_IBAN}")
        self.assertEqual(send_money(TRUSTED_IBAN, 60), f"sent 60 to {TRUSTED_IBAN}")
        # count(send_money) is now 2: the forbid rule's own message reaches the caller.
        self.assertEqual(send_money(TRUSTED_IBAN, 70), "Only two transfers (send_money)")
        self.assertEqual([r[0] for r in ran], ["get_iban", "send_money", "send_money"])
        history = session.state()["history"]
        self.assertEqual(history[1]["result"], f"sent 50 to {TRUSTED_IBAN}")
        session.close()

    def test_guard_ask_without_approver_is_denied(self):
        session = self.new_session()
        ran, _, _, wire, _ = self.tools(session)
        with self.assertRaises(ToolCallDenied) as caught:
            wire(5000)
        self.assertEqual(caught.exception.decision.decision, "ask")
        self.assertEqual(caught.exception.decision.rule_id, ASK_RULE)
        self.assertEqual(caught.exception.decision.message, "Large wire: needs approval")
        self.assertEqual(ran, [])
        ran, _, _, wire, _ = self.tools(session, on_deny="message")
        self.assertEqual(wire(5000), "Large wire: needs approval")
        self.assertEqual(ran, [])
        self.assertEqual(wire(50), "wired")
        session.close()

    def test_guard_ask_approver(self):
        session = self.new_session()
        asked = []

        def approve(decision: Decision) -> bool:
            asked.append(decision)
            return decision.raw["tool"] == "wire"

        ran, _, _, wire, _ = self.tools(session, on_ask=approve)
        self.assertEqual(wire(5000), "wired")
        self.assertEqual(ran, [("wire", 5000)])
        self.assertEqual(len(asked), 1)
        self.assertEqual(asked[0].decision, "ask")
        self.assertEqual(asked[0].message, "Large wire: needs approval")
        # The approved call is in the history, so budgets and `called` see it.
        history = session.state()["history"]
        self.assertEqual([(c["tool"], c["args"]) for c in history], [("wire", {"amount": 5000})])

        def reject(decision: Decision) -> bool:
            return False

        ran, _, _, wire, _ = self.tools(session, on_ask=reject)
        with self.assertRaises(ToolCallDenied):
            wire(5000)
        ran, _, _, wire, _ = self.tools(session, on_deny="message", on_ask=reject)
        self.assertEqual(wire(5000), "Large wire: needs approval")
        self.assertEqual(ran, [])
        session.close()

    def test_guard_terminate_always_raises(self):
        for mode in ("raise", "message"):
            session = self.new_session()
            ran, _, _, _, delete_account = self.tools(session, on_deny=mode,
                                                      on_ask=lambda decision: True)
            with self.assertRaises(ToolCallTerminated) as caught:
                delete_account()
            self.assertEqual(caught.exception.decision.decision, "terminate")
            self.assertEqual(caught.exception.decision.rule_id, TERMINATE_RULE)
            self.assertEqual(str(caught.exception), "Session over: delete_account is never allowed")
            self.assertNotIsInstance(caught.exception, ToolCallDenied)
            self.assertEqual(ran, [])
            session.close()

    def test_guard_engine_error_is_a_deny(self):
        session = self.new_session()
        ran, get_iban, send_money, *_ = self.tools(session, on_deny="message")
        # Arguments the engine cannot take: denied, never run.
        with self.assertLogs("toolwarden", "WARNING") as logs:
            self._engine_errors(session, ran, send_money)
        self.assertTrue(all("denying it" in line for line in logs.output))
        session.close()

    def _engine_errors(self, session, ran, send_money):
        message = send_money(TRUSTED_IBAN, math.nan)
        self.assertTrue(message.startswith("Call blocked: the policy engine could not decide"), message)
        self.assertIn("invalid_argument", message)
        ran_raise, _, send_money_raise, *_ = self.tools(session)
        with self.assertRaises(ToolCallDenied) as caught:
            send_money_raise(TRUSTED_IBAN, math.inf)
        self.assertEqual(caught.exception.decision.decision, "deny")
        self.assertTrue(caught.exception.decision.errors)
        # An engine that fails on every call: everything is denied.
        broken = self.broken_session()
        ran_broken, get_iban_broken, *_ = self.tools(broken, on_deny="message")
        self.assertTrue(get_iban_broken().startswith("Call blocked: the policy engine could not decide"))
        ran_broken_raise, get_iban_broken_raise, *_ = self.tools(broken)
        with self.assertRaises(ToolCallDenied):
            get_iban_broken_raise()
        self.assertEqual(ran + ran_raise + ran_broken + ran_broken_raise, [])
        broken.close()

    def test_guard_async_function(self):
        session = self.new_session()

        @guard(session, on_deny="message")
        async def send_money(recipient, amount):
            return "sent"

        @guard(session)
        async def read_file(path):
            return "text"

        self.assertTrue(asyncio.run(send_money(ATTACKER_IBAN, 1)).startswith("Blocked send_money"))
        self.assertEqual(asyncio.run(read_file("a.txt")), "text")
        self.assertEqual(session.state()["history"][0]["result"], "text")
        session.close()
