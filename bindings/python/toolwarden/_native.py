"""Loading libtoolwarden.so and declaring the C API (adapters/c/toolwarden.h) for ctypes.

The library is found, in this order, at the path in the environment variable ``TOOLWARDEN_LIBRARY``
(used as given: a wrong path is an error, never a fall-through), by ``ctypes.util.find_library
("toolwarden")`` (the system's search path), or as ``libtoolwarden.so`` beside the package. It is loaded
on first use, so ``SidecarSession`` works without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import threading
from typing import Any, Dict, Optional

from .errors import (InvalidArgumentError, LibraryNotFoundError, error_class_for_status,
                     error_from_json)

TW_OK = 0

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


class _Opaque(ctypes.Structure):
    pass


PolicyPtr = ctypes.POINTER(_Opaque)
SessionPtr = ctypes.POINTER(_Opaque)
_OutPtr = ctypes.POINTER(ctypes.c_void_p)  # char** out, read back as a void* so we can tw_free it


def _candidates():
    env = os.environ.get("TOOLWARDEN_LIBRARY")
    if env:
        return [("TOOLWARDEN_LIBRARY", env)], True
    found = []
    name = ctypes.util.find_library("toolwarden")
    if name:
        found.append(("ctypes.util.find_library", name))
    here = os.path.dirname(os.path.abspath(__file__))
    for directory in (here, os.path.dirname(here)):
        found.append(("beside the package", os.path.join(directory, "libtoolwarden.so")))
    return found, False


def _declare(lib: ctypes.CDLL) -> None:
    c_char_p, c_size_t, c_void_p, c_int = ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int
    lib.tw_version.argtypes = []
    lib.tw_version.restype = c_char_p
    lib.tw_free.argtypes = [c_void_p]
    lib.tw_free.restype = None
    lib.tw_policy_from_text.argtypes = [c_char_p, c_char_p, c_size_t, c_char_p, c_char_p,
                                        ctypes.POINTER(PolicyPtr), _OutPtr]
    lib.tw_policy_from_text.restype = c_int
    lib.tw_policy_from_file.argtypes = [c_char_p, c_char_p, ctypes.POINTER(PolicyPtr), _OutPtr]
    lib.tw_policy_from_file.restype = c_int
    lib.tw_policy_free.argtypes = [PolicyPtr]
    lib.tw_policy_free.restype = None
    lib.tw_session_new.argtypes = [PolicyPtr, c_char_p, c_char_p, ctypes.POINTER(SessionPtr), _OutPtr]
    lib.tw_session_new.restype = c_int
    lib.tw_session_free.argtypes = [SessionPtr]
    lib.tw_session_free.restype = None
    lib.tw_session_decide.argtypes = [SessionPtr, c_char_p, c_char_p, _OutPtr]
    lib.tw_session_decide.restype = c_int
    lib.tw_session_check.argtypes = [SessionPtr, c_char_p, c_char_p, _OutPtr]
    lib.tw_session_check.restype = c_int
    lib.tw_session_approve.argtypes = [SessionPtr, c_char_p, c_char_p, _OutPtr]
    lib.tw_session_approve.restype = c_int
    lib.tw_session_attach_result.argtypes = [SessionPtr, c_size_t, c_char_p, _OutPtr]
    lib.tw_session_attach_result.restype = c_int
    lib.tw_session_add_trusted.argtypes = [SessionPtr, c_char_p, _OutPtr]
    lib.tw_session_add_trusted.restype = c_int
    lib.tw_session_add_rules.argtypes = [SessionPtr, c_char_p, c_char_p, c_size_t, c_char_p, _OutPtr]
    lib.tw_session_add_rules.restype = c_int
    lib.tw_session_state.argtypes = [SessionPtr, _OutPtr]
    lib.tw_session_state.restype = c_int
    lib.tw_session_draft.argtypes = [SessionPtr, c_char_p, _OutPtr]
    lib.tw_session_draft.restype = c_int
    lib.tw_session_update.argtypes = [SessionPtr, c_size_t, c_char_p, c_char_p, _OutPtr]
    lib.tw_session_update.restype = c_int
    lib.tw_session_apply_update.argtypes = [SessionPtr, c_char_p, c_char_p, _OutPtr]
    lib.tw_session_apply_update.restype = c_int


def library() -> ctypes.CDLL:
    """The loaded C library (loaded once, on first use). Raises LibraryNotFoundError."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        candidates, from_env = _candidates()
        tried = []
        for how, path in candidates:
            if not from_env and os.path.sep in path and not os.path.exists(path):
                tried.append(f"{path} ({how}: no such file)")
                continue
            try:
                lib = ctypes.CDLL(path)
                _declare(lib)
            except (OSError, AttributeError) as e:
                tried.append(f"{path} ({how}: {e})")
                if from_env:
                    break
                continue
            _lib = lib
            return lib
        raise LibraryNotFoundError(
            "cannot load libtoolwarden.so; build the target `toolwarden_c` and set TOOLWARDEN_LIBRARY "
            "to its path, install it where the dynamic linker finds it, or copy it beside the "
            "package. Tried: " + ("; ".join(tried) if tried else "nothing"))


def version() -> str:
    return library().tw_version().decode("utf-8")


def take_string(out: ctypes.c_void_p) -> Optional[str]:
    """Copies a string the API returned and frees it. None when the API gave none."""
    if not out.value:
        return None
    try:
        return ctypes.string_at(out.value).decode("utf-8", "replace")
    finally:
        library().tw_free(out.value)
        out.value = None


def call(function, *args, sources: Optional[Dict[str, str]] = None) -> Any:
    """Calls a tw_* function whose last argument is ``char** out``; returns the parsed JSON on TW_OK
    and raises the ToolwardenError subclass of the status otherwise. The out string is always freed."""
    out = ctypes.c_void_p()
    status = function(*args, ctypes.byref(out))
    text = take_string(out)
    if status == TW_OK:
        if text is None:
            return {}
        try:
            return json.loads(text)
        except ValueError as e:
            raise error_class_for_status(6)(f"the C API returned text that is not JSON: {e}")
    payload: Any = None
    if text is not None:
        try:
            payload = json.loads(text)
        except ValueError:
            payload = {"error": {"message": text}}
    if not isinstance(payload, dict):
        payload = {}
    error = payload.get("error")
    if isinstance(error, dict) and "code" in error:
        # Trust the status over a code string that might disagree with it.
        cls = error_class_for_status(status)
        exc = error_from_json(payload, sources=sources)
        if type(exc) is not cls:
            exc = cls(exc.message, diagnostics=exc.diagnostics, raw=exc.raw)
        raise exc
    raise error_from_json(payload, status=status, sources=sources)


def encode(text: str, what: str) -> bytes:
    """UTF-8 for a NUL-terminated string of the C API. A lone surrogate goes through as invalid
    UTF-8, which the engine rejects (denies) itself, rather than being silently changed here."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"{what} must be a string, not {type(text).__name__}")
    if "\0" in text:
        # A C string would end there: the engine would decide on a shorter name than the host uses.
        raise InvalidArgumentError(f"{what} contains a NUL character")
    return text.encode("utf-8", "surrogatepass")
