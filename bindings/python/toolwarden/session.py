"""Policies and sessions in this process, over the C API (libtoolwarden.so)."""

from __future__ import annotations

import ctypes
import json
import os
import threading
from typing import Any, Dict, Iterable, List, Optional, Union

from . import _native
from .decision import Decision
from .errors import InvalidArgumentError

ADD_MODES = ("narrow-only", "any")
# How a model's update of drafted rules applies (docs/llm.md): only when proven narrower; proven-narrower
# ones apply and others wait for a person; or always.
UPDATE_MODES = ("narrow-only", "ask", "any")
# The fields of the model settings (``llm=``), over the TOOLWARDEN_LLM_* environment variables.
LLM_FIELDS = ("url", "model", "protocol", "format", "max_repairs", "max_tokens", "timeout_ms")


class _NoArgs:
    def __repr__(self) -> str:
        return "{}"


NO_ARGS: Any = _NoArgs()  # the default of decide/check: an empty argument object


def dump_args(args: Any) -> str:
    """The arguments of a call as JSON text. Any JSON value goes to the engine, which denies anything
    but an object (so ``None`` is denied, not read as "no arguments"); NaN and infinities are refused
    here, as JSON has no text for them."""
    if args is NO_ARGS:
        return "{}"
    try:
        return json.dumps(args, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidArgumentError(f"the arguments are not JSON: {e}") from None


def dump_result(result: Any) -> str:
    """A tool result as JSON text; values JSON does not know are turned into strings (``default=str``)."""
    try:
        return json.dumps(result, default=str, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidArgumentError(f"the result is not JSON: {e}") from None


def call_index(call_or_decision: Union[int, Decision]) -> int:
    if isinstance(call_or_decision, Decision):
        if call_or_decision.call is None:
            raise InvalidArgumentError(
                f"the decision for `{call_or_decision.tool}` has no call index: only calls allowed "
                "by decide() are recorded")
        return call_or_decision.call
    if isinstance(call_or_decision, bool) or not isinstance(call_or_decision, int) or \
            not 0 <= call_or_decision < 2 ** 63:
        raise InvalidArgumentError("the call must be a Decision or a non-negative int")
    return call_or_decision


def dump_llm(llm: Optional[Dict[str, Any]]) -> Optional[bytes]:
    """The model settings as the C API's ``llm_json`` (None: the environment's only). The engine checks
    the fields; the API key is never among them (it comes only from TOOLWARDEN_LLM_API_KEY)."""
    if llm is None:
        return None
    if not isinstance(llm, dict):
        raise InvalidArgumentError(f"`llm` must be a dict of model settings, not {type(llm).__name__}")
    try:
        return json.dumps(llm, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidArgumentError(f"`llm` is not JSON: {e}") from None


def change_of(change: Any) -> Dict[str, Any]:
    """The rules change to apply: a ``change`` dict, or an update outcome holding one."""
    if isinstance(change, dict) and "result" in change and "change" in change:
        if change["change"] is None:
            raise InvalidArgumentError(
                f"the update outcome ({change.get('result')!r}) holds no change to apply")
        change = change["change"]
    if not isinstance(change, dict):
        raise InvalidArgumentError("`change` must be the \"change\" dict of a pending update")
    return change


def update_mode(mode: str) -> str:
    if mode not in UPDATE_MODES:
        raise InvalidArgumentError(f"`mode` must be one of {', '.join(UPDATE_MODES)}")
    return mode


def trusted_list(trusted: Iterable[str]) -> List[str]:
    if isinstance(trusted, str):
        raise InvalidArgumentError("`trusted` must be a list of strings, not a string")
    values = list(trusted or ())
    for value in values:
        if not isinstance(value, str):
            raise InvalidArgumentError("`trusted` must be a list of strings")
    return values


def _text_bytes(text: str, what: str) -> bytes:
    # Passed with its length, so a NUL stays in the text (and is reported by the parser).
    if not isinstance(text, str):
        raise InvalidArgumentError(f"{what} must be a string, not {type(text).__name__}")
    return text.encode("utf-8", "surrogatepass")


class Policy:
    """A compiled policy: immutable, shareable by any number of sessions on any threads.

    ``name`` is the name used in rule ids, ``hash`` is ``"sha256:..."`` of the text, ``rules`` the number
    of rules and ``warnings`` the lint warnings (diagnostics) of the text.
    """

    def __init__(self, handle, info: Dict[str, Any]):
        self._handle = handle
        self._lib = _native.library()
        self._lock = threading.Lock()
        self._closed = False
        self._open_sessions = 0
        self.info = info
        self.name: str = str(info.get("name", ""))
        self.hash: str = str(info.get("hash", ""))
        self.rules = info.get("rules")
        self.warnings: List[dict] = list(info.get("warnings") or [])

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], tools: Optional[Union[str, os.PathLike]] = None
                  ) -> "Policy":
        """Compiles a policy file. ``tools`` (a JSON file of tool schemas) overrides the policy's own
        ``tools "FILE";`` item. Raises PolicyError (with ``diagnostics``) or NotFoundError."""
        lib = _native.library()
        path = os.fspath(path)
        sources: Dict[str, str] = {}
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                sources[os.path.basename(path)] = f.read()
        except OSError:
            pass
        handle = _native.PolicyPtr()
        info = _native.call(lib.tw_policy_from_file, _native.encode(path, "the path"),
                            _native.encode(os.fspath(tools), "the tools path") if tools else None,
                            ctypes.byref(handle), sources=sources)
        return cls(handle, info)

    @classmethod
    def from_text(cls, text: str, name: str = "policy_text", base_dir: Optional[str] = None,
                  tools: Optional[Union[str, os.PathLike]] = None) -> "Policy":
        """Compiles policy text. ``name`` names it in rule ids (``NAME:LINE``); ``base_dir`` resolves a
        relative ``tools "FILE";`` (default: the current directory)."""
        lib = _native.library()
        data = _text_bytes(text, "the policy text")
        handle = _native.PolicyPtr()
        info = _native.call(lib.tw_policy_from_text, _native.encode(name, "the name"), data, len(data),
                            _native.encode(os.fspath(base_dir), "base_dir") if base_dir else None,
                            _native.encode(os.fspath(tools), "the tools path") if tools else None,
                            ctypes.byref(handle), sources={name: text})
        return cls(handle, info)

    def session(self, query: str, trusted: Iterable[str] = ()) -> "Session":
        return Session(self, query, trusted)

    def close(self) -> None:
        """Frees the policy. No new session may start from it; the sessions already started keep it
        alive until the last of them is closed."""
        with self._lock:
            self._closed = True
            if self._open_sessions:
                return
            handle, self._handle = self._handle, None
        if handle:
            self._lib.tw_policy_free(handle)

    def _acquire(self):
        with self._lock:
            if self._closed or not self._handle:
                raise InvalidArgumentError("the policy is closed")
            self._open_sessions += 1
            return self._handle

    def _release(self) -> None:
        with self._lock:
            self._open_sessions -= 1
            if not (self._closed and self._open_sessions == 0):
                return
            handle, self._handle = self._handle, None
        if handle:
            self._lib.tw_policy_free(handle)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, hash={self.hash!r})"


