"""Shared set-up of the Python binding's tests.

Environment (set by bindings/python/python.cmake for CTest):
  TOOLWARDEN_LIBRARY     the built libtoolwarden.so (target toolwarden_c)
  TOOLWARDEN_BINARY      the built `toolwarden` executable (for the sidecar tests)
  TOOLWARDEN_SOURCE_DIR  the repository (default: three levels above this file)
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("TOOLWARDEN_SOURCE_DIR") or os.path.dirname(os.path.dirname(
    os.path.dirname(HERE)))
PACKAGE_DIR = os.path.join(SOURCE_DIR, "bindings", "python")
if PACKAGE_DIR not in sys.path:
    sys.path.insert(0, PACKAGE_DIR)

import toolwarden  # noqa: E402  (after the path set-up)

# The policy of the session scenarios (no tool schemas: any tool name goes).
UNIT_POLICY = """\
policy unit;
trust get_iban;

let limit = 100;

default block "Blocked {tool}: {reason}";

allow get_iban, read_file, log_line;
allow send_money when recipient from trusted and amount > 0 and amount <= limit;
forbid send_money when count(send_money) >= 2 priority 1 fallback block "Only two transfers ({tool})";
forbid wire when amount > 1000 priority 1 fallback ask "Large wire: needs approval";
allow wire when amount > 0;
forbid delete_account fallback terminate "Session over: {tool} is never allowed";
allow search update {
  allow open_result;
};
"""

USER_QUERY = "Pay my landlord the rent"
TRUSTED_IBAN = "GB29NWBK60161331926819"
ATTACKER_IBAN = "US133000000121212121212"


def binary() -> str:
    """The toolwarden executable for the sidecar tests; a missing one fails the test (never skips)."""
    path = os.environ.get("TOOLWARDEN_BINARY", "")
    if not path:
        raise AssertionError("TOOLWARDEN_BINARY is not set: the sidecar tests need the built "
                             "`toolwarden` executable (run them through CTest)")
    if not os.path.isfile(path):
        raise AssertionError(f"TOOLWARDEN_BINARY={path} does not exist")
    return path


def stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# --- the fake model server (tests/llm/fake_llm.py), for the drafting tests -------------------------

# The banking tools with no rules of their own: whatever a session allows, its draft allowed.
DRAFT_POLICY = """\
policy drafted;
tools "banking.tools.json";
default block "blocked: {reason}";
"""
BANKING_DIR = os.path.join(SOURCE_DIR, "policies", "examples")
OTHER_IBAN = "US133000000121212121212"


def progent_reply(recipients, maximum, balance=True):
    """A Progent-form reply: get_balance (if `balance`), and send_money to `recipients` up to
    `maximum`."""
    rules = [{"name": "get_balance", "args": {}}] if balance else []
    rules.append({"name": "send_money", "args": {"recipient": {"enum": list(recipients)},
                                                 "amount": {"minimum": None, "maximum": maximum}}})
    return json.dumps({"rules": rules})


def reply_step(content):
    return {"reply": {"content": content, "finish": "stop"}}


# The updates leave out get_balance: an update that keeps a rule of the draft unchanged draws a
# spurious "this rule can never decide" warning from the check against the draft it replaces, which
# costs repairs (and so steps of the fake's script).
DRAFT_REPLY = progent_reply([TRUSTED_IBAN], 100)
NARROWER_REPLY = progent_reply([TRUSTED_IBAN], 50, balance=False)
WIDER_REPLY = progent_reply([TRUSTED_IBAN, OTHER_IBAN], 100, balance=False)
UPDATE_YES = json.dumps({"update": True})
UPDATE_NO = json.dumps({"update": False})
# A 500 retried at once until the transport gives up (with "repeat_last": true).
FAILURE_STEP = {"status": 500, "headers": {"retry-after-ms": "0"},
                "json": {"error": {"message": "overloaded", "type": "server_error"}}}


class FakeLlm:
    """Runs ``python3 tests/llm/fake_llm.py --script S --record R --port 0`` for one test:
    ``with FakeLlm([step, ...]) as fake: fake.url, fake.requests()``."""

    def __init__(self, steps, repeat_last=False):
        self._dir = tempfile.mkdtemp(prefix="toolwarden-fake-llm-")
        self._script = os.path.join(self._dir, "script.json")
        self._record = os.path.join(self._dir, "record.jsonl")
        with open(self._script, "w", encoding="utf-8") as f:
            json.dump({"steps": list(steps), "repeat_last": repeat_last}, f)
        self.process = None
        self.port = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeLlm":
        server = os.path.join(SOURCE_DIR, "tests", "llm", "fake_llm.py")
        self.process = subprocess.Popen(
            [sys.executable, server, "--script", self._script, "--record", self._record,
             "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        ready = select.select([self.process.stdout], [], [], 10.0)[0]
        line = self.process.stdout.readline().decode("ascii", "replace").strip() if ready else ""
        if not line.isdigit():
            self.stop()
            raise AssertionError(f"tests/llm/fake_llm.py printed no port (got {line!r})")
        self.port = int(line)
        return self

    def requests(self):
        """One dict per POST so far: {"n", "method", "path", "headers", "body", "t"}."""
        try:
            with open(self._record, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "FakeLlm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
