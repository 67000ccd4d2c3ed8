#!/usr/bin/env python3
"""Resource bounds end to end: every limit, through the front door it protects.

For each limit of the language, of the sidecar and of the MCP proxy, this test drives the real
`toolwarden` binary over its real interface (the CLI on real files, `toolwarden serve` over real
sockets, `toolwarden mcp` with a real child process over stdio and in front of a real HTTP
upstream), sends an input just over the limit, and checks four things:

  1. the input is over the limit, not at it;
  2. the answer is the clear error the documentation promises (status, error code, message);
  3. the process is still alive and serving;
  4. a well-formed call made after it gets the same decision as the same call made before it, in
     the same session, process or server.

Limits too large to reach in a test's time are reached through the smaller value of the option that
sets them (`serve --max-sessions`, `--session-idle`); docs/limits.md says which. The limits and
their errors are listed in docs/limits.md.

usage: limits_e2e.py --toolwarden PATH [--only SECTION[,SECTION...]] [--verbose]
       sections: cli, sidecar_language, sidecar_http, mcp_stdio, mcp_http

Python 3 standard library only. CTest runs it as `limits_e2e_*` (tests/tests.cmake).
"""
import argparse
import http.client
import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MCP_SERVER = os.path.join(HERE, "mcp_server.py")
MiB = 1 << 20
KiB = 1 << 10

FAILURES = []
VERBOSE = False
STARTED = time.time()


def check(ok, what):
    """Records a check; a failed one is printed at once and fails the run."""
    if ok:
        if VERBOSE:
            print("%.1f ok: %s" % (time.time() - STARTED, short(what, 150)), flush=True)
    else:
        FAILURES.append(what)
        print("FAILED: " + what, flush=True)
    return ok


def short(value, limit=300):
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "...(%d chars)" % len(text)


def nested(depth, leaf=1):
    """A JSON value `depth` objects deep: {"a": {"a": ... leaf}}."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


# ---------------------------------------------------------------------------------------------
# Processes


class Process:
    """A child process whose stderr is collected line by line on a thread."""

    def __init__(self, argv, stdin=None, stdout=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        self.stderr_lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            with self.lock:
                self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def stderr(self):
        with self.lock:
            return "\n".join(self.stderr_lines)

    def wait_stderr(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.stderr())
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.1)
                return re.search(pattern, self.stderr())
            time.sleep(0.02)
        return None

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        return self.proc.returncode


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


# ---------------------------------------------------------------------------------------------
# HTTP


def http_request(conn, method, path, body=None, raw=None, headers=None):
    """One request on a keep-alive connection; returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    if isinstance(data, str):
        data = data.encode()
    all_headers = {"content-type": "application/json"}
    all_headers.update(headers or {})
    conn.request(method, path, body=data, headers=all_headers)
    response = conn.getresponse()
    text = response.read().decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return response.status, parsed, response


def raw_exchange(port, data, timeout=20):
    """Sends raw bytes on a new connection; returns everything read until the peer closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass
    chunks = []
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
    except OSError:
        pass
    s.close()
    return b"".join(chunks)


def pipeline(port, request, count, timeout=300):
    """Sends `request` `count` times on one connection without waiting (HTTP/1.1 pipelining),
    reading the replies as they come; returns the replies, split at their status lines."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sender = threading.Thread(target=lambda: s.sendall(request * count), daemon=True)
    sender.start()
    data = bytearray()
    while data.count(b"HTTP/1.1 ") < count or not _complete(bytes(data[data.rfind(b"HTTP/1.1 "):])):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    sender.join(timeout)
    s.close()
    return [b"HTTP/1.1 " + r for r in bytes(data).split(b"HTTP/1.1 ")[1:]]


def _complete(data):
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def parse_raw_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Decisions


DECISION_FIELDS = ("tool", "decision", "rule", "fallback", "message", "reason", "errors", "policy")


def same_decision(d):
    """The parts of a decision record that must not change (not its timing or call index)."""
    if not isinstance(d, dict):
        return d
    return {k: d.get(k) for k in DECISION_FIELDS}


# ---------------------------------------------------------------------------------------------
# 1. The language through the CLI: limits on what is loaded (files)

CLI_POLICY = "policy cli;\nallow read;\nallow pay when amount <= 100;\n"
CLI_CALLS = [("read", {}), ("pay", {"amount": 50}), ("pay", {"amount": 500})]


