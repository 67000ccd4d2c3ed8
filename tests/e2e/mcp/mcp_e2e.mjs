// End-to-end tests of `toolwarden mcp`, the MCP stdio proxy, against real MCP servers from npm
// (@modelcontextprotocol/server-filesystem, @modelcontextprotocol/server-everything) and a hand-written
// misbehaving server (raw_server.mjs), driven by the official TypeScript SDK client.
//
//   node mcp_e2e.mjs --toolwarden BIN [--only a,b,...] [--verbose] [--direct]
//
// run.sh installs the pinned packages and runs this from the build tree. Every case prints its checks
// ("ok" / "FAIL") and a summary line; the exit status is 1 when any check failed. Every case has a time
// limit, so a hang fails the case instead of blocking the run.
//
// --direct starts each server without the proxy (the command is the server itself). It exists to
// debug the client side of these tests; the policy checks fail in that mode, by design.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { spawn, spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { bigText, lineSplitter } from "./raw_server.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;

// --- command line ------------------------------------------------------------------------------

function parseArgs(argv) {
  const opts = { toolwarden: null, only: null, verbose: false, direct: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--toolwarden") opts.toolwarden = argv[++i];
    else if (a === "--only") opts.only = new Set(argv[++i].split(","));
    else if (a === "--verbose") opts.verbose = true;
    else if (a === "--direct") opts.direct = true;
    else {
      console.error(`mcp_e2e: unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (!opts.toolwarden && !opts.direct) {
    console.error("usage: node mcp_e2e.mjs --toolwarden BIN [--only a,b,...] [--verbose] [--direct]");
    process.exit(2);
  }
  if (opts.toolwarden) opts.toolwarden = path.resolve(opts.toolwarden);
  return opts;
}
const OPTS = parseArgs(process.argv.slice(2));
const TOOLWARDEN = OPTS.toolwarden;
const DIRECT = OPTS.direct;

// The servers' entry points, from the node_modules that run.sh installed next to this file (or any
// node_modules above it, or on NODE_PATH).
function findPackageFile(rel) {
  const dirs = [];
  for (let d = HERE; ; d = path.dirname(d)) {
    dirs.push(path.join(d, "node_modules"));
    if (path.dirname(d) === d) break;
  }
  for (const p of (process.env.NODE_PATH ?? "").split(path.delimiter)) if (p) dirs.push(p);
  for (const d of dirs) {
    const f = path.join(d, rel);
    if (fs.existsSync(f)) return f;
  }
  throw new Error(`cannot find ${rel} in node_modules (run through run.sh)`);
}
const FS_SERVER = findPackageFile("@modelcontextprotocol/server-filesystem/dist/index.js");
const EVERYTHING_SERVER = findPackageFile("@modelcontextprotocol/server-everything/dist/index.js");
const RAW_SERVER = path.join(HERE, "raw_server.mjs");
const NODE = process.execPath;

// --- small helpers -----------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(25);
  }
}

// A regex that matches the string literally (RE2 takes `\` before any punctuation).
const reEscape = (s) => s.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");

function textOf(result) {
  return (result?.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

function short(v, n = 400) {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s === undefined ? String(s) : s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s;
}

// Linux /proc: [pid, ppid, pgrp, state] of every process, for finding the proxy's child.
function procStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { pid: Number(pid), state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]) };
  } catch {
    return null;
  }
}
function childrenOf(ppid) {
  const out = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const st = procStat(e);
    if (st && st.ppid === ppid) out.push(st);
  }
  return out;
}
function isGone(pid) {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === "ESRCH";
  }
  return false;
}
async function waitChildOf(ppid, ms) {
  let kids = [];
  await waitFor(() => (kids = childrenOf(ppid)).length > 0, ms, `a child process of the proxy (pid ${ppid})`);
  return kids[0];
}
async function assertGone(pid, what) {
  try {
    await waitFor(() => isGone(pid), 3000, `${what} (pid ${pid}) to be gone`);
  } catch (e) {
    const st = procStat(pid);
    throw new Error(`${what} (pid ${pid}) still exists: state ${st?.state ?? "?"}, ppid ${st?.ppid ?? "?"}`);
  }
}

// --- the case runner ---------------------------------------------------------------------------

class Case {
  constructor(id, title) {
    this.id = id;
    this.title = title;
    this.failures = 0;
    this.checks = 0;
    this.cleanups = [];
    this.sessions = [];
  }
  log(...a) {
    if (OPTS.verbose) console.log(`      [${this.id}]`, ...a);
  }
  defer(fn) {
    this.cleanups.push(fn);
  }
  // A check: reports ok / FAIL and goes on.
  async check(name, fn) {
    this.checks++;
    try {
      const v = await fn();
      console.log(`  ok   ${this.id}: ${name}`);
      return v;
    } catch (e) {
      this.failures++;
      console.log(`  FAIL ${this.id}: ${name}\n         ${String(e?.stack && OPTS.verbose ? e.stack : e?.message ?? e).replace(/\n/g, "\n         ")}`);
      return undefined;
    }
  }
  // A check the rest of the case depends on: a failure ends the case.
  async must(name, fn) {
    const before = this.failures;
    const v = await this.check(name, fn);
    if (this.failures !== before) throw new CaseAborted();
    return v;
  }
  tmpdir(tag) {
    const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `tw-mcp-${tag}-`)));
    this.defer(() => fs.rmSync(d, { recursive: true, force: true }));
    return d;
  }
  writePolicy(dir, text) {
    const f = path.join(dir, "e2e.policy");
    fs.writeFileSync(f, text);
    return f;
  }
  async cleanup() {
    for (const fn of this.cleanups.reverse()) {
      try {
        await withTimeout(Promise.resolve().then(fn), 15000, "cleanup");
      } catch (e) {
        console.log(`      [${this.id}] cleanup: ${e?.message ?? e}`);
      }
    }
  }
}
class CaseAborted extends Error {}

const CASES = [];
function testCase(id, title, timeoutMs, fn) {
  CASES.push({ id, title, timeoutMs, fn });
}

// --- proxy sessions ----------------------------------------------------------------------------

function proxyArgv(policyFile, server, { decisionLog, extra = [] } = {}) {
  if (DIRECT) return [server[0], server.slice(1)];
  const args = ["mcp", "--policy", policyFile];
  if (decisionLog) args.push("--decision-log", decisionLog);
  return [TOOLWARDEN, [...args, ...extra, "--", ...server]];
}

// An SDK client talking to `toolwarden mcp ... -- SERVER...` through StdioClientTransport.
async function sdkSession(t, { policyFile, server, decisionLog, capabilities = {}, onElicit, onClient, label = "proxy" }) {
  const [command, args] = proxyArgv(policyFile, server, { decisionLog });
  const transport = new StdioClientTransport({
    command,
    args,
    env: { ...process.env },
    stderr: "pipe",
    maxBufferSize: 64 * MiB, // the SDK's default (10 MiB) is below the messages these tests send
  });
  const s = { label, stderr: "", proc: null, exit: null, exited: null, closed: false, transport };
  transport.stderr.on("data", (d) => {
    s.stderr += d;
  });
  // The transport does not expose the process's exit status: catch the process as it starts.
  const start = transport.start.bind(transport);
  transport.start = () => {
    const p = start();
    s.proc = transport._process;
    s.exited = new Promise((resolve) => {
      s.proc.once("exit", (code, signal) => {
        s.exit = { code, signal };
        resolve(s.exit);
      });
      // A process that could not start emits "error" and never "exit".
      s.proc.once("error", (error) => {
        if (s.proc.pid === undefined && s.exit === null) {
          s.exit = { code: null, signal: null, error: error.message };
          resolve(s.exit);
        }
      });
    });
    return p;
  };
  const client = new Client({ name: "toolwarden-mcp-e2e", version: "1.0.0" }, { capabilities });
  if (onElicit) client.setRequestHandler(ElicitRequestSchema, onElicit);
  if (onClient) onClient(client);
  s.client = client;
  s.closedPromise = new Promise((resolve) => {
    client.onclose = () => {
      s.closed = true;
      resolve();
    };
  });
  t.sessions.push(s);
  t.defer(async () => {
    await client.close().catch(() => {});
    if (s.proc && s.exit === null) {
      s.proc.kill("SIGKILL");
      await withTimeout(s.exited, 5000, `${label}: exit after SIGKILL`);
    }
  });
  await client.connect(transport, { timeout: 15000 });
  return s;
}

async function call(s, name, args, options = {}) {
  return s.client.callTool({ name, arguments: args }, undefined, { timeout: 20000, ...options });
}

// A proxy spoken to in raw lines, for what the SDK client would not send or would hide.
function rawSession(t, argv, { label = "raw proxy" } = {}) {
  const proc = spawn(argv[0], argv[1], { stdio: ["pipe", "pipe", "pipe"] });
  const s = { label, proc, stderr: "", messages: [], nonJson: [], exit: null };
  s.exited = new Promise((resolve) => {
    proc.once("exit", (code, signal) => {
      s.exit = { code, signal };
      resolve(s.exit);
    });
    // A process that could not start emits "error" and never "exit".
    proc.on("error", (error) => {
      if (proc.pid === undefined && s.exit === null) {
        s.exit = { code: null, signal: null, error: error.message };
        resolve(s.exit);
      }
    });
  });
  proc.stdin.on("error", () => {}); // EPIPE after the proxy exits
  s.outputDone = false; // no more messages will come: stdout closed, or the process never started
  proc.on("close", () => {
    s.outputDone = true;
  });
  proc.on("error", () => {
    if (proc.pid === undefined) s.outputDone = true;
  });
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (d) => {
    s.stderr += d;
  });
  proc.stdout.setEncoding("utf8");
  proc.stdout.on(
    "data",
    lineSplitter((line) => {
      try {
        s.messages.push(JSON.parse(line));
      } catch {
        s.nonJson.push(line);
      }
    }),
  );
  s.sendLine = (line) => proc.stdin.write(line + "\n");
  s.send = (msg) => s.sendLine(JSON.stringify(msg));
  // The first message not taken yet that matches pred; taken messages are removed.
  s.next = async (pred, ms, what) => {
    let found;
    await waitFor(
      () => {
        const i = s.messages.findIndex(pred);
        if (i < 0 && s.outputDone) throw new Error(`${what}: the proxy's output ended without it (exit ${JSON.stringify(s.exit)})`);
        if (i < 0) return false;
        found = s.messages.splice(i, 1)[0];
        return true;
      },
      ms,
      what,
    );
    return found;
  };
  s.handshake = async () => {
    s.send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw-e2e", version: "1" } },
    });
    const r = await s.next((m) => m.id === 1, 15000, "the initialize response");
    assert.ok(r.result, `initialize failed: ${short(r)}`);
    s.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    return r;
  };
  t.sessions.push(s);
  t.defer(async () => {
    if (s.exit === null) {
      proc.stdin.end();
      const done = await Promise.race([s.exited, sleep(3000).then(() => null)]);
      if (!done) {
        proc.kill("SIGKILL");
        await withTimeout(s.exited, 5000, `${label}: exit after SIGKILL`);
      }
    }
  });
  return s;
}

