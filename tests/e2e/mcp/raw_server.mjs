// A tiny MCP server on stdio, written by hand (no SDK) so that it can misbehave on purpose:
//   echo    {message}  -> the message back, unchanged (for large requests)
//   big     {size}     -> a text of `size` characters (default 10 MiB), see bigText() in mcp_e2e.mjs
//   garbage {}         -> a line that is not JSON on stdout, then a proper result
//   crash   {}         -> exits with code 3 without answering
//   hang    {}         -> never answers
// Lines are newline-delimited JSON-RPC 2.0. Anything on stdin that is not JSON, and every notification
// (by method), is reported on stderr.
import process from "node:process";
import { pathToFileURL } from "node:url";

export const BIG_PATTERN = 'abcdefghijklmnopqrstuvwxyz0123456789 "quoted" back\\slash\ttab\nnewline é漢 \u0001|';

export function bigText(size) {
  const reps = Math.ceil(size / BIG_PATTERN.length);
  return BIG_PATTERN.repeat(reps).slice(0, size);
}

// A "data" handler for a text stream that calls onLine with each whole line (without its newline).
export function lineSplitter(onLine) {
  const pending = []; // pieces of the current line
  return (chunk) => {
    let start = 0;
    let nl;
    while ((nl = chunk.indexOf("\n", start)) >= 0) {
      pending.push(chunk.slice(start, nl));
      start = nl + 1;
      const line = pending.join("");
      pending.length = 0;
      onLine(line);
    }
    if (start < chunk.length) pending.push(chunk.slice(start));
  };
}

const TOOLS = [
  { name: "echo", inputSchema: { type: "object", properties: { message: { type: "string" } }, required: ["message"] } },
  { name: "big", inputSchema: { type: "object", properties: { size: { type: "integer" } } } },
  { name: "garbage", inputSchema: { type: "object", properties: {} } },
  { name: "crash", inputSchema: { type: "object", properties: {} } },
  { name: "hang", inputSchema: { type: "object", properties: {} } },
];

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function text(t) {
  return { content: [{ type: "text", text: t }] };
}

function handle(msg) {
  if (msg === null || typeof msg !== "object" || typeof msg.method !== "string") return; // responses, junk
  const isRequest = "id" in msg;
  if (!isRequest) {
    process.stderr.write(`raw_server: notification ${msg.method}\n`);
    return;
  }
  const params = msg.params ?? {};
  switch (msg.method) {
    case "initialize":
      send({
        jsonrpc: "2.0",
        id: msg.id,
        result: {
          protocolVersion: params.protocolVersion ?? "2025-06-18",
          capabilities: { tools: {} },
          serverInfo: { name: "toolwarden-e2e-raw-server", version: "1.0.0" },
        },
      });
      return;
    case "ping":
      send({ jsonrpc: "2.0", id: msg.id, result: {} });
      return;
    case "tools/list":
      send({ jsonrpc: "2.0", id: msg.id, result: { tools: TOOLS } });
      return;
    case "tools/call": {
      const args = params.arguments ?? {};
      switch (params.name) {
        case "echo":
          send({ jsonrpc: "2.0", id: msg.id, result: text(String(args.message)) });
          return;
        case "big":
          send({ jsonrpc: "2.0", id: msg.id, result: text(bigText(args.size ?? 10 * 1024 * 1024)) });
          return;
        case "garbage":
          process.stdout.write("this is {not JSON at all\n");
          send({ jsonrpc: "2.0", id: msg.id, result: text("after the garbage") });
          return;
        case "crash":
          process.stderr.write("raw_server: crashing with exit code 3\n");
          process.exit(3);
        case "hang":
          return;
        default:
          send({ jsonrpc: "2.0", id: msg.id, result: { ...text(`unknown tool ${params.name}`), isError: true } });
          return;
      }
    }
    default:
      if (isRequest) send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: `Method not found: ${msg.method}` } });
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  process.stdin.setEncoding("utf8");
  process.stdin.on(
    "data",
    lineSplitter((line) => {
      if (line.trim() === "") return;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        process.stderr.write(`raw_server: not JSON on stdin: ${line.slice(0, 80)}\n`);
        return;
      }
      handle(msg);
    }),
  );
  process.stdin.on("end", () => process.exit(0));
}
