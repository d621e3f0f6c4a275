#!/usr/bin/env python3
"""The README's speed table, from one bench/compare.sh run.

    python3 bench/readme_table.py bench/results/<run>                  # markdown on stdout
    python3 bench/readme_table.py bench/results/<run> --splice README.md

Reads <run>/results.txt (and env.txt for the commit, date and settings), and writes the server
CPU per request and the requests/s of every scenario the run has, median [min-max] over the
clean runs (one a round), for each server, and for the big-body rows the machine's CPU per
request (bench/machine_cpu.py's measure). Then it says, from the medians, where a peer does
better than satchel, or that none does. With --splice it replaces what README.md holds between
the lines `<!-- speed-table:begin -->` and `<!-- speed-table:end -->` (both must be there,
once each) and writes the file back; nothing outside the markers changes.

The shared summarize.py (../shared/bench, or SHARED=...) parses the results the same way as
the run's summary.md: clean runs only where a cell has any, else the others, marked.
"""
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BEGIN = "<!-- speed-table:begin -->"
END = "<!-- speed-table:end -->"

# scenario id -> (README label, unit of the CPU row, scale of srv_us_per_req, throughput as GB/s)
ROWS = [
    ("a_1k_c16", "1 KiB, 16 conns", "µs", 1.0, False),
    ("b_1k_c256", "1 KiB, 256 conns", "µs", 1.0, False),
    ("c_64k_c16", "64 KiB, 16 conns", "µs", 1.0, False),
    ("d_1m_c16", "1 MiB, 16 conns", "µs", 1.0, False),
    ("e_256m_c1", "256 MiB file, 1 conn", "ms", 1e-3, True),
    ("f_many4k_c16", "10,000 files × 4 KiB, random", "µs", 1.0, False),
    ("g_1k_close_c16", "1 KiB, new connection each request", "µs", 1.0, False),
]
BIG = ("c_64k_c16", "d_1m_c16", "e_256m_c1")
OURS = "satchel"


def load_summarize():
    shared = os.environ.get("SHARED") or os.path.join(HERE, "..", "..", "shared", "bench")
    sys.path.insert(0, os.path.abspath(shared))
    sys.dont_write_bytecode = True  # leave the shared folder as it is
    import summarize  # noqa: E402 (../shared/bench/summarize.py)

    return summarize


def env_of(run):
    """Commit, date and settings from the run's env.txt (what compare.sh wrote)."""
    env = {"commit": "?", "date": "?", "settings": ""}
    try:
        lines = open(os.path.join(run, "env.txt")).read().splitlines()
    except OSError:
        return env
    for line in lines:
        if re.fullmatch(r"[0-9a-f]{40}", line.strip()):
            env["commit"] = line.strip()[:7]
        elif line.startswith("date: "):
            env["date"] = line[6:16]
        elif line.startswith("DURATION="):
            env["settings"] = line.strip()
    return env


def fmt_cell(vals, fmt, nmax, bold):
    if not vals:
        return "-"
    med = fmt.format(statistics.median(vals))
    med = f"**{med}**" if bold else med
    few = f" (n={len(vals)})" if len(vals) < nmax else ""
    if len(vals) == 1:
        return med + few
    return f"{med} [{fmt.format(min(vals))}–{fmt.format(max(vals))}]{few}"


