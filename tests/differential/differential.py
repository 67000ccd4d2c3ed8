#!/usr/bin/env python3
"""Differential test: an independent reference evaluator of toolwarden's decision
semantics (docs/language.md sections 3 and 4, core fragment), run against the
C++ engine on seeded random policies and calls, as Cedar tests its engine
against its model.

Usage: differential.py --toolwarden PATH [--cases N] [--seed S] [--keep DIR]

It writes random policies with expected decisions as `toolwarden test` files
(one file per policy, several calls each), runs `toolwarden test` on them and
fails unless every case passes. Standard library only.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile

# ---------------------------------------------------------------------------
# The reference evaluator. Values: None, bool, int/float (numbers), str, list.


class EvalError(Exception):
    pass


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def eq(a, b):
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return False
    if ka == "number":
        return float(a) == float(b)
    if ka == "array":
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b))
    return a == b


def need_bool(v):
    if kind(v) != "boolean":
        raise EvalError("not a boolean")
    return v


def evaluate(e, args):
    tag = e[0]
    if tag == "lit":
        return e[1]
    if tag == "arg":
        return args.get(e[1])  # missing -> null
    if tag == "list":
        return [evaluate(x, args) for x in e[1]]
    if tag == "not":
        return not need_bool(evaluate(e[1], args))
    if tag == "neg":
        v = evaluate(e[1], args)
        if kind(v) != "number":
            raise EvalError("neg")
        return -v
    if tag == "call":
        v = evaluate(e[2], args)
        if e[1] == "type":
            return kind(v)
        if e[1] == "len":
            if kind(v) in ("string", "array"):
                return len(v)
            raise EvalError("len")
        raise AssertionError(e[1])
    if tag == "bin":
        op = e[1]
        if op in ("and", "or"):
            left = need_bool(evaluate(e[2], args))
            if op == "and" and not left:
                return False
            if op == "or" and left:
                return True
            return need_bool(evaluate(e[3], args))
        l, r = evaluate(e[2], args), evaluate(e[3], args)
        if op == "==":
            return eq(l, r)
        if op == "!=":
            return not eq(l, r)
        if op in ("<", "<=", ">", ">="):
            if kind(l) == kind(r) and kind(l) in ("number", "string"):
                return {"<": l < r, "<=": l <= r, ">": l > r, ">=": l >= r}[op]
            raise EvalError("order")
        if op in ("+", "-", "*"):
            if kind(l) != "number" or kind(r) != "number":
                raise EvalError("arith")
            v = {"+": l + r, "-": l - r, "*": l * r}[op]
            if isinstance(v, float) and not math.isfinite(v):
                raise EvalError("overflow")
            return v
        if op in ("in", "not in"):
            if kind(r) != "array":
                raise EvalError("in")
            found = any(eq(l, x) for x in r)
            return found if op == "in" else not found
        if op in ("contains", "startswith", "endswith"):
            if kind(l) != "string" or kind(r) != "string":
                raise EvalError("strop")
            if op == "contains":
                return r in l
            return l.startswith(r) if op == "startswith" else l.endswith(r)
    raise AssertionError(e)


def condition(e, args):
    """'true', 'false' or 'error' for a rule condition (None: no condition)."""
    if e is None:
        return "true"
    try:
        v = evaluate(e, args)
    except EvalError:
        return "error"
    if kind(v) != "boolean":
        return "error"
    return "true" if v else "false"


def decide(rules, tool, args):
    """The combining rule of section 3: returns (outcome, line or None, errored)."""
    candidates = [r for r in rules if tool in r["targets"] or "*" in r["targets"]]
    candidates.sort(key=lambda r: (r["priority"], 0 if r["effect"] == "forbid" else 1, r["line"]))
    errored = False
    for r in candidates:
        c = condition(r["when"], args)
        errored = errored or c == "error"
        fires = c == "true" or (c == "error" and r["effect"] == "forbid")
        if fires:
            return ("allow" if r["effect"] == "allow" else "deny"), r["line"], errored
    return "deny", None, errored


# ---------------------------------------------------------------------------
# Random, statically well-typed expressions (so `lint` accepts them); argument
# values are random, so run-time type errors happen on purpose.

ARGS = ["a", "b", "c"]
STRINGS = ["", "x", "y", "xy", "yx", "é", "xé"]


def text(e):
    tag = e[0]
    if tag == "lit":
        return json.dumps(e[1], ensure_ascii=False)
    if tag == "arg":
        return e[1]
    if tag == "list":
        return "[" + ", ".join(text(x) for x in e[1]) + "]"
    if tag == "not":
        return "not (" + text(e[1]) + ")"
    if tag == "neg":
        return "-(" + text(e[1]) + ")"
    if tag == "call":
        return e[1] + "(" + text(e[2]) + ")"
    return "(" + text(e[2]) + " " + e[1] + " " + text(e[3]) + ")"


class Gen:
    def __init__(self, rng):
        self.r = rng

    def arg(self):
        return ("arg", self.r.choice(ARGS))

    def num(self, d):
        c = self.r.randrange(6 if d > 0 else 2)
        if c == 0:
            return ("lit", self.r.randint(-3, 3))
        if c == 1:
            return self.arg()
        if c == 2:
            return ("bin", self.r.choice(["+", "-", "*"]), self.num(d - 1), self.num(d - 1))
        if c == 3:
            return ("neg", self.num(d - 1))
        if c == 4:
            return ("call", "len", self.r.choice([self.str(d - 1), self.lst(d - 1)]))
        return self.arg()

    def str(self, d):
        c = self.r.randrange(3 if d > 0 else 2)
        if c == 0:
            return ("lit", self.r.choice(STRINGS))
        if c == 1:
            return self.arg()
        return ("call", "type", self.any(d - 1))

    def lst(self, d):
        items = []
        for _ in range(self.r.randint(0, 3)):
            c = self.r.randrange(4)
            items.append(("lit", self.r.randint(-2, 2)) if c == 0 else
                         ("lit", self.r.choice(STRINGS)) if c == 1 else
                         ("lit", self.r.choice([None, True, False])) if c == 2 else self.arg())
        # Every list may hold numbers and strings, so `in` type checks pass statically.
        items.append(("lit", self.r.randint(-2, 2)))
        items.append(("lit", self.r.choice(STRINGS)))
        self.r.shuffle(items)
        return ("list", items) if self.r.randrange(4) else self.arg()

    def any(self, d):
        c = self.r.randrange(4)
        return [self.num, self.str, self.lst, lambda d: self.arg()][c](d)

    def boolean(self, d):
        c = self.r.randrange(9 if d > 0 else 3)
        if c == 0:
            return ("lit", self.r.choice([True, False]))
        if c == 1:
            return self.arg()
        if c == 2:  # == and != with one side an argument, or both of one type
            pair = self.r.choice([(self.arg(), self.any(d - 1)), (self.num(d - 1), self.num(d - 1)),
                                  (self.str(d - 1), self.str(d - 1))])
            return ("bin", self.r.choice(["==", "!="]), pair[0], pair[1])
        if c == 3:
            pair = self.r.choice([(self.num(d - 1), self.num(d - 1)), (self.str(d - 1), self.str(d - 1)),
                                  (self.arg(), self.r.choice([self.num, self.str])(d - 1))])
            return ("bin", self.r.choice(["<", "<=", ">", ">="]), pair[0], pair[1])
        if c == 4:
            left = self.r.choice([self.num, self.str, lambda d: self.arg()])(d - 1)
            return ("bin", self.r.choice(["in", "not in"]), left, self.lst(d - 1))
        if c == 5:
            return ("bin", self.r.choice(["contains", "startswith", "endswith"]), self.str(d - 1),
                    self.str(d - 1))
        if c == 6:
            return ("not", self.boolean(d - 1))
        return ("bin", self.r.choice(["and", "or"]), self.boolean(d - 1), self.boolean(d - 1))

    def value(self):
        c = self.r.randrange(7)
        if c == 0:
            return self.r.randint(-3, 3)
        if c == 1:
            return self.r.choice(STRINGS)
        if c == 2:
            return self.r.choice([True, False, None])
        if c == 3:
            return [self.r.choice([1, 2, "x", None]) for _ in range(self.r.randint(0, 2))]
        if c == 4:
            return self.r.choice([0.5, -1.5, 2.0])
        return self.r.randint(-2, 2)


def make_policy(gen, rng, calls):
    rules, lines = [], ["# differential test policy"]
    for i in range(rng.randint(1, 4)):
        effect = rng.choice(["allow", "forbid"])
        targets = rng.choice([["t"], ["t", "u"], ["*"], ["u"]])
        when = gen.boolean(3) if rng.randrange(5) else None
        priority = rng.randint(0, 2)
        line = len(lines) + 1
        rules.append({"effect": effect, "targets": targets, "when": when, "priority": priority,
                      "line": line})
        src = effect + " " + ", ".join(targets)
        if when is not None:
            src += " when " + text(when)
        src += " priority %d;" % priority
        lines.append(src)
    test_cases = []
    for _ in range(calls):
        tool = rng.choice(["t", "t", "u", "v"])
        args = {name: gen.value() for name in ARGS if rng.randrange(4)}
        outcome, line, errored = decide(rules, tool, args)
        call = {"tool": tool, "args": args, "expect": outcome,
                "rule": None if line is None else "policy_text:%d" % line}
        if errored:
            call["error"] = ""
        test_cases.append({"name": json.dumps({"tool": tool, "args": args}), "calls": [call]})
    return {"policy_text": "\n".join(lines) + "\n", "cases": test_cases}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--toolwarden", required=True)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--keep", help="write the test files here instead of a temporary folder")
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    gen = Gen(rng)
    per_policy = 20
    with tempfile.TemporaryDirectory() as tmp:
        folder = opts.keep or tmp
        os.makedirs(folder, exist_ok=True)
        paths = []
        for i in range((opts.cases + per_policy - 1) // per_policy):
            path = os.path.join(folder, "diff_%05d.json" % i)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(make_policy(gen, rng, per_policy), f, ensure_ascii=False)
            paths.append(path)
        run = subprocess.run([opts.toolwarden, "test"] + paths, capture_output=True, text=True)
        lines = run.stdout.strip().splitlines()
        summary = lines[-1] if lines else ""
        print("seed %d, %d policies" % (opts.seed, len(paths)))
        for line in lines[:20]:
            if line.startswith("FAIL"):
                print(line)
        print(summary)
        expected = "%d passed, 0 failed" % (len(paths) * per_policy)
        if summary != expected:
            print("differential: expected `%s`" % expected, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
