"""Policy, Session and guard over libtoolwarden.so (the C API, in this process)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import support  # noqa: F401  (sets up the import path)
import toolwarden
from scenarios import Scenarios
from support import SOURCE_DIR, TRUSTED_IBAN, UNIT_POLICY, USER_QUERY


class BrokenSession:
    """A session whose engine fails on every call (as a C API status other than TW_OK would)."""

    def decide(self, tool, args=None):
        raise toolwarden.InternalError("simulated engine failure")

    def record_result(self, call, result):
        raise toolwarden.InternalError("simulated engine failure")

    def close(self):
        pass


class NativeScenarios(Scenarios, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.policy = toolwarden.Policy.from_text(UNIT_POLICY, name="unit.policy")

    def new_session(self, query=USER_QUERY, trusted=()):
        return toolwarden.Session(self.policy, query, trusted)

    def broken_session(self):
        return BrokenSession()

    def test_closed_session_is_a_deny_under_guard(self):
        session = self.new_session()
        session.close()
        with self.assertRaises(toolwarden.InvalidArgumentError):
            session.decide("get_iban", {})

        @toolwarden.guard(session, on_deny="message")
        def get_iban():
            raise AssertionError("must not run")

        with self.assertLogs("toolwarden", "WARNING"):
            self.assertTrue(get_iban().startswith("Call blocked: the policy engine could not decide"))


class PolicyTest(unittest.TestCase):
    def test_version(self):
        self.assertRegex(toolwarden.version(), r"^\d+\.\d+\.\d+")

    def test_from_file(self):
        path = os.path.join(SOURCE_DIR, "policies", "agentdojo", "banking.policy")
        policy = toolwarden.Policy.from_file(path)
        self.assertEqual(policy.name, "banking")
        self.assertRegex(policy.hash, r"^sha256:[0-9a-f]{64}$")
        session = toolwarden.Session(policy, "Please pay the bill 'bill-december-2023.txt'")
        decision = session.decide("send_money", {"recipient": "UK12345678901234567890", "amount": 98.7,
                                                 "subject": "Car Rental", "date": "2022-01-01"})
        self.assertTrue(decision.allowed, decision.reason)
        self.assertTrue(decision.rule_id.startswith("banking.policy:"))
        self.assertEqual(decision.policy, policy.hash)
        self.assertEqual(session.policy_hash, policy.hash)

    def test_from_file_missing(self):
        with self.assertRaises(toolwarden.NotFoundError):
            toolwarden.Policy.from_file("/nonexistent/x.policy")

    def test_from_text_errors(self):
        text = "allow t when x == ;\nallow u when y > 1\n"
        with self.assertRaises(toolwarden.PolicyError) as caught:
            toolwarden.Policy.from_text(text, name="mine")
        error = caught.exception
        self.assertEqual(error.code, "policy_error")
        self.assertGreaterEqual(len(error.diagnostics), 1)
        first = error.diagnostics[0]
        self.assertEqual((first["file"], first["line"], first["column"], first["severity"]),
                         ("mine", 1, 19, "error"))
        lines = str(error).split("\n")
        at = lines.index(f"mine:1:19: error: {first['message']}")
        self.assertEqual(lines[at + 1], "  allow t when x == ;")
        self.assertEqual(lines[at + 2], "  " + " " * 18 + "^")
        self.assertIsInstance(error, toolwarden.ToolwardenError)

    def test_from_text_tools_and_base_dir(self):
        base = os.path.join(SOURCE_DIR, "policies", "examples")
        with self.assertRaises(toolwarden.PolicyError) as caught:
            toolwarden.Policy.from_text('tools "banking.tools.json";\nallow send_mony;', base_dir=base)
        self.assertIn("unknown tool `send_mony`", str(caught.exception))
        tools = os.path.join(base, "banking.tools.json")
        with self.assertRaises(toolwarden.PolicyError):
            toolwarden.Policy.from_text("allow send_mony;", tools=tools)
        policy = toolwarden.Policy.from_text("allow send_money when amount < 5;", tools=tools)
        self.assertEqual(policy.name, "policy_text")

    def test_warnings(self):
        policy = toolwarden.Policy.from_text("allow t;\nallow t when x from trusted;\ndefault ask;")
        self.assertTrue(policy.warnings)
        self.assertEqual(policy.warnings[0]["severity"], "warning")

    def test_policy_closed_while_sessions_live(self):
        policy = toolwarden.Policy.from_text("allow t;")
        session = toolwarden.Session(policy, "q")
        policy.close()
        self.assertTrue(session.decide("t", {}).allowed)
        with self.assertRaises(toolwarden.InvalidArgumentError):
            toolwarden.Session(policy, "q")
        session.close()
        policy.close()  # idempotent

    def test_strings_with_nul_are_refused(self):
        policy = toolwarden.Policy.from_text("allow t;")
        session = toolwarden.Session(policy, "q")
        with self.assertRaises(toolwarden.InvalidArgumentError):
            session.decide("t\0other", {})
        with self.assertRaises(toolwarden.InvalidArgumentError):
            toolwarden.Session(policy, "q\0")
        with self.assertRaises(toolwarden.InvalidArgumentError):
            toolwarden.Session(policy, "q", trusted="abc")  # a string is not a list of strings

    def test_invalid_utf8_tool_is_denied_by_the_engine(self):
        policy = toolwarden.Policy.from_text("allow *;")
        session = toolwarden.Session(policy, "q")
        decision = session.decide("t\udcff", {})  # a lone surrogate: invalid UTF-8 on the C side
        self.assertEqual(decision.decision, "deny")
        self.assertTrue(decision.errors)

    def test_session_from_several_threads(self):
        policy = toolwarden.Policy.from_text("allow t;\nforbid t when count(t) >= 200 priority 1;")
        session = toolwarden.Session(policy, "q")
        outcomes = []

        def work():
            for _ in range(100):
                outcomes.append(session.decide("t", {}).decision)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(outcomes.count("allow"), 200)
        self.assertEqual(outcomes.count("deny"), 200)
        self.assertEqual(len(session.state()["history"]), 200)

    def test_decision_is_immutable(self):
        policy = toolwarden.Policy.from_text("allow t;")
        decision = toolwarden.Session(policy, "q").decide("t", {})
        with self.assertRaises(dataclasses.FrozenInstanceError):
            decision.decision = "deny"
        self.assertEqual(hash(decision), hash(dataclasses.replace(decision)))

    def test_malformed_record_reads_as_deny(self):
        self.assertEqual(toolwarden.Decision.from_json({"decision": "yes"}).decision, "deny")
        self.assertFalse(toolwarden.Decision.from_json(None).allowed)

    def test_library_not_found(self):
        code = ("import toolwarden, sys\n"
                "try:\n"
                "    toolwarden.Policy.from_text('allow t;')\n"
                "except toolwarden.LibraryNotFoundError as e:\n"
                "    print(e); sys.exit(3)\n")
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, TOOLWARDEN_LIBRARY=os.path.join(tmp, "libnothere.so"),
                       PYTHONPATH=os.path.join(SOURCE_DIR, "bindings", "python"))
            run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertIn("TOOLWARDEN_LIBRARY", run.stdout)
        self.assertIn("libnothere.so", run.stdout)

    def test_trusted_constructor_argument(self):
        policy = toolwarden.Policy.from_text("allow send_money when recipient from trusted;")
        session = toolwarden.Session(policy, USER_QUERY, trusted=[TRUSTED_IBAN])
        self.assertTrue(session.decide("send_money", {"recipient": TRUSTED_IBAN}).allowed)
        self.assertEqual(session.state()["trusted"], [TRUSTED_IBAN])


if __name__ == "__main__":
    unittest.main()