def cli_section(tw, work):
    """Load-time limits through `toolwarden lint` and `check` on real files."""
    good = os.path.join(work, "cli.policy")
    with open(good, "w") as f:
        f.write(CLI_POLICY)

    def decisions():
        out = []
        for tool, args in CLI_CALLS:
            r = run([tw, "check", "--policy", good, "--tool", tool, "--args", json.dumps(args)])
            try:
                out.append(same_decision(json.loads(r.stdout)))
            except ValueError:
                out.append(("not JSON", r.returncode, r.stdout, r.stderr))
        return out

    before = decisions()
    check([d.get("decision") for d in before] == ["allow", "allow", "deny"],
          "cli: the well-formed calls decide allow, allow, deny: %s" % short(before))

    def over(name, text, expected, args=None, exit_code=1, write_bytes=False):
        path = os.path.join(work, name)
        with open(path, "wb" if write_bytes else "w") as f:
            f.write(text)
        argv = [tw, "lint", path] + (args or [])
        r = run(argv)
        check(r.returncode == exit_code and expected in r.stderr + r.stdout,
              "cli %s: exit %d with `%s` (got exit %d: %s)" %
              (name, exit_code, expected, r.returncode, short(r.stderr + r.stdout, 600)))
        check(r.returncode in (0, 1, 2), "cli %s: no crash (exit %d)" % (name, r.returncode))
        os.unlink(path)

    # kMaxSourceBytes: 8 MiB of policy text.
    text = "allow t;\n" + "#" * (8 * MiB)
    over("source.policy", text,
         "error: `%s` is %d bytes; the limit is 8388608" % (os.path.join(work, "source.policy"),
                                                             len(text)))
    # kMaxRules: items per file.
    over("rules.policy", "allow a;\n" * 100001,
         "error: policy has more than 100000 items")
    # kMaxListElements.
    over("list.policy", "let l = [" + ",".join(["0"] * 100001) + "];\nallow t;\n",
         "error: list literal has more than 100000 elements")
    # kMaxNesting: 257 brackets.
    over("nesting.policy", "allow t when " + "(" * 257 + "x" + ")" * 257 + ";\n",
         "error: expression nests deeper than 256 levels (brackets and chained operators)")
    # kMaxSyntaxErrors.
    over("syntax.policy", "allow ;\n" * 30, "error: too many syntax errors; stopped after 20")
    # kMaxDiagnostics: 150 errors, 100 kept.
    over("diagnostics.policy", "".join("allow t%d when foo(x);\n" % i for i in range(150)),
         "diagnostics.policy:100:16: error: too many diagnostics; 51 more not shown")
    # kMaxPriority.
    over("priority.policy", "allow t priority 1000001;\n",
         "priority.policy:1:18: error: priority must be between 0 and 1000000")
    # kMaxRegexProgramSize.
    over("regex.policy", 'allow t when x matches r".{1000}.{1000}.{1000}.{1000}";\n',
         "regex.policy:1:24: error: regex program is too large (32004 > 20000)")
    # kMaxRegexMemory.
    over("regex_memory.policy", 'allow t when x matches r"\\pL{1000}";\n',
         "regex_memory.policy:1:24: error: invalid regex: pattern too large - compile failed")
    # kMaxQuantifierNesting: 17 nested quantifiers.
    q = "".join("all(v%d in xs, " % i for i in range(17))
    over("quantifiers.policy", "allow t when " + q + "true" + ")" * 17 + ";\n",
         "quantifiers.policy:1:244: error: quantifiers nest deeper than 16")

    # Tool catalogs and JSON from outside: kMaxTools, kMaxJsonBytes, kMaxJsonDepth.
    def tools_file(name, value):
        path = os.path.join(work, name)
        with open(path, "w") as f:
            json.dump(value, f)
        return path

    many = tools_file("many.tools.json",
                      {"tools": [{"name": "t%d" % i, "inputSchema": {"type": "object"}}
                                 for i in range(100001)]})
    over("ok1.policy", "allow t1;\n", "error: %s: more than 100000 tools" % many,
         args=["--tools", many])
    huge = tools_file("huge.tools.json", {"tools": [{"name": "t", "inputSchema": {
        "type": "object", "description": "d" * (16 * MiB)}}]})
    over("ok2.policy", "allow t;\n",
         "error: `%s` is %d bytes; the limit is 16777216" % (huge, os.path.getsize(huge)),
         args=["--tools", huge])
    deep = tools_file("deep.tools.json", {"tools": [{"name": "t", "inputSchema": nested(129)}]})
    over("ok3.policy", "allow t;\n", "error: %s: JSON nests deeper than 128 at byte" % deep,
         args=["--tools", deep])
    for path in (many, huge, deep):
        os.unlink(path)

    # kMaxJsonDepth on a call's arguments from the command line: a usage error, not a decision.
    r = run([tw, "check", "--policy", good, "--tool", "read", "--args", json.dumps(nested(129))])
    check(r.returncode == 2 and "--args: JSON nests deeper than 128" in r.stderr,
          "cli check --args 129 levels: usage error (got %d: %s)" % (r.returncode, short(r.stderr)))
    # kMaxArgDepth: 65 levels pass the JSON reader (128) but not the engine (64): a denial.
    r = run([tw, "check", "--policy", good, "--tool", "read", "--args", json.dumps(nested(65))])
    try:
        d = json.loads(r.stdout)
    except ValueError:
        d = {}
    check(r.returncode == 1 and d.get("decision") == "deny" and
          any("64" in e for e in d.get("errors", [])),
          "cli check, arguments 65 levels deep: denied with an error naming 64 (got %d: %s)" %
          (r.returncode, short(r.stdout)))

    after = decisions()
    check(after == before, "cli: the well-formed calls decide as before: %s" % short(after))


# ---------------------------------------------------------------------------------------------
# 2. and 3. The sidecar

SIDECAR_POLICY = """policy pay;
allow read;
allow pay when amount <= 100;
allow fetch when url(u).host == "example.com";
allow mail when email(to).domain == "example.com";
allow open when path(p) == "/home/a";
allow loop when all(a in xs, all(b in xs, a == b or true));
allow give when who from trusted;
allow t;
"""

# Well-formed calls, decided with /check (which records nothing) before and after each limit.
WELL_FORMED = [
    ("read", {}),
    ("pay", {"amount": 50}),
    ("pay", {"amount": 500}),
    ("fetch", {"u": "https://example.com/a"}),
    ("mail", {"to": "bob@example.com"}),
    ("open", {"p": "/home/b/../a"}),
    ("loop", {"xs": [1, 2, 3]}),
    ("give", {"who": "alice"}),
]


class Sidecar:
    def __init__(self, tw, policy_dir, extra=()):
        self.process = Process([tw, "serve", "--policies", policy_dir, "--listen", "127.0.0.1:0",
                                "--reload-interval", "200"] + list(extra))
        m = self.process.wait_stderr(r"listening on http://127\.0\.0\.1:(\d+)", timeout=60)
        if not m:
            raise RuntimeError("the sidecar did not start: " + self.process.stderr())
        self.port = int(m.group(1))

    def connect(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self):
        return self.process.stop()


class SidecarClient:
    """A keep-alive connection that reconnects when the server closed it."""

    def __init__(self, sidecar):
        self.sidecar = sidecar
        self.conn = sidecar.connect()

    def __call__(self, method, path, body=None, raw=None, headers=None):
        for attempt in range(2):
            try:
                status, parsed, _ = http_request(self.conn, method, path, body, raw, headers)
                return status, parsed
            except (http.client.HTTPException, ConnectionError, BrokenPipeError):
                self.conn.close()
                self.conn = self.sidecar.connect()
                if attempt == 1:
                    raise
        return None

    def snapshot(self, sid):
        out = []
        for tool, args in WELL_FORMED:
            status, d = self("POST", "/v1/sessions/%s/check" % sid, {"tool": tool, "args": args})
            out.append((status, same_decision(d)))
        return out


def write_policy_dir(work, name="policies"):
    policy_dir = os.path.join(work, name)
    os.makedirs(policy_dir, exist_ok=True)
    with open(os.path.join(policy_dir, "pay.policy"), "w") as f:
        f.write(SIDECAR_POLICY)
    return policy_dir


def error_of(body):
    return body.get("error", {}) if isinstance(body, dict) else {}


