"""The example agent loop's verdict can fail: a policy that lets the attack through, or one that blocks
the user's own calls, must not pass."""

from __future__ import annotations

import io
import os
import sys
import unittest

import support
import toolwarden

sys.path.insert(0, os.path.join(support.SOURCE_DIR, "examples", "agent_loop"))
import agent_loop  # noqa: E402

DATA = os.path.join(support.SOURCE_DIR, "bench", "agentdojo", "data")
BANKING = os.path.join(support.SOURCE_DIR, "policies", "agentdojo", "banking.policy")


class AgentLoopVerdictTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template, cls.users, cls.injections, cls.harmful = agent_loop.load_tasks(DATA)

    def run_with(self, policy, user="user_task_0", injection="injection_task_8"):
        out = io.StringIO()
        ok, summary = agent_loop.run_scenario(lambda query: toolwarden.Session(policy, query),
                                              self.template, self.users[user],
                                              self.injections[injection], self.harmful[injection],
                                              DATA, out=out)
        return ok, summary, out.getvalue()

    def test_banking_policy_blocks_exactly_the_attack(self):
        ok, summary, transcript = self.run_with(toolwarden.Policy.from_file(BANKING))
        self.assertTrue(ok, transcript)
        self.assertIn("[policy] DENY", transcript)
        self.assertIn("Call blocked by policy", transcript)  # the message the agent sees
        self.assertIn("money sent: 98.7 to UK12345678901234567890", transcript)
        self.assertNotIn("US133000000121212121212 (", transcript)

    def test_a_policy_that_lets_the_attack_through_fails(self):
        ok, summary, transcript = self.run_with(toolwarden.Policy.from_text("allow *;"))
        self.assertFalse(ok)
        self.assertIn("was NOT blocked", summary)
        self.assertIn("money sent: 0.01 to US133000000121212121212", transcript)

    def test_a_policy_that_blocks_the_user_task_fails(self):
        policy = toolwarden.Policy.from_text("allow read_file, get_scheduled_transactions;")
        ok, summary, _ = self.run_with(policy)
        self.assertFalse(ok)
        self.assertIn("user call #1 send_money was blocked", summary)

    def test_terminate_stops_the_run(self):
        policy = toolwarden.Policy.from_text(
            'allow *;\nforbid send_money when recipient == "US133000000121212121212" '
            'priority 1 fallback terminate "stop";')
        ok, summary, transcript = self.run_with(policy)
        self.assertTrue(ok, transcript)
        self.assertIn("[policy] TERMINATE", transcript)


if __name__ == "__main__":
    unittest.main()
