"""Shared set-up of the Python binding's tests.

Environment (set by bindings/python/python.cmake for CTest):
  TOOLWARDEN_LIBRARY     the built libtoolwarden.so (target toolwarden_c)
  TOOLWARDEN_BINARY      the built `toolwarden` executable (for the sidecar tests)
  TOOLWARDEN_SOURCE_DIR  the repository (default: three levels above this file)
"""

from __future__ import annotations

import os
import sys

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
