"""The conformance corpus (tests/conformance/*.json) through the in-process binding."""

from __future__ import annotations

import json
import os
import tempfile
import unittest

import support
import toolwarden
import conformance_runner as runner

# The corpus had 747 cases when this was written; far fewer means files went missing.
MIN_CASES = 700


class ConformanceTest(unittest.TestCase):
    def test_corpus(self):
        report = runner.run_corpus(support.SOURCE_DIR, runner.NativeBackend(toolwarden))
        support.stderr("python conformance (libtoolwarden.so): " + report.summary())
        self.assertEqual(report.failures, [], "\n".join(report.failures))
        self.assertEqual(report.skipped_files, [])
        self.assertGreaterEqual(report.cases_run, MIN_CASES)

    def test_runner_reports_disagreements(self):
        # A runner that cannot fail proves nothing: each kind of wrong expectation must be caught.
        wrong = [
            {"tool": "t", "expect": "deny"},
            {"tool": "t", "expect": "allow", "rule": "policy_text:2"},
            {"tool": "t", "expect": "allow", "rule": None},
            {"tool": "t", "expect": "allow", "reason": "forbidden"},
            {"tool": "u", "expect": "deny", "message": "not in the message"},
            {"tool": "t", "expect": "allow", "error": "some error"},
            {"tool": "u", "args": {"x": "s"}, "expect": "deny"},  # an unexpected error
        ]
        with tempfile.TemporaryDirectory() as tmp:
            report = runner.Report()
            for i, call in enumerate(wrong):
                path = os.path.join(tmp, f"wrong{i}.json")
                with open(path, "w") as f:
                    json.dump({"policy_text": "allow t;\nforbid u when x > 1;",
                               "cases": [{"name": "wrong", "calls": [call]}]}, f)
                runner.run_file(path, runner.NativeBackend(toolwarden), report)
            path = os.path.join(tmp, "load.json")
            with open(path, "w") as f:
                json.dump({"policy_text": "allow t;", "expect_load_error": "syntax error"}, f)
            runner.run_file(path, runner.NativeBackend(toolwarden), report)
        self.assertEqual(report.cases_failed, len(wrong) + 1, "\n".join(report.failures))
        self.assertEqual(report.cases_passed, 0)


if __name__ == "__main__":
    unittest.main()
