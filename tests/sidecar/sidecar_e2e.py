#!/usr/bin/env python3
"""End-to-end test of `toolwarden serve` as a process: real sockets, real files.

Starts the sidecar on a free loopback port over a temporary policy directory
and checks: sessions and decisions over keep-alive HTTP from several threads,
hot reload (a good file swaps in, a bad file keeps the last good version and
shows in /healthz and the log, SIGHUP reloads at once), bad input over the wire,
and a SIGTERM shutdown that exits 0 with every decision in a log that
`toolwarden verify-log` accepts.

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


class Sidecar:
    def __init__(self, binary, policy_dir, log_path):
        self.proc = subprocess.Popen(
            [binary, "serve", "--policies", policy_dir, "--listen", "127.0.0.1:0",
             "--decision-log", log_path, "--reload-interval", "100"],
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
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print("%d checks failed" % len(FAILURES))
        return 1
    print("sidecar end-to-end: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