// =============================================================================================
// The cases
// =============================================================================================

function fsPolicy(root) {
  const r = reEscape(root);
  return `policy fs;
default block "Call blocked by policy: {reason}";
allow read_text_file, read_file, read_media_file, list_directory, get_file_info when path(path) matches r"${r}/allowed(/.*)?";
allow write_file when path(path) matches r"${r}/writable/.*";
allow list_allowed_directories;
forbid write_file when path(path) matches r".*secret.*" priority 1 fallback ask "Writing a secret needs approval";
forbid move_file priority 1 fallback terminate "Moving files ends the session";
`;
}

function makeFsRoot(t, tag) {
  const root = t.tmpdir(tag);
  fs.mkdirSync(path.join(root, "allowed"));
  fs.mkdirSync(path.join(root, "writable"));
  fs.writeFileSync(path.join(root, "allowed", "hello.txt"), "hello from the allowed directory\n");
  fs.writeFileSync(path.join(root, "outside.txt"), "outside content: do not leak\n");
  return root;
}

// The message the engine gives for a denied call (`toolwarden check`), which the proxy must send back
// as the isError result's text.
function engineMessage(policyFile, tool, args) {
  if (DIRECT) return undefined;
  const r = spawnSync(TOOLWARDEN, ["check", "--policy", policyFile, "--tool", tool, "--args", JSON.stringify(args)], {
    encoding: "utf8",
    timeout: 10000,
  });
  let d;
  try {
    d = JSON.parse(r.stdout);
  } catch {
    throw new Error(`toolwarden check failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
  }
  assert.notEqual(d.decision, "allow", `toolwarden check allows ${tool} ${short(args)}`);
  return d.message;
}

function assertDenied(result, { startsWith, includes, exact } = {}) {
  assert.equal(result.isError, true, `expected isError true, got ${short(result)}`);
  const text = textOf(result);
  if (exact !== undefined) assert.equal(text, exact, "the message is not the engine's");
  assert.equal(result.content?.length, 1, `expected one content item: ${short(result)}`);
  if (startsWith) assert.ok(text.startsWith(startsWith), `message ${JSON.stringify(text)} does not start with ${JSON.stringify(startsWith)}`);
  if (includes) assert.ok(text.includes(includes), `message ${JSON.stringify(text)} does not include ${JSON.stringify(includes)}`);
  return text;
}
function assertAllowed(result) {
  assert.notEqual(result.isError, true, `expected a successful result, got ${short(result)}`);
  return textOf(result);
}

// --- a. the filesystem server, allow and deny -----------------------------------------------

testCase("a", "filesystem server: allowed reads and writes pass, others are blocked and never run", 30000, async (t) => {
  const root = makeFsRoot(t, "a");
  const aux = t.tmpdir("a-aux");
  const policyFile = t.writePolicy(aux, fsPolicy(root));
  const decisionLog = path.join(aux, "decisions.jsonl");
  const s = await t.must("handshake through the proxy", () =>
    sdkSession(t, { policyFile, server: [NODE, FS_SERVER, root], decisionLog }),
  );
  const p = (...parts) => path.join(root, ...parts);

  await t.check("tools/list passes through", async () => {
    const { tools } = await s.client.listTools(undefined, { timeout: 10000 });
    const names = tools.map((x) => x.name);
    for (const n of ["read_text_file", "write_file", "move_file", "list_directory"]) assert.ok(names.includes(n), `no ${n} in ${names}`);
  });
  await t.check("read of the allowed file returns its content", async () => {
    const text = assertAllowed(await call(s, "read_text_file", { path: p("allowed", "hello.txt") }));
    assert.equal(text, "hello from the allowed directory\n");
  });
  await t.check("list_directory of the allowed directory", async () => {
    const text = assertAllowed(await call(s, "list_directory", { path: p("allowed") }));
    assert.ok(text.includes("hello.txt"), short(text));
  });
  await t.check("write into writable/ creates the file", async () => {
    assertAllowed(await call(s, "write_file", { path: p("writable", "new.txt"), content: "written through the proxy" }));
    assert.equal(fs.readFileSync(p("writable", "new.txt"), "utf8"), "written through the proxy");
  });
  await t.check("write into allowed/ (read-only by policy) is blocked and the file is not created", async () => {
    const args = { path: p("allowed", "evil.txt"), content: "evil" };
    const r = await call(s, "write_file", args);
    assertDenied(r, { startsWith: "Call blocked by policy", exact: engineMessage(policyFile, "write_file", args) });
    assert.ok(!fs.existsSync(p("allowed", "evil.txt")), "allowed/evil.txt exists: the call reached the server");
  });
  await t.check("write outside both directories is blocked and the file is not created", async () => {
    const r = await call(s, "write_file", { path: p("outside-new.txt"), content: "evil" });
    assertDenied(r, { startsWith: "Call blocked by policy" });
    assert.ok(!fs.existsSync(p("outside-new.txt")), "outside-new.txt exists: the call reached the server");
  });
  await t.check("write through writable/../ (path() normalises) is blocked", async () => {
    const r = await call(s, "write_file", { path: `${root}/writable/../escaped.txt`, content: "evil" });
    assertDenied(r, { startsWith: "Call blocked by policy" });
    assert.ok(!fs.existsSync(p("escaped.txt")), "escaped.txt exists: the call reached the server");
  });
  await t.check("read outside allowed/ is blocked and leaks nothing", async () => {
    const args = { path: p("outside.txt") };
    const r = await call(s, "read_text_file", args);
    const text = assertDenied(r, { startsWith: "Call blocked by policy", exact: engineMessage(policyFile, "read_text_file", args) });
    assert.ok(!text.includes("do not leak"), `the denial carries the file's content: ${short(text)}`);
  });
  await t.check("a tool the policy does not name (create_directory) is blocked", async () => {
    const r = await call(s, "create_directory", { path: p("writable", "newdir") });
    assertDenied(r, { startsWith: "Call blocked by policy" });
    assert.ok(!fs.existsSync(p("writable", "newdir")), "writable/newdir exists");
  });
  await t.check("ping passes through", async () => {
    await s.client.ping({ timeout: 10000 });
  });
  await t.check("client close: the proxy exits with status 0 (the server's) on its own", async () => {
    const t0 = Date.now();
    await s.client.close();
    const exit = await withTimeout(s.exited, 10000, "proxy exit");
    assert.deepEqual(exit, { code: 0, signal: null }, `exit ${JSON.stringify(exit)} after ${Date.now() - t0} ms`);
    // StdioClientTransport.close() sends SIGTERM after 2 s; the proxy must not need it.
    assert.ok(Date.now() - t0 < 1900, `the proxy took ${Date.now() - t0} ms to exit after stdin closed`);
  });
  await t.check("decision log has allow and deny lines", async () => {
    assert.ok(fs.existsSync(decisionLog), "no decision log file");
    const lines = fs.readFileSync(decisionLog, "utf8").split("\n").filter((l) => l.trim());
    const recs = lines.map((l) => JSON.parse(l));
    const decides = recs.filter((r) => r.kind === "decide");
    t.log("decision log:", decides.map((r) => `${r.decision} ${r.tool}`).join(", "));
    assert.ok(decides.some((r) => r.decision === "allow" && r.tool === "read_text_file"), "no allow read_text_file");
    assert.ok(decides.some((r) => r.decision === "allow" && r.tool === "write_file"), "no allow write_file");
    assert.ok(decides.some((r) => r.decision === "deny" && r.tool === "write_file"), "no deny write_file");
    assert.ok(decides.some((r) => r.decision === "deny" && r.tool === "read_text_file"), "no deny read_text_file");
    assert.equal(decides.length, 8, `expected 8 decide lines (one per tools/call), got ${decides.length}`);
  });
  if (!DIRECT)
    await t.check("`toolwarden verify-log` accepts the decision log", async () => {
      const r = spawnSync(TOOLWARDEN, ["verify-log", decisionLog], { encoding: "utf8", timeout: 10000 });
      assert.equal(r.status, 0, `verify-log exit ${r.status}: ${r.stdout}${r.stderr}`);
    });
});

