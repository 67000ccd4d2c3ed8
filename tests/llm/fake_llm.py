#!/usr/bin/env python3
"""A scripted fake of three chat APIs, for tests with no GPU and no network.

    python3 tests/llm/fake_llm.py --script FILE [--record FILE] [--host 127.0.0.1] [--port 0]

Binds, prints the port it listens on as one line to stdout, and answers until
SIGTERM or SIGINT, or until the process that started it exits (so that a test
binary that crashes leaves no server behind). The script is JSON: {"steps": [STEP, ...], "repeat_last": false}.
Every POST to one of the chat paths consumes the next step, in order, whatever
the path; the path only picks the protocol the reply is formatted for:

    .../chat/completions   OpenAI Chat Completions (vLLM, llama-server, OpenAI)
    .../messages           Anthropic Messages
    .../api/chat           Ollama's native chat API

When the steps run out, the last one repeats if "repeat_last" is true, or else
the answer is a 500 in the protocol's error format, "fake_llm: script exhausted".
A step may carry "delay_ms" (a sleep before answering) and is one of:

    {"status": 429, "headers": {...}, "body": "text"}    raw; "json": {...} for a JSON body
    {"reply": {"content": TEXT, "finish": "stop"}}       a success in the protocol's format;
                                                         finish: stop, length, refusal, or any
                                                         other word, passed through; an optional
                                                         "finish_reason" (in the step or the reply)
                                                         overrides the protocol's field verbatim
    {"error": {"status": 500, "message": M, "type": T}}  the protocol's error body; optional
                                                         "headers"
    {"close": true}                                      close the connection without answering
    {"partial": true, "reply": {...}}                    the full Content-Length, half the body,
                                                         then close

Other paths and methods get a 404 {"error":"not found"} and consume no step;
GET /healthz answers 200 "ok". With --record, one JSON line per POST is appended
(and flushed) before answering: {"n", "method", "path", "headers", "body", "t"}
("n" is null for a POST to another path). Standard library only.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENAI, ANTHROPIC, OLLAMA = "openai", "anthropic", "ollama"

# Bodies above this are refused with 413: the fake is for tests, not a sink.
MAX_REQUEST_BYTES = 64 << 20


def protocol_of(path):
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return OPENAI
    if path.endswith("/messages"):
        return ANTHROPIC
    if path.endswith("/api/chat"):
        return OLLAMA
    return None


def rough_tokens(text):
    return max(1, len(text) // 4) if text else 0


def error_body(protocol, message, error_type):
    if protocol == ANTHROPIC:
        return {"type": "error", "error": {"type": error_type, "message": message}}
    if protocol == OLLAMA:
        return {"error": message}
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def openai_reply(n, request, reply, override):
    text = reply.get("content", "")
    finish = reply.get("finish", "stop")
    message = {"role": "assistant", "content": text}
    if finish == "refusal":
        message = {"role": "assistant", "content": None, "refusal": text}
        finish = "stop"
    prompt_tokens = rough_tokens(json.dumps(request.get("messages", "")))
    completion_tokens = rough_tokens(text)
    return {
        "id": "chatcmpl-fake-%d" % n,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": override if override is not None else finish,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def anthropic_reply(n, request, reply, override):
    text = reply.get("content", "")
    finish = reply.get("finish", "stop")
    stop_reason = {"stop": "end_turn", "length": "max_tokens", "refusal": "refusal"}.get(
        finish, finish)
    content = [{"type": "text", "text": text}]
    choice = request.get("tool_choice")
    forced = (choice.get("name") if isinstance(choice, dict) and choice.get("type") == "tool"
              else None)
    if forced is not None and finish == "stop":
        try:
            content = [{"type": "tool_use", "id": "toolu_fake_%d" % n, "name": forced,
                        "input": json.loads(text)}]
            stop_reason = "tool_use"
        except ValueError:
            pass  # a text block where a tool_use is due: a malformed reply to reject
    elif forced is not None and finish == "length":
        content = [{"type": "tool_use", "id": "toolu_fake_%d" % n, "name": forced, "input": {}}]
    return {
        "id": "msg_fake_%d" % n,
        "type": "message",
        "role": "assistant",
        "model": request.get("model", ""),
        "content": content,
        "stop_reason": override if override is not None else stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": rough_tokens(json.dumps(request.get("messages", ""))),
            "output_tokens": rough_tokens(text),
        },
    }


def ollama_reply(n, request, reply, override):
    """The reply, and its content type: Ollama streams NDJSON unless "stream": false."""
    text = reply.get("content", "")
    finish = reply.get("finish", "stop")
    model = request.get("model", "")
    created_at = "2026-01-01T00:00:00Z"
    prompt_tokens = rough_tokens(json.dumps(request.get("messages", "")))
    final = {
        "model": model,
        "created_at": created_at,
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": override if override is not None else finish,
        "total_duration": 1000000 * (1 + n),
        "load_duration": 100000,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 200000,
        "eval_count": rough_tokens(text),
        "eval_duration": 700000,
    }
    if request.get("stream", True) is False:
        return json.dumps(final).encode(), "application/json; charset=utf-8"
    chunk = {"model": model, "created_at": created_at,
             "message": {"role": "assistant", "content": text}, "done": False}
    final["message"] = {"role": "assistant", "content": ""}
    lines = json.dumps(chunk) + "\n" + json.dumps(final) + "\n"
    return lines.encode(), "application/x-ndjson"


class Script:
    def __init__(self, data):
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise ValueError('the script must be an object with a "steps" array')
        for i, step in enumerate(data["steps"]):
            if not isinstance(step, dict):
                raise ValueError("step %d is not an object" % (i + 1))
        self.steps = data["steps"]
        self.repeat_last = bool(data.get("repeat_last", False))
        self.lock = threading.Lock()
        self.count = 0

    def next(self):
        """The request's number (from 1) and its step, or None when exhausted."""
        with self.lock:
            self.count += 1
            n = self.count
        if n <= len(self.steps):
            return n, self.steps[n - 1]
        if self.repeat_last and self.steps:
            return n, self.steps[-1]
        return n, None