def sidecar_language_section(tw, work):
    """The language's limits through the sidecar: inline policies and per-call limits."""
    sidecar = Sidecar(tw, write_policy_dir(work))
    try:
        c = SidecarClient(sidecar)
        status, created = c("POST", "/v1/sessions",
                            {"policy": "pay", "query": "q", "trusted": ["alice"]})
        check(status == 201, "sidecar: a session is created: %s %s" % (status, short(created)))
        sid = created["session"]
        before = c.snapshot(sid)
        check([d.get("decision") for _, d in before] ==
              ["allow", "allow", "deny", "allow", "allow", "allow", "allow", "allow"],
              "sidecar: the well-formed calls decide as written: %s" % short(before, 2000))

        def unchanged(what):
            after = c.snapshot(sid)
            check(sidecar.process.alive(), "sidecar %s: the sidecar is still running" % what)
            check(after == before, "sidecar %s: the well-formed calls decide as before: %s" %
                  (what, short(after, 2000)))

        # Load-time limits on an inline policy: 422 policy_error with the diagnostic.
        q = "".join("all(v%d in xs, " % i for i in range(17))
        inline = [
            ("kMaxListElements", "let l = [" + ",".join(["0"] * 100001) + "];\nallow t;\n",
             "list literal has more than 100000 elements"),
            ("kMaxNesting", "allow t when " + "(" * 257 + "x" + ")" * 257 + ";\n",
             "expression nests deeper than 256 levels"),
            ("kMaxSyntaxErrors", "allow ;\n" * 30, "too many syntax errors; stopped after 20"),
            ("kMaxDiagnostics", "".join("allow t%d when foo(x);\n" % i for i in range(150)),
             "too many diagnostics; 51 more not shown"),
            ("kMaxPriority", "allow t priority 1000001;\n",
             "priority must be between 0 and 1000000"),
            ("kMaxRegexProgramSize", 'allow t when x matches r".{1000}.{1000}.{1000}.{1000}";\n',
             "regex program is too large (32004 > 20000)"),
            ("kMaxRegexMemory", 'allow t when x matches r"\\pL{1000}";\n',
             "invalid regex: pattern too large - compile failed"),
        ]
        for name, text, expected in inline:
            status, body = c("POST", "/v1/sessions", {"source": text})
            err = error_of(body)
            shown = json.dumps(body)
            check(status == 422 and err.get("code") == "policy_error" and expected in shown,
                  "sidecar inline %s: 422 policy_error with `%s` (got %s %s)" %
                  (name, expected, status, short(body, 500)))
            unchanged("inline " + name)

        # kMaxQuantifierNesting is found by the checker: 422 with a positioned diagnostic.
        status, body = c("POST", "/v1/sessions",
                         {"source": "allow t when " + q + "true" + ")" * 17 + ";\n"})
        err = error_of(body)
        check(status == 422 and err.get("code") == "policy_error" and
              "quantifiers nest deeper than 16" in json.dumps(body) and
              '"line": 1' in json.dumps(body),
              "sidecar inline kMaxQuantifierNesting: 422 with a position (got %s %s)" %
              (status, short(body)))
        unchanged("inline kMaxQuantifierNesting")

        # Per-call limits: a 200 decision that denies, with the limit in its errors.
        def over_call(name, tool, args, expected):
            status, d = c("POST", "/v1/sessions/%s/decide" % sid, {"tool": tool, "args": args})
            check(status == 200 and d.get("decision") == "deny" and d.get("errors") == [expected],
                  "sidecar %s: a 200 deny with the error `%s` (got %s %s)" %
                  (name, expected, status, short(d, 600)))
            unchanged(name)

        over_call("kMaxArgDepth", "t", nested(65), "the arguments exceed 64 levels")
        over_call("kMaxArgNodes", "t", {"a": [0] * 100001}, "the arguments exceed 100000 values")
        over_call("kMaxEvalSteps", "loop", {"xs": list(range(400))},
                  "pay.policy:7: evaluation step budget of 100000 exceeded")
        over_call("kMaxUrlBytes", "fetch", {"u": "https://example.com/" + "a" * 8192},
                  "pay.policy:4: URL is 8212 bytes; the limit is 8192")
        over_call("kMaxEmailBytes", "mail", {"to": "a" * 310 + "@example.com"},
                  "pay.policy:5: email address is 322 bytes; the limit is 320")
        over_call("kMaxPathBytes", "open", {"p": "/home/" + "a" * 4096},
                  "pay.policy:6: path is 4102 bytes; the limit is 4096")

        # kMaxTrustedValues: at creation, and one more on a full session.
        status, body = c("POST", "/v1/sessions",
                         {"policy": "pay", "trusted": ["v%d" % i for i in range(10001)]})
        check(status == 400 and error_of(body).get("message") ==
              "`trusted` holds more than 10000 values",
              "sidecar kMaxTrustedValues at creation: 400 (got %s %s)" % (status, short(body)))
        status, full = c("POST", "/v1/sessions",
                         {"policy": "pay", "trusted": ["v%d" % i for i in range(10000)]})
        check(status == 201, "sidecar: a session with 10,000 trusted values (got %s)" % status)
        if status == 201:
            fid = full["session"]
            _, give_before = c("POST", "/v1/sessions/%s/check" % fid,
                               {"tool": "give", "args": {"who": "v9999"}})
            status, body = c("POST", "/v1/sessions/%s/trusted" % fid, {"value": "extra"})
            check(status == 413 and error_of(body) == {
                "code": "resource_exhausted", "message": "more than 10000 trusted values"},
                "sidecar kMaxTrustedValues on a full session: 413 (got %s %s)" %
                (status, short(body)))
            _, give_extra = c("POST", "/v1/sessions/%s/check" % fid,
                              {"tool": "give", "args": {"who": "extra"}})
            check(give_extra.get("decision") == "deny",
                  "sidecar kMaxTrustedValues: the refused value is not trusted")
            _, give_after = c("POST", "/v1/sessions/%s/check" % fid,
                              {"tool": "give", "args": {"who": "v9999"}})
            check(same_decision(give_after) == same_decision(give_before) and
                  give_after.get("decision") == "allow",
                  "sidecar kMaxTrustedValues: a trusted value decides as before")
            c("DELETE", "/v1/sessions/%s" % fid)
        unchanged("kMaxTrustedValues")

        # Added rules: kMaxAddedNameBytes, kMaxAddedBytes, kMaxAddedTexts, on a session of their own
        # (what they add must not change the first session).
        status, other = c("POST", "/v1/sessions", {"policy": "pay", "trusted": ["alice"]})
        oid = other["session"]
        other_before = c.snapshot(oid)
        status, body = c("POST", "/v1/sessions/%s/rules" % oid,
                         {"source": "forbid z0;", "name": "n" * 65})
        check(status == 400 and error_of(body).get("message") ==
              "a name for added rules is 1 to 64 letters, digits, `_`, `.` or `-`",
              "sidecar kMaxAddedNameBytes: 400 naming 64 (got %s %s)" % (status, short(body)))
        status, body = c("POST", "/v1/sessions/%s/rules" % oid,
                         {"source": "forbid z0;\n#" + "x" * (256 * KiB)})
        check(status == 413 and error_of(body) == {
            "code": "resource_exhausted",
            "message": "a session takes at most 262144 bytes of added rules"},
              "sidecar kMaxAddedBytes: 413 naming 262144 (got %s %s)" % (status, short(body)))
        for i in range(100):
            status, body = c("POST", "/v1/sessions/%s/rules" % oid, {"source": "forbid z%d;" % i})
            if status != 200:
                check(False, "sidecar: added text %d of 100 is taken (got %s %s)" %
                      (i + 1, status, short(body)))
                break
        status, body = c("POST", "/v1/sessions/%s/rules" % oid, {"source": "forbid z100;"})
        check(status == 413 and error_of(body) == {
            "code": "resource_exhausted", "message": "a session takes at most 100 added texts"},
              "sidecar kMaxAddedTexts: the 101st text gets 413 naming 100 (got %s %s)" %
              (status, short(body)))
        other_after = c.snapshot(oid)
        check([same for _, same in other_after] == [same for _, same in other_before] or
              all(a[1]["decision"] == b[1]["decision"] and a[1]["rule"] == b[1]["rule"]
                  for a, b in zip(other_after, other_before)),
              "sidecar added rules: the session decides the well-formed calls as before: %s" %
              short(other_after, 2000))
        unchanged("added rules")

        # kMaxHistory: 10,000 allowed calls; the 10,001st is denied with the limit named, and the
        # other session decides as before.
        hist_status, hist = c("POST", "/v1/sessions", {"policy": "pay"})
        hid = hist["session"]
        body = b'{"tool": "read"}'
        one = (b"POST /v1/sessions/%s/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               b"\r\nContent-Length: %d\r\n\r\n" % (hid.encode(), len(body)) + body)
        replies = pipeline(sidecar.port, one, 10000)
        check(len(replies) == 10000 and all(r.startswith(b"HTTP/1.1 200") and
                                             b'"decision":"allow"' in r.replace(b" ", b"")
                                             for r in replies),
              "sidecar: 10,000 calls allowed (%d replies)" % len(replies))
        status, d = c("POST", "/v1/sessions/%s/decide" % hid, {"tool": "read"})
        check(status == 200 and d.get("decision") == "deny" and
              d.get("errors") == ["the session's history is full (10000 calls)"],
              "sidecar kMaxHistory: the 10,001st call is denied naming 10000 (got %s %s)" %
              (status, short(d)))
        unchanged("kMaxHistory")
    finally:
        code = sidecar.stop()
        check(code == 0, "sidecar (language): exits 0 after SIGTERM (got %s)" % code)


def sidecar_http_section(tw, work):
    """The sidecar's own limits: body, JSON depth, head, connections, sessions, idle, files."""
    sidecar = Sidecar(tw, write_policy_dir(work), ["--max-sessions", "3", "--session-idle", "1"])
    try:
        c = SidecarClient(sidecar)
        status, created = c("POST", "/v1/sessions", {"policy": "pay", "trusted": ["alice"]})
        sid = created["session"]
        before = c.snapshot(sid)

        def unchanged(what):
            after = c.snapshot(sid)
            check(sidecar.process.alive(), "sidecar %s: the sidecar is still running" % what)
            check(after == before, "sidecar %s: the well-formed calls decide as before: %s" %
                  (what, short(after, 2000)))

        # kMaxBodyBytes: 1 MiB + 1 byte of body, on a connection of its own.
        body = b'{"tool": "read", "pad": "' + b"x" * MiB + b'"}'
        data = raw_exchange(sidecar.port, b"POST /v1/sessions/%s/decide HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
                            (sid.encode(), len(body)) + body)
        status, parsed = parse_raw_response(data)
        check(status == 413 and error_of(parsed) == {
            "code": "resource_exhausted", "message": "request body is larger than 1048576 bytes"},
            "sidecar kMaxBodyBytes: 413 (got %s %s)" % (status, short(parsed)))
        unchanged("kMaxBodyBytes")

        # kMaxBodyDepth: 129 levels.
        status, body = c("POST", "/v1/sessions/%s/decide" % sid,
                         # 128 levels of arguments inside the body's object: 129.
                         raw='{"tool": "read", "args": ' + json.dumps(nested(128)) + "}")
        check(status == 413 and error_of(body).get("code") == "resource_exhausted" and
              "request body: JSON nests deeper than 128" in error_of(body).get("message", ""),
              "sidecar kMaxBodyDepth: 413 (got %s %s)" % (status, short(body)))
        unchanged("kMaxBodyDepth")

        # kMaxHeaderBytes: a 17 KiB head.
        data = raw_exchange(sidecar.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                            b"p" * (17 * KiB) + b"\r\n\r\n")
        status, parsed = parse_raw_response(data)
        check(status == 431 and error_of(parsed) == {
            "code": "resource_exhausted", "message": "request head is larger than 16384 bytes"},
            "sidecar kMaxHeaderBytes: 431 (got %s %s)" % (status, short(parsed)))
        unchanged("kMaxHeaderBytes")

        # Live sessions (kMaxSessions, through --max-sessions 3): the fourth gets 429. A session
        # used within the last second is not idle, so the others are kept alive while we look.
        ids = [sid]
        for _ in range(2):
            status, body = c("POST", "/v1/sessions", {"policy": "pay"})
            check(status == 201, "sidecar: sessions 2 and 3 of 3 are created (got %s)" % status)
            ids.append(body.get("session"))
        status, body = c("POST", "/v1/sessions", {"policy": "pay"})
        check(status == 429 and error_of(body) == {
            "code": "resource_exhausted",
            "message": "too many live sessions (3); delete finished ones"},
            "sidecar max sessions: the fourth gets 429 (got %s %s)" % (status, short(body)))
        unchanged("max sessions")

        # Idle sessions (--session-idle 1): a session unused for a second is removed; a session in
        # use stays and decides as before.
        idle = ids[1]
        deadline = time.time() + 15
        expired = False
        while time.time() < deadline and not expired:
            c.snapshot(sid)  # keeps the first session in use
            _, metrics = c("GET", "/metrics")
            expired = re.search(r"(?m)^toolwarden_sessions_expired_total [1-9]", str(metrics))
            time.sleep(0.2)
        status, body = c("GET", "/v1/sessions/%s" % idle)
        check(expired and status == 404 and error_of(body) == {
            "code": "not_found", "message": "no session `%s`" % idle},
            "sidecar --session-idle: an idle session is removed, 404 (got %s %s)" %
            (status, short(body)))
        status, body = c("POST", "/v1/sessions", {"policy": "pay"})
        check(status == 201, "sidecar --session-idle: the room is free again (got %s)" % status)
        unchanged("session idle")
    finally:
        code = sidecar.stop()
        check(code == 0, "sidecar (http): exits 0 after SIGTERM (got %s)" % code)

    # kMaxConnections: 10,000 open connections; the next is closed unanswered; after some close,
    # a new connection is served and decides as before.
    sidecar = Sidecar(tw, write_policy_dir(work))
    sockets = []
    try:
        c = SidecarClient(sidecar)
        status, created = c("POST", "/v1/sessions", {"policy": "pay", "trusted": ["alice"]})
        sid = created["session"]
        before = c.snapshot(sid)
        c.conn.close()
        for _ in range(10000):
            sockets.append(socket.create_connection(("127.0.0.1", sidecar.port), timeout=30))
        # The server accepts in order: once the 10,000th is served, all 10,000 are counted.
        last = sockets[-1]
        last.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = last.recv(65536)
        check(reply.startswith(b"HTTP/1.1 200"), "sidecar: the 10,000th connection is served")
        extra = socket.create_connection(("127.0.0.1", sidecar.port), timeout=30)
        try:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = extra.recv(65536)
        except OSError:
            refused = b""
        extra.close()
        check(refused == b"", "sidecar kMaxConnections: the 10,001st connection is closed "
              "unanswered (got %s)" % short(refused.decode("latin-1")))
        check(sidecar.process.alive(), "sidecar kMaxConnections: the sidecar is still running")
        for s in sockets[:10]:
            s.close()
        deadline = time.time() + 20
        after = None
        while time.time() < deadline:
            try:
                c = SidecarClient(sidecar)
                after = c.snapshot(sid)
                break
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        check(after == before, "sidecar kMaxConnections: after some close, a new connection "
              "decides as before: %s" % short(after, 2000))
    finally:
        for s in sockets:
            s.close()
        code = sidecar.stop()
        check(code == 0, "sidecar (connections): exits 0 after SIGTERM (got %s)" % code)

    # kMaxPolicyFiles: 1,001 policy files; the first 1,000 (by name) are served, /healthz says
    # degraded with the reason, and decisions by a served policy are as before.
    many_dir = os.path.join(work, "many")
    os.makedirs(many_dir)
    for i in range(1001):
        with open(os.path.join(many_dir, "p%04d.policy" % i), "w") as f:
            f.write("allow read;\nallow pay when amount <= %d;\n" % (100 + i))
    sidecar = Sidecar(tw, many_dir)
    try:
        c = SidecarClient(sidecar)
        status, health = c("GET", "/healthz")
        check(status == 200 and health.get("status") == "degraded" and
              "the policy directory holds more than 1000 policy files; the rest are ignored"
              in json.dumps(health),
              "sidecar kMaxPolicyFiles: /healthz degraded with the reason (got %s %s)" %
              (status, short(health, 400)))
        status, body = c("POST", "/v1/decide", {"policy": "p1000", "tool": "read"})
        check(status == 404, "sidecar kMaxPolicyFiles: the 1,001st file is not served (got %s %s)"
              % (status, short(body)))
        status, d = c("POST", "/v1/decide", {"policy": "p0999", "tool": "pay",
                                             "args": {"amount": 1099}})
        check(status == 200 and d.get("decision") == "allow" and
              (d.get("rule") or {}).get("id") == "p0999.policy:2",
              "sidecar kMaxPolicyFiles: the 1,000th file decides (got %s %s)" % (status, short(d)))
    finally:
        code = sidecar.stop()
        check(code == 0, "sidecar (files): exits 0 after SIGTERM (got %s)" % code)


# ---------------------------------------------------------------------------------------------
# 4. The MCP proxy over stdio

MCP_POLICY = """policy mcp;
trust lookup;
allow echo, lookup, flood;
allow give when who from trusted;
forbid wire fallback ask "Wires need approval";
"""


class McpStdio:
    """`toolwarden mcp -- python3 mcp_server.py` with a client on its stdin and stdout."""

    def __init__(self, tw, policy, server_args=(), proxy_args=()):
        argv = [tw, "mcp", "--policy", policy] + list(proxy_args) + \
            ["--", sys.executable, MCP_SERVER] + list(server_args)
        self.process = Process(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.messages = queue.Queue()
        self.reading = threading.Event()
        self.reading.set()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.next_id = 1

    def _read(self):
        for raw in self.process.proc.stdout:
            self.messages.put(json.loads(raw))
            self.reading.wait()
        self.messages.put(None)

    def send_line(self, data):
        self.process.proc.stdin.write(data if isinstance(data, bytes) else data.encode())
        self.process.proc.stdin.write(b"\n")
        self.process.proc.stdin.flush()

    def send(self, message):
        self.send_line(json.dumps(message))

    def next(self, predicate, timeout=60):
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no matching message from the proxy")
            m = self.messages.get(timeout=left)
            if m is None:
                raise EOFError("the proxy closed its stdout")
            if predicate(m):
                return m

    def request(self, method, params=None, timeout=60):
        request_id = self.next_id
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.next(lambda m: m.get("id") == request_id, timeout)

    def call(self, name, arguments, timeout=60):
        return self.request("tools/call", {"name": name, "arguments": arguments}, timeout)

    def initialize(self, elicitation=False):
        capabilities = {"elicitation": {}} if elicitation else {}
        m = self.request("initialize", {"protocolVersion": "2025-06-18",
                                        "capabilities": capabilities,
                                        "clientInfo": {"name": "limits", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return m

    def close(self):
        try:
            self.process.proc.stdin.close()
        except OSError:
            pass
        try:
            self.process.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.proc.kill()
            self.process.proc.wait()
        self.process.reader.join(timeout=5)
        return self.process.proc.returncode


def answer(m):
    """The part of a tools/call answer that must not change: its result or its error."""
    return m.get("result") if "result" in m else {"error": m.get("error")}


def mcp_stdio_section(tw, work):
    policy = os.path.join(work, "mcp.policy")
    with open(policy, "w") as f:
        f.write(MCP_POLICY)
    log = os.path.join(work, "mcp.jsonl")

    def baseline(s):
        return [answer(s.call("echo", {"message": "hello"})),
                answer(s.call("give", {"who": "nobody"}))]

    s = McpStdio(tw, policy, proxy_args=["--decision-log", log])
    try:
        init = s.initialize()
        check("result" in init, "mcp: initialize answered: %s" % short(init))
        check(s.process.wait_stderr(r"agrees with the server's 5 tools|the policy and the server",
                                    timeout=30) is not None,
              "mcp: the policy is checked against the server's tools")
        before = baseline(s)
        check(before[0] == {"content": [{"type": "text", "text": "hello"}]} and
              before[1].get("isError") is True,
              "mcp: echo is allowed and give(nobody) denied: %s" % short(before))

        def unchanged(what):
            after = baseline(s)
            check(s.process.alive(), "mcp %s: the proxy is still running" % what)
            check(after == before, "mcp %s: the well-formed calls are answered as before: %s" %
                  (what, short(after)))

        # kMaxMcpMessageBytes: a line of 64 MiB + 16 bytes.
        pad = "x" * (64 * MiB + 16)
        line = ('{"jsonrpc":"2.0","id":"long","method":"tools/call","params":{"name":"echo",'
                '"arguments":{"message":"%s"}}}' % pad)
        s.send_line(line)
        m = s.next(lambda m: m.get("id") in (None, "long"), timeout=120)
        expected = ("Invalid Request: a message of %d bytes is over the limit of 67108864 "
                    "(kMaxMcpMessageBytes)" % len(line))
        check(m.get("id") is None and m.get("error") == {"code": -32600, "message": expected},
              "mcp kMaxMcpMessageBytes: -32600 naming the limit (got %s)" % short(m))
        del pad, line
        unchanged("kMaxMcpMessageBytes")

        # kMaxMcpMessageBytes from the server: an answer over 64 MiB is dropped and reported on
        # stderr, and the request it answered gets -32603 (its id is read from the line's ends).
        m = s.call("lookup", {"token": "t", "size": 64 * MiB}, timeout=120)
        got = re.fullmatch(r"toolwarden: the answer was a message of (\d+) bytes from the server: "
                           r"over the limit of 67108864 \(kMaxMcpMessageBytes\)",
                           m.get("error", {}).get("message", ""))
        check(m.get("error", {}).get("code") == -32603 and got and int(got.group(1)) > 64 * MiB,
              "mcp kMaxMcpMessageBytes (server): the request gets -32603 (got %s)" % short(m))
        check(s.process.wait_stderr(r"dropped a message of \d+ bytes from the server: over "
                                    r"the limit of 67108864 \(kMaxMcpMessageBytes\)", timeout=120)
              is not None, "mcp kMaxMcpMessageBytes (server): reported on stderr")
        unchanged("kMaxMcpMessageBytes from the server")

        # kMaxJsonDepth: 129 levels.
        s.send_line('{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":{"name":"echo",'
                    '"arguments":' + json.dumps(nested(127)) + "}}")
        m = s.next(lambda m: m.get("id") in (None, "deep"))
        check(m.get("id") is None and m.get("error", {}).get("code") == -32600 and
              "JSON nests deeper than 128" in m["error"].get("message", ""),
              "mcp kMaxJsonDepth: -32600 naming 128 (got %s)" % short(m))
        unchanged("kMaxJsonDepth")

        # kMaxLogLineBytes: a call whose log line would be over 16 MiB is not run (fail closed).
        m = s.call("echo", {"message": "z" * (16 * MiB + 10)}, timeout=120)
        check(m.get("error") == {"code": -32603, "message": "toolwarden: the decision log cannot "
                                 "be written; the call was not run"},
              "mcp kMaxLogLineBytes: -32603, the call is not run (got %s)" % short(m))
        unchanged("kMaxLogLineBytes")

        # kMaxPendingRequests: 10,000 requests held by the server; the next gets -32603; once the
        # server answers them, calls go through as before.
        for i in range(10000):
            s.send({"jsonrpc": "2.0", "id": "w%d" % i, "method": "slow/wait"})
        m = s.request("slow/wait")
        check(m.get("error") == {"code": -32603, "message": "toolwarden: 10000 requests are "
                                 "already waiting for an answer (kMaxPendingRequests)"},
              "mcp kMaxPendingRequests: the 10,001st request gets -32603 (got %s)" % short(m))
        m = s.call("echo", {"message": "hello"})
        check(m.get("error", {}).get("code") == -32603,
              "mcp kMaxPendingRequests: a call while full gets -32603 too (got %s)" % short(m))
        s.send({"jsonrpc": "2.0", "method": "notifications/release"})
        released = 0
        while released < 10000:
            s.next(lambda m: str(m.get("id", "")).startswith("w"))
            released += 1
        unchanged("kMaxPendingRequests")

    finally:
        code = s.close()
        check(code == 0, "mcp: exits 0 when the client closes stdin (got %s)" % code)
    r = run([tw, "verify-log", log])
    check(r.returncode == 0 and "chain intact" in r.stdout,
          "mcp: the decision log verifies after the refused line: %s %s" % (r.stdout, r.stderr))
    os.unlink(log)

    # kMaxToolListPages: a server whose tools/list never ends; the check stops after 100 pages.
    s = McpStdio(tw, policy, server_args=["--pages", "1000"])
    try:
        s.initialize()
        before = baseline(s)
        check(s.process.wait_stderr(r"checked only the first 100 pages of the server's tools "
                                    r"\(kMaxToolListPages\)", timeout=60) is not None,
              "mcp kMaxToolListPages: reported on stderr")
        after = baseline(s)
        check(s.process.alive() and after == before,
              "mcp kMaxToolListPages: calls are answered as before: %s" % short(after))
    finally:
        check(s.close() == 0, "mcp (pages): exits 0")

    # kMaxQuotedArgs, kMaxQuotedValueBytes: the approval request shows 50 arguments, each value
    # cut at 300 bytes, and says what it left out.
    s = McpStdio(tw, policy)
    try:
        s.initialize(elicitation=True)

        def ask(arguments):
            request_id = s.next_id
            s.next_id += 1
            s.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                    "params": {"name": "wire", "arguments": arguments}})
            question = s.next(lambda m: m.get("method") == "elicitation/create")
            s.send({"jsonrpc": "2.0", "id": question["id"], "result": {"action": "decline"}})
            return question["params"]["message"], answer(
                s.next(lambda m: m.get("id") == request_id))

        small = {"to": "x", "amount": 1}
        message_before, answer_before = ask(small)
        check(answer_before == {"content": [{"type": "text", "text": "Wires need approval"}],
                                "isError": True},
              "mcp ask: declined, the call is denied: %s" % short(answer_before))
        many = {"k%02d" % i: i for i in range(60)}
        many["k00"] = "v" * 400
        text, denied = ask(many)
        check("(10 more not shown)" in text and "(402 bytes, shortened)" in text and
              "k49" in text and "k50" not in text,
              "mcp kMaxQuotedArgs/kMaxQuotedValueBytes: 50 arguments shown, the long value cut "
              "(got %s)" % short(text, 800))
        check(denied == answer_before, "mcp: the long ask is denied the same way")
        message_after, answer_after = ask(small)
        check(s.process.alive() and
              (message_after, answer_after) == (message_before, answer_before),
              "mcp kMaxQuotedArgs: the next ask is as before")
    finally:
        check(s.close() == 0, "mcp (ask): exits 0")

    # kMaxQueuedBytes: with the client not reading, the proxy stops reading the server once
    # 16 MiB wait for the client; the server is held back; nothing is lost.
    progress = os.path.join(work, "progress")
    s = McpStdio(tw, policy, server_args=["--progress", progress])
    try:
        s.initialize()
        before = baseline(s)
        s.reading.clear()
        request_id = s.next_id
        s.next_id += 1
        s.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                "params": {"name": "flood", "arguments": {"count": 28}}})
        # Wait until the server has stopped making progress (it is blocked on a full pipe).
        def progress_now():
            try:
                with open(progress) as f:
                    return int(f.read())
            except (OSError, ValueError):
                return 0

        written, still_since, deadline = -1, time.time(), time.time() + 60
        while time.time() < deadline:
            now = progress_now()
            if now != written:
                written, still_since = now, time.time()
            elif written >= 16 * MiB and time.time() - still_since >= 1.5:
                break
            time.sleep(0.25)
        check(16 * MiB <= written <= 20 * MiB,
              "mcp kMaxQueuedBytes: the server is held back near 16 MiB while the client does "
              "not read (it wrote %.1f MiB of 28)" % (written / MiB))
        s.reading.set()
        got = 0
        while True:
            m = s.next(lambda m: m.get("method") == "notifications/message" or
                       m.get("id") == request_id, timeout=120)
            if m.get("id") == request_id:
                break
            got += 1
        # The reader held one message back while paused: it was counted above or is on the queue.
        check(got == 28 and answer(m) == {"content": [{"type": "text", "text": "flooded"}]},
              "mcp kMaxQueuedBytes: all 28 MiB arrive once the client reads (%d of 28)" % got)
        after = baseline(s)
        check(s.process.alive() and after == before,
              "mcp kMaxQueuedBytes: calls are answered as before: %s" % short(after))
    finally:
        check(s.close() == 0, "mcp (queue): exits 0")


# ---------------------------------------------------------------------------------------------
# 5. The MCP proxy over Streamable HTTP


class Upstream(http.server.ThreadingHTTPServer):
    """A stateless MCP server over HTTP that answers with plain JSON; `big` replies are large."""

    daemon_threads = True
    allow_reuse_address = True


class UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=None, headers=()):
        if body is None or isinstance(body, bytes):
            data = body or b""
        else:
            data = json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("content-type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        msg = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if "id" not in msg:
            self.reply(202)
            return
        method, params = msg.get("method"), msg.get("params") or {}
        headers = ()
        if method == "initialize":
            result = {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                      "capabilities": {}, "serverInfo": {"name": "upstream", "version": "1"}}
        elif method == "tools/call":
            arguments = params.get("arguments") or {}
            name = params.get("name")
            if name in ("big", "lookup"):  # big ASCII texts, written without json.dumps (slow)
                text = ("b" * int(arguments["size"]) if name == "big" else
                        arguments["token"] + " " + "x" * int(arguments["size"]))
                self.reply(200, b'{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text",'
                                b'"text":"%s"}]}}' %
                           (json.dumps(msg["id"]).encode(), text.encode()))
                return
            elif name == "bighead":
                text = "head"
                headers = [("x-pad", "h" * int(arguments["size"]))]
            else:
                text = arguments.get("message", "")
            result = {"content": [{"type": "text", "text": text}]}
        else:
            result = {}
        self.reply(200, {"jsonrpc": "2.0", "id": msg["id"], "result": result}, headers)


MCP_HTTP_POLICY = """policy remote;
trust lookup;
allow echo, big, bighead, lookup;
allow give when who from trusted;
"""


class McpHttpClient:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.session = None
        self.next_id = 1

    def post(self, message, raw=None):
        headers = {"accept": "application/json, text/event-stream"}
        if self.session:
            headers["mcp-session-id"] = self.session
        try:
            status, body, response = http_request(self.conn, "POST", "/mcp", message, raw, headers)
        except (http.client.HTTPException, ConnectionError, BrokenPipeError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            raise
        return status, body, response

    def initialize(self):
        status, body, response = self.post({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "limits", "version": "1"}}})
        if status == 200:
            self.session = response.getheader("mcp-session-id")
        return status, body

    def call(self, name, arguments):
        self.next_id += 1
        return self.post({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                          "params": {"name": name, "arguments": arguments}})[:2]