// --- b. ask, through elicitation --------------------------------------------------------------

testCase("b", "ask: elicitation/create to the client decides; no capability means deny", 30000, async (t) => {
  const root = makeFsRoot(t, "b");
  const aux = t.tmpdir("b-aux");
  const policyFile = t.writePolicy(aux, fsPolicy(root));
  const decisionLog = path.join(aux, "decisions.jsonl");
  const w = (f) => path.join(root, "writable", f);
  const seen = [];
  let answer = null; // what the handler does next: a result object, or a function that throws
  const s = await t.must("handshake with the elicitation capability", () =>
    sdkSession(t, {
      policyFile,
      decisionLog,
      server: [NODE, FS_SERVER, root],
      capabilities: { elicitation: {} },
      onElicit: async (req, extra) => {
        seen.push({ params: req.params, id: extra.requestId });
        if (typeof answer === "function") return answer();
        return answer;
      },
    }),
  );

  await t.check("approve: elicitation/create arrives and the write happens", async () => {
    answer = { action: "accept", content: { approve: true } };
    const r = await call(s, "write_file", { path: w("secret-approved.txt"), content: "approved" });
    assert.equal(seen.length, 1, `expected one elicitation request, got ${seen.length}`);
    assertAllowed(r);
    assert.equal(fs.readFileSync(w("secret-approved.txt"), "utf8"), "approved");
  });
  await t.check("the elicitation request has the contract's shape", async () => {
    assert.ok(seen.length >= 1, "no elicitation request");
    const { params, id } = seen[0];
    assert.ok(typeof id === "string" && id.startsWith("toolwarden-"), `request id ${JSON.stringify(id)}`);
    assert.ok(String(params.message).includes("Writing a secret needs approval"), `message ${JSON.stringify(params.message)}`);
    const rs = params.requestedSchema;
    assert.equal(rs?.type, "object", short(rs));
    assert.equal(rs?.properties?.approve?.type, "boolean", short(rs));
    assert.deepEqual(rs?.required, ["approve"], short(rs));
  });
  const deniedAnswers = [
    ["decline", { action: "decline" }],
    ["cancel", { action: "cancel" }],
    ["accept with approve false", { action: "accept", content: { approve: false } }],
    [
      "an error response",
      () => {
        throw new Error("the person is not there");
      },
    ],
  ];
  let n = 0;
  for (const [what, ans] of deniedAnswers) {
    const file = w(`secret-${++n}.txt`);
    await t.check(`${what}: the call is denied and the file is not written`, async () => {
      const before = seen.length;
      answer = ans;
      const args = { path: file, content: "must not appear" };
      const r = await call(s, "write_file", args);
      assert.equal(seen.length, before + 1, "no elicitation request for this call");
      assertDenied(r, { exact: engineMessage(policyFile, "write_file", args) });
      assert.ok(!fs.existsSync(file), `${path.basename(file)} exists: the call reached the server`);
    });
  }
  await t.check("while an ask waits for the person, other calls go on", async () => {
    let release;
    const gate = new Promise((r) => (release = r));
    answer = async () => {
      await gate;
      return { action: "accept", content: { approve: true } };
    };
    const asked = call(s, "write_file", { path: w("secret-later.txt"), content: "later" });
    await waitFor(() => seen.length > 0 && seen.at(-1).params.message.includes("secret-later"), 5000, "the elicitation for secret-later.txt");
    const read = await withTimeout(call(s, "read_text_file", { path: path.join(root, "allowed", "hello.txt") }), 5000, "a read while the ask waits");
    assert.equal(assertAllowed(read), "hello from the allowed directory\n");
    assert.ok(!fs.existsSync(w("secret-later.txt")), "written before the approval");
    release();
    assertAllowed(await asked);
    assert.equal(fs.readFileSync(w("secret-later.txt"), "utf8"), "later");
  });
  await t.check("a write the ask rule does not match needs no elicitation", async () => {
    const before = seen.length;
    assertAllowed(await call(s, "write_file", { path: w("plain.txt"), content: "plain" }));
    assert.equal(seen.length, before, "an elicitation request was sent");
    assert.equal(fs.readFileSync(w("plain.txt"), "utf8"), "plain");
  });
  await t.check("decision log: six ask decisions, two approve and four decline entries; verify-log accepts it", async () => {
    const recs = fs
      .readFileSync(decisionLog, "utf8")
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
    const kinds = recs.map((r) => `${r.kind}:${r.decision}`);
    t.log("decision log:", kinds.join(", "));
    assert.equal(recs.filter((r) => r.kind === "decide" && r.decision === "ask").length, 6, kinds.join(", "));
    assert.equal(recs.filter((r) => r.kind === "approve").length, 2, kinds.join(", "));
    assert.equal(recs.filter((r) => r.kind === "decline").length, 4, kinds.join(", "));
    if (!DIRECT) {
      const v = spawnSync(TOOLWARDEN, ["verify-log", decisionLog], { encoding: "utf8", timeout: 10000 });
      assert.equal(v.status, 0, `verify-log exit ${v.status}: ${v.stdout}${v.stderr}`);
    }
  });

  const s2 = await t.must("handshake without the elicitation capability", () =>
    sdkSession(t, { policyFile, server: [NODE, FS_SERVER, root], label: "proxy (no elicitation)" }),
  );
  await t.check("without the capability the ask is a deny with the rule's message", async () => {
    const args = { path: w("secret-noelicit.txt"), content: "must not appear" };
    const r = await call(s2, "write_file", args);
    assertDenied(r, { exact: engineMessage(policyFile, "write_file", args), includes: "Writing a secret needs approval" });
    assert.ok(!fs.existsSync(w("secret-noelicit.txt")), "secret-noelicit.txt exists");
  });
});

