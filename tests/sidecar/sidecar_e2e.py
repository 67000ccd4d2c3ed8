#!/usr/bin/env python3
"""End-to-end test of `toolwarden serve` as a process: real sockets, real files.

Starts the sidecar on a free loopback port over a temporary policy directory
and checks: sessions and decisions over keep-alive HTTP from several threads,
hot reload (a good file swaps in, a bad file keeps the last good version and
shows in /healthz and the log, SIGHUP reloads at once), bad input over the wire,
and a SIGTERM shutdown that exits 0 with every decision in a log that
`toolwarden verify-log` accepts. Then a second sidecar drafting with a model
(`--llm` pointing at tests/llm/fake_llm.py): a drafted session, a decision the
draft allows, a result, and the update it triggers, all in the log.

usage: sidecar_e2e.py --toolwarden PATH
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

POLICY = """policy pay;
allow read;
allow pay when amount <= 100;
"""


BANK_POLICY = """policy bank;
tools "bank.tools.json";
allow get_balance;
forbid send_money when amount > 1000;
"""

BANK_TOOLS = [
    {"name": "get_balance", "description": "The balance.",
     "parameters": {"type": "object", "properties": {}}},
    {"name": "read_file", "description": "Reads a file.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                    "required": ["path"]}},
    {"name": "send_money", "description": "Sends money.",
     "parameters": {"type": "object",
                    "properties": {"recipient": {"type": "string"}, "amount": {"type": "number"}},
                    "required": ["recipient", "amount"]}},
]

FAKE_LLM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "llm", "fake_llm.py")


def progent_rules(recipients):
    """A model reply in Progent's form allowing read_file and send_money to `recipients`."""
    rules = [{"name": "read_file", "args": {}},
             {"name": "send_money", "args": {"recipient": {"enum": recipients},
                                             "amount": {"minimum": None, "maximum": 100}}}]
    return {"reply": {"content": json.dumps({"rules": rules}), "finish": "stop"}}


class Sidecar:
    def __init__(self, binary, policy_dir, log_path, extra=()):
        self.proc = subprocess.Popen(
            [binary, "serve", "--policies", policy_dir, "--listen", "127.0.0.1:0",
             "--decision-log", log_path, "--reload-interval", "100"] + list(extra),
            stderr=subprocess.PIPE, text=True)
        self.stderr_lines = []
        line = self.proc.stderr.readline()
        while line and "listening on" not in line:
            self.stderr_lines.append(line)
            line = self.proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            raise SystemExit("sidecar did not start: " + "".join(self.stderr_lines) + line)
        self.port = int(match.group(1))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