def render(run):
    summarize = load_summarize()
    res, _rss, notes = summarize.parse([os.path.join(run, "results.txt")])
    servers = [s for s in summarize.SERVER_ORDER if any(k[0] == s for k in res)]
    servers += sorted({k[0] for k in res} - set(servers) - {"iperf3"})
    # The floor is not a server; satchel-1g (BIG_CACHE=1) is satchel in another configuration.
    peers = [s for s in servers if not s.startswith("limit") and
             (s == OURS or not s.startswith(OURS))]
    rows = [r for r in ROWS if any(k[1] == r[0] for k in res)]
    nmax = max((len(v.get("rps", [])) for v in res.values()), default=0)
    dirty = {k for k, ns in notes.items() if any(n.startswith("NO clean") for n in ns)}

    def values(srv, scen, kind, scale, gbps):
        d = res.get((srv, scen), {})
        if kind == "cpu":
            return [v * scale for v in d.get("srv_us_per_req", [])]
        if kind == "rate":
            return [v * 1e-3 for v in d.get("MBps", [])] if gbps else list(d.get("rps", []))
        # kind == "machine": both pinned cores' busy time per request
        return [(a + b) / 100 * 1e6 / r * scale
                for a, b, r in zip(d.get("server_core_busy_pct", []),
                                   d.get("wrk_core_busy_pct", []), d.get("rps", [])) if r]

    def table(kind, lower_is_better, scens):
        head = ["scenario"] + [s + (" (floor)" if s.startswith("limit") else "") for s in servers]
        out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(servers) + "|"]
        verdicts = []
        for scen, label, unit, scale, gbps in scens:
            if kind == "rate":
                fmt, unit_txt = ("{:.2f}", " (GB/s)") if gbps else ("{:,.0f}", "")
            else:
                fmt, unit_txt = "{:.2f}", (" (ms per file)" if unit == "ms" else "")
            cells = {s: values(s, scen, kind, scale, gbps) for s in servers}
            meds = {s: statistics.median(v) for s, v in cells.items() if v and s in peers}
            best = (min if lower_is_better else max)(meds, key=meds.get) if meds else None
            row = [label + unit_txt]
            for s in servers:
                mark = "" if (s, scen) not in dirty else " (not clean)"
                row.append(fmt_cell(cells[s], fmt, nmax, s == best) + mark)
            out.append("| " + " | ".join(row) + " |")
            if OURS in meds:
                better = [s for s in meds if s != OURS and
                          (meds[s] < meds[OURS] if lower_is_better else meds[s] > meds[OURS])]
                for s in sorted(better, key=meds.get, reverse=not lower_is_better):
                    verdicts.append(f"{label}: {s} {fmt.format(meds[s])} against satchel's "
                                    f"{fmt.format(meds[OURS])}")
        return "\n".join(out), verdicts

    env = env_of(run)
    rel = os.path.relpath(os.path.abspath(run), os.path.dirname(HERE))
    lines = [
        BEGIN,
        f"<!-- generated by bench/readme_table.py from {rel}; do not edit by hand -->",
        "",
        f"Measured at `{env['commit']}` on {env['date']} by `bench/compare.sh` "
        f"({env['settings'] or 'settings unknown'}; results and the full summary in `{rel}/`). "
        f"Each cell is the median [min–max] over the clean runs, one a round; `(n=k)` marks a "
        f"cell with fewer, `(not clean)` one where other tenants used the CPU in every run. "
        f"**Bold**: the best of the servers in that row (the floor is not a server).",
        "",
    ]
    if any(s.startswith(OURS + "-") for s in servers):
        lines += [
            "`satchel-1g` is the same binary with `--cache-size 1GiB --max-cached-file 512MiB` "
            "(`BIG_CACHE=1`), so the 256 MiB file is cached (a sealed memfd sent with sendfile) "
            "instead of streamed with pread + send; it is not counted as a peer.",
            "",
        ]
    lines += [
        "Server CPU per request, µs (lower is better; for the 256 MiB file, ms per file):",
        "",
    ]
    cpu, cpu_v = table("cpu", True, rows)
    lines += [cpu, "", "Requests/s (higher is better; for the 256 MiB file, GB/s):", ""]
    rate, rate_v = table("rate", False, rows)
    lines += [rate, ""]
    big = [r for r in rows if r[0] in BIG]
    machine_v = []
    if big:
        lines += ["Machine CPU per request (the server's core and wrk's core together, kernel "
                  "included: what the whole exchange cost; µs, for the 256 MiB file ms):", ""]
        machine, machine_v = table("machine", True, big)
        lines += [machine, ""]
    wins = [("server CPU per request", cpu_v), ("requests/s", rate_v),
            ("machine CPU per request", machine_v)]
    if any(v for _, v in wins):
        lines.append("Where a peer does better than satchel (medians):")
        lines.append("")
        for what, v in wins:
            lines += [f"- {what}, {x}" for x in v]
    else:
        lines.append("No peer does better than satchel on any row (medians).")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def splice(readme, text):
    doc = open(readme).read()
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        sys.exit(f"{readme}: needs one line with {BEGIN} and one with {END} after it")
    start = doc.rfind("\n", 0, doc.index(BEGIN)) + 1
    stop = doc.index("\n", doc.index(END)) + 1 if "\n" in doc[doc.index(END):] else len(doc)
    tmp = readme + ".tmp"
    with open(tmp, "w") as f:
        f.write(doc[:start] + text + doc[stop:])
    os.replace(tmp, readme)


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--splice"):
        sys.exit(__doc__.strip().split("\n\n")[1])
    text = render(args[0])
    if len(args) == 3:
        splice(args[2], text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