// --- c. terminate ------------------------------------------------------------------------------

testCase("c", "terminate: the call is refused, the session ends, the proxy and the server exit", 30000, async (t) => {
  const root = makeFsRoot(t, "c");
  const aux = t.tmpdir("c-aux");
  const policyFile = t.writePolicy(aux, fsPolicy(root));
  const src = path.join(root, "allowed", "move-me.txt");
  const dst = path.join(root, "allowed", "moved.txt");
  fs.writeFileSync(src, "stay here");
  let elicited = 0;
  const s = await t.must("handshake", () =>
    sdkSession(t, {
      policyFile,
      server: [NODE, FS_SERVER, root],
      capabilities: { elicitation: {} },
      onElicit: () => {
        elicited++;
        return new Promise(() => {}); // the person never answers
      },
    }),
  );
  const child = DIRECT ? null : await t.check("the proxy has started the server", () => waitChildOf(s.proc.pid, 5000));
  await t.check("an allowed call before works", async () => {
    assertAllowed(await call(s, "read_text_file", { path: src }));
  });
  let asked;
  await t.check("an ask is waiting for the person", async () => {
    asked = call(s, "write_file", { path: path.join(root, "writable", "secret-pending.txt"), content: "never" }).then(
      (r) => ({ ok: r }),
      (e) => ({ err: e }),
    );
    await waitFor(() => elicited === 1, 5000, "the elicitation request");
  });
  await t.check("move_file is answered with isError and the terminate message", async () => {
    const args = { source: src, destination: dst };
    const r = await call(s, "move_file", args);
    assertDenied(r, { exact: engineMessage(policyFile, "move_file", args), includes: "Moving files ends the session" });
  });
  await t.check("the call waiting for approval gets the same isError result", async () => {
    const r = await withTimeout(asked, 5000, "the waiting call");
    assert.ok(r.ok, `it failed: ${r.err?.code} ${r.err?.message}`);
    assertDenied(r.ok, { exact: engineMessage(policyFile, "move_file", { source: src, destination: dst }) });
    assert.ok(!fs.existsSync(path.join(root, "writable", "secret-pending.txt")), "secret-pending.txt was written");
  });
  await t.check("the transport closes (client onclose)", () => withTimeout(s.closedPromise, 10000, "onclose"));
  await t.check("the proxy process exits with the server's code (0)", async () => {
    const exit = await withTimeout(s.exited, 10000, "proxy exit");
    // The server exits 0 when its stdin closes; the proxy exits with the server's code.
    assert.deepEqual(exit, { code: 0, signal: null });
  });
  await t.check("the file was not moved", async () => {
    assert.ok(fs.existsSync(src), "the source is gone");
    assert.ok(!fs.existsSync(dst), "the destination exists");
  });
  if (child) await t.check("the server process is gone", () => assertGone(child.pid, "the filesystem server"));
});

// --- d. server-everything --------------------------------------------------------------------

testCase("d", "server-everything: echo, 10 MB echo, get-sum, deny, progress, server-to-client elicitation", 40000, async (t) => {
  const aux = t.tmpdir("d");
  const policyFile = t.writePolicy(
    aux,
    `policy everything;
allow echo, "get-sum", "trigger-long-running-operation", "trigger-elicitation-request";
`,
  );
  const elicitations = [];
  let listChanged = 0;
  const s = await t.must("handshake", () =>
    sdkSession(t, {
      policyFile,
      server: [NODE, EVERYTHING_SERVER, "stdio"],
      capabilities: { elicitation: {} },
      onElicit: async (req, extra) => {
        elicitations.push({ params: req.params, id: extra.requestId });
        return { action: "accept", content: { name: "Ada Lovelace", check: true } };
      },
      onClient: (client) =>
        client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
          listChanged++;
        }),
    }),
  );
  await t.check("echo", async () => {
    assert.equal(assertAllowed(await call(s, "echo", { message: "hello, proxy" })), "Echo: hello, proxy");
  });
  await t.check("echo of a 10 MB message round-trips intact", async () => {
    // server-everything reads stdin through the SDK's ReadBuffer, which refuses lines over 10 MiB
    // (STDIO_DEFAULT_MAX_BUFFER_SIZE): 10,000,000 characters is the 10 MB that it takes. Case f sends
    // and receives full 10 MiB messages through raw_server.mjs.
    const msg = bigText(10_000_000).replace(/[^a-z0-9 ]/g, "x");
    const text = assertAllowed(await call(s, "echo", { message: msg }));
    assert.equal(text.length, msg.length + 6, `length ${text.length}`);
    assert.ok(text === `Echo: ${msg}`, "the echoed text differs");
  });
  await t.check("get-sum", async () => {
    assert.equal(assertAllowed(await call(s, "get-sum", { a: 2, b: 40 })), "The sum of 2 and 40 is 42.");
  });
  await t.check("get-env (not allowed) is blocked with the engine's standard message", async () => {
    const text = assertDenied(await call(s, "get-env", {}), { exact: engineMessage(policyFile, "get-env", {}) });
    assert.ok(!text.includes("PATH"), "the denial carries the environment");
  });
  await t.check("long-running operation: progress notifications reach the client", async () => {
    const progress = [];
    const r = await call(s, "trigger-long-running-operation", { duration: 1, steps: 4 }, { onprogress: (p) => progress.push(p) });
    assert.ok(assertAllowed(r).startsWith("Long running operation completed"), short(r));
    // The server sends progress 1..4, 250 ms apart, the last right before the result. The SDK client
    // handles notifications a microtask later than responses, so it drops a last notification that
    // arrives in the same read as the result: 1..3 must arrive, 4 may.
    const seen = progress.map((p) => [p.progress, p.total]);
    const want = [
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4],
    ];
    assert.ok(seen.length >= 3, `progress: ${JSON.stringify(seen)}`);
    assert.deepEqual(seen, want.slice(0, seen.length));
  });
  await t.check("trigger-elicitation-request: the server's elicitation/create reaches the client and the answer gets back", async () => {
    const r = await call(s, "trigger-elicitation-request", {});
    assert.equal(elicitations.length, 1, `elicitations: ${elicitations.length}`);
    assert.equal(elicitations[0].params.message, "Please provide inputs for the following fields:");
    assert.ok(!String(elicitations[0].id).startsWith("toolwarden-"), `id ${elicitations[0].id}`);
    const text = assertAllowed(r);
    assert.ok(text.includes("- Name: Ada Lovelace"), short(text));
    assert.ok(text.includes("- Agreed to terms: true"), short(text));
  });
  await t.check("notifications/tools/list_changed from the server reaches the client", async () => {
    // The server registers its elicitation tools after `initialized` and announces them.
    await waitFor(() => listChanged > 0, 3000, "tools/list_changed");
  });
  if (!DIRECT)
    await t.check("the server's stderr comes out on the proxy's stderr", async () => {
      assert.ok(s.stderr.includes("Starting default (STDIO) server..."), short(s.stderr));
    });
  await t.check("prompts/list and resources/list pass through", async () => {
    const { prompts } = await s.client.listPrompts(undefined, { timeout: 10000 });
    assert.ok(prompts.length > 0, "no prompts");
    const { resources } = await s.client.listResources(undefined, { timeout: 10000 });
    assert.ok(resources.length > 0, "no resources");
  });
});

