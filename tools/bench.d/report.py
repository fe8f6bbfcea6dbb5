"""The tables and target verdicts tools/bench prints from the rows."""
import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


from common import *  # noqa: F401,F403
from honesty import *  # noqa: F401,F403

# Every suite's --json rows begin with these keys, in this order (afxdp.py's too); a suite
# adds its own after them. mpps: forwarded (port 1 tx); rx_mpps: received (port 0 rx);
# valid/invalid_reasons: honesty.py's rules over every round; rounds: each round's figures;
# targets: each target read from this row, with its verdict in every round.
ROW_KEYS = ("case", "app", "flows", "frame_bytes", "mpps", "ratio_vs_l3fwd", "cycles_per_packet",
            "ratio_vs_l3fwd_cycles", "forwarded", "cpu", "notes", "rx_mpps", "cycles_above_testpmd", "valid",
            "invalid_reasons", "ratio_valid", "rounds", "targets")

def fmt(value, spec, empty="-"):
    return empty if value is None else format(value, spec)


def write_json(path, out):
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    log(f"wrote {path}")


def report_failures(failures):
    """The harness's failures (an app that did not start, a window without packets) on
    stderr; the exit status: 1 when there were any. Invalid rows and missed targets are
    not failures of the harness."""
    if not failures:
        return 0
    log(f"{len(failures)} harness failure(s):")
    for f in failures:
        print(f"  {f}", file=sys.stderr)
    return 1


def print_invalid(rows):
    """Every row that cannot count, and why (each round's reasons)."""
    bad = [r for r in rows if r.get("valid") is False]
    if not bad:
        print(f"\nEvery row is valid: forwarded >= {MIN_FORWARDED:.0%} and dropped nothing in every round.")
        return
    print(f"\nINVALID rows ({len(bad)} of {len(rows)}): no target can be met on them.")
    for r in bad:
        print(f"  {r['case']}, {r['app']}: {'; '.join(r.get('invalid_reasons') or ['no reason recorded'])}")


def times(value):
    return fmt(value, ".2f", "-") + ("x" if value is not None else "")


def above_io(r, rows):
    """' above testpmd io: 120 cyc/pkt, l3fwd 40' for a target line ('' without testpmd)."""
    if r.get("cycles_above_testpmd") is None:
        return ""
    base = next((b for b in rows if b["app"] == "l3fwd" and b["case"] == r["case"]), None)
    theirs = f", l3fwd {base['cycles_above_testpmd']:.0f}" if base and base.get("cycles_above_testpmd") is not None \
        else ""
    return f"; above testpmd io {r['cycles_above_testpmd']:.0f} cyc/pkt{theirs}"


def ratio_target(r, rows, name, threshold, peer="l3fwd-lpm"):
    """A target on the ratio to l3fwd (or to OVS: peer), judged in every round."""
    key, valid_key = ("ratio_vs_l3fwd", "ratio_valid") if peer == "l3fwd-lpm" else ("ratio_vs_ovs", "ovs_ratio_valid")
    values, verdicts, overall = target(r, name, key, threshold, valid_key)
    cycles = r.get("ratio_vs_l3fwd_cycles") if peer == "l3fwd-lpm" else r.get("ratio_vs_ovs_cycles")
    print(f"  {r['case']}, {r['app']}: {times(r.get(key))} {peer} (median), {times(cycles)} by cycles"
          f"{above_io(r, rows) if peer == 'l3fwd-lpm' else ''} (target >= {threshold}x): "
          f"{verdict_text(values, verdicts, overall, '.2f', 'x')}")


