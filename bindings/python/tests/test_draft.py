"""Session.draft, update and apply_update in-process, against the fake model server
(tests/llm/fake_llm.py, started per test)."""

from __future__ import annotations

import os
import time
import unittest
from unittest import mock

import support
import toolwarden
from support import (BANKING_DIR, DRAFT_POLICY, DRAFT_REPLY, FAILURE_STEP, NARROWER_REPLY,
                     OTHER_IBAN, TRUSTED_IBAN, UPDATE_NO, UPDATE_YES, WIDER_REPLY, FakeLlm,
                     reply_step)

QUERY = f"Pay {TRUSTED_IBAN} what I owe"


def pay(recipient, amount):
    return {"recipient": recipient, "amount": amount, "subject": "rent", "date": "2024-01-01"}


def settings(fake, timeout_ms=10000):
    return {"url": fake.url, "model": "fake", "timeout_ms": timeout_ms}


class DraftTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.policy = toolwarden.Policy.from_text(DRAFT_POLICY, name="drafted.policy",
                                                 base_dir=BANKING_DIR)

    def session(self):
        session = toolwarden.Session(self.policy, QUERY)
        self.addCleanup(session.close)
        return session

    def fake(self, steps, repeat_last=False):
        fake = FakeLlm(steps, repeat_last).start()
        self.addCleanup(fake.stop)
        return fake

    def drafted_with_call(self, fake):
        """A drafted session with one allowed get_balance call whose result is recorded."""
        session = self.session()
        drafted = session.draft(settings(fake))
        self.assertTrue(drafted["ok"], drafted)
        d = session.decide("get_balance")
        self.assertTrue(d.allowed, d.reason)
        session.record_result(d, {"balance": 1810})
        return session, d

    def test_draft_adds_the_rules_and_decisions_follow(self):
        fake = self.fake([reply_step(DRAFT_REPLY)])
        session = self.session()
        before = session.state()["policy"]
        self.assertFalse(session.check("send_money", pay(TRUSTED_IBAN, 50)).allowed)

        drafted = session.draft(settings(fake))
        self.assertTrue(drafted["ok"], drafted)
        self.assertEqual(drafted["name"], "draft")
        self.assertEqual(drafted["model_calls"], 1)
        self.assertEqual(len(drafted["rule_ids"]), 2)
        self.assertIn("allow send_money", drafted["rules"])
        self.assertNotEqual(drafted["policy"], before)
        self.assertEqual(session.state()["policy"], drafted["policy"])
        self.assertEqual(session.state()["drafted"], ["draft"])

        d = session.decide("send_money", pay(TRUSTED_IBAN, 50))
        self.assertTrue(d.allowed, d.reason)
        self.assertTrue(d.rule_id.startswith("draft:"))
        self.assertFalse(session.decide("send_money", pay(TRUSTED_IBAN, 500)).allowed)
        self.assertFalse(session.decide("send_money", pay(OTHER_IBAN, 50)).allowed)
        self.assertFalse(session.decide("get_iban").allowed)

        sent = fake.requests()
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0]["path"], "/v1/chat/completions")
        self.assertEqual(sent[0]["body"]["model"], "fake")
        self.assertIn(TRUSTED_IBAN, str(sent[0]["body"]["messages"]))  # the query

        # Once per session; refused before any model call.
        with self.assertRaises(toolwarden.FailedPreconditionError):
            session.draft(settings(fake))
        self.assertEqual(len(fake.requests()), 1)

    def test_a_failing_server_changes_nothing(self):
        fake = self.fake([FAILURE_STEP], repeat_last=True)
        session = self.session()
        before = session.state()["policy"]
        start = time.monotonic()
        drafted = session.draft(settings(fake, timeout_ms=500))
        self.assertLess(time.monotonic() - start, 10)
        self.assertFalse(drafted["ok"])
        self.assertIn("overloaded", drafted["error"])
        self.assertGreaterEqual(len(fake.requests()), 2)  # retried
        self.assertEqual(session.state()["policy"], before)
        self.assertFalse(session.decide("send_money", pay(TRUSTED_IBAN, 50)).allowed)
        self.assertFalse(session.decide("get_balance").allowed)

    def test_update_narrower_applies_in_narrow_only(self):
        fake = self.fake([reply_step(DRAFT_REPLY), reply_step(UPDATE_YES),
                          reply_step(NARROWER_REPLY)])
        session, call = self.drafted_with_call(fake)
        self.assertTrue(session.check("send_money", pay(TRUSTED_IBAN, 80)).allowed)

        updated = session.update(call, llm=settings(fake))  # a Decision; narrow-only by default
        self.assertEqual(updated["result"], "applied", updated)
        self.assertEqual(updated["model_calls"], 2)
        self.assertEqual(updated["change"]["replaces"], "draft")
        self.assertEqual(updated["change"]["mode"], "narrow-only")
        self.assertEqual(updated["change"]["policy"], session.state()["policy"])
        self.assertFalse(session.check("send_money", pay(TRUSTED_IBAN, 80)).allowed)
        self.assertTrue(session.check("send_money", pay(TRUSTED_IBAN, 40)).allowed)
        self.assertFalse(session.check("get_balance").allowed)  # the update left it out
        # "Update?" was asked without the result; the new rules with it.
        sent = fake.requests()
        self.assertNotIn("1810", str(sent[1]["body"]))
        self.assertIn("1810", str(sent[2]["body"]))

    def test_update_wider_is_refused_in_narrow_only(self):
        fake = self.fake([reply_step(DRAFT_REPLY), reply_step(UPDATE_YES), reply_step(WIDER_REPLY)])
        session, _ = self.drafted_with_call(fake)
        before = session.state()["policy"]
        updated = session.update(0, mode="narrow-only", llm=settings(fake))
        self.assertEqual(updated["result"], "refused", updated)
        self.assertIn(OTHER_IBAN, updated["change"]["after"])
        self.assertTrue(updated["problems"])
        self.assertEqual(session.state()["policy"], before)
        self.assertFalse(session.check("send_money", pay(OTHER_IBAN, 50)).allowed)

    def test_update_not_needed(self):
        fake = self.fake([reply_step(DRAFT_REPLY), reply_step(UPDATE_NO)])
        session, _ = self.drafted_with_call(fake)
        before = session.state()["policy"]
        updated = session.update(0, mode="any", llm=settings(fake))
        self.assertEqual(updated["result"], "no-update")
        self.assertIsNone(updated["change"])
        self.assertEqual(session.state()["policy"], before)
        with self.assertRaises(toolwarden.InvalidArgumentError):
            session.apply_update(updated)  # an outcome with no change

    def test_pending_update_applies_once_approved(self):
        fake = self.fake([reply_step(DRAFT_REPLY), reply_step(UPDATE_YES), reply_step(WIDER_REPLY)])
        session, _ = self.drafted_with_call(fake)
        pending = session.update(0, mode="ask", llm=settings(fake))
        self.assertEqual(pending["result"], "pending", pending)
        self.assertFalse(session.check("send_money", pay(OTHER_IBAN, 50)).allowed)

        applied = session.apply_update(pending["change"])
        self.assertEqual(applied["result"], "applied", applied)
        self.assertEqual(applied["model_calls"], 0)
        self.assertTrue(session.check("send_money", pay(OTHER_IBAN, 50)).allowed)
        self.assertEqual(len(fake.requests()), 3)

        # What it replaced is gone: applying it again (here, as the whole outcome) fails.
        after = session.state()["policy"]
        again = session.apply_update(pending)
        self.assertEqual(again["result"], "failed")
        self.assertIn("no longer", again["error"])
        self.assertEqual(session.state()["policy"], after)

    def test_settings_from_the_environment(self):
        fake = self.fake([reply_step(DRAFT_REPLY)])
        session = self.session()
        env = {"TOOLWARDEN_LLM_URL": fake.url, "TOOLWARDEN_LLM_MODEL": "fake-from-env"}
        with mock.patch.dict(os.environ, env):
            drafted = session.draft()
        self.assertTrue(drafted["ok"], drafted)
        self.assertEqual(fake.requests()[0]["body"]["model"], "fake-from-env")

    def test_bad_input_is_refused_before_any_model_call(self):
        fake = self.fake([reply_step(DRAFT_REPLY)])
        session = self.session()
        for bad in ({"api_key": "sk-x"}, {"url": 3}, {"protocol": "smoke"}, {"max_repairs": 9},
                    {"timeout_ms": 0}, {"timeout_ms": float("nan")}, ["url"], "http://x"):
            with self.subTest(llm=bad), self.assertRaises(toolwarden.InvalidArgumentError):
                session.draft(bad)
        with mock.patch.dict(os.environ):
            os.environ.pop("TOOLWARDEN_LLM_URL", None)
            with self.assertRaises(toolwarden.InvalidArgumentError) as caught:
                session.draft({"model": "fake"})
            self.assertIn("TOOLWARDEN_LLM_URL", str(caught.exception))
        with self.assertRaises(toolwarden.InvalidArgumentError):
            session.update(0, mode="wide", llm=settings(fake))
        with self.assertRaises(toolwarden.NotFoundError):
            session.update(0, llm=settings(fake))
        with self.assertRaises(toolwarden.InvalidArgumentError):
            session.update(-1, llm=settings(fake))
        for change in ({}, {"name": "u"}, {"name": 1, "after": "x"}, "allow x;", None):
            with self.subTest(change=change), self.assertRaises(toolwarden.InvalidArgumentError):
                session.apply_update(change)
        # Not drafted yet; a call without a result.
        open_policy = toolwarden.Policy.from_text("allow get_balance;", name="open.policy",
                                                  tools=os.path.join(BANKING_DIR,
                                                                     "banking.tools.json"))
        with toolwarden.Session(open_policy, QUERY) as undrafted:
            d = undrafted.decide("get_balance")
            with self.assertRaises(toolwarden.FailedPreconditionError):
                undrafted.update(d, llm=settings(fake))
            undrafted.record_result(d, {"balance": 1})
            with self.assertRaises(toolwarden.FailedPreconditionError) as caught:
                undrafted.update(d, llm=settings(fake))
            self.assertIn("no drafted rules", str(caught.exception))
        # A policy without tools cannot be drafted for.
        with toolwarden.Session(toolwarden.Policy.from_text("allow *;"), QUERY) as no_tools:
            with self.assertRaises(toolwarden.FailedPreconditionError):
                no_tools.draft(settings(fake))
        self.assertEqual(fake.requests(), [])


if __name__ == "__main__":
    unittest.main()