// --- e. malformed JSON from the client ----------------------------------------------------------

testCase("e", "malformed JSON from the client: -32700 with id null, nothing forwarded, the session goes on", 20000, async (t) => {
  const aux = t.tmpdir("e");
  const policyFile = t.writePolicy(aux, "policy raw;\nallow echo;\n");
  const s = rawSession(t, proxyArgv(policyFile, [NODE, RAW_SERVER]));
  await t.must("handshake", () => s.handshake());
  for (const [what, line] of [
    ["garbage", "this is {not json"],
    ["truncated JSON", '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"'],
  ]) {
    await t.check(`${what}: a -32700 error with id null`, async () => {
      s.sendLine(line);
      const m = await s.next((m) => m.error?.code === -32700 || m.id === null || m.id === 7, 5000, "the parse error");
      assert.equal(m.jsonrpc, "2.0", short(m));
      assert.equal(m.id, null, short(m));
      assert.equal(m.error?.code, -32700, short(m));
      assert.equal(typeof m.error?.message, "string", short(m));
    });
  }
  await t.check("a valid request afterwards still works (tools/list)", async () => {
    s.send({ jsonrpc: "2.0", id: 2, method: "tools/list" });
    const m = await s.next((m) => m.id === 2, 10000, "the tools/list response");
    assert.ok(m.result?.tools?.some((x) => x.name === "echo"), short(m));
  });
  await t.check("an allowed tools/call afterwards still works", async () => {
    s.send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: { message: "still here" } } });
    const m = await s.next((m) => m.id === 3, 10000, "the tools/call response");
    assert.equal(textOf(m.result), "still here", short(m));
  });
  await t.check("a denied tools/call gets the isError result with the same id", async () => {
    s.send({ jsonrpc: "2.0", id: "str-4", method: "tools/call", params: { name: "big", arguments: {} } });
    const m = await s.next((m) => m.id === "str-4", 10000, "the tools/call response");
    assert.equal(m.jsonrpc, "2.0");
    assert.equal(m.result?.isError, true, short(m));
    assert.equal(textOf(m.result), engineMessage(policyFile, "big", {}), short(m));
  });
  await t.check("a denied tools/call with id 0 is answered with id 0", async () => {
    s.send({ jsonrpc: "2.0", id: 0, method: "tools/call", params: { name: "crash", arguments: {} } });
    const m = await s.next((m) => m.id === 0, 10000, "the response to id 0");
    assert.equal(m.result?.isError, true, short(m));
  });
  await t.check("a tools/call without a name: -32602, not forwarded", async () => {
    s.send({ jsonrpc: "2.0", id: 5, method: "tools/call", params: { arguments: {} } });
    const m = await s.next((m) => m.id === 5, 10000, "the response");
    assert.equal(m.error?.code, -32602, short(m));
  });
  await t.check("a batch with tools/calls is split: each call decided on its own", async () => {
    s.sendLine(
      JSON.stringify([
        { jsonrpc: "2.0", id: 10, method: "tools/call", params: { name: "echo", arguments: { message: "in a batch" } } },
        { jsonrpc: "2.0", id: 11, method: "tools/call", params: { name: "big", arguments: {} } },
      ]),
    );
    const a = await s.next((m) => m.id === 10, 10000, "the response to id 10");
    const b = await s.next((m) => m.id === 11, 10000, "the response to id 11");
    assert.equal(textOf(a.result), "in a batch", short(a));
    assert.equal(b.result?.isError, true, short(b));
  });
  await t.check("a line over 64 MiB: -32600 with id null, and the session goes on", async () => {
    const pad = "x".repeat(64 * MiB + 16);
    s.sendLine(`{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"echo","arguments":{"message":"${pad}"}}}`);
    const m = await s.next((m) => m.id === null || m.id === 20, 15000, "the answer to the long line");
    assert.equal(m.id, null, short(m));
    assert.equal(m.error?.code, -32600, short(m));
    s.send({ jsonrpc: "2.0", id: 21, method: "tools/call", params: { name: "echo", arguments: { message: "after the long line" } } });
    const m2 = await s.next((m) => m.id === 21, 10000, "the next call");
    assert.equal(textOf(m2.result), "after the long line", short(m2));
  });
  await t.check("JSON nested deeper than 128: -32600 with id null", async () => {
    s.sendLine("[".repeat(200) + "]".repeat(200));
    const m = await s.next((m) => m.id === null, 10000, "the answer");
    assert.equal(m.error?.code, -32600, short(m));
  });
  await t.check("nothing was forwarded to the server and the proxy wrote only JSON", async () => {
    assert.ok(!s.stderr.includes("raw_server: not JSON on stdin"), `the server saw a malformed line:\n${short(s.stderr, 2000)}`);
    assert.deepEqual(s.nonJson, [], "non-JSON lines on the proxy's stdout");
    assert.deepEqual(s.messages, [], `unexpected messages: ${short(s.messages)}`);
  });
  await t.check("stdin EOF: the proxy exits 0", async () => {
    s.proc.stdin.end();
    const exit = await withTimeout(s.exited, 5000, "proxy exit");
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});

// --- f. a misbehaving server ------------------------------------------------------------------

testCase("f", "misbehaving server: non-JSON output, 10 MiB both ways, exit in the middle of calls", 30000, async (t) => {
  const aux = t.tmpdir("f");
  const policyFile = t.writePolicy(aux, "policy raw;\nallow echo, big, garbage, crash, hang;\n");
  const s = await t.must("handshake", () => sdkSession(t, { policyFile, server: [NODE, RAW_SERVER] }));
  await t.check("garbage: the proper result still arrives", async () => {
    assert.equal(assertAllowed(await call(s, "garbage", {})), "after the garbage");
  });
  if (!DIRECT)
    await t.check("garbage: the proxy passes the line on (the client may read what it cannot) and reports it", () =>
      waitFor(() => s.stderr.includes("passed on a line from the server that toolwarden cannot read as JSON"), 3000, `the report on stderr (stderr: ${short(s.stderr)})`),
    );
  const big = bigText(10 * MiB);
  await t.check("big: a 10 MiB result (escapes, non-ASCII) arrives intact", async () => {
    const text = assertAllowed(await call(s, "big", { size: 10 * MiB }));
    assert.equal(text.length, big.length, "length");
    assert.ok(text === big, "the text differs");
  });
  await t.check("echo: a 10 MiB argument (escapes, non-ASCII) reaches the server intact", async () => {
    const text = assertAllowed(await call(s, "echo", { message: big }));
    assert.equal(text.length, big.length, "length");
    assert.ok(text === big, "the text differs");
  });
  await t.check("500 calls in flight at once, allowed and denied mixed: each gets its own answer", async () => {
    const calls = [];
    for (let i = 0; i < 500; i++) {
      if (i % 5 === 4) calls.push(call(s, "nope", { i }).then((r) => ["denied", i, r]));
      else calls.push(call(s, "echo", { message: `message ${i}` }).then((r) => ["echo", i, r]));
    }
    for (const [kind, i, r] of await withTimeout(Promise.all(calls), 20000, "500 calls")) {
      if (kind === "echo") assert.equal(assertAllowed(r), `message ${i}`);
      else assertDenied(r);
    }
  });
  await t.check("crash: both pending calls fail with -32603 (no hang)", async () => {
    const hang = call(s, "hang", {}).then(
      (r) => ({ ok: r }),
      (e) => ({ err: e }),
    );
    await sleep(200); // let `hang` reach the server first
    const crash = call(s, "crash", {}).then(
      (r) => ({ ok: r }),
      (e) => ({ err: e }),
    );
    const [h, c] = await withTimeout(Promise.all([hang, crash]), 20000, "the pending calls");
    for (const [name, r] of [
      ["crash", c],
      ["hang", h],
    ]) {
      assert.ok(r.err, `${name} resolved: ${short(r.ok)}`);
      // The SDK rejects leftovers with -32000 "Connection closed" when the pipe closes; the proxy
      // must have answered first, with -32603.
      assert.equal(r.err.code, -32603, `${name}: ${r.err.code} ${r.err.message}`);
      assert.match(r.err.message, /exit/i, `${name}: ${r.err.message}`);
    }
  });
  await t.check("crash: the proxy exits with the server's code (3)", async () => {
    const exit = await withTimeout(s.exited, 10000, "proxy exit");
    assert.deepEqual(exit, { code: 3, signal: null });
  });
});

