"""SidecarSession with drafting (draft=, update=, record_result's update, approve_update) against a real
`toolwarden serve --llm URL --model fake` (TOOLWARDEN_BINARY) and the fake model server
(tests/llm/fake_llm.py). Each test starts its own fake and sidecar: the fake's script is one sequence
of answers for the whole sidecar.

A missing binary fails these tests. A `serve` that does not take --llm (a build from before the
sidecar drafted) skips them, saying so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

import support
import toolwarden
from support import (BANKING_DIR, DRAFT_POLICY, DRAFT_REPLY, FAILURE_STEP, NARROWER_REPLY,
                     OTHER_IBAN, TRUSTED_IBAN, UPDATE_YES, WIDER_REPLY, FakeLlm, reply_step)

QUERY = f"Pay {TRUSTED_IBAN} what I owe"
# A sidecar's session creation waits for the draft.
TIMEOUT = 60.0


def pay(recipient, amount):
    return {"recipient": recipient, "amount": amount, "subject": "rent", "date": "2024-01-01"}


_tmp = None
_policies = None


def setUpModule():
    global _tmp, _policies
    support.binary()  # fails (never skips) without one
    _tmp = tempfile.mkdtemp(prefix="toolwarden-py-draft-sidecar-")
    _policies = os.path.join(_tmp, "policies")
    os.makedirs(_policies)
    with open(os.path.join(_policies, "drafted.policy"), "w", encoding="utf-8") as f:
        f.write(DRAFT_POLICY)
    shutil.copy(os.path.join(BANKING_DIR, "banking.tools.json"), _policies)


def tearDownModule():
    if _tmp is not None:
        shutil.rmtree(_tmp, ignore_errors=True)


class SidecarDraftTest(unittest.TestCase):
    def start(self, steps, repeat_last=False):
        """The fake model server and a sidecar drafting with it."""
        fake = FakeLlm(steps, repeat_last).start()
        self.addCleanup(fake.stop)
        log = os.path.join(_tmp, f"{self.id().rsplit('.', 1)[-1]}.log")
        sidecar = toolwarden.Sidecar(support.binary(), _policies, log_path=log,
                                     extra_args=["--llm", fake.url, "--model", "fake"])
        try:
            sidecar.start()
        except toolwarden.UnavailableError as e:
            # Only the CLI's own refusal of the flag skips (the message quotes the command line,
            # which has --llm in it whatever went wrong); any other failure to start fails.
            if "unknown flag --llm" in str(e):
                self.skipTest("this `toolwarden serve` does not take --llm (built before the sidecar "
                              "drafted)")
            raise
        self.addCleanup(sidecar.stop)
        return fake, sidecar

    def session(self, sidecar, **kwargs):
        session = toolwarden.SidecarSession(sidecar.url, policy="drafted", query=QUERY,
                                            timeout=TIMEOUT, **kwargs)
        self.addCleanup(session.close)
        return session

    def test_draft_at_creation_then_a_narrowing_update(self):
        fake, sidecar = self.start([reply_step(DRAFT_REPLY), reply_step(UPDATE_YES),
                                    reply_step(NARROWER_REPLY)])
        session = self.session(sidecar, draft=True, update="narrow-only")
        self.assertIsNotNone(session.draft_result)
        self.assertTrue(session.draft_result["ok"], session.draft_result)
        self.assertEqual(session.draft_result["policy"], session.state()["policy"])
        self.assertTrue(session.check("send_money", pay(TRUSTED_IBAN, 80)).allowed)
        self.assertFalse(session.check("send_money", pay(OTHER_IBAN, 10)).allowed)
        state = session.state()
        self.assertTrue(state.get("drafted"), state)
        self.assertEqual(state.get("update_mode"), "narrow-only")

        d = session.decide("get_balance")
        self.assertTrue(d.allowed, d.reason)
        update = session.record_result(d, {"balance": 1810})
        self.assertIsNotNone(update, "record_result returned no update outcome")
        self.assertEqual(update["result"], "applied", update)
        self.assertIs(session.last_update, update)
        self.assertFalse(session.check("send_money", pay(TRUSTED_IBAN, 80)).allowed)
        self.assertTrue(session.check("send_money", pay(TRUSTED_IBAN, 40)).allowed)
        self.assertEqual(len(fake.requests()), 3)

    def test_widening_update_waits_for_approval(self):
        fake, sidecar = self.start([reply_step(DRAFT_REPLY), reply_step(UPDATE_YES),
                                    reply_step(WIDER_REPLY)])
        session = self.session(sidecar, draft=True, update="ask")
        self.assertTrue(session.draft_result["ok"], session.draft_result)
        d = session.decide("get_balance")
        update = session.record_result(d, {"balance": 1810})
        self.assertEqual(update["result"], "pending", update)
        self.assertFalse(session.check("send_money", pay(OTHER_IBAN, 10)).allowed)
        self.assertTrue(session.state().get("pending_update"))

        approved = session.approve_update(True)
        self.assertEqual(approved["result"], "applied", approved)
        self.assertTrue(session.check("send_money", pay(OTHER_IBAN, 10)).allowed)
        self.assertFalse(session.state().get("pending_update"))
        self.assertEqual(len(fake.requests()), 3)

    def test_rejected_update_changes_nothing(self):
        _, sidecar = self.start([reply_step(DRAFT_REPLY), reply_step(UPDATE_YES),
                                 reply_step(WIDER_REPLY)])
        session = self.session(sidecar, draft=True, update="ask")
        d = session.decide("get_balance")
        self.assertEqual(session.record_result(d, {"balance": 1810})["result"], "pending")
        before = session.state()["policy"]
        rejected = session.approve_update(approve=False)
        self.assertEqual(rejected["result"], "rejected", rejected)
        self.assertEqual(session.state()["policy"], before)
        self.assertFalse(session.check("send_money", pay(OTHER_IBAN, 10)).allowed)

    def test_a_failed_draft_still_starts_a_session_that_allows_nothing_more(self):
        _, sidecar = self.start([FAILURE_STEP], repeat_last=True)
        session = self.session(sidecar, draft=True)
        self.assertIsNotNone(session.draft_result)
        self.assertFalse(session.draft_result["ok"], session.draft_result)
        self.assertFalse(session.decide("get_balance").allowed)
        self.assertFalse(session.decide("send_money", pay(TRUSTED_IBAN, 10)).allowed)

    def test_without_drafting_nothing_changes(self):
        fake, sidecar = self.start([reply_step(DRAFT_REPLY)])
        session = self.session(sidecar)
        self.assertIsNone(session.draft_result)
        self.assertIsNone(session.update_mode)
        d = session.decide("get_balance")
        self.assertFalse(d.allowed)
        self.assertEqual(fake.requests(), [])

    def test_client_side_checks(self):
        with self.assertRaises(toolwarden.InvalidArgumentError):
            toolwarden.SidecarSession("http://127.0.0.1:1", policy="drafted", query=QUERY,
                                      update="sometimes")
        with self.assertRaises(toolwarden.InvalidArgumentError):
            toolwarden.SidecarSession("http://127.0.0.1:1", policy="drafted", query=QUERY,
                                      draft="yes")


if __name__ == "__main__":
    unittest.main()
