"""toolwarden: privilege control for LLM agent tool calls, from Python.

    import toolwarden

    policy = toolwarden.Policy.from_file("policies/agentdojo/banking.policy")
    session = toolwarden.Session(policy, query="Can you please pay the bill 'bill-december-2023.txt'?")

    @toolwarden.guard(session, on_deny="message")
    def send_money(recipient: str, amount: float, subject: str, date: str) -> str:
        ...

``Policy`` and ``Session`` run the engine in this process through libtoolwarden.so (the C API);
``SidecarSession`` has the same interface over HTTP to ``toolwarden serve``. See docs/python.md.
"""

from ._native import version
from .decision import Decision
from .errors import (FailedPreconditionError, InternalError, InvalidArgumentError,
                     LibraryNotFoundError, NotFoundError, PolicyError, ResourceExhaustedError,
                     ToolCallDenied, ToolCallRefused, ToolCallTerminated, ToolwardenError,
                     UnavailableError, format_diagnostics)
from .guard import guard
from .session import Policy, Session
from .sidecar import Sidecar, SidecarClient, SidecarSession

__all__ = [
    "Decision", "FailedPreconditionError", "InternalError", "InvalidArgumentError",
    "LibraryNotFoundError", "NotFoundError", "Policy", "PolicyError", "ResourceExhaustedError",
    "Session", "Sidecar", "SidecarClient", "SidecarSession", "ToolCallDenied", "ToolCallRefused",
    "ToolCallTerminated", "ToolwardenError", "UnavailableError", "format_diagnostics", "guard",
    "version",
]
