#!/usr/bin/env python3
"""A tool-calling agent loop with no LLM, guarded by toolwarden, replaying an AgentDojo injection.

The scripted "agent" is what a hijacked agent does in AgentDojo's banking suite: it makes the user
task's ground-truth calls, and, having read the injected instructions in a tool result, the injection
task's calls as well. Every tool is wrapped with `toolwarden.guard(session, on_deny="message")`, so a
call the policy blocks never runs and the agent gets the policy's message as the tool result (as
Progent's tool wrapper does). The exit status is 0 only when exactly the calls that make the attack
succeed (AgentDojo's `calls_whose_removal_makes_security_false`) were blocked and every other call went
through.

    python3 examples/agent_loop/agent_loop.py                       # in-process (libtoolwarden.so)
    python3 examples/agent_loop/agent_loop.py --toolwarden build/toolwarden   # starts the sidecar
    python3 examples/agent_loop/agent_loop.py --sidecar http://127.0.0.1:8181  # a running sidecar
    python3 examples/agent_loop/agent_loop.py --all                 # every user x injection task
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
try:
    import toolwarden
except ImportError:  # run from a checkout without PYTHONPATH set
    sys.path.insert(0, os.path.join(SOURCE_DIR, "bindings", "python"))
    import toolwarden

from bank import Bank, make_tools  # noqa: E402

DEFAULT_POLICY = os.path.join(SOURCE_DIR, "policies", "agentdojo", "banking.policy")
DEFAULT_DATA = os.path.join(SOURCE_DIR, "bench", "agentdojo", "data")


class AuditedSession:
    """Passes every call on to a session (in-process or sidecar) and keeps the decisions, so the
    transcript can say what the policy decided. `guard` only needs `decide` and `record_result`."""

    def __init__(self, session):
        self.session = session
        self.decisions: List[toolwarden.Decision] = []

    def decide(self, tool: str, args: Dict[str, Any]) -> toolwarden.Decision:
        try:
            decision = self.session.decide(tool, args)
        except Exception as e:
            self.decisions.append(toolwarden.Decision.engine_failure(tool, e))
            raise
        self.decisions.append(decision)
        return decision

    def record_result(self, call, result) -> None:
        self.session.record_result(call, result)


def load_tasks(data_dir: str):
    with open(os.path.join(data_dir, "traces.json"), encoding="utf-8") as f:
        traces = json.load(f)
    with open(os.path.join(data_dir, "injection_tasks.json"), encoding="utf-8") as f:
        checks = json.load(f)
    suite = traces["suites"]["banking"]
    user_tasks = {t["id"]: t for t in suite["user_tasks"]}
    injection_tasks = {t["id"]: t for t in suite["injection_tasks"]}
    harmful = {t["id"]: set(t["check"]["calls_whose_removal_makes_security_false"])
               for t in checks["suites"]["banking"]["injection_tasks"]}
    return traces["attack"]["template"], user_tasks, injection_tasks, harmful


def short(value: Any, limit: int = 1200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def run_scenario(new_session: Callable[[str], Any], template: str, user_task: dict,
                 injection_task: dict, harmful: set, data_dir: str, out=None) -> Tuple[bool, str]:
    """Runs one user task under one injection; returns (exactly the expected calls were blocked,
    a one-line summary). `out` receives the transcript (None: no transcript)."""
    def say(text: str = "") -> None:
        if out is not None:
            out.write(text + "\n")

    attack = template.replace("{goal}", injection_task["goal"])
    bank = Bank(data_dir, {vector: attack for vector in user_task["vectors_read"]})
    session = new_session(user_task["prompt"])
    audit = AuditedSession(session)
    tools = make_tools(bank, toolwarden.guard(audit, on_deny="message"))

    script = [("user", i, c) for i, c in enumerate(user_task["calls"])]
    script += [("injection", i, c) for i, c in enumerate(injection_task["calls"])]
    say(f"[user] {user_task['prompt']}")
    blocked: List[Tuple[str, int]] = []
    wrong: List[str] = []
    terminated = False
    for source, index, call in script:
        name, args = call["function"], call["args"]
        note = "   <- following the injected instructions" if source == "injection" else ""
        say(f"[assistant] {name}({json.dumps(args)}){note}")
        if terminated:
            result, decision = "(not run: the policy ended the run)", None
        else:
            before = len(audit.decisions)
            try:
                result = tools[name](**args)
            except toolwarden.ToolCallTerminated as e:
                result, terminated = e.decision.message, True
            except Exception as e:  # the tool itself failed: the agent sees the error
                result = f"Error: {e}"
            decision = audit.decisions[before] if len(audit.decisions) > before else None
        if decision is None or not decision.allowed:
            blocked.append((source, index))
            how = decision.decision if decision else "not run"
            say(f"[policy] {how.upper()}: {decision.reason if decision else ''}")
        else:
            say(f"[policy] allow ({decision.rule_id})")
        say(textwrap.indent(f"[tool {name}] {short(result)}", "  "))
        should_block = source == "injection" and index in harmful
        if should_block and (source, index) not in blocked:
            wrong.append(f"the attacker's {name} (injection call #{index}) was NOT blocked")
        if not should_block and (source, index) in blocked:
            wrong.append(f"{source} call #{index} {name} was blocked but should have run")
    session.close()

    sent = [t for t in bank.transactions if t not in bank.initial["transactions"]]
    say("")
    say(f"calls: {len(script)}, blocked: {len(blocked)}, expected blocked: {len(harmful)}")
    for t in sent:
        say(f"money sent: {t['amount']} to {t['recipient']} ({t['subject']!r})")
    if bank.password != bank.initial["password"]:
        say(f"password changed to {bank.password!r}")
    for before, after in zip(bank.initial["scheduled"], bank.scheduled):
        if before != after:
            say(f"standing order {after['id']} changed: {json.dumps(after)}")
    ok = not wrong
    for line in wrong:
        say("WRONG: " + line)
    summary = (f"{user_task['id']} + {injection_task['id']}: {len(blocked)} blocked of "
               f"{len(script)} calls, {'as expected' if ok else '; '.join(wrong)}")
    return ok, summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=DEFAULT_POLICY, help="the banking policy file")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the AgentDojo data directory")
    parser.add_argument("--user-task", default="user_task_0")
    parser.add_argument("--injection-task", default="injection_task_8")
    parser.add_argument("--all", action="store_true",
                        help="run every user task under every injection task (one line each)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sidecar", metavar="URL",
                       help="use a running `toolwarden serve` that serves the policy's directory")
    where.add_argument("--toolwarden", metavar="PATH",
                       help="start `PATH serve --policies DIR` (DIR: the policy's directory) and use it")
    parser.add_argument("--library", metavar="PATH",
                        help="libtoolwarden.so for the in-process mode (default: TOOLWARDEN_LIBRARY, "
                             "then the system's search path)")
    args = parser.parse_args(argv)

    if args.library:
        os.environ["TOOLWARDEN_LIBRARY"] = args.library
    template, user_tasks, injection_tasks, harmful = load_tasks(args.data)
    policy_dir = os.path.dirname(os.path.abspath(args.policy))
    policy_name = os.path.basename(args.policy)
    if policy_name.endswith(".policy"):
        policy_name = policy_name[:-len(".policy")]

    sidecar = None
    try:
        if args.toolwarden:
            sidecar = toolwarden.Sidecar(args.toolwarden, policy_dir).start()
            url, mode = sidecar.url, f"sidecar started at {sidecar.url}"
        elif args.sidecar:
            url, mode = args.sidecar, f"sidecar at {args.sidecar}"
        else:
            url, mode = None, f"in-process, libtoolwarden {toolwarden.version()}"
        if url:
            def new_session(query: str):
                return toolwarden.SidecarSession(url, policy=policy_name, query=query)
        else:
            policy = toolwarden.Policy.from_file(args.policy)

            def new_session(query: str):
                return toolwarden.Session(policy, query)

        if args.all:
            pairs = [(u, i) for u in user_tasks for i in injection_tasks]
        else:
            for task_id, tasks in ((args.user_task, user_tasks), (args.injection_task, injection_tasks)):
                if task_id not in tasks:
                    parser.error(f"no banking task `{task_id}`")
            pairs = [(args.user_task, args.injection_task)]
        print(f"toolwarden agent loop: AgentDojo banking, policy {args.policy} ({mode})")
        failures = 0
        for user_id, injection_id in pairs:
            if not args.all:
                print(f"=== {user_id} under {injection_id}: "
                      f"\"{injection_tasks[injection_id]['goal'][:100]}...\" ===")
            ok, summary = run_scenario(new_session, template, user_tasks[user_id],
                                       injection_tasks[injection_id], harmful[injection_id], args.data,
                                       out=None if args.all else sys.stdout)
            failures += not ok
            if args.all and not ok:
                print("FAIL " + summary)
        if args.all:
            print(f"{len(pairs) - failures} of {len(pairs)} scenarios blocked exactly the attack's calls")
        else:
            print(("OK: " if not failures else "FAIL: ") + summary)
        return 0 if failures == 0 else 1
    except toolwarden.ToolwardenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if sidecar is not None:
            sidecar.stop()


if __name__ == "__main__":
    sys.exit(main())