def rate_target(r, name, threshold, what):
    """A target on new flows (sessions, connections) a second, judged in every round."""
    values, verdicts, overall = target(r, name, "new_flows_per_s", threshold)
    per_cpu = r.get("new_flows_per_cpu_s") or 0
    print(f"  {r['case']}, {r['app']}: {r['new_flows_per_s'] / 1e6:.2f}M {what}/s per core (median), "
          f"{per_cpu / 1e6:.2f}M per CPU second (target >= {threshold / 1e6:g}M): "
          f"{verdict_text(values, verdicts, overall, '.2f', 'M', 1e-6)}"
          + ("" if overall == MET or per_cpu < threshold else " (the median met it per CPU second: the core was shared)"))


def print_router_targets(rows):
    """The router issue's target: Sluice >= 1.0x l3fwd-lpm, in every case and every round."""
    sluice = [r for r in rows if r["app"] == "sluice" and r.get("mpps")]
    if not sluice:
        return
    print("\nTargets (router issue):")
    for r in sluice:
        ratio_target(r, rows, "sluice >= 1.0x l3fwd-lpm Mpps", 1.0)


def print_table(rows, hz, hz_source, pmu, suite="router"):
    with_ovs = any(r["app"] in OVS_APPS for r in rows)
    head = ("case", "app", "Mpps", "cyc/pkt", "above io", "vs l3fwd", "by cycles") + \
        (("vs OVS",) if with_ovs else ()) + ("fwd", "cpu", "valid", "notes")

    lines = [head]
    for r in rows:
        lines.append((r["case"], r["app"], fmt(r.get("mpps"), ".2f"), fmt(r.get("cycles_per_packet"), ".0f"),
                      fmt(r.get("cycles_above_testpmd"), ".0f"),
                      times(r.get("ratio_vs_l3fwd")), times(r.get("ratio_vs_l3fwd_cycles")))
                     + ((times(r.get("ratio_vs_ovs")),) if with_ovs else ())
                     + (fmt(r.get("forwarded"), ".3f"), fmt(r.get("cpu"), ".0%"),
                        "ok" if r.get("valid") else "INVALID", r.get("notes", "")))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head) - 1)]
    out = []
    for n, l in enumerate(lines):
        cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(l, widths))]
        out.append("  ".join(cells + [str(l[-1])]).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "  -----")
    print("\n".join(out))
    why = ("perf stat cannot count cycles here (no PMU in this VM)" if not pmu else
           "the same method on every machine, though perf stat could count cycles here")
    print("\nMpps: packets forwarded (port 1 tx delta) / wall time; each row is the median round of "
          "its app, the spread in the notes.\n"
          f"cyc/pkt: worker thread CPU time x TSC {hz / 1e6:.0f} MHz ({hz_source}) / packets forwarded; {why}.\n"
          "above io: cyc/pkt - testpmd io's in the same case (the harness's own cost, the replay's copy and the "
          "null PMD's free,\nwhich every app pays: at 1M flows it dominates and squeezes every ratio toward 1).\n"
          "Sluice's own busy cycles per packet (lcores[] in /stats) are in the notes: TSC cycles of busy polls, "
          "which count time the thread was preempted.\nvs l3fwd: Mpps / l3fwd's Mpps in the same case (the target: " +
          {"conntrack": "sluice-ct >= 0.5x with 1M flows). ", "nat": "sluice-nat >= 0.45x with 1M flows). ",
           "lb": "sluice-lb >= 0.4x with 1M flows). "}
          .get(suite, "Sluice >= 1.0x). ") +
          "by cycles: l3fwd's cyc/pkt / this app's,\nthe same ratio without the time other tenants took from the core. "
          f"fwd: port 1 tx / port 0 rx. cpu: worker thread CPU time / wall time. valid: forwarded >= "
          f"{MIN_FORWARDED:.0%} and no drop\ncounter grew (rx_nombuf, imissed, errors, sent back out, the app's "
          "drops) in every round; an INVALID row meets no target." +
          ("\nvs OVS: Mpps / Open vSwitch's in the same case (sluice-ct, sluice-fw: ovs-ct; sluice-nat: ovs-nat; "
           "target >= 5x).\nOVS's cyc/pkt and cpu are its PMD thread's." if with_ovs else ""))


