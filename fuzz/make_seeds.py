#!/usr/bin/env python3
"""Writes a seed corpus for each fuzz target (docs/fuzzing.md) from the repository's own test data.

    python3 fuzz/make_seeds.py --source . --out build/fuzz-seeds

makes OUT/TARGET/ for every target in fuzz/, each file one input in that target's layout (see the
header comment of fuzz/TARGET.cc). The seeds come from the conformance corpus (tests/conformance/*.json:
`policy_text`, the files it names, the calls' tools and arguments), the shipped policies and their test
files, the golden files, the Progent policies and the AgentDojo traces (bench/agentdojo/data). Output is
deterministic; files are named by the SHA-1 of their content. Generated at test time into the build
tree, never committed (fuzz/regressions/ holds the inputs that matter).
"""

import argparse
import glob
import hashlib
import json
import os
import shutil

# decide_fuzz's policies, in its order (byte 0 picks one), and their tools files.
DECIDE_POLICIES = [
    ("policies/agentdojo/banking.policy", "bench/agentdojo/data/banking.tools.json"),
    ("policies/agentdojo/slack.policy", "bench/agentdojo/data/slack.tools.json"),
    ("policies/agentdojo/travel.policy", "bench/agentdojo/data/travel.tools.json"),
    ("policies/agentdojo/workspace.policy", "bench/agentdojo/data/workspace.tools.json"),
    ("policies/examples/banking.policy", "policies/examples/banking.tools.json"),
    ("policies/examples/workspace.policy", "policies/examples/workspace.tools.json"),
    ("policies/mcp/everything.policy", "policies/mcp/everything.tools.json"),
    ("policies/mcp/filesystem.policy", "policies/mcp/filesystem.tools.json"),
]
SUITE_POLICY = {"banking": 0, "slack": 1, "travel": 2, "workspace": 3}
# Most seeds per target, so that replaying them stays quick under the sanitizers.
MAX_SEEDS = 400


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tool_names(path):
    """The tool names of a tools file, sorted as decide_fuzz sorts them (std::map order)."""
    doc = json.loads(read(path))
    if isinstance(doc, dict) and "result" in doc:
        doc = doc["result"]
    if isinstance(doc, dict) and isinstance(doc.get("tools"), list):
        names = [t["name"] for t in doc["tools"]]
    elif isinstance(doc, list):
        names = [t["function"]["name"] if "function" in t else t["name"] for t in doc]
    else:
        names = list(doc)
    return sorted(set(names), key=lambda n: n.encode())


