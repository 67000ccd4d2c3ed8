"""SidecarSession against the real `toolwarden serve` (TOOLWARDEN_BINARY), on a free loopback port.

A missing binary, or one without `serve`, fails these tests: they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import unittest

import support
import toolwarden
import conformance_runner as runner
from scenarios import Scenarios
from support import SOURCE_DIR, UNIT_POLICY, USER_QUERY

MIN_SIDECAR_CASES = 650

_tmp = None
_sidecar = None


def setUpModule():
    global _tmp, _sidecar
    binary = support.binary()
    _tmp = tempfile.mkdtemp(prefix="toolwarden-py-sidecar-")
    policies = os.path.join(_tmp, "policies")
    os.makedirs(policies)
    with open(os.path.join(policies, "unit.policy"), "w", encoding="utf-8") as f:
        f.write(UNIT_POLICY)
    shutil.copy(os.path.join(SOURCE_DIR, "policies", "examples", "banking.policy"), policies)
    shutil.copy(os.path.join(SOURCE_DIR, "policies", "examples", "banking.tools.json"), policies)
    _sidecar = toolwarden.Sidecar(binary, policies, log_path=os.path.join(_tmp, "sidecar.log"))
    _sidecar.start()


def tearDownModule():
    if _sidecar is not None:
        _sidecar.stop()
    if _tmp is not None:
        shutil.rmtree(_tmp, ignore_errors=True)


class SidecarScenarios(Scenarios, unittest.TestCase):
    def new_session(self, query=USER_QUERY, trusted=()):
        return toolwarden.SidecarSession(_sidecar.url, policy="unit", query=query, trusted=trusted)

    def broken_session(self):
        # A session the sidecar no longer has: every call answers 404.
        session = self.new_session()
        with toolwarden.SidecarClient(_sidecar.url) as client:
            client.request("DELETE", "/v1/sessions/" + session.id)
        return session


class SidecarProtocolTest(unittest.TestCase):
    def test_session_fields(self):
        with toolwarden.SidecarSession(_sidecar.url, policy="banking", query="q") as session:
            self.assertTrue(session.id)
            self.assertEqual(session.name, "banking")
            self.assertRegex(session.policy_hash, r"^sha256:[0-9a-f]{64}$")
            state = session.state()
            self.assertEqual(state["query"], "q")
            self.assertEqual(state["policy"], session.policy_hash)
            session_id = session.id
        # close() deleted it on the sidecar.
        with toolwarden.SidecarClient(_sidecar.url) as client, \
                self.assertRaises(toolwarden.NotFoundError):
            client.request("GET", "/v1/sessions/" + session_id)

    def test_unknown_policy_and_session(self):
        with self.assertRaises(toolwarden.NotFoundError):
            toolwarden.SidecarSession(_sidecar.url, policy="no_such_policy", query="q")
        session = toolwarden.SidecarSession(_sidecar.url, policy="unit", query="q")
        with toolwarden.SidecarClient(_sidecar.url) as client:
            client.request("DELETE", "/v1/sessions/" + session.id)
        with self.assertRaises(toolwarden.NotFoundError):
            session.decide("get_iban", {})
        session.close()
        with self.assertRaises(toolwarden.InvalidArgumentError):
            toolwarden.SidecarSession(_sidecar.url, policy="unit", source="allow t;", query="q")

    def test_source_policy_errors(self):
        with self.assertRaises(toolwarden.PolicyError) as caught:
            toolwarden.SidecarSession(_sidecar.url, source="allow t when x == ;", query="q")
        error = caught.exception
        self.assertEqual(error.http_status, 422)
        self.assertEqual(error.diagnostics[0]["line"], 1)
        lines = str(error).split("\n")
        at = [i for i, line in enumerate(lines) if ":1:19: error: " in line][0]
        self.assertEqual(lines[at + 1:at + 3], ["  allow t when x == ;", "  " + " " * 18 + "^"])

    def test_stateless_decide(self):
        client = toolwarden.SidecarClient(_sidecar.url)
        allowed = client.decide_once("get_iban", {}, policy="unit")
        self.assertTrue(allowed.allowed)
        self.assertIsNone(allowed.call)
        denied = client.decide_once("send_money", {"recipient": "X", "amount": 1}, source="allow t;",
                                    query="q")
        self.assertEqual(denied.decision, "deny")
        client.close()

    def test_one_keep_alive_connection(self):
        with toolwarden.SidecarSession(_sidecar.url, policy="unit", query="q") as session:
            session.decide("get_iban", {})
            sock = session._client._conn.sock
            for _ in range(20):
                session.check("read_file", {"path": "a.txt"})
            self.assertIs(session._client._conn.sock, sock)

    def test_a_stale_keep_alive_connection_is_reopened(self):
        with toolwarden.SidecarSession(_sidecar.url, policy="unit", query="q") as session:
            session.decide("get_iban", {})
            # As if the sidecar had closed the idle connection.
            session._client._conn.sock.shutdown(socket.SHUT_RDWR)
            self.assertTrue(session.check("read_file", {"path": "a.txt"}).allowed)
            self.assertEqual(len(session.state()["history"]), 1)

    def test_health_and_metrics(self):
        client = toolwarden.SidecarClient(_sidecar.url)
        health = client.healthz()
        self.assertIn("unit", health.get("policies", {}))
        self.assertIn("# TYPE", client.metrics())
        client.close()

    def test_dead_sidecar_is_a_deny(self):
        policies = os.path.join(_tmp, "policies")
        second = toolwarden.Sidecar(_sidecar.binary, policies).start()
        session = toolwarden.SidecarSession(second.url, policy="unit", query=USER_QUERY, timeout=2.0)
        self.assertTrue(session.decide("get_iban", {}).allowed)
        second.stop()
        with self.assertRaises(toolwarden.UnavailableError):
            session.decide("get_iban", {})

        @toolwarden.guard(session, on_deny="message")
        def get_iban():
            raise AssertionError("must not run")

        with self.assertLogs("toolwarden", "WARNING"):
            self.assertTrue(get_iban().startswith("Call blocked: the policy engine could not decide"))
        with self.assertRaises(toolwarden.UnavailableError):
            toolwarden.SidecarSession(second.url, policy="unit", query="q", timeout=2.0)
        session.close()  # best effort: no error when the sidecar is gone


class SidecarConformanceTest(unittest.TestCase):
    def test_corpus_through_session_endpoints(self):
        root = tempfile.mkdtemp(prefix="toolwarden-py-conformance-")
        try:
            store = runner.SidecarBackend.prepare(SOURCE_DIR, root)
            backend = runner.SidecarBackend(toolwarden, SOURCE_DIR)
            with toolwarden.Sidecar(_sidecar.binary, store,
                                    log_path=os.path.join(root, "sidecar.log")) as sidecar:
                backend.start(sidecar.url)
                report = runner.run_corpus(SOURCE_DIR, backend)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        support.stderr("python conformance (sidecar): " + report.summary())
        for name, reason in report.skipped_files:
            support.stderr(f"  skipped {name}: {reason}")
        self.assertEqual(report.failures, [], "\n".join(report.failures))
        self.assertGreaterEqual(report.cases_run, MIN_SIDECAR_CASES)


if __name__ == "__main__":
    unittest.main()