def print_conntrack(rows):
    """The flow counters of the conntrack rows, and the issue's targets read from them."""
    ct = [r for r in rows if r["app"] in CT_APPS and r.get("mpps")]
    if not ct:
        return
    head = ("case", "app", "Mpps", "per CPU-s", "new Mflows/s", "per CPU-s", "created/pkt", "evicted/pkt",
            "established/pkt", "active/capacity", "B/flow", "expected", "entry B", "B/active flow")
    lines = [head]
    for r in ct:
        per_cpu = r["new_flows_per_cpu_s"] / 1e6 if r.get("new_flows_per_cpu_s") is not None else None
        lines.append((r["case"], r["app"], fmt(r["mpps"], ".2f"), fmt(r.get("mpps_per_cpu_s"), ".2f"),
                      fmt(r["new_flows_per_s"] / 1e6, ".2f"), fmt(per_cpu, ".2f"),
                      fmt(r["created_per_packet"], ".3f"), fmt(r["evicted_per_packet"], ".3f"),
                      fmt(r["ct_established_per_packet"], ".3f"), f"{r['flows_active']}/{r['capacity']}",
                      fmt(r["bytes_per_flow"], ".1f"), fmt(r["expected_bytes_per_flow"], ".1f"),
                      str(r["entry_bytes_ipv4"]), fmt(r["bytes_per_active_flow"], ".1f")))
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(head))]
    print("\nConntrack (flows in Sluice's /stats, deltas over the same window):")
    for n, l in enumerate(lines):
        cells = (str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(l, widths)))
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print("per CPU-s: the same per second of the worker thread's CPU time (what an unshared core would do). "
          "new Mflows/s:\nflows.created delta / wall time. created, evicted: flows.* deltas / port 0 rx delta; "
          "established: the conntrack\nstage's established counter / rx. B/flow: flows.memory_bytes / flows.max "
          "(expected: (capacity x 64 + buckets x 64) / capacity);\nentry B: flows.entry_bytes.ipv4; B/active flow: "
          "memory_bytes / flows.active.")

    print("\nTargets (issue 4):")
    big = [r for r in ct if r.get("workload") == "established" and r["flows"] >= 1 << 20]
    for r in big:
        if r.get("ratio_vs_l3fwd") is not None:
            ratio_target(r, rows, "1M flows >= 0.5x l3fwd-lpm Mpps", 0.5)
    for r in (r for r in ct if r.get("workload") == "new"):
        rate_target(r, ">= 5M new flows/s", 5e6, "new flows")
    entry = max(r["entry_bytes_ipv4"] for r in ct)
    table = max(r["bytes_per_flow"] for r in ct)
    print(f"  IPv4 flow entry: {entry} B (target <= 64 B, the layout: the same in every round): "
          f"{verdict(entry <= 64)}; with the bucket index, "
          f"{table:.0f} B per flow of capacity")


def print_rows(title, lines, left_last=False):
    """A table: the first line is the heading; the first two columns left-aligned (and the
    last, with left_last: notes)."""
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(lines[0]))]
    print(f"\n{title}")
    last = len(widths) - 1
    for n, l in enumerate(lines):
        cells = (str(c).ljust(w) if i < 2 or (left_last and i == last) else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(l, widths)))
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def verdict(ok):
    return "met" if ok else "MISSED"


def nat_heap_per_flow(rows):
    """The heap beyond the flow table that one more flow of nat.capacity costs: the growth
    of other_heap_bytes between two NAT rows on the same pcap (the default run's 1M
    established flows, capacity 2M, and its 1M-flow new-sessions case, capacity 64K) over
    the growth of the capacity. Fixed allocations and the pcap's own (net_pcap's ring)
    cancel out."""
    have = [r for r in rows if r["app"] in NAT_APPS and r.get("other_heap_bytes") is not None]
    for r in have:
        smaller = [b for b in have if b["flows"] == r["flows"] and b["capacity"] < r["capacity"]]
        if smaller:
            base = min(smaller, key=lambda b: b["capacity"])
            r["other_heap_bytes_per_nat_flow"] = ((r["other_heap_bytes"] - base["other_heap_bytes"]) /
                                                  (r["capacity"] - base["capacity"]))


