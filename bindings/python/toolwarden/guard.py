"""``guard``: decide a Python tool function's calls before they run."""

from __future__ import annotations

import functools
import inspect
import json
import logging
from typing import Any, Callable, Dict, Optional

from .decision import Decision
from .errors import ToolCallDenied, ToolCallTerminated

logger = logging.getLogger("toolwarden")

ON_DENY = ("raise", "message")


def call_arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> Dict[str, Any]:
    """The arguments of a call as the policy sees them: every parameter by name, defaults applied.
    A ``self``/``cls`` first parameter is left out; ``**kwargs`` are merged in; ``*args`` is a list."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    parameters = list(signature.parameters.values())
    skip = parameters[0].name if parameters and parameters[0].name in ("self", "cls") else None
    out: Dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name == skip:
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            for key, item in value.items():
                out.setdefault(key, item)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[name] = list(value)
        else:
            out[name] = value
    # What the policy sees is JSON: values JSON does not know become strings (as for results).
    # NaN and infinities survive this and are refused by the session (so the call is denied).
    return json.loads(json.dumps(out, default=str))


class _Gate:
    """The decision part of a guarded call, shared by the sync and async wrappers."""

    def __init__(self, session, tool: str, on_deny: str, on_ask: Optional[Callable[[Decision], Any]]):
        self.session = session
        self.tool = tool
        self.on_deny = on_deny
        self.on_ask = on_ask

    def decide(self, signature: inspect.Signature, args: tuple, kwargs: dict):
        """Returns (decision, True, None) when the function may run, else (decision, False, the value
        to return in its place); raises for `terminate` and for a deny in raise mode."""
        # A call that does not fit the signature is the caller's bug: raise TypeError as Python would.
        signature.bind(*args, **kwargs)
        arguments = call_arguments(signature, args, kwargs)
        try:
            decision = self.session.decide(self.tool, arguments)
        except Exception as e:  # fail closed: no decision is a deny
            logger.warning("toolwarden: cannot decide `%s`, denying it: %s", self.tool, e)
            decision = Decision.engine_failure(self.tool, e)
        if decision.decision == "ask" and self.on_ask is not None and self.on_ask(decision):
            # Approved: the engine records the call (so budgets count it) and allows it, unless
            # it no longer asks.
            try:
                decision = self.session.approve(self.tool, arguments)
            except Exception as e:
                logger.warning("toolwarden: cannot record the approval of `%s`, denying it: %s",
                               self.tool, e)
                decision = Decision.engine_failure(self.tool, e)
        if decision.decision == "allow":
            return decision, True, None
        if decision.decision == "terminate":
            raise ToolCallTerminated(decision)
        if self.on_deny == "raise":
            raise ToolCallDenied(decision)
        return decision, False, decision.message

    def record(self, decision: Decision, result: Any) -> None:
        if decision.call is None:
            return
        try:
            self.session.record_result(decision.call, result)
        except Exception as e:
            # The call already ran. Without its result, `from trusted` finds less: fails closed.
            logger.warning("toolwarden: cannot record the result of `%s` (call %s): %s", self.tool,
                           decision.call, e)


def guard(session, on_deny: str = "raise", on_ask: Optional[Callable[[Decision], Any]] = None,
          tool: Optional[str] = None) -> Callable[[Callable], Callable]:
    """A decorator that decides every call of a tool function before it runs.

    ``session`` is a ``Session`` or ``SidecarSession``. The tool name is the function's name unless
    ``tool`` is given; the arguments are the call's bound arguments with defaults applied.

    - ``allow``: the function runs, and its result is recorded on the session (``record_result``).
    - ``deny``: ``on_deny="raise"`` raises ``ToolCallDenied(decision)``; ``on_deny="message"`` returns
      ``decision.message`` in place of the result, so the agent sees why and re-plans (as Progent does).
    - ``ask``: ``on_ask(decision)`` is called if given; a true answer runs the function, anything else
      (or no ``on_ask``) is a deny.
    - ``terminate``: raises ``ToolCallTerminated(decision)`` whatever ``on_deny`` says.
    - an exception from the engine or the sidecar is a deny (fail closed).
    """
    if on_deny not in ON_DENY:
        raise ValueError(f"`on_deny` must be one of {', '.join(ON_DENY)}")
    if on_ask is not None and not callable(on_ask):
        raise TypeError("`on_ask` must be callable")

    def decorator(fn: Callable) -> Callable:
        name = tool or fn.__name__
        signature = inspect.signature(fn)
        gate = _Gate(session, name, on_deny, on_ask)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                decision, runs, refused = gate.decide(signature, args, kwargs)
                if not runs:
                    return refused
                result = await fn(*args, **kwargs)
                gate.record(decision, result)
                return result
            async_wrapper.toolwarden_tool = name
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            decision, runs, refused = gate.decide(signature, args, kwargs)
            if not runs:
                return refused
            result = fn(*args, **kwargs)
            gate.record(decision, result)
            return result
        wrapper.toolwarden_tool = name
        return wrapper

    return decorator

