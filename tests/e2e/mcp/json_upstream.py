"""A stateless MCP server over Streamable HTTP that answers with plain JSON (no event streams, no
Mcp-Session-Id), as the specification allows: the other kind of upstream the proxy must serve.

    python3 json_upstream.py PORT

Tools: echo {message}. Prints "listening on port N" on stderr once ready.
"""
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(405)

    def do_DELETE(self):
        self.reply(405)

    def do_POST(self):
        if self.headers.get("mcp-session-id"):
            # A stateless server never gave one out: a proxy must not pass its own on.
            self.reply(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "unexpected session id"}})
            return
        msg = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if "id" not in msg:
            self.reply(202)
            return
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "initialize":
            result = {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                      "capabilities": {"tools": {}}, "serverInfo": {"name": "json-upstream", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object",
                                                                "properties": {"message": {"type": "string"}}}}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "Echo: " + params["arguments"]["message"]}]}
        elif method == "ping":
            result = {}
        else:
            self.reply(200, {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": method}})
            return
        self.reply(200, {"jsonrpc": "2.0", "id": msg["id"], "result": result})


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(f"listening on port {server.server_address[1]}", file=sys.stderr, flush=True)
server.serve_forever()