class Recorder:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8") if path else None
        self.lock = threading.Lock()

    def record(self, entry):
        if self.file is None:
            return
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_llm/1"

    def log_message(self, format, *args):  # quiet: tests read stderr only on failure
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                if len(data) + size > MAX_REQUEST_BYTES:
                    raise ValueError("request body too large")
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, body, content_type="application/json", headers=None, cut=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        headers = dict(headers or {})
        self.send_response(status)
        if not any(name.lower() == "content-type" for name in headers):
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        self.wfile.flush()
        if cut:
            self.close_connection = True

    def not_found(self):
        self.send(404, {"error": "not found"})

    def do_GET(self):
        if self.path == "/healthz":
            self.send(200, "ok", "text/plain")
        else:
            self.not_found()

    def do_POST(self):
        try:
            raw = self.read_body()
        except ValueError:
            self.send(413, {"error": "request body too large"})
            self.close_connection = True
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        protocol = protocol_of(self.path)
        n, step = self.server.script.next() if protocol else (None, None)
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        self.server.recorder.record({"n": n, "method": "POST", "path": self.path,
                                     "headers": headers, "body": body, "t": time.monotonic()})
        if protocol is None:
            self.not_found()
            return
        if step is None:
            self.send(500, error_body(protocol, "fake_llm: script exhausted",
                                      "api_error" if protocol == ANTHROPIC else "server_error"))
            return
        if step.get("delay_ms"):
            time.sleep(step["delay_ms"] / 1000.0)
        self.answer(protocol, n, body if isinstance(body, dict) else {}, step)

    def answer(self, protocol, n, request, step):
        if step.get("close"):
            self.close_connection = True
            return
        if "reply" in step:
            reply = step["reply"]
            override = step.get("finish_reason", reply.get("finish_reason"))
            content_type = "application/json"
            if protocol == OPENAI:
                body = json.dumps(openai_reply(n, request, reply, override)).encode()
            elif protocol == ANTHROPIC:
                body = json.dumps(anthropic_reply(n, request, reply, override)).encode()
            else:
                body, content_type = ollama_reply(n, request, reply, override)
            self.send(200, body, content_type, step.get("headers"), cut=bool(step.get("partial")))
            return
        if "error" in step:
            error = step["error"]
            self.send(int(error.get("status", 500)),
                      error_body(protocol, error.get("message", "error"),
                                 error.get("type", "server_error")),
                      headers=step.get("headers"))
            return
        if "json" in step:
            body, content_type = json.dumps(step["json"]).encode(), "application/json"
        else:
            body, content_type = step.get("body", ""), "text/plain; charset=utf-8"
        self.send(int(step.get("status", 200)), body, content_type, step.get("headers"),
                  cut=bool(step.get("partial")))

    def other(self):
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_REQUEST_BYTES:
            self.rfile.read(length)
        self.not_found()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = other

    def do_HEAD(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def exit_with_parent(parent):
    """Exits once the parent is gone (the process is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that gave up (a timeout test) makes the late answer fail: expected.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--script", required=True)
    parser.add_argument("--record")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        with open(args.script, encoding="utf-8") as f:
            script = Script(json.load(f))
    except (OSError, ValueError) as e:
        print("fake_llm: bad script %s: %s" % (args.script, e), file=sys.stderr)
        return 2

    server = Server((args.host, args.port), Handler)
    server.script = script
    server.recorder = Recorder(args.record)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    if os.getppid() != 1:
        threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