// --- g. exit codes and signals ---------------------------------------------------------------

testCase("g", "exit codes and signals", 40000, async (t) => {
  if (DIRECT) return;
  const aux = t.tmpdir("g");
  const policyFile = t.writePolicy(aux, "policy g;\nallow list_allowed_directories;\n");
  const badPolicy = path.join(aux, "bad.policy");
  fs.writeFileSync(badPolicy, "allow when when;\n");
  const root = t.tmpdir("g-root");

  async function exitOf(args, what) {
    const s = rawSession(t, [TOOLWARDEN, args], { label: what });
    const exit = await withTimeout(s.exited, 10000, `${what}: proxy exit`);
    t.log(what, exit, short(s.stderr, 200));
    return { exit, stderr: s.stderr };
  }
  await t.check("a command that cannot be run: exit 127", async () => {
    const { exit, stderr } = await exitOf(["mcp", "--policy", policyFile, "--", path.join(aux, "no-such-command")], "127");
    assert.deepEqual(exit, { code: 127, signal: null }, `stderr: ${stderr}`);
  });
  await t.check("no command after --: exit 2", async () => {
    const { exit, stderr } = await exitOf(["mcp", "--policy", policyFile, "--"], "usage");
    assert.deepEqual(exit, { code: 2, signal: null }, `stderr: ${stderr}`);
  });
  await t.check("no --policy: exit 2", async () => {
    const { exit, stderr } = await exitOf(["mcp", "--", NODE, RAW_SERVER], "usage");
    assert.deepEqual(exit, { code: 2, signal: null }, `stderr: ${stderr}`);
  });
  await t.check("a policy that does not parse: exit 1", async () => {
    const { exit, stderr } = await exitOf(["mcp", "--policy", badPolicy, "--", NODE, RAW_SERVER], "bad policy");
    assert.deepEqual(exit, { code: 1, signal: null }, `stderr: ${stderr}`);
  });
  await t.check("a policy file that does not exist: exit 1", async () => {
    const { exit, stderr } = await exitOf(["mcp", "--policy", path.join(aux, "missing.policy"), "--", NODE, RAW_SERVER], "missing policy");
    assert.deepEqual(exit, { code: 1, signal: null }, `stderr: ${stderr}`);
  });

  for (const [what, script, code] of [
    ["exits with 5", "process.exit(5)", 5],
    ["is killed by SIGKILL", "process.kill(process.pid, 'SIGKILL')", 137],
  ]) {
    await t.check(`a server that ${what} on the first message: initialize gets -32603, the proxy exits ${code}`, async () => {
      const s = rawSession(t, proxyArgv(policyFile, [NODE, "-e", `process.stdin.once("data", () => { ${script}; })`]), { label: what });
      s.send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw-e2e", version: "1" } } });
      const m = await s.next((m) => m.id === 1, 10000, "the answer to initialize");
      assert.equal(m.error?.code, -32603, short(m));
      const exit = await withTimeout(s.exited, 10000, "proxy exit");
      assert.deepEqual(exit, { code, signal: null });
    });
  }

  await t.check("a server that closes stdout and stays: SIGTERM after --shutdown-grace, -32603, exit 143", async () => {
    const server = [NODE, "-e", `process.stdin.once("data", () => { require("fs").closeSync(1); setInterval(() => {}, 1000); })`];
    const s = rawSession(t, [TOOLWARDEN, ["mcp", "--policy", policyFile, "--shutdown-grace", "300", "--", ...server]], { label: "stdout closed" });
    s.send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw-e2e", version: "1" } } });
    const m = await s.next((m) => m.id === 1, 10000, "the answer to initialize");
    assert.equal(m.error?.code, -32603, short(m));
    const exit = await withTimeout(s.exited, 10000, "proxy exit");
    assert.deepEqual(exit, { code: 143, signal: null });
  });
  await t.check("a client that stops reading: the proxy ends the session, no server is left", async () => {
    const s = rawSession(t, proxyArgv(policyFile, [NODE, RAW_SERVER]), { label: "client gone" });
    await s.handshake();
    const child = await waitChildOf(s.proc.pid, 5000);
    s.proc.stdout.destroy();
    s.send({ jsonrpc: "2.0", id: 2, method: "ping" });
    s.send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: { message: "x" } } });
    await withTimeout(s.exited, 10000, "proxy exit");
    await assertGone(child.pid, "raw_server");
  });

  for (const [sig, n] of [
    ["SIGTERM", 15],
    ["SIGINT", 2],
  ]) {
    const s = rawSession(t, proxyArgv(policyFile, [NODE, FS_SERVER, root]), { label: `proxy (${sig})` });
    const ok = await t.check(`${sig}: handshake with the filesystem server`, () => s.handshake());
    if (!ok) continue;
    const child = await t.check(`${sig}: the server is the proxy's child, in its own process group`, async () => {
      const c = await waitChildOf(s.proc.pid, 5000);
      const me = procStat(s.proc.pid);
      assert.notEqual(c.pgrp, me.pgrp, `server pgrp ${c.pgrp} is the proxy's`);
      return c;
    });
    await t.check(`${sig}: the proxy exits (${128 + n}, or the server's own code)`, async () => {
      s.proc.kill(sig);
      const exit = await withTimeout(s.exited, 10000, "proxy exit");
      t.log(sig, "->", exit);
      const okExit = exit.code === 128 + n || exit.code === 0 || exit.signal === sig;
      assert.ok(okExit, `exit ${JSON.stringify(exit)}`);
    });
    if (child) await t.check(`${sig}: no server process is left`, () => assertGone(child.pid, "the filesystem server"));
  }
});

// --- h. checker diagnostics against the server's tools ----------------------------------------

testCase("h", "diagnostics: tools and arguments the policy names but the server lacks", 20000, async (t) => {
  if (DIRECT) return;
  const aux = t.tmpdir("h");
  const policyFile = t.writePolicy(aux, `policy h;\nallow echo when message == "hi";\nallow big when no_such_argument == 1;\nallow no_such_tool;\n`);
  const s = await t.must("handshake", () => sdkSession(t, { policyFile, server: [NODE, RAW_SERVER] }));
  await t.check("stderr names the unknown tool", () =>
    waitFor(() => s.stderr.includes("unknown tool `no_such_tool`"), 5000, `"unknown tool \`no_such_tool\`" (stderr: ${short(s.stderr)})`),
  );
  await t.check("stderr names the unknown argument", () =>
    waitFor(() => /unknown argument `no_such_argument`/.test(s.stderr), 5000, `"unknown argument \`no_such_argument\`" (stderr: ${short(s.stderr)})`),
  );
  await t.check("known tools and arguments are not reported", async () => {
    assert.ok(!s.stderr.includes("unknown tool `echo`") && !s.stderr.includes("`message`"), short(s.stderr));
  });
  await t.check("the session works after the diagnostics", async () => {
    assert.equal(assertAllowed(await call(s, "echo", { message: "hi" })), "hi");
    assertDenied(await call(s, "echo", { message: "other" }), { exact: engineMessage(policyFile, "echo", { message: "other" }) });
  });
});

// --- i. what the policy decided is what the server gets ----------------------------------------

