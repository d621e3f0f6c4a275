#!/usr/bin/env python3
"""Summarize the SLOW lines of bench/slow.sh into markdown tables.

    python3 bench/slow_summary.py results.txt > summary.md

Every cell is `median [min-max]` over the rounds. Runs marked clean=0 (other tenants used more
CPU than FOREIGN_MAX during them) are used only where a cell has no clean run, and said so.
"""
import statistics
import sys
from collections import defaultdict


def parse(path):
    runs = []
    for line in open(path):
        parts = line.split()
        if not parts or parts[0] != "SLOW":
            continue
        runs.append(dict(x.split("=", 1) for x in parts[1:] if "=" in x))
    return runs


def num(run, key):
    try:
        return float(run[key])
    except (KeyError, ValueError):
        return None


class Cells:
    """Runs grouped by (server, measure, part), clean ones preferred."""

    def __init__(self, runs):
        self.groups = defaultdict(lambda: {"clean": [], "dirty": []})
        self.notes = defaultdict(set)
        for r in runs:
            key = (r["server"], r["measure"], r["part"])
            self.groups[key]["clean" if r.get("clean") == "1" else "dirty"].append(r)
            if int(r.get("errors", "0")) or int(r.get("non2xx", "0")) or r.get("wrk_failed"):
                self.notes[key].add("socket errors, non-2xx answers or a failed wrk run")
        self.nmax = max((len(g["clean"]) or len(g["dirty"]) for g in self.groups.values()), default=0)

    def runs(self, server, measure, part):
        key = (server, measure, part)
        g = self.groups.get(key)
        if not g:
            return []
        if g["clean"]:
            if g["dirty"]:
                self.notes[key].add(f"{len(g['dirty'])} run(s) with other tenants' load left out")
            return g["clean"]
        if g["dirty"]:
            self.notes[key].add("NO clean run: runs with other tenants' load shown")
        return g["dirty"]

    def values(self, server, measure, part, key):
        return [v for v in (num(r, key) for r in self.runs(server, measure, part)) if v is not None]

    def cell(self, vals, fmt):
        if not vals:
            return "-"
        few = f" (n={len(vals)})" if len(vals) < self.nmax else ""
        if len(vals) == 1:
            return fmt.format(vals[0]) + few
        return (f"{fmt.format(statistics.median(vals))} "
                f"[{fmt.format(min(vals))}–{fmt.format(max(vals))}]{few}")


def ratios(cells, server):
    """p99 under misses / p99 alone, paired by round."""
    alone = {r["round"]: num(r, "p99_ms") for r in cells.runs(server, "hot_alone", "hot")}
    under = {r["round"]: num(r, "p99_ms") for r in cells.runs(server, "hot_under_misses", "hot")}
    return [under[k] / alone[k] for k in sorted(alone.keys() & under.keys()) if alone[k]]


