#!/usr/bin/env python3
"""Whole-machine CPU per request for the big-body rows of bench/compare.sh's results.

    python3 bench/machine_cpu.py SHARED_BENCH_DIR CPUS results.txt >> summary.md

run.sh measures each run's busy time of the server's core and of wrk's core from /proc/stat
deltas over the run (all processes, kernel and softirq included). Their sum per request is what
the machine paid for it: the server, wrk receiving the bytes, and the kernel on both sides. A
change that only moves a copy from the server to the receiver lowers the server's CPU per
request (summarize.py's table) but not this one. On a machine with more than the two pinned
CPUs this is the two benchmark cores only, and the table says so.
"""
import statistics
import sys

ROWS = [("c_64k_c16", "µs"), ("d_1m_c16", "µs"), ("e_256m_c1", "ms per file")]


def main():
    shared, cpus, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    sys.path.insert(0, shared)
    sys.dont_write_bytecode = True  # leave the shared folder as it is
    import summarize  # ../shared/bench/summarize.py: clean runs preferred, median [min-max] cells

    res, _rss, _notes = summarize.parse(paths)
    rows = [(s, unit) for s, unit in ROWS if any(k[1] == s for k in res)]
    if not rows:
        return
    servers = [s for s in summarize.SERVER_ORDER if any(k[0] == s for k in res)]
    servers += sorted({k[0] for k in res} - set(servers) - {"iperf3"})
    summarize.NMAX = max((len(v.get("rps", [])) for v in res.values()), default=0)

    def per_run(d, scale):
        """(machine, outside the server) CPU per request of each run, in the row's unit."""
        out = []
        for busy0, busy1, rps, srv in zip(d.get("server_core_busy_pct", []),
                                          d.get("wrk_core_busy_pct", []),
                                          d.get("rps", []), d.get("srv_us_per_req", [])):
            if rps:
                machine = (busy0 + busy1) / 100 * 1e6 / rps
                out.append((machine * scale, (machine - srv) * scale))
        return out

    scope = "the whole machine" if cpus == 2 else f"the two benchmark cores of {cpus} CPUs"
    print(f"### Machine CPU per request ({scope}: server core + wrk core busy time)\n")
    print("Server, wrk and kernel on both cores, from /proc/stat deltas over each run; "
          "then the part outside the server's processes (wrk receiving, softirq). Lower is "
          "better; a copy moved from the server to the receiver shows here.\n")
    print("| scenario | " + " | ".join(servers) + " |")
    print("|---" * (len(servers) + 1) + "|")
    for part, title in ((0, "machine"), (1, "outside the server")):
        for scen, unit in rows:
            scale = 1e-3 if unit.startswith("ms") else 1.0
            cells = []
            for srv in servers:
                vals = [r[part] for r in per_run(res.get((srv, scen), {}), scale)]
                cells.append(summarize.cell(vals, "{:.2f}") if vals else "-")
            print(f"| {scen}, {title} ({unit}) | " + " | ".join(cells) + " |")
    print()
    medians = {}
    for srv in (s for s in servers if not s.startswith("limit")):
        runs = per_run(res.get((srv, "d_1m_c16"), {}), 1.0)
        if runs:
            medians[srv] = statistics.median(r[0] for r in runs)
    if medians:
        best = min(medians, key=medians.get)
        print(f"Lowest machine CPU per 1 MiB request among the servers: {best} ({medians[best]:.1f} µs).\n")


if __name__ == "__main__":
    main()