testCase("i", "duplicate keys: the server runs exactly the call the policy decided", 20000, async (t) => {
  const root = makeFsRoot(t, "i");
  const aux = t.tmpdir("i-aux");
  const policyFile = t.writePolicy(aux, fsPolicy(root));
  const s = rawSession(t, proxyArgv(policyFile, [NODE, FS_SERVER, root]));
  await t.must("handshake", () => s.handshake());
  const ok = JSON.stringify(path.join(root, "writable", "dup.txt"));
  const bad = JSON.stringify(path.join(root, "outside-dup.txt"));
  let id = 100;
  for (const [what, params] of [
    ["two `path` keys, allowed one first", `{"name":"write_file","arguments":{"path":${ok},"content":"dup","path":${bad}}}`],
    ["two `path` keys, allowed one last", `{"name":"write_file","arguments":{"path":${bad},"content":"dup","path":${ok}}}`],
    ["two `name` keys", `{"name":"list_allowed_directories","arguments":{"path":${bad},"content":"dup"},"name":"write_file"}`],
    ["two `arguments` keys", `{"name":"write_file","arguments":{"path":${ok},"content":"dup"},"arguments":{"path":${bad},"content":"dup"}}`],
  ]) {
    const myId = ++id;
    await t.check(`${what}: outside-dup.txt is never written`, async () => {
      s.sendLine(`{"jsonrpc":"2.0","id":${myId},"method":"tools/call","params":${params}}`);
      const m = await s.next((m) => m.id === myId, 10000, "the response");
      t.log(what, "->", short(m, 200));
      assert.ok(!fs.existsSync(path.join(root, "outside-dup.txt")), `outside-dup.txt was written; the proxy answered ${short(m, 300)}`);
    });
  }
});

// --- j. the user query ------------------------------------------------------------------------

testCase("j", "the user query: --query, or notifications/toolwarden/query, feeds `from query`", 20000, async (t) => {
  if (DIRECT) return;
  const aux = t.tmpdir("j");
  const policyFile = t.writePolicy(aux, "policy j;\nallow echo when message from query;\n");
  const hello = { message: "hello world" };
  const other = { message: "something else" };
  await t.check("--query: a call that uses the query is allowed, another is not", async () => {
    const s = rawSession(t, [TOOLWARDEN, ["mcp", "--policy", policyFile, "--query", "please say hello world", "--", NODE, RAW_SERVER]]);
    await s.handshake();
    s.send({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: hello } });
    s.send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: other } });
    const a = await s.next((m) => m.id === 2, 10000, "id 2");
    const b = await s.next((m) => m.id === 3, 10000, "id 3");
    assert.equal(textOf(a.result), "hello world", short(a));
    assert.equal(b.result?.isError, true, short(b));
  });
  await t.check("notifications/toolwarden/query: the same, and the notification is not forwarded", async () => {
    const s = rawSession(t, proxyArgv(policyFile, [NODE, RAW_SERVER]));
    await s.handshake();
    s.send({ jsonrpc: "2.0", method: "notifications/toolwarden/query", params: { query: "please say hello world" } });
    s.send({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: hello } });
    s.send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: other } });
    const a = await s.next((m) => m.id === 2, 10000, "id 2");
    const b = await s.next((m) => m.id === 3, 10000, "id 3");
    assert.equal(textOf(a.result), "hello world", short(a));
    assert.equal(b.result?.isError, true, short(b));
    await waitFor(() => s.stderr.includes("raw_server: notification notifications/initialized"), 3000, "notifications/initialized at the server");
    assert.ok(!s.stderr.includes("raw_server: notification notifications/toolwarden/query"), `the server got the query:\n${s.stderr}`);
  });
  await t.check("without a query, `from query` allows nothing", async () => {
    const s = rawSession(t, proxyArgv(policyFile, [NODE, RAW_SERVER]));
    await s.handshake();
    s.send({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: hello } });
    const a = await s.next((m) => m.id === 2, 10000, "id 2");
    assert.equal(a.result?.isError, true, short(a));
  });
});


// --- k. Streamable HTTP ------------------------------------------------------------------------

// A free TCP port on loopback (closed again before use: a race with other processes, retried by
// the caller's time limit if ever lost).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Starts a process and waits for a line of its stderr or stdout matching `ready`.
async function startProcess(t, label, command, args, env, ready, ms = 15000) {
  const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const s = { label, proc, stderr: "", exit: null };
  s.exited = new Promise((resolve) => {
    proc.once("exit", (code, signal) => {
      s.exit = { code, signal };
      resolve(s.exit);
    });
  });
  proc.stdout.on("data", (d) => {
    s.stderr += d;
  });
  proc.stderr.on("data", (d) => {
    s.stderr += d;
  });
  t.sessions.push(s);
  t.defer(async () => {
    if (s.exit === null) {
      proc.kill("SIGKILL");
      await withTimeout(s.exited, 5000, `${label}: exit after SIGKILL`);
    }
  });
  await waitFor(() => ready.test(s.stderr) || s.exit !== null, ms, `${label} ready`);
  if (s.exit !== null) throw new Error(`${label} exited ${JSON.stringify(s.exit)}:\n${s.stderr}`);
  return s;
}

