// What `toolwarden mcp` adds to a tool call's round trip over stdio.
//
//   node bench/mcp_proxy_bench.mjs --toolwarden build/toolwarden [--calls 5000] [--size 200]
//
// Starts tests/e2e/mcp/raw_server.mjs (a hand-written MCP server with no SDK, so the server's own cost
// is small) once directly and once behind the proxy, and sends it the same sequence of tools/call
// `echo` requests one at a time, each after the previous answer: half allowed by the policy (they go to
// the server) and half denied (the proxy answers them itself). Prints the median and 99th percentile
// round trip of each kind, and the medians' ratio. A warm-up of 500 calls is not counted.
import { spawn } from "node:child_process";
import path from "node:path";
import process from "node:process";
import fs from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RAW_SERVER = path.join(HERE, "..", "tests", "e2e", "mcp", "raw_server.mjs");

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const toolwarden = option("toolwarden");
const calls = Number(option("calls", "5000"));
const size = Number(option("size", "200"));
if (!toolwarden) {
  console.error("usage: node bench/mcp_proxy_bench.mjs --toolwarden BIN [--calls N] [--size BYTES]");
  process.exit(2);
}

// One process spoken to in lines; `request` resolves with the answer to its id.
function start(command, args) {
  const proc = spawn(command, args, { stdio: ["pipe", "pipe", "ignore"] });
  const waiting = new Map();
  let buffer = "";
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      const message = JSON.parse(line);
      const resolve = waiting.get(message.id);
      if (resolve) {
        waiting.delete(message.id);
        resolve(message);
      }
    }
  });
  let next = 1;
  return {
    proc,
    request(method, params) {
      const id = next++;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        proc.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
      });
    },
    notify(method) {
      proc.stdin.write(JSON.stringify({ jsonrpc: "2.0", method }) + "\n");
    },
  };
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function run(label, command, args) {
  const s = start(command, args);
  await s.request("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "1" } });
  s.notify("notifications/initialized");
  const message = "m".repeat(size);
  const times = { allowed: [], denied: [] };
  for (let i = 0; i < calls + 500; ++i) {
    const kind = i % 2 === 0 ? "allowed" : "denied";
    const name = kind === "allowed" ? "echo" : "delete_everything";
    const t0 = process.hrtime.bigint();
    const answer = await s.request("tools/call", { name, arguments: { message } });
    const t1 = process.hrtime.bigint();
    if (answer.error) throw new Error(`${label}: ${JSON.stringify(answer.error)}`);
    if (i >= 500) times[kind].push(Number(t1 - t0) / 1000);
  }
  s.proc.stdin.end();
  await new Promise((resolve) => s.proc.once("exit", resolve));
  const out = {};
  for (const [kind, list] of Object.entries(times)) {
    list.sort((a, b) => a - b);
    out[kind] = { median: quantile(list, 0.5), p99: quantile(list, 0.99), n: list.length };
  }
  return out;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tw-mcp-bench-"));
const policy = path.join(dir, "bench.policy");
fs.writeFileSync(policy, 'policy bench;\nallow echo when len(message) < 100000;\n');
const direct = await run("direct", process.execPath, [RAW_SERVER]);
const proxied = await run("proxied", toolwarden, ["mcp", "--policy", policy, "--", process.execPath, RAW_SERVER]);
fs.rmSync(dir, { recursive: true, force: true });

const us = (x) => `${x.toFixed(1)} us`;
console.log(`tools/call echo, ${size}-byte argument, ${calls / 2} calls of each kind, one at a time`);
console.log(`| path | median | p99 |`);
console.log(`|---|---|---|`);
console.log(`| direct to the server (the server answers every call) | ${us(direct.allowed.median)} | ${us(direct.allowed.p99)} |`);
console.log(`| through the proxy, allowed (decided, then the server answers) | ${us(proxied.allowed.median)} | ${us(proxied.allowed.p99)} |`);
console.log(`| through the proxy, denied (the proxy answers) | ${us(proxied.denied.median)} | ${us(proxied.denied.p99)} |`);
console.log(`proxy cost on an allowed call: median +${us(proxied.allowed.median - direct.allowed.median)} (x${(proxied.allowed.median / direct.allowed.median).toFixed(2)})`);