def dump(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def conformance(source):
    """(policy text or None, [cases: [(tool, args)]]) per conformance file."""
    out = []
    for path in sorted(glob.glob(os.path.join(source, "tests/conformance/*.json"))):
        doc = json.loads(read(path))
        text = doc.get("policy_text")
        if text is None and "policy" in doc:
            policy_path = os.path.join(os.path.dirname(path), doc["policy"])
            if os.path.exists(policy_path):
                text = read(policy_path).decode("utf-8", "replace")
        cases = []
        for case in doc.get("cases", []):
            calls = [(c["tool"], c.get("args", {})) for c in case.get("calls", [])]
            if calls:
                cases.append(calls)
        out.append((text, cases))
    return out


def traces(source):
    """AgentDojo tasks' calls: (suite, [(tool, args)])."""
    path = os.path.join(source, "bench/agentdojo/data/traces.json")
    if not os.path.exists(path):
        return []
    found = []

    def walk(suite, x):
        if isinstance(x, dict):
            calls = x.get("calls")
            if isinstance(calls, list) and calls and all(isinstance(c, dict) and "function" in c
                                                         for c in calls):
                found.append((suite, [(c["function"], c.get("args", {})) for c in calls]))
            for v in x.values():
                walk(suite, v)
        elif isinstance(x, list):
            for v in x:
                walk(suite, v)

    for suite, value in json.loads(read(path)).get("suites", {}).items():
        walk(suite, value)
    return found


def policy_files(source):
    patterns = ["policies/*/*.policy", "tests/conformance/data/*.policy", "tests/golden/*.policy"]
    files = []
    for pattern in patterns:
        files += sorted(glob.glob(os.path.join(source, pattern)))
    return [read(f) for f in files]


def policy_seeds(source, conf):
    seeds = policy_files(source)
    seeds += [text.encode() for text, _ in conf if text]
    return seeds


def progent_seeds(source):
    seeds = [read(f) for f in sorted(glob.glob(os.path.join(source, "policies/agentdojo/progent/*.json")))]
    # The JSON examples of the import's documentation.
    doc = read(os.path.join(source, "docs/progent-import.md")).decode()
    for block in doc.split("```json")[1:]:
        seeds.append(block.split("```")[0].encode())
    # Each tool of the Progent policies on its own, so small inputs cover every shape.
    for seed in list(seeds):
        try:
            policy = json.loads(seed)
        except ValueError:
            continue
        if isinstance(policy, dict):
            for tool, entries in policy.items():
                seeds.append(dump({tool: entries}).encode())
    return seeds


def decide_seeds(source, conf):
    names = [tool_names(os.path.join(source, tools)) for _, tools in DECIDE_POLICIES]

    def seed(policy, calls):
        out = bytes([policy])
        for tool, args in calls[:16]:
            tools = names[policy]
            index = tools.index(tool) if tool in tools else len(tools)  # len: the unknown name
            out += bytes([index % 256]) + dump(args).encode() + b"\n"
        return out

    seeds = [seed(SUITE_POLICY[suite], calls) for suite, calls in traces(source) if suite in SUITE_POLICY]
    for test in sorted(glob.glob(os.path.join(source, "policies/mcp/*.test.json"))):
        doc = json.loads(read(test))
        policy = [p for p, _ in DECIDE_POLICIES].index("policies/mcp/" + doc["policy"])
        for case in doc.get("cases", []):
            seeds.append(seed(policy, [(c["tool"], c.get("args", {})) for c in case.get("calls", [])]))
    # Conformance arguments, on the shipped policies' tools in turn.
    i = 0
    for _, cases in conf:
        for calls in cases:
            policy = i % len(DECIDE_POLICIES)
            tools = names[policy]
            out = bytes([policy])
            for j, (_, args) in enumerate(calls[:16]):
                out += bytes([(i + j) % (len(tools) + 1)]) + dump(args).encode() + b"\n"
            seeds.append(out)
            i += 1
    return seeds


def sidecar_seeds(conf):
    seeds = [b"GET\n/healthz\n", b"GET\n/metrics\n", b"GET\n/v1/sessions/@\n",
             b"DELETE\n/v1/sessions/@\n",
             b'POST\n/v1/sessions/@/rules\n{"source": "forbid send_money when amount > 10;"}',
             b'POST\n/v1/sessions/@/results\n{"call": 0, "result": {"iban": "UK12345678901234567890"}}',
             b'POST\n/v1/sessions/@/trusted\n{"value": "UK12345678901234567890"}',
             b'POST\n/v1/sessions/@/update\n{"approve": true}',
             b'POST\n/v1/sessions\n{"policy": "banking", "draft": true}']
    for text, cases in conf:
        if text:
            seeds.append(b"POST\n/v1/sessions\n" + dump({"source": text, "query": "q"}).encode())
            seeds.append(b"POST\n/v1/sessions/@/rules\n" + dump({"source": text, "mode": "any"}).encode())
        for calls in cases:
            tool, args = calls[0]
            body = dump({"tool": tool, "args": args}).encode()
            seeds.append(b"POST\n/v1/sessions/@/decide\n" + body)
            seeds.append(b"POST\n/v1/decide\n" + dump({"policy": "banking", "tool": tool, "args": args}).encode())
    return seeds


def mcp_seeds(conf):
    init = dump({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
                            "clientInfo": {"name": "t", "version": "1"}}})
    ready = dump({"jsonrpc": "2.0", "id": 0, "result": {
        "protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": True}},
        "serverInfo": {"name": "s", "version": "1"}}})
    tools = dump({"jsonrpc": "2.0", "id": "tw-1", "result": {"tools": [
        {"name": "read_file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}}]}})
    handshake = ["c" + init, "s" + ready, "c" + dump({"jsonrpc": "2.0", "method": "notifications/initialized"}), "s" + tools]

    def call(i, tool, args):
        return "c" + dump({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                           "params": {"name": tool, "arguments": args}})

    def lines(policy, body):
        return bytes([policy]) + "\n".join(handshake + body).encode()

    seeds = [
        lines(0, [call(1, "read_file", {"path": "/data/a"}),
                  "s" + dump({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})]),
        lines(0, [call(1, "write_file", {"path": "/data/secret"}),
                  "c" + dump({"jsonrpc": "2.0", "id": "@ASK@", "result": {"action": "accept", "content": {"approve": True}}})]),
        lines(0, [call(1, "move_file", {}), call(2, "read_file", {"path": "/data/a"})]),
        lines(0, [call(1, "get_contact", {}),
                  "s" + dump({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "bob"}]}}),
                  call(2, "send_message", {"to": "bob"})]),
        lines(0, ["c" + dump({"jsonrpc": "2.0", "method": "notifications/toolwarden/query", "params": {"query": "hi"}}),
                  call(1, "note", {"text": "hi"}), "u", "x"]),
        lines(0, ["c" + dump([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                              {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "open"}}]),
                  "s" + dump({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}), "l"]),
    ]
    i = 0
    for _, cases in conf:
        for calls in cases:
            seeds.append(lines(i % 3, [call(j + 1, tool, args) for j, (tool, args) in enumerate(calls[:8])]))
            i += 1
    return seeds


def llm_seeds(conf):
    texts = [text for text, _ in conf if text][:40] + ['{"rules": []}']
    seeds = []
    for text in texts:
        openai = {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
        anthropic = {"content": [{"type": "tool_use", "name": "answer", "input": {"policy": text}}],
                     "stop_reason": "tool_use"}
        ollama = {"message": {"role": "assistant", "content": text}, "done": True, "done_reason": "stop"}
        seeds.append(b"\x00\x00\xc8" + dump(openai).encode())
        seeds.append(b"\x01\x00\xc8" + dump(openai).encode())
        seeds.append(b"\x02\x00\xc8" + dump(anthropic).encode())
        seeds.append(b"\x03\x00\xc8" + dump(ollama).encode())
    errors = [
        (0, 400, {"error": {"message": "max_tokens too large", "type": "invalid_request_error"}}),
        (2, 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        (3, 404, {"error": "model not found"}),
        (1, 503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}),
        (0, 200, {"choices": [{"message": {"role": "assistant", "content": None, "refusal": "no"},
                               "finish_reason": "content_filter"}]}),
    ]
    for protocol, status, body in errors:
        seeds.append(bytes([protocol, status >> 8, status & 255]) + dump(body).encode())
    return seeds


def write(out_dir, seeds, limit):
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    unique = {}
    for seed in seeds:
        unique[hashlib.sha1(seed).hexdigest()] = seed
    names = sorted(unique)
    if len(names) > limit:  # a deterministic spread over all of them
        step = len(names) / limit
        names = [names[int(i * step)] for i in range(limit)]
    for name in names:
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(unique[name])
    return len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--out", required=True)
    parser.add_argument("--all", action="store_true", help=f"keep every seed (default: at most {MAX_SEEDS})")
    args = parser.parse_args()
    conf = conformance(args.source)
    corpora = {
        "policy_fuzz": policy_seeds(args.source, conf),
        "progent_import_fuzz": progent_seeds(args.source),
        "decide_fuzz": decide_seeds(args.source, conf),
        "sidecar_fuzz": sidecar_seeds(conf),
        "mcp_proxy_fuzz": mcp_seeds(conf),
        "llm_reply_fuzz": llm_seeds(conf),
    }
    for target, seeds in corpora.items():
        n = write(os.path.join(args.out, target), seeds, len(seeds) if args.all else MAX_SEEDS)
        print(f"{target}: {n} seeds")


if __name__ == "__main__":
    main()