testCase("k", "Streamable HTTP: --listen/--upstream in front of server-everything", 60000, async (t) => {
  if (DIRECT) return;
  const aux = t.tmpdir("k");
  const policyFile = t.writePolicy(
    aux,
    `policy everything;
allow echo, "get-sum", "trigger-long-running-operation", "trigger-elicitation-request";
forbid "get-sum" when a > 1000 priority 1 fallback ask "Large sums need approval";
forbid "get-sum" when a < 0 priority 1 fallback terminate "Negative sums end the session";
`,
  );
  const log = path.join(aux, "decisions.jsonl");
  const upstreamPort = await freePort();
  await t.must("server-everything listens over Streamable HTTP", () =>
    startProcess(t, "server-everything", NODE, [EVERYTHING_SERVER, "streamableHttp"], { PORT: String(upstreamPort) }, /listening on port/),
  );
  const upstream = `http://127.0.0.1:${upstreamPort}/mcp`;
  const proxy = await t.must("the proxy listens and says where", () =>
    startProcess(t, "proxy", TOOLWARDEN, ["mcp", "--policy", policyFile, "--decision-log", log, "--listen", "127.0.0.1:0", "--upstream", upstream], {}, /listening on http:\/\/127\.0\.0\.1:\d+/),
  );
  const url = `http://127.0.0.1:${/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(proxy.stderr)[1]}/mcp`;

  const elicitations = [];
  const connect = async () => {
    const client = new Client({ name: "toolwarden-mcp-e2e-http", version: "1.0.0" }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      elicitations.push(req.params);
      return { action: "accept", content: { name: "Ada Lovelace", check: true, approve: true } };
    });
    const transport = new StreamableHTTPClientTransport(new URL(url));
    await client.connect(transport, { timeout: 15000 });
    t.defer(() => client.close().catch(() => {}));
    return { client, transport };
  };
  const s = await t.must("an SDK client connects through the proxy", connect);
  const callTool = (name, args, options = {}) => s.client.callTool({ name, arguments: args }, undefined, { timeout: 20000, ...options });

  await t.check("tools/list passes, and the policy is checked against it", async () => {
    const { tools } = await s.client.listTools(undefined, { timeout: 10000 });
    assert.ok(tools.some((x) => x.name === "echo"), "no echo");
    await waitFor(() => /the policy agrees with the server's \d+ tools/.test(proxy.stderr), 5000, "the tools check");
  });
  await t.check("echo is allowed", async () => {
    assert.equal(assertAllowed(await callTool("echo", { message: "over http" })), "Echo: over http");
  });
  await t.check("get-env (not allowed) is answered by the proxy with the engine's message", async () => {
    assertDenied(await callTool("get-env", {}), { exact: engineMessage(policyFile, "get-env", {}) });
  });
  await t.check("ask denies over HTTP, and the client is never asked", async () => {
    const before = elicitations.length;
    assertDenied(await callTool("get-sum", { a: 5000, b: 1 }), { exact: "Large sums need approval" });
    assert.equal(elicitations.length, before);
  });
  await t.check("a 3 MB echo round-trips intact (the SDK server takes at most 4 MB)", async () => {
    const msg = "x".repeat(3 * MiB);
    assert.equal(assertAllowed(await callTool("echo", { message: msg })), `Echo: ${msg}`);
  });
  await t.check("progress notifications arrive as events during the call", async () => {
    const progress = [];
    const r = await callTool("trigger-long-running-operation", { duration: 1, steps: 4 }, { onprogress: (p) => progress.push(p.progress) });
    assert.ok(assertAllowed(r).startsWith("Long running operation completed"), short(r));
    assert.ok(progress.length >= 3, `progress: ${JSON.stringify(progress)}`);
  });
  await t.check("the server's own elicitation/create reaches the client mid-call and the answer gets back", async () => {
    const r = await callTool("trigger-elicitation-request", {});
    assert.ok(elicitations.some((p) => p.message === "Please provide inputs for the following fields:"), JSON.stringify(elicitations));
    assert.ok(assertAllowed(r).includes("- Name: Ada Lovelace"), short(r));
  });
  const post = (body, headers = {}) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  await t.check("a batch is refused with HTTP 400 and a JSON-RPC error", async () => {
    const r = await post([{ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "get-env", arguments: {} } }], { "mcp-session-id": s.transport.sessionId });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, -32600);
  });
  await t.check("an unknown session gets 404", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: "x" } } }, { "mcp-session-id": "no-such-session" });
    assert.equal(r.status, 404);
  });
  await t.check("a request from a foreign Origin gets 403", async () => {
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { "mcp-session-id": s.transport.sessionId, origin: "https://evil.example" });
    assert.equal(r.status, 403);
  });
  await t.check("malformed JSON gets a -32700 error, and nothing is forwarded", async () => {
    const r = await post("{not json", { "mcp-session-id": s.transport.sessionId });
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.error.code, -32700);
    assert.equal(body.id, null);
  });
  await t.check("terminate answers the call and ends the upstream session", async () => {
    const other = await connect();
    const r = await other.client.callTool({ name: "get-sum", arguments: { a: -1, b: 1 } }, undefined, { timeout: 20000 });
    assertDenied(r, { exact: "Negative sums end the session" });
    const again = await post({ jsonrpc: "2.0", id: 9, method: "ping" }, { "mcp-session-id": other.transport.sessionId });
    assert.equal(again.status, 404);
    // The first session is untouched.
    assert.equal(assertAllowed(await callTool("echo", { message: "still here" })), "Echo: still here");
  });
  await t.check("DELETE ends the session", async () => {
    const id = s.transport.sessionId;
    await s.transport.terminateSession();
    const r = await post({ jsonrpc: "2.0", id: 1, method: "ping" }, { "mcp-session-id": id });
    assert.equal(r.status, 404);
  });
  await t.check("the decision log holds every decision, and verifies", async () => {
    const lines = fs.readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const decisions = lines.map((l) => `${l.tool}:${l.decision}`);
    for (const want of ["echo:allow", "get-env:deny", "get-sum:ask", "get-sum:terminate"]) {
      assert.ok(decisions.includes(want), `${want} not in ${decisions.join(" ")}`);
    }
    assert.ok(lines.some((l) => l.session === "mcp-2"), "no second session in the log");
    const v = spawnSync(TOOLWARDEN, ["verify-log", log], { encoding: "utf8" });
    assert.equal(v.status, 0, v.stdout + v.stderr);
  });
  await t.check("SIGTERM stops the proxy with exit 0", async () => {
    proxy.proc.kill("SIGTERM");
    const exit = await withTimeout(proxy.exited, 10000, "proxy exit");
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});


testCase("l", "Streamable HTTP: a stateless upstream that answers plain JSON; sessions stay apart", 40000, async (t) => {
  if (DIRECT) return;
  const aux = t.tmpdir("l");
  const policyFile = t.writePolicy(aux, `policy stateless;\nallow echo;\nforbid echo when count(echo) >= 1 priority 1;\n`);
  const upstreamPort = await freePort();
  await t.must("the upstream listens", () =>
    startProcess(t, "json upstream", "python3", [path.join(HERE, "json_upstream.py"), String(upstreamPort)], {}, /listening on port/),
  );
  const proxy = await t.must("the proxy listens", () =>
    startProcess(t, "proxy", TOOLWARDEN, ["mcp", "--policy", policyFile, "--upstream", `http://127.0.0.1:${upstreamPort}/mcp`], {}, /listening on http:\/\/127\.0\.0\.1:\d+/),
  );
  const url = `http://127.0.0.1:${/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(proxy.stderr)[1]}/mcp`;
  const connect = async () => {
    const client = new Client({ name: "toolwarden-mcp-e2e-json", version: "1.0.0" }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(new URL(url));
    await client.connect(transport, { timeout: 15000 });
    t.defer(() => client.close().catch(() => {}));
    return { client, transport };
  };
  const echo = (s, message) => s.client.callTool({ name: "echo", arguments: { message } }, undefined, { timeout: 20000 });
  const a = await t.must("an SDK client connects (JSON replies carry their content type)", connect);
  await t.check("the proxy gives the client a session id of its own, and keeps it from the upstream", async () => {
    assert.ok(String(a.transport.sessionId).startsWith("toolwarden-"), String(a.transport.sessionId));
    assert.equal(assertAllowed(await echo(a, "one")), "Echo: one");
  });
  await t.check("the policy counts per session: the second echo is denied", async () => {
    assertDenied(await echo(a, "two"), {});
  });
  const b = await t.must("a second client connects", connect);
  await t.check("the second client has its own session, and did not reset the first", async () => {
    assert.notEqual(b.transport.sessionId, a.transport.sessionId);
    assert.equal(assertAllowed(await echo(b, "one")), "Echo: one");
    assertDenied(await echo(a, "three"), {});
  });
  await t.check("a request without a session id that is not initialize gets 400", async () => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: "x" } } }),
    });
    assert.equal(r.status, 400);
  });
  await t.check("a byte order mark does not get a batch past the check", async () => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": b.transport.sessionId },
      body: "\uFEFF" + JSON.stringify([{ jsonrpc: "2.0", id: 7, method: "ping" }]),
    });
    assert.equal(r.status, 400);
  });
  await t.check("DELETE ends the proxy's own session", async () => {
    const id = a.transport.sessionId;
    await a.transport.terminateSession();
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": id },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    assert.equal(r.status, 404);
  });
});

// =============================================================================================

async function main() {
  const t0 = Date.now();
  console.log(`mcp_e2e: toolwarden ${DIRECT ? "(direct: no proxy)" : TOOLWARDEN}; node ${process.version}`);
  let failedCases = [];
  let ran = 0;
  for (const c of CASES) {
    if (OPTS.only && !OPTS.only.has(c.id)) continue;
    ran++;
    const t = new Case(c.id, c.title);
    const start = Date.now();
    console.log(`case ${c.id}: ${c.title}`);
    let timer;
    try {
      await Promise.race([
        c.fn(t),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the case did not finish within ${c.timeoutMs} ms (hang)`)), c.timeoutMs);
        }),
      ]);
    } catch (e) {
      if (!(e instanceof CaseAborted)) {
        t.failures++;
        console.log(`  FAIL ${c.id}: ${e?.message ?? e}`);
      }
    } finally {
      clearTimeout(timer);
    }
    if (t.failures > 0) {
      for (const s of t.sessions) {
        const tail = s.stderr.length > 3000 ? `...${s.stderr.slice(-3000)}` : s.stderr;
        console.log(`      [${c.id}] ${s.label} exit ${JSON.stringify(s.exit)}; stderr:\n        ${tail.trimEnd().replace(/\n/g, "\n        ")}`);
      }
    }
    await t.cleanup();
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    console.log(`${t.failures ? "FAIL" : "ok  "} case ${c.id} (${t.checks - t.failures}/${t.checks} checks, ${secs} s)`);
    if (t.failures) failedCases.push(c.id);
  }
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (failedCases.length) {
    console.log(`mcp_e2e: FAILED: case(s) ${failedCases.join(", ")} of ${ran} (${secs} s)`);
    process.exit(1);
  }
  console.log(`mcp_e2e: all ${ran} cases passed (${secs} s)`);
  process.exit(0);
}

await main();