def mcp_http_section(tw, work):
    upstream = Upstream(("127.0.0.1", 0), UpstreamHandler)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    policy = os.path.join(work, "remote.policy")
    with open(policy, "w") as f:
        f.write(MCP_HTTP_POLICY)
    proxy = Process([tw, "mcp", "--policy", policy, "--listen", "127.0.0.1:0", "--upstream",
                     "http://127.0.0.1:%d/mcp" % upstream.server_address[1]])
    try:
        m = proxy.wait_stderr(r"listening on http://127\.0\.0\.1:(\d+)", timeout=60)
        if not check(m is not None, "mcp http: the proxy listens: %s" % proxy.stderr()):
            return
        port = int(m.group(1))
        c = McpHttpClient(port)
        status, body = c.initialize()
        check(status == 200 and c.session, "mcp http: initialize (got %s %s)" % (status, body))

        def calls():
            return [c.call("echo", {"message": "hello"}), c.call("forbidden", {}),
                    c.call("give", {"who": "nobody"})]

        before = calls()
        check(before[0] == (200, {"jsonrpc": "2.0", "id": before[0][1].get("id"), "result": {
            "content": [{"type": "text", "text": "hello"}]}}) and
              before[1][1].get("result", {}).get("isError") is True and
              before[2][1].get("result", {}).get("isError") is True,
              "mcp http: echo allowed, forbidden and give(nobody) denied: %s" % short(before))

        def unchanged(what):
            after = calls()
            check(proxy.alive(), "mcp http %s: the proxy is still running" % what)
            norm = [(s, {k: v for k, v in b.items() if k != "id"}) for s, b in after]
            want = [(s, {k: v for k, v in b.items() if k != "id"}) for s, b in before]
            changed = [(b, a) for a, b in zip(norm, want) if a != b]
            check(norm == want, "mcp http %s: the well-formed calls are answered as before "
                  "(before, after: %s)" % (what, short(changed, 2000)))

        # kMaxHttpBodyBytes: a request body of 16 MiB + 1 byte.
        body = b'{"jsonrpc":"2.0","id":5,"method":"ping","pad":"' + b"x" * (16 * MiB) + b'"}'
        data = raw_exchange(port, b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                            b"json\r\nMcp-Session-Id: %s\r\nContent-Length: %d\r\n\r\n" %
                            (c.session.encode(), len(body)) + body, timeout=60)
        status, parsed = parse_raw_response(data)
        check(status == 413 and parsed == {"jsonrpc": "2.0", "id": None, "error": {
            "code": -32600, "message": "Invalid Request: the body is over 16777216 bytes "
            "(kMaxHttpBodyBytes)"}},
            "mcp http kMaxHttpBodyBytes: 413 with -32600 (got %s %s)" % (status, short(parsed)))
        unchanged("kMaxHttpBodyBytes")

        # kMaxHttpBodyBytes on the upstream's reply: 16 MiB + 1 KiB of JSON.
        status, body = c.call("big", {"size": 16 * MiB + 1024})
        check(status == 502 and body.get("error", {}).get("code") == -32603 and
              "16777216" in body["error"].get("message", ""),
              "mcp http kMaxHttpBodyBytes (reply): 502 with -32603 naming the limit (got %s %s)" %
              (status, short(body)))
        unchanged("kMaxHttpBodyBytes reply")

        # kMaxHttpHeaderBytes on the client's request head: 65 KiB.
        data = raw_exchange(port, b"POST /mcp HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * (65 * KiB) +
                            b"\r\nContent-Length: 2\r\n\r\n{}")
        status, parsed = parse_raw_response(data)
        check(status == 431 and isinstance(parsed, dict) and
              parsed.get("error", {}).get("code") == -32600 and
              "65536" in parsed["error"].get("message", ""),
              "mcp http kMaxHttpHeaderBytes: 431 with -32600 naming the limit (got %s %s)" %
              (status, short(parsed)))
        unchanged("kMaxHttpHeaderBytes")

        # kMaxHttpHeaderBytes on the upstream's reply head: 65 KiB.
        status, body = c.call("bighead", {"size": 65 * KiB})
        check(status == 502 and isinstance(body, dict) and
              body.get("error", {}).get("code") == -32603 and
              "65536" in body["error"].get("message", ""),
              "mcp http kMaxHttpHeaderBytes (reply): 502 with -32603 naming the limit (got %s %s)"
              % (status, short(body)))
        unchanged("kMaxHttpHeaderBytes reply")

        # kMaxLargeBodies: 8 requests of 2 MiB at once; 4 are handled at a time, all answered.
        results = [None] * 8

        def large(i):
            client = McpHttpClient(port)
            client.session = c.session
            try:
                results[i] = client.call("echo", {"message": str(i) * (2 * MiB)})
            except Exception as e:  # reported below
                results[i] = (0, repr(e))
            finally:
                client.conn.close()

        threads = [threading.Thread(target=large, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        check(all(r is not None and r[0] == 200 and
                  r[1]["result"]["content"][0]["text"] == str(i) * (2 * MiB)
                  for i, r in enumerate(results)),
              "mcp http kMaxLargeBodies: 8 bodies of 2 MiB at once are all answered")
        unchanged("kMaxLargeBodies")

        # kMaxHttpConnections: 256 open connections; the next is closed and reported. (The
        # proxy counts a connection until its thread has seen it close: give it a moment.)
        c.conn.close()
        time.sleep(0.5)
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(256)]
        # Once the last of them is served, all 256 are counted.
        sockets[-1].sendall(b"GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n")
        served = sockets[-1].recv(65536)
        check(served.startswith(b"HTTP/1.1 "), "mcp http: the 256th connection is served")
        extra = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            extra.sendall(b"GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = extra.recv(65536)
        except OSError:
            refused = b""
        extra.close()
        check(refused == b"" and proxy.wait_stderr(
            r"refused a connection: 256 are open \(kMaxHttpConnections\)") is not None,
            "mcp http kMaxHttpConnections: the 257th is closed and reported (got %s)" %
            short(refused.decode("latin-1")))
        for s in sockets:
            s.close()
        time.sleep(0.5)
        unchanged("kMaxHttpConnections")

        # kMaxTrustedResultBytes: results of trusted tools are kept up to 64 MiB an MCP session; a
        # result past that is not kept (and reported), the client still gets it, and what was kept
        # decides as before. (Over HTTP rather than stdio: the bytes reach the client faster.)
        # A small result first, then four of 14 MiB (56 MiB kept), then a fifth over the limit.
        def lookup(token, size):
            status, body = c.call("lookup", {"token": token, "size": size})
            text = body.get("result", {}).get("content", [{}])[0].get("text", "") \
                if isinstance(body, dict) else ""
            return status == 200 and text == token + " " + "x" * size

        check(lookup("alpha", 16), "mcp http: a small trusted result arrives")
        for token in ("bravo", "charlie", "delta", "foxtrot"):
            check(lookup(token, 14 * MiB), "mcp http: trusted result %s (14 MiB) arrives" % token)
        # `X from trusted` scans the results in order: `alpha` is found in the first one. A value
        # found in none runs out of evaluation steps on the big ones (kMaxEvalSteps; fails closed).
        before = calls()
        give_alpha = c.call("give", {"who": "alpha"})
        check(give_alpha[1].get("result", {}).get("isError") is not True,
              "mcp http: a value from a kept trusted result is trusted: %s" % short(give_alpha))
        check(proxy.wait_stderr(r"kMaxTrustedResultBytes", timeout=0.1) is None,
              "mcp http: 56 MiB of trusted results are kept")
        check(lookup("golf", 14 * MiB),
              "mcp http: the fifth 14 MiB result arrives (the client gets it)")
        check(proxy.wait_stderr(r"did not keep a result of lookup for `from trusted`: over "
                                r"67108864 bytes of results \(kMaxTrustedResultBytes\)")
              is not None, "mcp http kMaxTrustedResultBytes: reported on stderr")
        again = c.call("give", {"who": "alpha"})
        check(again[0] == 200 and again[1].get("result") == give_alpha[1].get("result"),
              "mcp http kMaxTrustedResultBytes: the kept result decides as before")
        unchanged("kMaxTrustedResultBytes")

        # kMaxHttpSessions: 1,000 MCP sessions; the 1,001st initialize gets 503; the open ones
        # go on as before.
        # c's session is open; 999 more, from 4 connections at once.
        statuses = []

        def open_sessions(n):
            client = McpHttpClient(port)
            for _ in range(n):
                client.session = None
                statuses.append(client.initialize()[0])
            client.conn.close()

        threads = [threading.Thread(target=open_sessions, args=(n,)) for n in (250, 250, 250, 249)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        check(statuses == [200] * 999, "mcp http: sessions 2 to 1,000 open (%d of 999)" %
              statuses.count(200))
        other = McpHttpClient(port)
        other.session = None
        status, body = other.initialize()
        check(status == 503 and body == {"jsonrpc": "2.0", "id": None, "error": {
            "code": -32603,
            "message": "toolwarden: 1000 MCP sessions are open (kMaxHttpSessions)"}},
            "mcp http kMaxHttpSessions: the 1,001st gets 503 (got %s %s)" % (status, short(body)))
        unchanged("kMaxHttpSessions")
    finally:
        code = proxy.stop(signal.SIGTERM)
        check(code == 0, "mcp http: exits 0 after SIGTERM (got %s)" % code)
        upstream.shutdown()
        upstream.server_close()


SECTIONS = {
    "cli": cli_section,
    "sidecar_language": sidecar_language_section,
    "sidecar_http": sidecar_http_section,
    "mcp_stdio": mcp_stdio_section,
    "mcp_http": mcp_http_section,
}


def main():
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toolwarden", required=True)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    VERBOSE = args.verbose
    tw = os.path.abspath(args.toolwarden)
    for name in args.only.split(","):
        if name not in SECTIONS:
            parser.error("unknown section `%s`" % name)
        work = tempfile.mkdtemp(prefix="toolwarden_limits_")
        started = time.time()
        try:
            SECTIONS[name](tw, work)
        except Exception as e:  # a broken fixture or a crash: report, do not hide
            import traceback
            traceback.print_exc()
            check(False, "%s: %s: %s" % (name, type(e).__name__, e))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print("%s: %.1f s" % (name, time.time() - started), flush=True)
    if FAILURES:
        print("%d checks failed" % len(FAILURES))
        return 1
    print("all limits checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