class Session:
    """One agent run under one policy, in this process.

    ``decide`` decides a call and records it when allowed; ``check`` only answers; ``record_result``
    attaches an allowed call's result (for ``from trusted``); ``add_trusted`` and ``add_rules`` widen the
    trusted values and narrow (or, with ``mode="any"``, change) the rules of this session only;
    ``draft``, ``update`` and ``apply_update`` have a model server write and update its rules.
    A session may be used from several threads; its calls then run one at a time.
    """

    def __init__(self, policy: Policy, query: str, trusted: Iterable[str] = ()):
        self._handle = None
        if not isinstance(policy, Policy):
            raise InvalidArgumentError("`policy` must be a Policy")
        self._lib = _native.library()
        # Held around every C call and close(): a session closed on one thread while another uses it
        # would otherwise be freed under that call. The C session serialises its calls anyway.
        self._lock = threading.Lock()
        self.query = query
        values = trusted_list(trusted)
        query_bytes = _native.encode(query, "the query")
        policy_handle = policy._acquire()  # counted, so Policy.close() cannot free it under us
        try:
            handle = _native.SessionPtr()
            info = _native.call(self._lib.tw_session_new, policy_handle, query_bytes,
                                json.dumps(values).encode("utf-8") if values else None,
                                ctypes.byref(handle))
        except BaseException:
            policy._release()
            raise
        self._policy = policy
        self._handle = handle
        self.policy_hash: str = str(info.get("policy", policy.hash))
        self.name: str = policy.name

    @property
    def policy(self) -> Policy:
        return self._policy

    def _call(self, function, *args, sources: Optional[Dict[str, str]] = None) -> Any:
        with self._lock:
            if not self._handle:
                raise InvalidArgumentError("the session is closed")
            return _native.call(function, self._handle, *args, sources=sources)

    def decide(self, tool: str, args: Any = NO_ARGS) -> Decision:
        """Decides a call and records it in the history when allowed (``Decision.call``). Any failure
        raises ToolwardenError: the host must then treat the call as denied."""
        record = self._call(self._lib.tw_session_decide, _native.encode(tool, "the tool name"),
                            dump_args(args).encode("utf-8"))
        return Decision.from_json(record)

    def approve(self, tool: str, args: Any = NO_ARGS) -> Decision:
        """For a call a person approved after it came out ``ask``: if it still asks, the engine records
        it (budgets count it) and allows it; a deny stays a deny."""
        record = self._call(self._lib.tw_session_approve, _native.encode(tool, "the tool name"),
                            dump_args(args).encode("utf-8"))
        return Decision.from_json(record)

    def check(self, tool: str, args: Any = NO_ARGS) -> Decision:
        """As decide, but changes nothing."""
        record = self._call(self._lib.tw_session_check, _native.encode(tool, "the tool name"),
                            dump_args(args).encode("utf-8"))
        return Decision.from_json(record)

    def record_result(self, call_or_decision: Union[int, Decision], result: Any) -> None:
        """Attaches the result of an allowed call (by its index or its Decision)."""
        index = call_index(call_or_decision)
        self._call(self._lib.tw_session_attach_result, index, dump_result(result).encode("utf-8"))

    def add_trusted(self, value: str) -> None:
        """Registers one more value the host trusts (``X from trusted``)."""
        self._call(self._lib.tw_session_add_trusted, _native.encode(value, "the trusted value"))

    def add_rules(self, text: str, mode: str = "narrow-only", name: str = "added") -> Dict[str, Any]:
        """Adds rules to this session only. ``mode`` "narrow-only" accepts only ``forbid`` rules that
        block or terminate; "any" accepts anything. All or nothing: raises PolicyError (diagnostics
        positioned in ``text``) and adds nothing on any error. Returns ``{"rules": [ids], "policy"}``."""
        if mode not in ADD_MODES:
            raise InvalidArgumentError(f"`mode` must be one of {', '.join(ADD_MODES)}")
        data = _text_bytes(text, "the rules")
        return self._call(self._lib.tw_session_add_rules, _native.encode(name, "the name"), data,
                          len(data), mode.encode("ascii"), sources={name: text})

    def state(self) -> Dict[str, Any]:
        """``{"query", "policy", "history": [{"tool", "args", "result"?}], "added_rules", "trusted",
        "drafted"}`` (``drafted``: the names of the drafted rule texts now deciding)."""
        return self._call(self._lib.tw_session_state)

    def draft(self, llm: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Has a model draft least-privilege rules for this session from its query and the tools of the
        policy's ``tools`` file, and adds them (named ``draft``). ``llm`` is a dict of model settings
        (``url``, ``model``, ``protocol``, ``format``, ``max_repairs``, ``max_tokens``, ``timeout_ms``)
        over the TOOLWARDEN_LLM_* environment variables. Returns ``{"ok": True, "name", "rules",
        "rule_ids", "policy", "model_calls", "warnings"}``, or ``{"ok": False, "error", "problems",
        "model_calls"}`` when the model server or its answer failed (nothing is added: fail closed).
        Raises InvalidArgumentError for bad settings (or none), FailedPreconditionError when the policy
        has no tools or the session was drafted already. Blocks for the model's answer."""
        return self._call(self._lib.tw_session_draft, dump_llm(llm))

    def update(self, call_or_decision: Union[int, Decision], mode: str = "narrow-only",
               llm: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Progent's update after an allowed call's result was recorded (``record_result`` first): the
        model says whether the drafted rules need to change without seeing the result, then writes new
        ones from it. ``mode`` "narrow-only" applies them only when the engine proves they allow no
        more; "ask" applies those and returns others as ``"pending"`` (see ``apply_update``); "any"
        applies them. Returns ``{"result": "no-update"|"applied"|"pending"|"refused"|"failed",
        "error"?, "problems", "model_calls", "change"}``; only "applied" changes the session. Raises
        NotFoundError (no such call) or FailedPreconditionError (no result yet, nothing drafted)."""
        index = call_index(call_or_decision)
        return self._call(self._lib.tw_session_update, index, update_mode(mode).encode("ascii"),
                          dump_llm(llm))

    def apply_update(self, change: Dict[str, Any], llm: Optional[Dict[str, Any]] = None
                     ) -> Dict[str, Any]:
        """Applies a pending update a person approved: ``change`` is the ``"change"`` of a ``"pending"``
        outcome of ``update`` (or that outcome itself). No model is asked. Returns an update outcome:
        ``"applied"``, or ``"failed"`` with ``"error"`` when the rules it replaces are no longer the
        session's latest draft."""
        text = json.dumps(change_of(change)).encode("utf-8")
        return self._call(self._lib.tw_session_apply_update, text, dump_llm(llm))

    def close(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            self._lib.tw_session_free(handle)
            self._policy._release()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"Session(policy={self.name!r}, query={self.query!r})"


__all__ = ["Policy", "Session", "UPDATE_MODES"]
