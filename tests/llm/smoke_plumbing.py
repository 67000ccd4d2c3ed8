#!/usr/bin/env python3
"""Runs scripts/llm-smoke.sh against the fake model server, for one suite, and checks its reports:
every session was drafted, updates were tried, and the numbers are there. A model that always
answers with the same rules stands in for a real one (so its answers to "update?" are invalid,
and those updates fail closed).

    python3 tests/llm/smoke_plumbing.py --toolwarden build/toolwarden
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

RULES = json.dumps({"rules": [{"name": "get_most_recent_transactions", "args": {}},
                              {"name": "read_file", "args": {}}]})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--toolwarden", required=True)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "script.json")
        with open(script, "w") as f:
            json.dump({"steps": [{"reply": {"content": RULES, "finish": "stop"}}],
                       "repeat_last": True}, f)
        fake = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_llm.py"), "--script",
                                 script, "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            url = "http://127.0.0.1:%d" % int(fake.stdout.readline())
            env = dict(os.environ, TOOLWARDEN=opts.toolwarden, SUITES="banking",
                       OUT=os.path.join(tmp, "out"))
            run = subprocess.run([os.path.join(ROOT, "scripts", "llm-smoke.sh"), url, "fake"],
                                 env=env, capture_output=True, text=True, timeout=600)
        finally:
            fake.terminate()
            fake.wait(10)
        if run.returncode != 0:
            raise SystemExit("llm-smoke.sh failed:\n" + run.stdout + run.stderr)
        for name in ("drafted", "with-policy"):
            with open(os.path.join(tmp, "out", "banking.%s.json" % name)) as f:
                report = json.load(f)["reports"][0]
            drafting = report["drafting"]
            sessions = report["user_tasks"] + report["pairs"]
            assert drafting["drafts"] == sessions, drafting
            assert drafting["model_calls"] > sessions, drafting
            assert drafting["updates_failed"] > 0, drafting
            assert 0 <= report["attack_success_rate"] <= 1
        print(run.stdout, end="")


if __name__ == "__main__":
    main()
