"""A tiny MCP server over stdio for tests/limits/limits_e2e.py (Python 3 standard library only).

    python3 mcp_server.py [--pages N] [--progress FILE]

One JSON-RPC message per line. `initialize` declares `tools`; `tools/list` answers in N pages (page i
has the cursor "i"; only the first lists the tools). Tools:

  echo {message}           -> the message as text
  lookup {token, size}     -> "TOKEN " followed by SIZE bytes of padding (a big result)
  flood {count}            -> COUNT notifications of 1 MiB each before the answer; after each one
                              the bytes written so far go to the --progress file
  wire {...}               -> "wired"
  give {who}               -> "given"

Any other request with the method `slow/wait` is held unanswered until the client sends the
notification `notifications/release`; every other request gets the result {}.
"""
import argparse
import json
import os
import sys

TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}},
    {"name": "lookup", "inputSchema": {"type": "object", "properties": {
        "token": {"type": "string"}, "size": {"type": "number"}}}},
    {"name": "flood", "inputSchema": {"type": "object", "properties": {"count": {"type": "number"}}}},
    {"name": "wire", "inputSchema": {"type": "object"}},
    {"name": "give", "inputSchema": {"type": "object", "properties": {"who": {"type": "string"}}}},
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=1)
    parser.add_argument("--progress")
    args = parser.parse_args()
    out = sys.stdout.buffer
    written = 0

    def send(message):
        nonlocal written
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        out.write(data)
        out.flush()
        written += len(data)

    def result(request_id, value):
        send({"jsonrpc": "2.0", "id": request_id, "result": value})

    def text(request_id, value):
        result(request_id, {"content": [{"type": "text", "text": value}]})

    held = []
    for line in sys.stdin.buffer:
        message = json.loads(line)
        method = message.get("method")
        params = message.get("params") or {}
        if "id" not in message:  # a notification (or an answer to a request of ours: none)
            if method == "notifications/release":
                for request_id in held:
                    result(request_id, {})
                held = []
            continue
        request_id = message["id"]
        if method == "initialize":
            result(request_id, {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                                "capabilities": {"tools": {"listChanged": True}},
                                "serverInfo": {"name": "limits-server", "version": "1"}})
        elif method == "tools/list":
            page = int(params.get("cursor", "0"))
            answer = {"tools": TOOLS if page == 0 else []}
            if page + 1 < args.pages:
                answer["nextCursor"] = str(page + 1)
            result(request_id, answer)
        elif method == "tools/call":
            name, arguments = params.get("name"), params.get("arguments") or {}
            if name == "echo":
                text(request_id, arguments.get("message", ""))
            elif name == "lookup":  # a big ASCII text, written without json.dumps (slow)
                body = arguments["token"] + " " + "x" * int(arguments.get("size", 0))
                data = ('{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"%s"}]}}'
                        % (json.dumps(request_id), body)).encode() + b"\n"
                out.write(data)
                out.flush()
                written += len(data)
            elif name == "flood":
                pad = "y" * (1 << 20)
                for i in range(int(arguments["count"])):
                    send({"jsonrpc": "2.0", "method": "notifications/message",
                          "params": {"level": "info", "data": {"n": i, "pad": pad}}})
                    if args.progress:
                        with open(args.progress + ".tmp", "w") as f:
                            f.write(str(written))
                        os.replace(args.progress + ".tmp", args.progress)
                text(request_id, "flooded")
            elif name == "wire":
                text(request_id, "wired")
            elif name == "give":
                text(request_id, "given")
            else:
                send({"jsonrpc": "2.0", "id": request_id,
                      "error": {"code": -32602, "message": "unknown tool " + str(name)}})
        elif method == "slow/wait":
            held.append(request_id)
        else:
            result(request_id, {})


if __name__ == "__main__":
    main()
