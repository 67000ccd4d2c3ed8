#!/usr/bin/env python3
"""Prints the medians of a decide_bench run as the rows of docs/performance.md.

    build/decide_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
        --benchmark_out=run.json --benchmark_out_format=json
    python3 bench/perf_table.py run.json

Reads Google Benchmark's JSON output and prints, for every benchmark, the median
(over the repetitions) of its CPU time and of its counters, in the units the
table uses. Standard library only.
"""
import json
import sys


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:,.1f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:,.1f} µs"
    return f"{ns:,.0f} ns"


def main():
    with open(sys.argv[1]) as f:
        run = json.load(f)
    ctx = run["context"]
    print(f"date {ctx['date']}, load average {ctx.get('load_avg')}, "
          f"{ctx['num_cpus']} CPUs at {ctx['mhz_per_cpu']} MHz")
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    skip = {"name", "family_index", "per_family_instance_index", "run_name", "run_type",
            "repetitions", "threads", "aggregate_name", "aggregate_unit", "iterations",
            "real_time", "cpu_time", "time_unit", "repetition_index"}
    medians = {}
    for b in run["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        cpu_ns = b["cpu_time"] * scale[b["time_unit"]]
        wall_ns = b["real_time"] * scale[b["time_unit"]]
        counters = {k: v for k, v in b.items() if k not in skip}
        medians[b["run_name"]] = (cpu_ns, wall_ns, counters)
    print("| benchmark | median CPU time | median wall time | counters (medians) |")
    print("|---|---|---|---|")
    for name, (cpu_ns, wall_ns, counters) in medians.items():
        shown = []
        for k, v in counters.items():
            if k.endswith("_ns"):
                shown.append(f"{k} {fmt_ns(v)}")
            elif k == "per_1000_rules":
                shown.append(f"{k} {v * 1e3:,.1f} ms")
            elif k.endswith("_ms"):
                shown.append(f"{k} {v:,.1f}")
            elif k == "bytes_per_second":
                shown.append(f"{k} {v / 1e6:,.0f} MB/s")
            else:
                shown.append(f"{k} {v:,.0f}")
        print(f"| `{name}` | {fmt_ns(cpu_ns)} | {fmt_ns(wall_ns)} | {', '.join(shown)} |")


if __name__ == "__main__":
    main()
