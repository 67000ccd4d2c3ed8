#!/usr/bin/env python3
"""Loopback load test of `toolwarden serve` with wrk.

Starts the sidecar over policies/examples (banking), opens sessions, and drives
`POST /v1/sessions/ID/check` (one session per wrk thread) with a `send_money` call that passes the budget
rule (a full decision, logged, but not recorded in the session's history, so
the run measures steady state rather than a history filling up) from wrk at 1,
8 and 64 keep-alive connections. Then it opens 10,000 sessions and reports the
server's resident memory, and samples the memory during a long run at 8
connections to show whether it stays flat.

usage: sidecar_load.py --toolwarden PATH [--duration S] [--long S] [--sessions N] [--no-log]
                      [--threads N] [--json FILE]
Prints a Markdown table. Exit status 1 if any request failed (non-2xx or socket
errors), so a short run doubles as a smoke test.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CALL = {"tool": "send_money",
        "args": {"recipient": "UK12345678901234567890", "amount": 100, "subject": "rent",
                 "date": "2022-01-01"}}

LUA = r"""
-- Each wrk thread decides on its own session with one precomputed request (no
-- Lua runs per request, so wrk spends its CPU on the wire, not in Lua).
local ids = {%s}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", ids[counter])
end
function init(args)
  wrk.method = "POST"
  wrk.path = "/v1/sessions/" .. id .. "/check"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '%s'
end
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def parse_wrk(text):
    """Requests/s, p50 and p99 in ms, and error count from wrk --latency output."""
    def ms(value):
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    return rps, p50, p99, errors, requests


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--toolwarden", required=True)
    parser.add_argument("--duration", type=int, default=10, help="seconds per connection count")
    parser.add_argument("--long", type=int, default=60, help="seconds of the memory run (0: skip)")
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--no-log", action="store_true", help="run without a decision log")
    parser.add_argument("--threads", type=int, default=0, help="server threads (0: one per core)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)")
        return 2

    work = tempfile.mkdtemp(prefix="toolwarden_load_")
    policies = os.path.join(work, "policies")
    os.mkdir(policies)
    for name in ("banking.policy", "banking.tools.json"):
        shutil.copy(os.path.join(ROOT, "policies", "examples", name), policies)
    command = [args.toolwarden, "serve", "--policies", policies, "--listen", "127.0.0.1:0",
               "--max-sessions", str(args.sessions + 1000)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if not args.no_log:
        command += ["--decision-log", os.path.join(work, "decisions.jsonl")]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    failed = False
    results = {"runs": [], "command": " ".join(sys.argv)}
    try:
        line = server.stderr.readline()
        while line and "listening on" not in line:
            line = server.stderr.readline()
        port = int(re.search(r":(\d+)\s*$", line).group(1))
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
        base = "http://127.0.0.1:%d" % port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def post(path, body):
            conn.request("POST", path, body=json.dumps(body),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read())

        ids = []
        for i in range(2):
            status, body = post("/v1/sessions", {"policy": "banking", "query": "pay my rent"})
            assert status == 201, body
            ids.append(body["session"])
        status, decision = post("/v1/sessions/%s/check" % ids[0], CALL)
        assert decision["decision"] == "allow", decision
        script = os.path.join(work, "check.lua")
        with open(script, "w") as f:
            f.write(LUA % (", ".join('"%s"' % i for i in ids), json.dumps(CALL)))

        print("| connections | decisions/s | p50 | p99 | errors |")
        print("|---|---|---|---|---|")
        for connections in (1, 8, 64):
            out = subprocess.run(
                ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d",
                 "%ds" % args.duration, "--latency", "-s", script, base],
                capture_output=True, text=True, check=True).stdout
            rps, p50, p99, errors, requests = parse_wrk(out)
            failed |= errors > 0
            results["runs"].append({"connections": connections, "rps": rps, "p50_ms": p50,
                                    "p99_ms": p99, "errors": errors, "requests": requests})
            print("| %d | %.0f | %.3f ms | %.3f ms | %d of %d |" %
                  (connections, rps, p50, p99, errors, requests))

        before = rss_kib(server.pid)
        for i in range(args.sessions):
            status, body = post("/v1/sessions", {"policy": "banking", "query": "session %d" % i})
            if status != 201:
                failed = True
                print("creating session %d: %s %s" % (i, status, body))
                break
        after = rss_kib(server.pid)
        per_session = (after - before) * 1024.0 / max(1, args.sessions)
        results.update({"rss_before_kib": before, "rss_after_sessions_kib": after,
                        "sessions": args.sessions, "bytes_per_session": per_session})
        print("\nresident memory: %.1f MiB before, %.1f MiB with %d more live sessions "
              "(%.0f bytes per session)" % (before / 1024, after / 1024, args.sessions, per_session))

        if args.long > 0:
            samples = []
            wrk = subprocess.Popen(
                ["wrk", "-t", "2", "-c", "8", "-d", "%ds" % args.long, "--latency", "-s", script,
                 base], stdout=subprocess.PIPE, text=True)
            start = time.time()
            while wrk.poll() is None:
                samples.append((round(time.time() - start), rss_kib(server.pid)))
                time.sleep(5)
            rps, p50, p99, errors, requests = parse_wrk(wrk.stdout.read())
            failed |= errors > 0
            results["long"] = {"seconds": args.long, "rps": rps, "p50_ms": p50, "p99_ms": p99,
                               "errors": errors, "rss_samples_kib": samples}
            print("\n%d s at 8 connections: %.0f decisions/s, p99 %.3f ms, %d errors; resident "
                  "memory (MiB) every 5 s: %s" %
                  (args.long, rps, p99, errors,
                   " ".join("%.1f" % (kib / 1024) for _, kib in samples)))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if failed:
        print("some requests failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
