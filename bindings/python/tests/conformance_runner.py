"""Runs the conformance corpus (tests/conformance/*.json) through a Python session type.

The file format and its semantics are those of `toolwarden test` (cli/policy_tests.cc): a file has
`policy_text` (named "policy_text", resolved in the file's directory) or `policy` (a file), optional
`tools` (a schema file that overrides the policy's own), and either `expect_load_error` (a substring of
the load errors) or `cases`. A case has `query`, `trusted` and `calls`; a call has `tool`, `args`,
`expect` (allow, deny, ask, terminate), and optionally `rule` (an id, or null for the default),
`message` and `reason` (substrings), `error` (a substring of some error; without it there must be no
error) and `result` (attached when the call is allowed).

A backend turns a test file into sessions. Backends may be unable to express a file (the sidecar cannot
override a policy's tool schemas, for one); such files are skipped with a reason and counted.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

OUTCOMES = ("allow", "deny", "ask", "terminate")


@dataclass
class Report:
    files: int = 0
    cases_passed: int = 0
    cases_failed: int = 0
    calls: int = 0
    load_errors_checked: int = 0
    skipped_files: List[Tuple[str, str]] = field(default_factory=list)
    skipped_cases: int = 0
    failures: List[str] = field(default_factory=list)

    @property
    def cases_run(self) -> int:
        return self.cases_passed + self.cases_failed

    def summary(self) -> str:
        return (f"{self.files} files: {self.cases_run} cases run ({self.cases_passed} passed, "
                f"{self.cases_failed} failed, {self.calls} calls), {self.load_errors_checked} load "
                f"errors checked, {len(self.skipped_files)} files skipped ({self.skipped_cases} "
                f"cases in them)")


class Loaded:
    """What a backend returns for a test file: a session factory, or the load error text."""

    def __init__(self, new_session: Optional[Callable[[str, List[str]], Any]] = None,
                 error_text: Optional[str] = None, rename: Callable[[str], str] = lambda s: s,
                 close: Callable[[], None] = lambda: None):
        self.new_session = new_session
        self.error_text = error_text
        self.rename = rename  # maps an expected string to this backend's naming of the policy
        self.close = close

    @property
    def ok(self) -> bool:
        return self.new_session is not None


def _str(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _reason_of(decision) -> str:
    # As ReasonOf in interpreter/decision.cc (the record already carries it).
    return decision.reason


def run_case(case: Any, loaded: Loaded) -> str:
    """One case; "" when it passed, else what went wrong (the wording of cli/policy_tests.cc)."""
    if not isinstance(case, dict) or not isinstance(case.get("calls"), list):
        return "a case needs a `calls` array"
    trusted: List[str] = []
    if "trusted" in case:
        if not isinstance(case["trusted"], list) or \
                not all(isinstance(t, str) for t in case["trusted"]):
            return "`trusted` must be an array of strings"
        trusted = list(case["trusted"])
    rename = loaded.rename
    session = loaded.new_session(_str(case, "query"), trusted)
    try:
        for i, call in enumerate(case["calls"]):
            where = f"call #{i + 1}"
            if not isinstance(call, dict) or not isinstance(call.get("tool"), str) or \
                    not isinstance(call.get("expect"), str):
                return where + ": needs string `tool` and `expect`"
            expect = call["expect"]
            if expect not in OUTCOMES:
                return where + ": `expect` must be allow, deny, ask or terminate"
            args = call["args"] if "args" in call else {}
            d = session.decide(call["tool"], args)
            got = d.decision
            rule_id = d.rule_id
            summary = f" (got {got}, rule {rule_id or 'none'}, reason: {_reason_of(d)})"
            if got != expect:
                return f"{where} `{d.tool}`: expected {expect}{summary}"
            if "rule" in call:
                rule = call["rule"]
                if rule is None:
                    bad = rule_id is not None
                else:
                    bad = not isinstance(rule, str) or rename(rule) != (rule_id or "")
                if bad:
                    return f"{where} `{d.tool}`: expected rule {json.dumps(rule)}{summary}"
            message = rename(_str(call, "message"))
            if message and message not in d.message:
                return (f"{where} `{d.tool}`: expected a message containing \"{message}\"{summary} "
                        f"message: {d.message}")
            reason = rename(_str(call, "reason"))
            if reason and reason not in _reason_of(d):
                return f"{where} `{d.tool}`: expected a reason containing \"{reason}\"{summary}"
            if "error" in call:
                wanted = rename(_str(call, "error"))
                if not any(wanted in e for e in d.errors):
                    return f"{where} `{d.tool}`: expected an error containing \"{wanted}\"{summary}"
            elif d.errors:
                return f"{where} `{d.tool}`: unexpected error: {d.errors[0]}"
            if "result" in call and d.allowed:
                session.record_result(d.call, call["result"])
    finally:
        session.close()
    return ""


def run_file(path: str, backend, report: Report) -> None:
    report.files += 1

    def fail_file(message: str) -> None:
        report.cases_failed += 1
        report.failures.append(f"{path}: {message}")

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return fail_file(str(e))
    if not isinstance(doc, dict):
        return fail_file("a test file is a JSON object")
    if "policy_text" not in doc and "policy" not in doc:
        return fail_file("needs `policy` or `policy_text`")
    skip = backend.skip_reason(doc)
    if skip:
        cases = doc.get("cases")
        report.skipped_files.append((os.path.basename(path), skip))
        report.skipped_cases += len(cases) if isinstance(cases, list) else 0
        return None
    loaded = backend.load(doc, os.path.dirname(path))
    try:
        if "expect_load_error" in doc:
            wanted = loaded.rename(_str(doc, "expect_load_error"))
            if not loaded.ok and wanted in (loaded.error_text or ""):
                report.cases_passed += 1
                report.load_errors_checked += 1
                return None
            got = "no error" if loaded.ok else loaded.error_text
            return fail_file(f"expected a load error containing \"{wanted}\", got: {got}")
        if not loaded.ok:
            return fail_file("the policy does not load:\n" + (loaded.error_text or ""))
        if not isinstance(doc.get("cases"), list):
            return fail_file("needs a `cases` array")
        for case in doc["cases"]:
            try:
                failure = run_case(case, loaded)
            except Exception as e:  # an engine error is a failed case, not a crash of the run
                failure = f"{type(e).__name__}: {e}"
            if failure:
                report.cases_failed += 1
                report.failures.append(f"{path}: case \"{_str(case, 'name')}\": {failure}")
            else:
                report.cases_passed += 1
                report.calls += len(case["calls"])
    finally:
        loaded.close()
    return None


def corpus_files(source_dir: str) -> List[str]:
    return sorted(glob.glob(os.path.join(source_dir, "tests", "conformance", "*.json")))


def run_corpus(source_dir: str, backend) -> Report:
    report = Report()
    for path in corpus_files(source_dir):
        run_file(path, backend, report)
    return report


class NativeBackend:
    """Policy and Session over libtoolwarden.so: the same loading as `toolwarden test`."""

    def __init__(self, toolwarden_module):
        self.tw = toolwarden_module

    def skip_reason(self, doc: Dict[str, Any]) -> Optional[str]:
        return None

    def load(self, doc: Dict[str, Any], directory: str) -> Loaded:
        tw = self.tw
        tools = os.path.join(directory, _str(doc, "tools")) if "tools" in doc else None
        try:
            if "policy_text" in doc:
                policy = tw.Policy.from_text(_str(doc, "policy_text"), name="policy_text",
                                             base_dir=directory, tools=tools)
            else:
                policy = tw.Policy.from_file(os.path.join(directory, _str(doc, "policy")), tools=tools)
        except tw.ToolwardenError as e:
            return Loaded(error_text=str(e))
        return Loaded(new_session=lambda query, trusted: tw.Session(policy, query, trusted),
                      close=policy.close)


class SidecarBackend:
    """SidecarSession over `toolwarden serve`: the sessions endpoints with `source` policies.

    The sidecar names inline source `source` (rule ids `source:LINE`) where `toolwarden test` names it
    `policy_text`, so expected strings are renamed; and it resolves a relative `tools "FILE";` in its
    policy directory, so `prepare` lays that directory out as a mirror of tests/conformance (with the
    corpus's data and the repository's policies beside it, as symbolic links) and a file's `tools`
    override becomes a `tools` item appended to the text (after the last item, so no position moves).
    The sidecar refuses an inline `tools` path with a `..` segment, so the corpus's
    `../../policies/` becomes `./././policies/` (as long, so no column moves either) and the
    directory has `policies` beside the corpus too.
    File policies (`policy`) are copied into the directory and used by name; their load errors are read
    from `GET /healthz`, which reports what is wrong with each file of the directory.
    """

    def __init__(self, toolwarden_module, source_dir: str):
        self.tw = toolwarden_module
        self.source_dir = source_dir
        self.url: Optional[str] = None
        self.source_name = "source"

    @staticmethod
    def prepare(source_dir: str, root: str) -> str:
        """Builds the sidecar's policy directory under `root`; returns it."""
        store = os.path.join(root, "tests", "conformance")
        os.makedirs(store)
        os.symlink(os.path.join(source_dir, "tests", "conformance", "data"), os.path.join(store, "data"))
        os.symlink(os.path.join(source_dir, "policies"), os.path.join(root, "policies"))
        os.symlink(os.path.join(source_dir, "policies"), os.path.join(store, "policies"))
        for path in corpus_files(source_dir):
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if isinstance(doc, dict) and "policy_text" not in doc and isinstance(doc.get("policy"), str):
                policy = os.path.join(os.path.dirname(path), doc["policy"])
                with open(policy, "rb") as src, \
                        open(os.path.join(store, os.path.basename(policy)), "wb") as dst:
                    dst.write(src.read())
        return store

    def start(self, url: str) -> None:
        self.url = url
        # The name the sidecar gives inline source, read from a rule id rather than assumed.
        with self.tw.SidecarSession(url, source="allow probe_tool;", query="") as probe:
            rule_id = probe.check("probe_tool", {}).rule_id or ""
        if rule_id.endswith(":1"):
            self.source_name = rule_id[:-2]

    def skip_reason(self, doc: Dict[str, Any]) -> Optional[str]:
        if "policy_text" in doc:
            if "tools" in doc and re.search(r'\btools\s*"', _str(doc, "policy_text")):
                return "a `tools` override of a text with its own `tools` item"
            return None
        if "tools" in doc:
            return "a `tools` override of a policy file (the sidecar loads files as they are)"
        return None

    def _rename(self, text: str) -> str:
        return text.replace("policy_text:", self.source_name + ":")

    def load(self, doc: Dict[str, Any], directory: str) -> Loaded:
        tw = self.tw
        url = self.url
        if "policy_text" in doc:
            source = _str(doc, "policy_text")
            if "tools" in doc:
                source += '\ntools ' + json.dumps(_str(doc, "tools")) + ';'
            source = source.replace('"../../policies/', '"./././policies/')
            try:
                with tw.SidecarSession(url, source=source, query=""):
                    pass
            except tw.PolicyError as e:
                message = e.message.split("\n", 1)[0]
                text = message + "\n" + tw.format_diagnostics(e.diagnostics, {self.source_name: source})
                return Loaded(error_text=text, rename=self._rename)
            except tw.ToolwardenError as e:
                return Loaded(error_text=str(e), rename=self._rename)
            return Loaded(new_session=lambda query, trusted: tw.SidecarSession(
                url, source=source, query=query, trusted=trusted), rename=self._rename)
        name = os.path.basename(_str(doc, "policy"))
        if name.endswith(".policy"):
            name = name[:-len(".policy")]
        client = tw.SidecarClient(url)
        try:
            health = client.request("GET", "/healthz")
        finally:
            client.close()
        status = (health.get("policies") or {}).get(name)
        if not isinstance(status, dict):
            return Loaded(error_text=f"the sidecar has no policy `{name}`: {json.dumps(health)}")
        if status.get("error"):
            return Loaded(error_text=str(status["error"]))
        return Loaded(new_session=lambda query, trusted: tw.SidecarSession(
            url, policy=name, query=query, trusted=trusted))