def print_nat(rows):
    """The NAT rows' counters, and the NAT issue's targets read from them."""
    nat = [r for r in rows if r["app"] in NAT_APPS and r.get("mpps")]
    if not nat:
        return
    lines = [("case", "app", "Mpps", "per CPU-s", "new Msess/s", "per CPU-s", "mapped/pkt", "removed/pkt",
              "translated/pkt", "active/capacity", "B/flow", "expected", "pair B", "table B/NAT flow",
              "other heap B/NAT flow")]
    for r in nat:
        per_cpu = r["new_flows_per_cpu_s"] / 1e6 if r.get("new_flows_per_cpu_s") is not None else None
        lines.append((r["case"], r["app"], fmt(r["mpps"], ".2f"), fmt(r.get("mpps_per_cpu_s"), ".2f"),
                      fmt(r["new_flows_per_s"] / 1e6, ".2f"), fmt(per_cpu, ".2f"),
                      fmt(r["created_per_packet"], ".3f"), fmt(r["evicted_per_packet"], ".3f"),
                      fmt(r["translated_per_packet"], ".3f"), f"{r['flows_active']}/{r['capacity']}",
                      fmt(r["bytes_per_flow"], ".1f"), fmt(r["expected_bytes_per_flow"], ".1f"),
                      str(r["entry_bytes_nat_ipv4"]), fmt(r["table_bytes_per_nat_flow"], ".1f"),
                      fmt(r.get("other_heap_bytes_per_nat_flow"), ".1f")))
    print_rows("NAT (nat and flows in Sluice's /stats, deltas over the same window):", lines)
    print("new Msess/s: nat.created delta / wall time (a mapping made: a new NAT session). mapped, removed: "
          "nat.created,\nnat.removed deltas / port 0 rx; translated: the west nat_src stage's source rewrites / rx. "
          "B/flow: a pair\n(flows.entry_bytes.nat_ipv4) + 2 keys' share of the bucket index, from flows.memory_bytes, "
          "flows.max_ipv4 and\nnat.max; pair B: the pair alone; table B/NAT flow: flows.memory_bytes / nat.max (the "
          "conntrack pool every\nnew flow passes through before nat promotes it, included). other heap B/NAT flow: DPDK's "
          "heap (telemetry /eal/heap_info)\nless mempools and the flow table, its growth from a smaller nat.capacity on "
          "the same pcap to this one /\nthe capacity's growth: the NAT context's endpoint-independent mapping table, "
          "reserved for nat.capacity mappings.")
    print("\nTargets (NAT issue):")
    for r in nat:
        if r.get("workload") == "established" and r["flows"] >= 1 << 20 and r.get("ratio_vs_l3fwd") is not None:
            ratio_target(r, rows, "1M translated flows >= 0.45x l3fwd-lpm Mpps", 0.45)
    for r in (r for r in nat if r.get("workload") == "new"):
        rate_target(r, ">= 3M new NAT sessions/s", 3e6, "new NAT sessions")
    entry = max(r["entry_bytes_nat_ipv4"] for r in nat)
    table = max(r["bytes_per_flow"] or 0 for r in nat)
    print(f"  IPv4 NAT flow (pair): {entry} B (target <= 128 B, the layout: the same in every round): "
          f"{verdict(entry <= 128)}; with its two keys' "
          f"bucket slots, {table:.0f} B per NAT flow of capacity")


