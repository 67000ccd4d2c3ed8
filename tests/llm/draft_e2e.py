#!/usr/bin/env python3
"""`toolwarden draft` as a process, against the fake model server as a process.

Drafts a policy for AgentDojo banking user tasks (their prompts from bench/agentdojo/data), checks
the printed policy is lint-clean and allows the task's ground-truth calls that need no tool
result, and checks the failures print nothing on stdout:

    python3 tests/llm/draft_e2e.py --toolwarden build/toolwarden
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(ROOT, "bench", "agentdojo", "data", "banking.tools.json")
TASKS = os.path.join(ROOT, "bench", "agentdojo", "data", "user_tasks.json")


class Fake:
    def __init__(self, steps, workdir):
        workdir = tempfile.mkdtemp(dir=workdir)
        script = os.path.join(workdir, "script.json")
        self.record = os.path.join(workdir, "record.jsonl")
        with open(script, "w") as f:
            json.dump({"steps": steps}, f)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_llm.py"), "--script", script,
             "--record", self.record, "--port", "0"],
            stdout=subprocess.PIPE, text=True)
        self.url = "http://127.0.0.1:%d" % int(self.proc.stdout.readline())

    def requests(self):
        with open(self.record) as f:
            return [json.loads(line) for line in f]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def progent_reply(calls):
    """The least-privilege answer a good model gives: each ground-truth call's tool, with its
    literal arguments fixed."""
    rules = []
    for call in calls:
        args = {}
        for name, value in call["args"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                args[name] = {"minimum": value, "maximum": value}
            elif isinstance(value, (str, bool)):
                args[name] = {"enum": [value]}
        rules.append({"name": call["function"], "args": args})
    return json.dumps({"rules": rules})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--toolwarden", required=True)
    opts = parser.parse_args()
    tw = opts.toolwarden
    with open(TASKS) as f:
        tasks = json.load(f)["suites"]["banking"]["user_tasks"]
    drafted = 0
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            calls = [c for c in task["ground_truth"]]
            if not calls:
                continue
            fake = Fake([{"reply": {"content": progent_reply(calls), "finish": "stop"}}], tmp)
            try:
                out = run([tw, "draft", "--tools", TOOLS, "--query", task["prompt"],
                           "--llm", fake.url, "--model", "fake"])
                sent = fake.requests()
            finally:
                fake.stop()
            check(out.returncode == 0, "%s: draft failed: %s" % (task["id"], out.stderr))
            check(len(sent) == 1, "%s: %d requests" % (task["id"], len(sent)))
            body = sent[0]["body"]
            check(body["response_format"]["type"] == "json_schema", "no json_schema constraint")
            check(task["prompt"] in body["messages"][1]["content"], "the task is not in the prompt")
            policy = os.path.join(tmp, task["id"] + ".policy")
            with open(policy, "w") as f:
                f.write(out.stdout)
            lint = run([tw, "lint", policy, "--tools", TOOLS])
            check(lint.returncode == 0 and lint.stdout == policy + ": ok\n" and lint.stderr == "",
                  "%s: not lint-clean:\n%s%s\n%s" % (task["id"], lint.stdout, lint.stderr, out.stdout))
            for call in calls:
                decided = run([tw, "check", "--policy", policy, "--tools", TOOLS,
                               "--tool", call["function"], "--args", json.dumps(call["args"])])
                check(decided.returncode == 0,
                      "%s: %s denied: %s" % (task["id"], call["function"], decided.stdout))
            drafted += 1

        # Fail closed: a refusal and a dead server print nothing on stdout and exit 1.
        fake = Fake([{"reply": {"content": "no", "finish": "refusal"}}], tmp)
        try:
            out = run([tw, "draft", "--tools", TOOLS, "--query", "pay my rent",
                       "--llm", fake.url, "--model", "fake"])
        finally:
            fake.stop()
        check(out.returncode == 1 and out.stdout == "", "a refusal printed a policy")
        check("refused" in out.stderr, "the refusal is not explained: " + out.stderr)
        out = run([tw, "draft", "--tools", TOOLS, "--query", "pay my rent", "--llm", fake.url,
                   "--model", "fake", "--timeout", "2"])
        check(out.returncode == 1 and out.stdout == "", "a dead server printed a policy")
        # Configuration from the environment; flags are required without it.
        env = dict(os.environ, TOOLWARDEN_LLM_URL="", TOOLWARDEN_LLM_MODEL="")
        out = run([tw, "draft", "--tools", TOOLS, "--query", "q"], env=env)
        check(out.returncode == 2 and "TOOLWARDEN_LLM_URL" in out.stderr, out.stderr)
    print("draft_e2e: %d banking tasks drafted lint-clean; failures print nothing" % drafted)


if __name__ == "__main__":
    main()
