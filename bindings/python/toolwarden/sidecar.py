"""Sessions kept by a ``toolwarden serve`` sidecar, over HTTP (docs/architecture.md, "Sidecar protocol").

``SidecarSession`` has the interface of ``Session``; ``guard`` works with either. Each object holds one
keep-alive HTTP/1.1 connection (``http.client``), with a timeout on every request. Errors of the protocol
(``{"error": {"code", "message"}, "diagnostics"?}``) raise the same exception classes as the C API;
a sidecar that cannot be reached, times out or answers something else raises ``UnavailableError``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from typing import Any, Dict, Iterable, List, Optional, Union

from .decision import Decision
from .errors import InvalidArgumentError, UnavailableError, error_from_json
from .session import (ADD_MODES, NO_ARGS, UPDATE_MODES, call_index, dump_args, dump_result,
                      trusted_list)

DEFAULT_TIMEOUT = 10.0
# The most bytes read from one response: a decision record or a session state, never megabytes of it
# unless the history is huge; this only stops a runaway peer.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# A kept-alive connection idle longer than this is replaced before use (the sidecar closes them at 60 s).
IDLE_REUSE_SECONDS = 30.0


class SidecarClient:
    """One keep-alive connection to a sidecar and the JSON request/response of its protocol."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"`base_url` must be an http:// or https:// URL, not {base_url!r}")
        self.base_url = base_url
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None
        self._used = False  # whether the open connection has carried a request (may have gone stale)
        self._last_used = 0.0  # time.monotonic() of the last answer on it
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        # The sidecar closes connections idle for 60 s; one idle for half that is not reused, so a
        # POST rarely meets a connection the server closed (and is never sent twice, see _exchange).
        if self._conn is not None and time.monotonic() - self._last_used > IDLE_REUSE_SECONDS:
            self._conn.close()
            self._conn = None
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
            self._used = False
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "SidecarClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:
            pass

    def request(self, method: str, path: str, body: Any = None, *, body_text: Optional[str] = None,
                source_text: Optional[str] = None) -> Any:
        """Sends one request; returns the parsed JSON body of a 2xx answer, raises otherwise.
        ``source_text`` is the policy text the request carries, to quote in its diagnostics."""
        if body_text is None and body is not None:
            body_text = json.dumps(body)
        status, raw = self._exchange(method, path, body_text)
        try:
            payload = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            payload = None
        if 200 <= status < 300:
            if payload is None:
                raise UnavailableError(f"the sidecar answered {status} with a body that is not JSON")
            return payload
        if not isinstance(payload, dict):
            text = raw[:200].decode("utf-8", "replace")
            payload = {"error": {"message": f"HTTP {status}: {text}"}}
        sources = None
        if source_text is not None and isinstance(payload.get("diagnostics"), list):
            sources = {d.get("file"): source_text for d in payload["diagnostics"] if isinstance(d, dict)}
        raise error_from_json(payload, http_status=status, sources=sources)

    def _exchange(self, method: str, path: str, body_text: Optional[str]):
        data = body_text.encode("utf-8") if body_text is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        with self._lock:
            for attempt in (0, 1):
                conn = self._connect()
                reused = self._used
                sent = False
                try:
                    conn.request(method, self._prefix + path, body=data, headers=headers)
                    sent = True
                    self._used = True
                    response = conn.getresponse()
                    status = response.status
                    raw = response.read(MAX_RESPONSE_BYTES + 1)
                    self._last_used = time.monotonic()
                    if response.will_close or len(raw) > MAX_RESPONSE_BYTES:
                        conn.close()
                        self._conn = None
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                    conn.close()
                    self._conn = None
                    # A kept-alive connection the server had already closed: try once on a new
                    # one, but a POST only if it was not sent whole, since the server may have
                    # acted on it (a decide recorded twice would skew budgets).
                    if reused and attempt == 0 and (not sent or method in ("GET", "DELETE")):
                        continue
                    raise UnavailableError(f"the sidecar at {self.base_url} closed the connection: {e}")
                except (socket.timeout, TimeoutError) as e:
                    conn.close()
                    self._conn = None
                    raise UnavailableError(f"the sidecar at {self.base_url} timed out: {e}") from None
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    self._conn = None
                    raise UnavailableError(f"cannot reach the sidecar at {self.base_url}: {e}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise UnavailableError("the sidecar's answer is too large")
        return status, raw

    def healthz(self) -> Any:
        """``GET /healthz``: the sidecar's policies (with the errors of files that do not load)."""
        return self.request("GET", "/healthz")

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text."""
        status, raw = self._exchange("GET", "/metrics", None)
        if status != 200:
            raise UnavailableError(f"GET /metrics answered {status}")
        return raw.decode("utf-8", "replace")

    def decide_once(self, tool: str, args: Any = NO_ARGS, *, policy: Optional[str] = None,
                    source: Optional[str] = None, query: Optional[str] = None,
                    trusted: Iterable[str] = ()) -> Decision:
        """``POST /v1/decide``: one stateless decision."""
        body: Dict[str, Any] = _policy_body(policy, source)
        if query is not None:
            body["query"] = query
        values = trusted_list(trusted)
        if values:
            body["trusted"] = values
        body["tool"] = tool
        text = json.dumps(body)[:-1] + ', "args": ' + dump_args(args) + "}"
        return Decision.from_json(self.request("POST", "/v1/decide", body_text=text))


def _policy_body(policy: Optional[str], source: Optional[str]) -> Dict[str, Any]:
    if (policy is None) == (source is None):
        raise InvalidArgumentError("give exactly one of `policy` (a name) and `source` (policy text)")
    if policy is not None:
        if not isinstance(policy, str):
            raise InvalidArgumentError("`policy` must be a string")
        return {"policy": policy}
    if not isinstance(source, str):
        raise InvalidArgumentError("`source` must be a string")
    return {"source": source}


class SidecarSession:
    """A session kept by a ``toolwarden serve`` sidecar; the same interface as ``Session``.

    ``SidecarSession("http://127.0.0.1:8080", policy="banking", query="Pay the bill")`` starts a session
    under the sidecar's policy ``banking``; ``source=TEXT`` sends the policy text instead. ``close()``
    (or leaving a ``with`` block) deletes the session on the sidecar and closes the connection.

    With a sidecar started with ``--llm URL --model NAME``, ``draft=True`` has its model draft rules for
    the session as it starts (the outcome is ``draft_result``), and ``update="narrow-only"`` (or "ask",
    "any"; "off" by default) has it update them after each recorded result (``record_result`` returns
    the outcome; a "pending" one waits for ``approve_update``). Drafting makes the creation wait for
    the model: give a ``timeout`` long enough for it.
    """

    def __init__(self, base_url: str, policy: Optional[str] = None, source: Optional[str] = None, *,
                 query: str, trusted: Iterable[str] = (), timeout: float = DEFAULT_TIMEOUT,
                 draft: bool = False, update: Optional[str] = None):
        body = _policy_body(policy, source)
        if not isinstance(query, str):
            raise InvalidArgumentError("`query` must be a string")
        if not isinstance(draft, bool):
            raise InvalidArgumentError("`draft` must be True or False")
        if update is not None and update not in ("off",) + UPDATE_MODES:
            raise InvalidArgumentError(f"`update` must be one of off, {', '.join(UPDATE_MODES)}")
        body["query"] = query
        values = trusted_list(trusted)
        if values:
            body["trusted"] = values
        # Sent only when asked for, so a sidecar without drafting still takes the plain request.
        if draft:
            body["draft"] = True
        if update is not None:
            body["update"] = update
        self.query = query
        self.update_mode: Optional[str] = update  # None: the sidecar's default ("off")
        # The "draft" outcome of the creation (docs/python.md), None when not drafted.
        self.draft_result: Optional[Dict[str, Any]] = None
        # The "update" outcome of the last record_result that had one.
        self.last_update: Optional[Dict[str, Any]] = None
        self._client = SidecarClient(base_url, timeout)
        self.id: Optional[str] = None
        try:
            created = self._client.request("POST", "/v1/sessions", body, source_text=source)
        except BaseException:
            self._client.close()
            raise
        session = created.get("session") if isinstance(created, dict) else None
        if not isinstance(session, (str, int)) or isinstance(session, bool):
            self._client.close()
            raise UnavailableError("the sidecar did not return a session id")
        self.id = str(session)
        self._path = "/v1/sessions/" + urllib.parse.quote(self.id, safe="")
        self.policy_hash: str = str(created.get("policy", ""))
        self.name: str = str(created.get("name", policy or ""))
        draft_result = created.get("draft")
        self.draft_result = draft_result if isinstance(draft_result, dict) else None

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def _live_path(self) -> str:
        if self.id is None:
            raise InvalidArgumentError("the session is closed")
        return self._path

    def _call_body(self, tool: str, args: Any) -> str:
        if not isinstance(tool, str):
            raise InvalidArgumentError("the tool name must be a string")
        return '{"tool": ' + json.dumps(tool) + ', "args": ' + dump_args(args) + "}"

    def decide(self, tool: str, args: Any = NO_ARGS) -> Decision:
        """Decides a call and records it when allowed. Any failure raises ToolwardenError: the host must
        then treat the call as denied."""
        text = self._call_body(tool, args)
        return Decision.from_json(self._client.request("POST", self._live_path() + "/decide",
                                                       body_text=text))

    def approve(self, tool: str, args: Any = NO_ARGS) -> Decision:
        """For a call a person approved after it came out ``ask`` (see Session.approve)."""
        text = self._call_body(tool, args)
        return Decision.from_json(self._client.request("POST", self._live_path() + "/approve",
                                                       body_text=text))

    def check(self, tool: str, args: Any = NO_ARGS) -> Decision:
        """As decide, but changes nothing."""
        text = self._call_body(tool, args)
        return Decision.from_json(self._client.request("POST", self._live_path() + "/check",
                                                       body_text=text))

    def record_result(self, call_or_decision: Union[int, Decision], result: Any
                      ) -> Optional[Dict[str, Any]]:
        """Attaches an allowed call's result. When the session updates its drafted rules (``update=``),
        returns the update's outcome (``{"result": "no-update"|"applied"|"pending"|"refused"|"failed",
        "error"?, "problems", "model_calls", "change"}``, also kept as ``last_update``); else None."""
        index = call_index(call_or_decision)
        text = '{"call": ' + str(index) + ', "result": ' + dump_result(result) + "}"
        answer = self._client.request("POST", self._live_path() + "/results", body_text=text)
        update = answer.get("update") if isinstance(answer, dict) else None
        if not isinstance(update, dict):
            return None
        self.last_update = update
        return update

    def approve_update(self, approve: bool = True) -> Dict[str, Any]:
        """Decides the session's pending update (an update in mode "ask" that the engine could not prove
        narrower): ``approve=True`` applies it, False drops it. ``POST /v1/sessions/ID/update``; returns
        ``{"result": "applied"|"rejected"|"failed", ...}``."""
        if not isinstance(approve, bool):
            raise InvalidArgumentError("`approve` must be True or False")
        return self._client.request("POST", self._live_path() + "/update", {"approve": approve})

    def add_trusted(self, value: str) -> None:
        if not isinstance(value, str):
            raise InvalidArgumentError("the trusted value must be a string")
        self._client.request("POST", self._live_path() + "/trusted", {"value": value})

    def add_rules(self, text: str, mode: str = "narrow-only", name: str = "added") -> Dict[str, Any]:
        if mode not in ADD_MODES:
            raise InvalidArgumentError(f"`mode` must be one of {', '.join(ADD_MODES)}")
        if not isinstance(text, str):
            raise InvalidArgumentError("the rules must be a string")
        body: Dict[str, Any] = {"source": text, "mode": mode}
        if name is not None:
            body["name"] = name
        return self._client.request("POST", self._live_path() + "/rules", body, source_text=text)

    def state(self) -> Dict[str, Any]:
        return self._client.request("GET", self._live_path())

    def close(self) -> None:
        """Deletes the session on the sidecar (best effort) and closes the connection."""
        path, self.id = (self._path if self.id is not None else None), None
        try:
            if path is not None:
                self._client.request("DELETE", path)
        except Exception:
            pass
        finally:
            self._client.close()

    def __enter__(self) -> "SidecarSession":
        return self

    def __del__(self):
        # Only the connection: no network traffic from a finalizer (the sidecar expires idle sessions).
        try:
            self._client.close()
        except Exception:
            pass

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SidecarSession({self.base_url!r}, id={self.id!r}, policy={self.name!r})"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and examples)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Sidecar:
    """Runs ``toolwarden serve --policies DIR --listen 127.0.0.1:PORT`` as a child process, for tests,
    examples and scripts: ``with Sidecar(binary, policies_dir) as sidecar: sidecar.url``.

    It waits for ``GET /healthz`` to answer (up to ``startup_timeout`` seconds) and stops the child on
    exit. ``extra_args`` go after the standard flags. The child's output goes to ``log_path`` when given,
    else to a temporary file (``output()``).
    """

    def __init__(self, binary: str, policies_dir: str, *, host: str = "127.0.0.1",
                 port: Optional[int] = None, extra_args: Iterable[str] = (),
                 startup_timeout: float = 20.0, log_path: Optional[str] = None):
        resolved = binary if os.path.sep in binary else shutil.which(binary)
        if not resolved or not os.path.isfile(resolved):
            raise UnavailableError(f"no toolwarden binary at {binary!r}")
        self.binary = resolved
        self.policies_dir = policies_dir
        self.host = host
        self.port = port
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.process: Optional[subprocess.Popen] = None
        self._log = None
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> List[str]:
        return [self.binary, "serve", "--policies", self.policies_dir,
                "--listen", f"{self.host}:{self.port}", *self.extra_args]

    def start(self) -> "Sidecar":
        attempts = 3 if self.port is None else 1
        last_error = ""
        for _ in range(attempts):
            if self.port is None or attempts > 1:
                self.port = free_port(self.host)
            # A file, never a pipe: a sidecar that logs a lot would block on a full pipe.
            # Appending, so reading it back (which moves the offset the child shares) is harmless.
            self._log = (open(self.log_path, "a+b") if self.log_path
                         else tempfile.TemporaryFile(mode="a+b"))
            self._log.seek(0, os.SEEK_END)
            self._log_start = self._log.tell()
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                            stderr=subprocess.STDOUT)
            last_error = self._wait_ready()
            if not last_error:
                return self
            self.stop()
        raise UnavailableError(f"`{' '.join(self.command())}` did not start: {last_error}")

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + self.startup_timeout
        client = SidecarClient(self.url, timeout=2.0)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return f"exited with status {self.process.returncode}: {self.output()[-2000:]}"
                try:
                    client.healthz()
                    return ""
                except Exception:
                    time.sleep(0.05)
            return f"no answer on {self.url}/healthz after {self.startup_timeout} s"
        finally:
            client.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
        self._log = None

    def output(self) -> str:
        """What the sidecar printed so far (stdout and stderr), since it was started."""
        if self._log is None:
            return ""
        self._log.seek(self._log_start)
        data = self._log.read()
        return data.decode("utf-8", "replace").strip()

    def __enter__(self) -> "Sidecar":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