def main():
    runs = parse(sys.argv[1])
    cells = Cells(runs)
    servers = list(dict.fromkeys(r["server"] for r in runs))
    first = runs[0] if runs else {}
    hot_conns = next((r["conns"] for r in runs if r["part"] == "hot"), "?")
    cold_conns = next((r["conns"] for r in runs if r["measure"] == "hot_under_misses"
                       and r["part"] == "cold"), "?")
    clients = sorted({int(r["measure"][len("miss_c"):]) for r in runs
                      if r["measure"].startswith("miss_c")})
    print("## Slow storage (bench/slow.sh)\n")
    print(f"Root served through bench/slowfs: {first.get('delay_ms', '?')} ms before each lookup, "
          f"open and read. Runs of {first.get('duration', '?')}; cells: median [min–max] over "
          f"{cells.nmax} round(s); (n=k) marks fewer.\n")

    print(f"### Hits under misses: the hot 1 KiB file at {hot_conns} connections, alone and "
          f"while {cold_conns} other connections fetch cold files\n")
    print("| server | p50 alone (ms) | p99 alone (ms) | p50 under misses (ms) | p99 under misses (ms)"
          " | p99 under / alone | hot req/s alone | hot req/s under misses | cold files/s meanwhile |")
    print("|---" * 9 + "|")
    for s in servers:
        row = [
            cells.cell(cells.values(s, "hot_alone", "hot", "p50_ms"), "{:.3f}"),
            cells.cell(cells.values(s, "hot_alone", "hot", "p99_ms"), "{:.3f}"),
            cells.cell(cells.values(s, "hot_under_misses", "hot", "p50_ms"), "{:.3f}"),
            cells.cell(cells.values(s, "hot_under_misses", "hot", "p99_ms"), "{:.3f}"),
            cells.cell(ratios(cells, s), "{:.1f}×"),
            cells.cell(cells.values(s, "hot_alone", "hot", "rps"), "{:,.0f}"),
            cells.cell(cells.values(s, "hot_under_misses", "hot", "rps"), "{:,.0f}"),
            cells.cell(cells.values(s, "hot_under_misses", "cold", "rps"), "{:,.0f}"),
        ]
        print(f"| {s} | " + " | ".join(row) + " |")
    print()

    if clients:
        print("### Miss concurrency: cold files per second by concurrent clients\n")
        head = " | ".join(f"{c} client{'s' if c > 1 else ''}" for c in clients)
        print(f"| server | {head} | {clients[-1]} vs {clients[0]} |")
        print("|---" * (len(clients) + 2) + "|")
        for s in servers:
            row = [cells.cell(cells.values(s, f"miss_c{c}", "cold", "rps"), "{:,.0f}")
                   for c in clients]
            lo = {r["round"]: num(r, "rps") for r in cells.runs(s, f"miss_c{clients[0]}", "cold")}
            hi = {r["round"]: num(r, "rps") for r in cells.runs(s, f"miss_c{clients[-1]}", "cold")}
            scale = [hi[k] / lo[k] for k in sorted(lo.keys() & hi.keys()) if lo[k]]
            print(f"| {s} | " + " | ".join(row) + f" | {cells.cell(scale, '{:.1f}×')} |")
        print()
        print("Cold-file latency p50 / p99 (ms):\n")
        print(f"| server | {head} |")
        print("|---" * (len(clients) + 1) + "|")
        for s in servers:
            row = []
            for c in clients:
                p50 = cells.values(s, f"miss_c{c}", "cold", "p50_ms")
                p99 = cells.values(s, f"miss_c{c}", "cold", "p99_ms")
                row.append((f"{statistics.median(p50):.1f} / {statistics.median(p99):.1f}")
                           if p50 and p99 else "-")
            print(f"| {s} | " + " | ".join(row) + " |")
        print()

    print("### Other tenants' CPU during the runs (% of one core, counted as ../shared/bench/run.sh "
          "does: a child reaped during a run brings its whole CPU time, so this can exceed the "
          "machine) and machine busy (% of all cores)\n")
    print("| server | foreign CPU % | machine busy % |\n|---|---|---|")
    for s in servers:
        f = [v for v in (num(r, "foreign_cpu_pct") for r in runs if r["server"] == s) if v is not None]
        b = [v for v in (num(r, "machine_busy_pct") for r in runs if r["server"] == s) if v is not None]
        print(f"| {s} | {cells.cell(f, '{:.0f}')} | {cells.cell(b, '{:.0f}')} |")
    print()
    if cells.notes:
        print("### Notes\n")
        by_note = defaultdict(list)
        for (s, m, p), ns in sorted(cells.notes.items()):
            for n in ns:
                by_note[n].append(f"{s} / {m} / {p}")
        for n, where in sorted(by_note.items()):
            every = len(where) == len(cells.groups)
            print(f"- {n}: " + ("every cell" if every else ", ".join(where)))


if __name__ == "__main__":
    main()
