#!/usr/bin/env python3
"""Renders bench/compare.sh's JSON lines as one Markdown table: ZooKeeper and zabkeeper side by
side per cell, with the ratios zabkeeper / ZooKeeper (throughput: higher is better; p99, CPU per
request, RSS, start time: lower is better).

Usage: compare_table.py RAW.jsonl [--note TEXT]
"""
import json
import sys

OP_LABEL = {"set": "set 1 KiB", "get": "get 1 KiB", "mixed": "mixed 90/10", "create": "create 1 KiB",
            "multi": "multi 2x set"}


def ratio(zb, zk, digits=2):
    if zb is None or zk is None or zk == 0:
        return "-"
    return f"{zb / zk:.{digits}f}x"


def num(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)


def main():
    args = sys.argv[1:]
    note = None
    if "--note" in args:
        i = args.index("--note")
        note = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    cells, starts, rss_start, rss_end, rss_each = {}, {}, {}, {}, {}
    order = []
    with open(args[0]) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = json.loads(line)
            key = (d["topology"], d["server"])
            if "start_ms" in d:
                starts[key] = d["start_ms"]
                rss_start[key] = d.get("rss_start_mib")
            elif "rss_end_mib" in d:
                rss_end[key] = d["rss_end_mib"]
                rss_each[key] = d.get("rss_end_each", "")
            else:
                r = d["report"]
                cell = (d["topology"], r["op"], r["clients"])
                if cell not in cells:
                    cells[cell] = {}
                    order.append(cell)
                cells[cell][d["server"]] = r

    out = []
    if note:
        out.append(f"Run: {note}")
        out.append("")
    out.append("| topology | op | clients | ops/s ZK | ops/s zabkeeper | **throughput ratio** | p99 µs ZK "
               "| p99 µs zabkeeper | **p99 ratio** | CPU µs/req ZK | CPU µs/req zabkeeper | **CPU ratio** "
               "| errors ZK / zabkeeper |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for cell in order:
        topo, op, clients = cell
        zk = cells[cell].get("zookeeper", {})
        zb = cells[cell].get("zabkeeper", {})

        def g(r, k):
            return None if r.get("failed") else r.get(k)

        out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |".format(
            topo, OP_LABEL.get(op, op), clients,
            num(g(zk, "ops_per_s")), num(g(zb, "ops_per_s")), ratio(g(zb, "ops_per_s"), g(zk, "ops_per_s")),
            num(g(zk, "p99_us")), num(g(zb, "p99_us")), ratio(g(zb, "p99_us"), g(zk, "p99_us")),
            num(g(zk, "server_cpu_us_per_op"), "{:.1f}"), num(g(zb, "server_cpu_us_per_op"), "{:.1f}"),
            ratio(g(zb, "server_cpu_us_per_op"), g(zk, "server_cpu_us_per_op")),
            "failed" if zk.get("failed") else zk.get("errors", "-"),
            "failed" if zb.get("failed") else zb.get("errors", "-")))
    out.append("")
    out.append("| topology | start to serving ms ZK | zabkeeper | **ratio** | RSS after start MiB ZK | zabkeeper "
               "| RSS after the matrix MiB ZK | zabkeeper | **RSS ratio** |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for topo in dict.fromkeys(t for t, _ in list(starts) + list(rss_end)):
        zk, zb = (topo, "zookeeper"), (topo, "zabkeeper")
        out.append("| {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} |".format(
            topo, num(starts.get(zk)), num(starts.get(zb)), ratio(starts.get(zb), starts.get(zk), 3),
            num(rss_start.get(zk)), num(rss_start.get(zb)),
            num(rss_end.get(zk)), rss_each.get(zk, ""), num(rss_end.get(zb)), rss_each.get(zb, ""),
            ratio(rss_end.get(zb), rss_end.get(zk), 3)))
    out.append("")
    out.append("CPU µs/req: server CPU (user+system, summed over every member) during the measured window, "
               "divided by the requests answered in it. RSS: summed over the members (each in parentheses). "
               "Start: launch of the process(es) to every member acknowledging a create.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