def print_lb(rows):
    """The load balancer's rows (sluice-lb), the table build times, and the LB issue's targets."""
    lb = [r for r in rows if r["app"] in LB_APPS and r.get("mpps")]
    builds = [r for r in rows if r.get("workload") == "table_build"]
    floors = {r["pattern"]: r for r in rows if r.get("workload") == "memory_floor"}
    if lb:
        lines = [("case", "app", "Mpps", "per CPU-s", "new Mconn/s", "per CPU-s", "conns/pkt", "removed/pkt",
                  "src/pkt", "dst/pkt", "active/capacity", "backends", "B/flow")]
        for r in lb:
            per_cpu = r["new_flows_per_cpu_s"] / 1e6 if r.get("new_flows_per_cpu_s") is not None else None
            spread = (f"{r['lb_backends']}: {r['backend_share_min']:.2f}..{r['backend_share_max']:.2f}"
                      if r.get("backend_share_min") is not None else "-")
            lines.append((r["case"], r["app"], fmt(r["mpps"], ".2f"), fmt(r.get("mpps_per_cpu_s"), ".2f"),
                          fmt(r["new_flows_per_s"] / 1e6, ".2f"), fmt(per_cpu, ".2f"),
                          fmt(r["created_per_packet"], ".3f"), fmt(r["evicted_per_packet"], ".3f"),
                          fmt(r["translated_per_packet"], ".3f"), fmt(r["dst_translated_per_packet"], ".3f"),
                          f"{r['flows_active']}/{r['capacity']}", spread, fmt(r["bytes_per_flow"], ".1f")))
        print_rows("Load balancer (services, nat and flows in Sluice's /stats, deltas over the same window):", lines)
        print("new Mconn/s: the services' connections delta / wall time (a backend picked and a full-NAT pair made). "
              "conns,\nremoved: connections and nat.removed deltas / port 0 rx; src, dst: source (nat_src) and "
              "destination (nat)\nrewrites / rx. backends: each backend's active connections (established) or new "
              "ones (churn) over the\nmean. B/flow: a pair and its two keys' share of the bucket index, as NAT's.")
    if builds:
        lines = [("case", "what", "median ms", "first ms", "min ms", "max ms", "builds")]
        for r in builds:
            lines.append((r["case"], r["app"], fmt(r["build_ms"], ".2f"), fmt(r["build_ms_first"], ".2f"),
                          fmt(r["build_ms_min"], ".2f"), fmt(r["build_ms_max"], ".2f"), str(r["builds"])))
        print_rows("Table builds (tests/bench/sluice-maglev-bench, one process, on the worker core):", lines)
        print("maglev-build: MaglevTable::build alone; service-table-build: ServiceTable::build of one full-NAT "
              "service with\nthose backends (what the control thread compiles and publishes on a reload or a "
              "backend going up or down).\nfirst: the first build of the process (its memory not yet touched).")
    if floors:
        lines = [("pattern", "lines/pkt", "region", "pages", "cyc/pkt")]
        for r in floors.values():
            lines.append((r["pattern"], str(r["lines_per_packet"]), f"{r['region_mib']} MiB",
                          "2 MiB" if r["hugepages"] else "4 KiB", fmt(r["cycles_per_packet"], ".1f")))
        print_rows("Memory floor (tests/bench/sluice-memory-floor, on the worker core, after the apps):", lines)
        print("Random lines of the 1M case's flow-state size, read in bursts of 32 with every line prefetched "
              "first: the\nleast the flow state of a packet can cost on this host. A load-balanced packet "
              "reads bucket+pair (its\nkey's bucket, then its pair's two lines); l3fwd reads no flow state.")
    if not lb and not builds:
        return
    print("\nTargets (load-balancer issue):")
    for r in lb:
        if r.get("workload") == "established" and r["flows"] >= 1 << 20 and r.get("ratio_vs_l3fwd") is not None:
            ratio_target(r, rows, "1M load-balanced flows >= 0.4x l3fwd-lpm Mpps", 0.4)
            base = next((b for b in rows if b["app"] == "l3fwd" and b["case"] == r["case"]), None)
            floor = floors.get("bucket+pair")
            if base and base.get("cycles_per_packet") and floor:
                budget = base["cycles_per_packet"] / 0.4
                print(f"    0.4x is {budget:.0f} cycles a packet; l3fwd's {base['cycles_per_packet']:.0f} and the "
                      f"flow state's floor of {floor['cycles_per_packet']:.0f} leave "
                      f"{budget - base['cycles_per_packet'] - floor['cycles_per_packet']:.0f} for conntrack, "
                      f"lb, both NAT rewrites and route; sluice-lb spent "
                      f"{r['cycles_per_packet'] - base['cycles_per_packet'] - floor['cycles_per_packet']:.0f} on them")
    for r in (r for r in lb if r.get("workload") == "new"):
        rate_target(r, ">= 2M new connections/s", 2e6, "new connections")
    for r in (r for r in builds if r["app"] == "maglev-build"):
        print(f"  Maglev table, {r['case']}: {r['build_ms']:.2f} ms median, {r['build_ms_max']:.2f} ms slowest "
              f"(target <= 50 ms): {verdict(r['build_ms_max'] <= 50)}")


