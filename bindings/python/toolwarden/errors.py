"""Exceptions of the toolwarden package.

Two families:

- ``ToolwardenError`` and its subclasses are failures of the machinery: bad input, an unknown session, a
  limit, policy text with errors, a dead sidecar. They carry the code of the C API / sidecar protocol.
  A host must treat one raised by ``decide`` or ``check`` as a denial of the call (``guard`` does).
- ``ToolCallRefused`` and its subclasses are raised by ``guard`` for a call the policy did not allow; they
  carry the ``Decision``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence


class ToolwardenError(Exception):
    """A failure of the engine or its transport. ``code`` is the protocol's error code."""

    code = "internal"
    status = 6  # the tw_status value of the C API

    def __init__(self, message: str, *, diagnostics: Optional[Sequence[dict]] = None,
                 raw: Optional[dict] = None, http_status: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.diagnostics: List[dict] = list(diagnostics or [])
        self.raw: Dict[str, Any] = dict(raw or {})
        self.http_status = http_status

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(ToolwardenError):
    """Malformed input: bad JSON, wrong types, NaN in arguments."""
    code = "invalid_argument"
    status = 1


class NotFoundError(ToolwardenError):
    """A file, a recorded call, a named policy or a session does not exist."""
    code = "not_found"
    status = 2


class ResourceExhaustedError(ToolwardenError):
    """A named limit was exceeded."""
    code = "resource_exhausted"
    status = 3


class FailedPreconditionError(ToolwardenError):
    """The request does not fit the current state (a result attached twice)."""
    code = "failed_precondition"
    status = 4


class PolicyError(ToolwardenError):
    """The policy text has errors. ``diagnostics`` lists them as ``toolwarden lint --json`` does
    (``file``, ``line``, ``column``, ``severity``, ``message``); ``str(error)`` is them formatted as
    ``file:line:col: error: message`` with the source line and a caret where the source is known."""
    code = "policy_error"
    status = 5


class InternalError(ToolwardenError):
    """A bug in toolwarden."""
    code = "internal"
    status = 6


class UnavailableError(ToolwardenError):
    """The sidecar could not be reached, timed out, or answered something that is not the protocol."""
    code = "unavailable"
    status = -1


class LibraryNotFoundError(ToolwardenError):
    """``libtoolwarden.so`` could not be found or loaded."""
    code = "library_not_found"
    status = -1


_BY_STATUS = {cls.status: cls for cls in (InvalidArgumentError, NotFoundError, ResourceExhaustedError,
                                          FailedPreconditionError, PolicyError, InternalError)}
_BY_CODE = {cls.code: cls for cls in (InvalidArgumentError, NotFoundError, ResourceExhaustedError,
                                      FailedPreconditionError, PolicyError, InternalError,
                                      UnavailableError)}


def error_class_for_status(status: int) -> type:
    return _BY_STATUS.get(status, InternalError)


def error_class_for_code(code: Optional[str], http_status: Optional[int] = None) -> type:
    if code in _BY_CODE:
        return _BY_CODE[code]
    # An unknown or missing code: fall back on the HTTP status.
    if http_status == 404:
        return NotFoundError
    if http_status in (413, 429):
        return ResourceExhaustedError
    if http_status in (409, 412):
        return FailedPreconditionError
    if http_status == 422:
        return PolicyError
    if http_status is not None and 400 <= http_status < 500:
        return InvalidArgumentError
    return InternalError


def format_diagnostics(diagnostics: Sequence[dict], sources: Optional[Dict[str, str]] = None) -> str:
    """Formats diagnostics as ``toolwarden lint`` prints them. ``sources`` maps a source name (the
    ``file`` of a diagnostic) to its text, for the source line and caret."""
    lines: List[str] = []
    for d in diagnostics:
        file = str(d.get("file", ""))
        line = d.get("line", 0)
        column = d.get("column", 0)
        lines.append(f"{file}:{line}:{column}: {d.get('severity', 'error')}: {d.get('message', '')}")
        text = (sources or {}).get(file)
        if text is None or not isinstance(line, int) or line <= 0:
            continue
        source_lines = text.split("\n")
        if line > len(source_lines):
            continue
        source_line = source_lines[line - 1].rstrip("\r")
        if len(source_line.encode("utf-8", "surrogatepass")) > 500:
            continue
        caret = "".join("\t" if ch == "\t" else " " for ch in source_line[:max(0, column - 1)])
        lines.append("  " + source_line)
        lines.append("  " + caret + "^")
    return "\n".join(lines)


def error_from_json(payload: Any, *, status: Optional[int] = None, http_status: Optional[int] = None,
                    sources: Optional[Dict[str, str]] = None) -> ToolwardenError:
    """Builds the exception for an error object ``{"error": {"code", "message"}, "diagnostics"?}``."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    diagnostics = payload.get("diagnostics") if isinstance(payload, dict) else None
    if not isinstance(diagnostics, list):
        diagnostics = []
    if code is None and status is not None:
        cls = error_class_for_status(status)
    else:
        cls = error_class_for_code(code, http_status)
    if not message:
        message = code or (f"HTTP {http_status}" if http_status else "unknown error")
    text = message
    if diagnostics:
        text = message + "\n" + format_diagnostics(diagnostics, sources)
    return cls(text, diagnostics=diagnostics, raw=payload if isinstance(payload, dict) else {},
               http_status=http_status)


class ToolCallRefused(Exception):
    """Base of the exceptions ``guard`` raises for a call that did not run. ``decision`` says why."""

    def __init__(self, decision):
        super().__init__(decision.message or decision.reason or decision.decision)
        self.decision = decision


class ToolCallDenied(ToolCallRefused):
    """The call was denied (or needed approval that was not given); the agent may go on."""


class ToolCallTerminated(ToolCallRefused):
    """The policy ended the agent's run (``fallback terminate``); the host must stop the agent."""