def request(conn, method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    ctype = response.getheader("Content-Type", "")
    return response.status, (json.loads(payload) if ctype.startswith("application/json") else payload)


FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print("FAIL:", what)


def wait_for(predicate, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def drafting(binary, work):
    """A sidecar with --llm against a real fake_llm.py process."""
    policy_dir = os.path.join(work, "bank")
    os.mkdir(policy_dir)
    with open(os.path.join(policy_dir, "bank.policy"), "w") as f:
        f.write(BANK_POLICY)
    with open(os.path.join(policy_dir, "bank.tools.json"), "w") as f:
        json.dump(BANK_TOOLS, f)
    script_path = os.path.join(work, "script.json")
    record_path = os.path.join(work, "record.jsonl")
    with open(script_path, "w") as f:
        json.dump({"steps": [progent_rules(["GB1", "GB2"]),
                             {"reply": {"content": '{"update": true}', "finish": "stop"}},
                             progent_rules(["GB1"])],
                   "repeat_last": True}, f)  # repairs, if any, get the same answer
    fake = subprocess.Popen([sys.executable, FAKE_LLM, "--script", script_path,
                             "--record", record_path, "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    sidecar = None
    try:
        port = int(fake.stdout.readline())
        log_path = os.path.join(work, "drafting.jsonl")
        # The environment names the model; the flags win over it.
        os.environ["TOOLWARDEN_LLM_MODEL"] = "from-environment"
        sidecar = Sidecar(binary, policy_dir, log_path,
                          ["--llm", "http://127.0.0.1:%d" % port, "--model", "fake"])
        del os.environ["TOOLWARDEN_LLM_MODEL"]
        check(any("drafting with model fake" in line for line in sidecar.stderr_lines),
              "serve says which model drafts: %s" % sidecar.stderr_lines)
        conn = sidecar.connect()
        status, created = request(conn, "POST", "/v1/sessions",
                                  {"policy": "bank", "query": "Pay GB1 or GB2, as rent.txt says",
                                   "draft": True})
        check(status == 201 and created.get("draft", {}).get("ok") is True,
              "a drafted session: %s %s" % (status, created))
        s = "/v1/sessions/%s" % created.get("session")
        status, d = request(conn, "POST", s + "/decide",
                            {"tool": "send_money", "args": {"recipient": "GB2", "amount": 50}})
        check(status == 200 and d.get("decision") == "allow", "the draft allows GB2: %s" % d)
        status, d = request(conn, "POST", s + "/decide",
                            {"tool": "read_file", "args": {"path": "rent.txt"}})
        check(d.get("decision") == "allow", "the draft allows read_file: %s" % d)
        status, attached = request(conn, "POST", s + "/results",
                                   {"call": d.get("call"), "result": "Pay GB1."})
        update = attached.get("update", {}) if status == 200 else {}
        check(update.get("result") == "applied", "the narrowing update applies: %s" % attached)
        status, d = request(conn, "POST", s + "/check",
                            {"tool": "send_money", "args": {"recipient": "GB2", "amount": 50}})
        check(d.get("decision") == "deny", "after the update GB2 is denied: %s" % d)
        status, state = request(conn, "GET", s)
        check(state.get("update_mode") == "narrow-only" and state.get("pending_update") is None
              and state.get("drafted") == [(update.get("change") or {}).get("name")],
              "the session state shows the drafted rules: %s" % state)
        # A session without a draft works beside the drafted one.
        status, plain = request(conn, "POST", "/v1/sessions", {"policy": "bank"})
        check(status == 201 and "draft" not in plain, "a plain session beside the drafted one")
        conn.close()
        with open(record_path) as f:
            sent = [json.loads(line) for line in f]
        check(len(sent) >= 3 and all(r["body"].get("model") == "fake" for r in sent),
              "the draft and both update steps asked the flag's model")
        sidecar.proc.send_signal(signal.SIGTERM)
        check(sidecar.proc.wait(timeout=10) == 0, "the drafting sidecar exits 0")
        sidecar.reader.join(timeout=5)
        with open(log_path) as f:
            entries = [json.loads(line) for line in f]
        changes = [e for e in entries if e["kind"] == "rules-change"]
        check([c["change"] for c in changes] == ["draft", "update"], "the log has both changes")
        check(len(changes) == 2 and changes[1]["before"] == changes[0]["after"],
              "the update's `before` is the draft")
        verify = subprocess.run([binary, "verify-log", log_path], capture_output=True, text=True)
        check(verify.returncode == 0, "verify-log of the drafting log: %s" % verify.stdout)
    finally:
        os.environ.pop("TOOLWARDEN_LLM_MODEL", None)
        if sidecar is not None and sidecar.proc.poll() is None:
            sidecar.proc.kill()
            sidecar.proc.wait()
        fake.terminate()
        fake.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--toolwarden", required=True)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="toolwarden_e2e_")
    try:
        policy_dir = os.path.join(work, "policies")
        os.mkdir(policy_dir)
        policy_path = os.path.join(policy_dir, "pay.policy")
        with open(policy_path, "w") as f:
            f.write(POLICY)
        log_path = os.path.join(work, "decisions.jsonl")
        sidecar = Sidecar(args.toolwarden, policy_dir, log_path)
        conn = sidecar.connect()

        status, created = request(conn, "POST", "/v1/sessions", {"policy": "pay", "query": "q"})
        check(status == 201, "create session: %s %s" % (status, created))
        sid = created["session"]

        # Several keep-alive connections deciding on one session at once.
        decided = []
        lock = threading.Lock()

        def worker(n):
            c = sidecar.connect()
            for i in range(100):
                s, d = request(c, "POST", "/v1/sessions/%s/decide" % sid,
                               {"tool": "pay", "args": {"amount": (i % 2) * 500}})
                with lock:
                    decided.append((s, d.get("decision")))
            c.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(len(decided) == 800 and all(s == 200 for s, _ in decided), "800 decisions answered")
        check(sum(1 for _, d in decided if d == "allow") == 400, "400 allowed, 400 denied")
        status, state = request(conn, "GET", "/v1/sessions/%s" % sid)
        check(status == 200 and len(state["history"]) == 400, "history holds the 400 allowed calls")

        # Bad input over the wire: JSON errors, and the server keeps serving.
        status, body = request(conn, "POST", "/v1/sessions/%s/decide" % sid, raw="{not json")
        check(status == 400 and body["error"]["code"] == "invalid_argument", "malformed JSON -> 400")
        status, body = request(conn, "POST", "/v1/decide", raw="[" * 100000)
        check(status == 413 and body["error"]["code"] == "resource_exhausted", "deep JSON -> 413")
        big = sidecar.connect()
        status, body = request(big, "POST", "/v1/decide", raw="x" * (2 << 20))
        check(status == 413, "2 MiB body -> 413")
        status, body = request(conn, "POST", "/v1/sessions/nope/decide", {"tool": "read"})
        check(status == 404 and body["error"]["code"] == "not_found", "unknown session -> 404")

        # Hot reload: a new version swaps in within the poll interval.
        with open(policy_path, "w") as f:
            f.write(POLICY + "allow write;\n")
        check(wait_for(lambda: request(conn, "POST", "/v1/decide",
                                       {"policy": "pay", "tool": "write"})[1]["decision"] == "allow"),
              "a changed policy file is reloaded")
        # A broken version: the last good one keeps serving; /healthz says degraded.
        with open(policy_path, "w") as f:
            f.write("allow when when;\n")
        check(wait_for(lambda: request(conn, "GET", "/healthz")[1]["status"] == "degraded"),
              "a broken file shows in /healthz")
        status, health = request(conn, "GET", "/healthz")
        check("pay.policy:1:" in health["policies"]["pay"].get("error", ""), "healthz has the diagnostics")
        status, d = request(conn, "POST", "/v1/decide", {"policy": "pay", "tool": "write"})
        check(d["decision"] == "allow", "the last good version still decides")
        # SIGHUP reloads at once (the poll would too; the log shows both as reloads).
        with open(policy_path, "w") as f:
            f.write(POLICY)
        sidecar.proc.send_signal(signal.SIGHUP)
        check(wait_for(lambda: request(conn, "GET", "/healthz")[1]["status"] == "ok"),
              "fixed file after SIGHUP")
        status, metrics = request(conn, "GET", "/metrics")
        text = metrics.decode() if isinstance(metrics, bytes) else str(metrics)
        check('toolwarden_decisions_total{outcome="allow"}' in text, "metrics has decisions")
        check('toolwarden_policy_reloads_total{result="error"} ' in text and
              'toolwarden_policy_reloads_total{result="error"} 0' not in text, "metrics counts a failed reload")

        # SIGTERM: a clean exit, and the log holds every decision and verifies.
        conn.close()
        sidecar.proc.send_signal(signal.SIGTERM)
        code = sidecar.proc.wait(timeout=10)
        sidecar.reader.join(timeout=5)
        check(code == 0, "exit code 0 after SIGTERM (got %s)" % code)
        check(any("stopped" in line for line in sidecar.stderr_lines), "says it stopped")
        check(any("keeping the last good version" in line for line in sidecar.stderr_lines),
              "stderr reports the bad file")
        with open(log_path) as f:
            entries = [json.loads(line) for line in f]
        kinds = [e["kind"] for e in entries]
        check(kinds.count("decide") >= 800 + 2, "every decision is in the log (%d)" % kinds.count("decide"))
        check(any(e["kind"] == "reload" and e["failed"] == ["pay"] for e in entries), "the log has the failed reload")
        verify = subprocess.run([args.toolwarden, "verify-log", log_path], capture_output=True, text=True)
        check(verify.returncode == 0 and "chain intact" in verify.stdout,
              "verify-log: %s %s" % (verify.stdout, verify.stderr))

        drafting(args.toolwarden, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print("%d checks failed" % len(FAILURES))
        return 1
    print("sidecar end-to-end: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