def print_ovs(rows, suite):
    """Open vSwitch's rows, and Sluice's ratio to them (target: >= 5x in every case)."""
    ovs = [r for r in rows if r["app"] in OVS_APPS and r.get("mpps")]
    if not ovs:
        return
    lines = [("case", "app", "Mpps", "per CPU-s", "new Mconn/s", "per CPU-s", "created/pkt", "conns",
              "window s", "RSS B/conn", "pool mbufs")]
    for r in ovs:
        per_cpu = r["new_flows_per_cpu_s"] / 1e6 if r.get("new_flows_per_cpu_s") is not None else None
        lines.append((r["case"], r["app"], fmt(r["mpps"], ".2f"), fmt(r.get("mpps_per_cpu_s"), ".2f"),
                      fmt(r["new_flows_per_s"] / 1e6, ".2f"), fmt(per_cpu, ".2f"),
                      fmt(r["created_per_packet"], ".3f"), str(r["flows_active"]), fmt(r.get("window_seconds"), ".2f"),
                      fmt(r.get("bytes_per_flow"), ".0f"), str(r.get("ovs_pool_mbufs") or "-")))
    print_rows("Open vSwitch (ovs-ofctl dump-ports, dpctl/ct-get-nconns; cycles and cpu of the PMD thread):", lines)
    print("new Mconn/s: ct-get-nconns delta / wall time. OVS's conntrack refuses new connections when full, it "
          "does not evict:\nits new-sessions window is the first pass over the pcap (every frame a new 5-tuple), from "
          "the flow going in\nto 60% of the flows connected. RSS B/conn: ovs-vswitchd's VmRSS growth since before the "
          "flow / connections\n(100K connections or more). pool mbufs: p0's per-port pool.")
    sluice = [r for r in rows if r["app"] in OVS_PEER and r.get("mpps")]
    if not sluice:
        return
    print(f"\nTargets (Sluice >= 5x Open vSwitch, {suite}):")
    for r in sluice:
        peer = OVS_PEER[r["app"]]
        if r.get("ratio_vs_ovs") is None:
            print(f"  {r['case']}, {r['app']}: no {peer} row to compare with")
            continue
        ratio_target(r, rows, f">= 5x {peer} Mpps", 5, peer)
        if r.get("ratio_vs_ovs_new_flows") is not None:
            values, verdicts, overall = target(r, f">= 5x {peer} new sessions/s", "ratio_vs_ovs_new_flows", 5,
                                               "ovs_ratio_valid")
            print(f"    {r['ratio_vs_ovs_new_flows']:.2f}x its new sessions/s (median): "
                  f"{verdict_text(values, verdicts, overall, '.2f', 'x')}")
