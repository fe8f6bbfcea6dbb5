#!/usr/bin/python3
"""Runs the router, conntrack, NAT and load-balancer benchmarks; tools/bench prepares the machine and calls this.

For each case (frame size x flow count) it starts dpdk-testpmd (io forwarding, the
harness ceiling), l3fwd (LPM) and Sluice (route pipeline) one after another on the
same pcap, replayed by net_pcap with infinite_rx=1, and measures each for --seconds.
--suite conntrack adds Sluice with the conntrack stage (sluice-ct: tracking only;
sluice-fw: a 10-rule firewall, new flows classified by rte_acl), the table sized to
the case, and a "new flows" case (--churn: a pcap with many more flows than the
table holds, so every packet misses, is inserted and evicts an older flow):

  Mpps          packets forwarded: port 1 tx_packets delta / wall time (testpmd and l3fwd:
                DPDK telemetry /ethdev/stats; Sluice: its HTTP /stats; OVS: dump-ports)
  cycles/pkt    the worker thread's CPU time over the window (/proc/PID/task/TID/schedstat)
                x TSC Hz / packets forwarded. This VM exposes no PMU (perf stat cycles is
                "not supported"), and the thread's own CPU time leaves out what other tenants
                of the core took, so it is fairer than TSC Hz / pps on a shared machine.
  above io      cycles/pkt - testpmd io's in the same case and round (the harness's cost)
  fwd           port 1 tx_packets delta / port 0 rx delta (1.00 = all forwarded)
  cpu           worker thread CPU time / wall time (below ~95%: the core was shared)
  valid         honesty.py's rules: a row that forwarded under 99% or whose drop counters
                grew is INVALID and meets no target

--rounds N (default 3): the apps run N times per case, interleaved; a row is its app's
median round, a target is met only when every round meets it (each round's ratio
between the apps of that round), and every round's verdict is printed.

Conntrack rows, from Sluice's /stats (flows and the west conntrack stage's counters):

  new flows/s   flows.created delta / wall time (the same window as Mpps)
  created/pkt   flows.created delta / port 0 rx delta (churn: ~1.00, established: 0)
  evicted/pkt   flows.evicted delta / rx delta (early drop made room for the new flow)
  B/flow        flows.memory_bytes / flows.max, beside what the table layout predicts
                (capacity x 64 B entries + buckets x 64 B) / capacity and entry_bytes.ipv4

--suite nat: sluice-nat (parse + conntrack + nat + route, a masquerade rule out of
port 1) against l3fwd and Open vSwitch, the same cases as conntrack's with NAT rows:

  new sessions/s  nat.created delta / wall time (mappings made: one a new NAT flow)
  translated/pkt  the west nat_src stage's translated delta / rx (source rewrites)
  B/flow          a NAT pair (flows.entry_bytes.nat_ipv4) plus its two keys' share of
                  the bucket index, from flows.memory_bytes, flows.max_ipv4 and nat.max

--suite lb: sluice-lb (parse + conntrack + lb + nat + route, one UDP service full-NAT to
16 backends) against l3fwd, the same cases on a pcap whose flows all go to the VIP:

  new conns/s     the services' connections delta / wall time (a backend picked and a
                  full-NAT pair made: one a new connection); checked against nat.created
  translated/pkt  source rewrites (nat_src) / rx; dst/pkt: destination rewrites (nat)
  backends        the spread of active (established) or new (churn) connections over them

and the Maglev build time: tests/bench/sluice-maglev-bench (1000 backends, 65537 entries)
built 21 times: the median, the first (cold) and the slowest build.

Open vSwitch (ovs-ct: ct(commit); ovs-nat: ct(commit,nat(src=...))): ovs-vswitchd-dpdk
with one PMD core on the same net_pcap/net_null devices, in a database and run dir of
its own under build-bench/ovs/. Mpps from `ovs-ofctl dump-ports`, cycles from the PMD
thread's CPU time, connections from `ovs-appctl dpctl/ct-get-nconns`.
"""
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
from ovs import *  # noqa: F401,F403
from report import *  # noqa: F401,F403
from honesty import *  # noqa: F401,F403

# ---------------------------------------------------------------- the apps

def eal_common(prefix, vdev_pcap):
    return ["-n", "1", "--no-pci", "--file-prefix", prefix, "--huge-unlink",
            "--vdev", f"net_pcap0,rx_pcap={vdev_pcap},infinite_rx=1", "--vdev", "net_null0,no-rx=1"]


def testpmd_cmd(a, app, case, run_dir):
    cmd = ["dpdk-testpmd", "-l", f"{a.main_lcore},{a.worker_lcore}", "--main-lcore", str(a.main_lcore)]
    cmd += eal_common(a.prefix + "-tp", case.pcap)
    cmd += ["--", "--forward-mode=io", "--nb-cores=1", "--rxq=1", "--txq=1", "--burst=32",
            f"--total-num-mbufs={case.flows + WORKING_MBUFS}",
            "--stats-period=3600"]  # non-interactive without waiting on stdin
    return cmd, {}, Telemetry(a.prefix + "-tp")


def l3fwd_cmd(a, app, case, run_dir):
    # One EAL lcore: l3fwd gives every lcore a TX queue on every port, and a net_pcap
    # port with one rx_pcap has exactly one TX queue. Its main lcore is the worker.
    cmd = [a.l3fwd, "-l", str(a.worker_lcore)] + eal_common(a.prefix + "-l3", case.pcap)
    cmd += ["--", "-p", "0x3", "--lookup=lpm", "--parse-ptype",
            f"--config=(0,0,{a.worker_lcore}),(1,0,{a.worker_lcore})"]
    env = {"BENCH_MIN_MBUFS": str(case.flows + WORKING_MBUFS)}  # read by tools/bench's patch of main.c
    return cmd, env, Telemetry(a.prefix + "-l3")


# sluice-fw's policy: ten rules in the order a small site's firewall might have them.
# The traffic (UDP 10.0.0.0/12 -> 198.18.1.0/24 port 9, west to east) matches only the
# last one, default_policy is drop: every new flow goes through rte_acl and is accepted
# by a rule. Established packets are not classified (no rule names that state).
FIREWALL_RULES = [
    {"name": "ssh-refused", "protocol": "tcp", "dst_ports": 22, "action": "reject"},
    {"name": "web-in", "from": "east", "to": "west", "protocol": "tcp", "dst": "192.168.0.10",
     "dst_ports": [80, 443, "8000-8080"], "action": "accept"},
    {"name": "dns-out", "from": "west", "to": "east", "protocol": "udp", "dst": ["192.0.2.53", "192.0.2.54"],
     "dst_ports": 53, "action": "accept"},
    {"name": "ntp-out", "from": "west", "to": "east", "protocol": "udp", "dst_ports": 123, "action": "accept"},
    {"name": "bogons", "src": ["203.0.113.0/24", "100.64.0.0/10"], "action": "drop"},
    {"name": "smtp-blocked", "protocol": "tcp", "dst_ports": 25, "action": "drop"},
    {"name": "rtp", "from": "west", "to": "east", "protocol": "udp", "src": "172.16.0.0/12",
     "dst_ports": "16384-32767", "action": "accept"},
    {"name": "syn-in", "from": "east", "to": "west", "protocol": "tcp",
     "tcp_flags": {"mask": ["syn", "ack"], "set": ["syn"]}, "dst": "192.168.0.0/24", "action": "accept"},
    {"name": "ping-out", "from": "west", "to": "east", "protocol": "icmp", "action": "accept"},
    {"name": "bench-udp", "from": "west", "to": "east", "protocol": "udp", "src": "10.0.0.0/8",
     "dst": "198.18.0.0/15", "dst_ports": 9, "action": "accept"},
]


def sluice_cmd(a, app, case, run_dir):
    http_port = free_tcp_port()
    pipeline = ["parse", "route"]
    if app in CT_APPS:
        pipeline = ["parse", "conntrack", "route"]
    elif app in NAT_APPS:
        # Both ports: a translated flow's replies come back on east, so every tracked
        # port runs nat (lib/config/nat.cpp), and the masquerade rule names east.
        pipeline = ["parse", "conntrack", "nat", "route"]
    elif app in LB_APPS:
        # As NAT's: a full-NAT connection's replies come back on east.
        pipeline = ["parse", "conntrack", "lb", "nat", "route"]
    memory_mb = case_memory_mb(case.flows) + app_table_mb(app, case.capacity)
    config = {
        "eal": {"lcores": f"{a.main_lcore},{a.worker_lcore}", "main_lcore": a.main_lcore,
                "memory_mb": memory_mb, "file_prefix": a.prefix + "-sl",
                "extra_args": ["--huge-unlink", "-n", "1"]},
        "ports": [
            {"name": "west", "device": "net_pcap0", "devargs": f"rx_pcap={case.pcap},infinite_rx=1",
             "rss": "off", "ipv4": ["192.168.0.1/24"], "pipeline": pipeline},
            {"name": "east", "device": "net_null0", "devargs": "no-rx=1",
             "rss": "off", "ipv4": ["192.168.1.1/24"], "pipeline": pipeline},
        ],
        # The same destinations l3fwd's default table sends to port 1, via a gateway whose
        # MAC is configured, so no ARP is ever needed.
        "routes": [{"prefix": "198.18.1.0/24", "via": "192.168.1.2"}],
        "neighbours": [{"address": "192.168.1.2", "mac": "02:00:00:00:00:01"}],
        "mempool": {"mbufs": case.flows + WORKING_MBUFS},
        "control": {"http": {"address": "127.0.0.1", "port": http_port}},
        "logging": {"level": "info"},
    }
    if app in TRACKING_APPS:
        # IPv4 only: the traffic has no IPv6, and without an IPv6 table flows.memory_bytes
        # / flows.max is the IPv4 table's cost per flow.
        config["conntrack"] = {"capacity": case.capacity, "capacity_ipv6": 0}
    if app in NAT_APPS:
        # Every flow west -> east is a new NAT flow masqueraded to east's 192.168.1.1;
        # the pair pool is as large as the conntrack table (a full one evicts the oldest pair).
        config["nat"] = {"capacity": case.capacity,
                         "snat": [{"name": "bench", "out_port": ["east"], "masquerade": True}]}
    if app in LB_APPS:
        # Every flow is a new connection to the service: Maglev picks one of the backends
        # (routed out of east like the VIP's /24) and the lb stage makes it a full-NAT pair
        # from a local address and port; the pair pool as NAT's. No health checks: every
        # backend is up.
        config["routes"] = [{"prefix": "198.18.0.0/15", "via": "192.168.1.2"}]
        config["nat"] = {"capacity": case.capacity}
        config["services"] = [{
            "name": "bench", "vip": LB_VIP, "protocol": "udp", "port": 9, "mode": "fullnat",
            "local_addresses": [LB_LOCAL],
            "backends": [{"address": f"198.18.2.{k + 1}"} for k in range(LB_BACKENDS)]}]
    if app == "sluice-fw":
        config["firewall"] = {"default_policy": "drop", "rules": FIREWALL_RULES}
    name = f"sluice-{case.flows}.json" if app == "sluice" else f"{app}-{case.tag}.json"
    path = os.path.join(run_dir, name)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    binary = a.sluice_notrace if app == "sluice-notrace" else a.sluice
    return [binary, "--config", path], {}, SluiceStats(http_port, a.prefix + "-sl" if app in NAT_APPS else None)


COMMANDS = {"testpmd": testpmd_cmd, "l3fwd": l3fwd_cmd, "sluice": sluice_cmd, "sluice-notrace": sluice_cmd,
            "sluice-ct": sluice_cmd,
            "sluice-fw": sluice_cmd, "sluice-nat": sluice_cmd, "sluice-lb": sluice_cmd, "ovs-ct": ovs_cmd,
            "ovs-nat": ovs_cmd}


def run_app(a, app, case, run_dir, hz, round_no=0):
    cmd, env, source = COMMANDS[app](a, app, case, run_dir)
    log_path = os.path.join(run_dir, f"{app}-{case.tag}-{round_no + 1}.log")
    with open(log_path, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **env})
    a.started.append(proc)
    if app in OVS_APPS:
        source.pid = proc.pid
    row = {"app": app}
    try:
        # Ready: the stats source answers and packets leave port 1. Not port 0's rx
        # counter: net_pcap counts the frames it loads into its ring at queue setup (a
        # million take seconds) as received, then resets the counter.
        deadline = time.monotonic() + a.start_timeout
        while not source.connect():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"{app} did not start (see {log_path})")
            time.sleep(0.2)
        first = None
        # OVS in the new-sessions case forwards nothing until its flow goes in: packets
        # arriving (and dropped by the bridge) are the sign it is ready.
        moving = "rx" if app in OVS_APPS and case.workload == "new" else "tx"
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"{app} moved no packets (see {log_path})")
            count = source.counters()[moving]
            if first is None:
                first = count
            elif count - first > 1000:
                break
            time.sleep(0.2)
        if app in OVS_APPS and case.workload == "new":
            t0, c0, cpu0, t1, c1, cpu1 = ovs_first_pass(a, source, case, proc)
        else:
            if app in OVS_APPS:
                ovs_established(a, source, case, proc, deadline)
            elif app in TRACKING_APPS and case.workload == "established":
                sluice_established(app, source, case, proc, deadline)
            time.sleep(a.warmup)
            t0, c0, cpu0 = sample(source, proc.pid)
            time.sleep(a.seconds)
            t1, c1, cpu1 = sample(source, proc.pid)
        if a.profile and app in SLUICE_APPS:
            row["profile"] = profile(proc.pid, cpu0, cpu1, a, run_dir, app, case)
        if app in NAT_APPS:
            row["heap"] = source.heap()
    except (OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
        raise Failure(f"{app}: reading its counters failed: {e} (see {log_path})") from e
    finally:
        source.close()
        rc = source.stop(proc) if app in OVS_APPS else stop(proc)
        if proc in a.started:
            a.started.remove(proc)

    wall = t1 - t0
    packets = c1["rx"] - c0["rx"]          # received: the per-packet flow counters' denominator
    sent = c1["tx"] - c0["tx"]             # forwarded (port 1 tx): the rate's and the cycles'
    if packets <= 0 or sent <= 0:
        raise Failure(f"{app} received {packets} and forwarded {sent} packets in the window (see {log_path})")
    deltas = {tid: cpu1[tid] - cpu0.get(tid, 0) for tid in cpu1}
    if app in OVS_APPS:
        # The PMD thread by name, not the busiest: creating connections, OVS's other
        # threads (urcu's deferred frees, ct_clean) may outrun it.
        deltas = {tid: ns for tid, ns in deltas.items() if thread_name(proc.pid, tid).startswith("pmd")} or deltas
    worker_tid, worker_ns = max(deltas.items(), key=lambda kv: kv[1]) if deltas else (0, 0)
    row.update(window_rates(packets, sent, wall, worker_ns, hz), exit_code=rc, log=log_path)
    row["valid"], row["invalid_reasons"] = row_validity(app, c0, c1, packets, sent, wall, worker_ns, log_path)
    notes = []
    if app in SLUICE_APPS:
        drops = c1["drops_total"] - c0["drops_total"]
        lcore_rx = c1["lcore_rx"] - c0["lcore_rx"]
        row["sluice_busy_cycles_per_packet"] = (c1["busy_cycles"] - c0["busy_cycles"]) / lcore_rx if lcore_rx else None
        row["sluice_drops"] = drops
        # Drops (not_for_us above all) would make the comparison unfair: always shown.
        notes.append(f"drops {drops / packets:.2%}: {drop_reasons(c0, c1)}" if drops else "drops 0")
        if row["sluice_busy_cycles_per_packet"]:
            notes.append(f"own busy {row['sluice_busy_cycles_per_packet']:.0f} cyc/pkt")
        if app in CT_APPS:
            notes.extend(conntrack_numbers(row, case, c0, c1, packets, wall))
        if app in NAT_APPS:
            notes.extend(nat_numbers(row, case, c0, c1, packets, wall))
        if app in LB_APPS:
            notes.extend(lb_numbers(row, case, c0, c1, packets, wall))
        if rc not in (0, None):
            notes.append(f"exit {rc}")
    if app in OVS_APPS:
        row["ovs_rss0"] = source.rss0
        row["ovs_pool_mbufs"] = source.mempool_mbufs
        notes.extend(ovs_numbers(row, case, c0, c1, packets, wall))
        if rc not in (0, None):
            notes.append(f"exit {rc}")
    if not row["valid"]:
        notes.insert(0, "INVALID: " + "; ".join(row["invalid_reasons"]))
    row["notes"] = "; ".join(notes)
    return row


def drop_reasons(c0, c1):
    """Sluice's drop reasons that grew over the window: {reason: packets}."""
    return {k: v - c0["drops"].get(k, 0) for k, v in c1["drops"].items() if v > c0["drops"].get(k, 0)}


def row_validity(app, c0, c1, received, sent, wall, worker_ns, log_path):
    """(valid, reasons) for one app's window (honesty.py's rules): under 99% forwarded,
    any drop counter grown (the ports' rx_nombuf, imissed/rx_missed, ierrors, oerrors,
    packets sent back out of port 0, Sluice's drops_total with its reasons, OVS's port
    drop and error counts, testpmd's TX-dropped), or packets lost uncounted."""
    drops = drop_deltas(c0, c1)
    if "drops_total" in drops:
        drops[f"drops_total ({', '.join(f'{k} {v}' for k, v in drop_reasons(c0, c1).items())})"] = drops.pop("drops_total")
    # Packets received and then counted: dropped by the app, or sent back out of port 0.
    accounted = sum(n for name, n in drops.items() if name.startswith("drops_total") or "sent back" in name)
    rate, read_seconds = running_rate(received, wall, worker_ns), c0.get("read_seconds", 0) + c1.get("read_seconds", 0)
    uncounted = uncounted_loss(received, sent, accounted, rate, read_seconds)
    extra = []
    if app == "testpmd":
        # testpmd io counts what tx_burst refused (fwd_dropped) only in the statistics it
        # prints at exit, for its whole run: any there may have been in the window.
        try:
            with open(log_path, errors="replace") as f:
                tx_dropped = parse_testpmd_exit(f.read())
        except OSError:
            tx_dropped = None
        if tx_dropped is None:
            extra.append("testpmd printed no forward statistics at exit (TX-dropped unknown)")
        elif tx_dropped:
            extra.append(f"testpmd TX-dropped +{tx_dropped} (whole run)")
    reasons = invalid_reasons(received, sent, drops, uncounted, extra, skew_packets(rate, read_seconds))
    return not reasons, reasons


def sluice_established(app, source, case, proc, deadline):
    """The warm-up starts once every flow of the pcap is in the table (translated, for
    sluice-nat and sluice-lb): the first pass goes at the new-flow rate, which can outlast
    the warm-up."""
    def active():
        c = source.counters()
        return c["nat"]["active"] if app in NAT_APPS + LB_APPS else c["flows"]["active"]
    while active() < case.flows:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Failure(f"{app} has only {active()} of {case.flows} flows in its table")
        time.sleep(0.2)


def nat_numbers(row, case, c0, c1, packets, wall):
    """NAT sessions over the window into `row` (sluice-nat); returns the notes they call for."""
    f0, f1, n0, n1 = c0["flows"], c1["flows"], c0["nat"], c1["nat"]
    d = {k: n1[k] - n0[k] for k in ("created", "removed", "no_port", "no_room")}
    flows_created = f1["created"] - f0["created"]
    translated = c1["nat_src_stage"].get("translated", 0) - c0["nat_src_stage"].get("translated", 0)
    mapped = c1["nat_stage"].get("mapped", 0) - c0["nat_stage"].get("mapped", 0)
    ct_established = c1["ct"].get("established", 0) - c0["ct"].get("established", 0)
    plain, pairs, memory = f1["max_ipv4"], n1["max"], f1["memory_bytes"]
    pair_bytes = f1["entry_bytes_nat_ipv4"] or NAT_PAIR_BYTES
    # The bucket index is shared by every key: a plain entry has one, a pair two.
    buckets = memory - plain * f1["entry_bytes_ipv4"] - pairs * pair_bytes
    row.update(capacity=pairs, conntrack_capacity=plain, flows_active=n1["active"], nat_created=d["created"],
               nat_removed=d["removed"], nat_no_port=d["no_port"], nat_no_room=d["no_room"],
               flows_created=flows_created, flows_evicted=f1["evicted"] - f0["evicted"],
               new_flows_per_s=d["created"] / wall, created_per_packet=d["created"] / packets,
               new_flows_per_cpu_s=d["created"] / (row["cpu"] * wall) if row["cpu"] else None,
               mpps_per_cpu_s=row["mpps"] / row["cpu"] if row["cpu"] else None,
               evicted_per_packet=d["removed"] / packets, translated_per_packet=translated / packets,
               mapped_per_packet=mapped / packets, ct_established_per_packet=ct_established / packets,
               memory_bytes=memory, entry_bytes_ipv4=f1["entry_bytes_ipv4"], entry_bytes_nat_ipv4=pair_bytes,
               bytes_per_flow=pair_bytes + buckets * 2 / (plain + 2 * pairs) if pairs else None,
               expected_bytes_per_flow=nat_pair_bytes(case.capacity, case.capacity),
               table_bytes_per_nat_flow=memory / pairs if pairs else None,
               flow_states=f1["states"])
    heap = row.pop("heap", None)
    if heap and pairs:
        # What else Sluice holds in the hugepage heap: the NAT context's endpoint-
        # independent mapping table of nat.capacity entries, and allocations of a fixed
        # size (route table, rings, ...). nat_heap_per_flow() splits the two across cases.
        row["other_heap_bytes"] = heap["alloc"] - heap["mempools"] - memory
    notes = [f"nat {n1['active']}/{n1['max']}",
             f"window: mapped {row['created_per_packet']:.2f}/pkt, translated {row['translated_per_packet']:.2f}/pkt, "
             f"pairs removed {row['evicted_per_packet']:.2f}/pkt"]
    if d["no_port"] or d["no_room"]:
        notes.append(f"NO PORT {d['no_port']}, NO ROOM {d['no_room']}")
    if pairs != case.capacity or plain != case.capacity:
        notes.append(f"CAPACITY nat {pairs}, conntrack {plain} != {case.capacity}")
    if memory != ct_table_bytes(plain, pairs):
        notes.append(f"MEMORY {memory} B != expected {ct_table_bytes(plain, pairs)} B")
    if row["translated_per_packet"] < 0.99:
        notes.append(f"ONLY {row['translated_per_packet']:.1%} TRANSLATED")
    if case.workload == "established":
        if n1["active"] != case.flows:
            notes.append(f"NAT ACTIVE {n1['active']} != {case.flows} flows")
        if d["created"] or d["removed"] or flows_created:
            notes.append("NOT ALL ESTABLISHED")
    else:
        if row["created_per_packet"] < 0.999:
            notes.append(f"{1 - row['created_per_packet']:.1%} found a surviving flow")
        if row["created_per_packet"] < 0.9:
            notes.append("MOSTLY NOT NEW: raise the churn flows or lower its capacity")
    return notes


def lb_numbers(row, case, c0, c1, packets, wall):
    """Load-balanced connections over the window into `row` (sluice-lb); returns the notes
    they call for. A connection is a NAT pair, so NAT's account (pairs, rewrites, memory)
    comes first; the rate is the load balancer's own count of connections."""
    notes = nat_numbers(row, case, c0, c1, packets, wall)
    l0, l1 = c0["lb"], c1["lb"]
    connections = l1["connections"] - l0["connections"]
    dst_translated = c1["nat_stage"].get("translated", 0) - c0["nat_stage"].get("translated", 0)
    if case.workload == "established":
        spread = l1["backend_active"]
    else:
        spread = [b - a for a, b in zip(l0["backend_connections"], l1["backend_connections"])]
    mean = sum(spread) / len(spread) if spread else 0
    row.update(lb_connections=connections, lb_active=l1["active"], lb_no_backend=l1["no_backend"] - l0["no_backend"],
               new_flows_per_s=connections / wall, created_per_packet=connections / packets,
               new_flows_per_cpu_s=connections / (row["cpu"] * wall) if row["cpu"] else None,
               dst_translated_per_packet=dst_translated / packets, lb_backends=len(spread),
               backend_share_min=min(spread) / mean if mean else None,
               backend_share_max=max(spread) / mean if mean else None)
    notes[1] = (f"window: connections {row['created_per_packet']:.2f}/pkt, "
                f"rewrites src {row['translated_per_packet']:.2f}/pkt dst {row['dst_translated_per_packet']:.2f}/pkt, "
                f"pairs removed {row['evicted_per_packet']:.2f}/pkt")
    if mean:
        notes.append(f"{len(spread)} backends: {row['backend_share_min']:.2f}..{row['backend_share_max']:.2f}x "
                     f"the mean {'active' if case.workload == 'established' else 'new'}")
        # Maglev spreads evenly what a good hash spreads evenly: far off, the flow hash
        # is not telling these clients apart.
        if mean >= 50 and (row["backend_share_min"] < 0.5 or row["backend_share_max"] > 1.5):
            notes.append("UNEVEN SPREAD OVER BACKENDS")
    # Two counters read a moment apart in one /stats while the worker runs: 1% of slack.
    if abs(connections - row["nat_created"]) > 0.01 * max(connections, 1):
        notes.append(f"CONNECTIONS {connections} != NAT PAIRS MADE {row['nat_created']}")
    if row["lb_no_backend"]:
        notes.append(f"NO BACKEND {row['lb_no_backend']}")
    if row["dst_translated_per_packet"] < 0.99:
        notes.append(f"ONLY {row['dst_translated_per_packet']:.1%} SENT TO A BACKEND")
    if case.workload == "established" and l1["active"] != case.flows:
        notes.append(f"LB ACTIVE {l1['active']} != {case.flows} flows")
    return notes


def run_micro(cmd):
    """Runs one micro-benchmark on the worker core (nothing else uses it once the apps are
    stopped): each line of its output that starts with a word, as (word, {key: value})."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise Failure(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[:300]}")
    out = []
    for line in r.stdout.splitlines():
        what, *fields = line.split()
        out.append((what, dict(f.split("=", 1) for f in fields)))
    return out, r.stdout


def run_maglev(a):
    """The Maglev and service table build times (tests/bench/sluice-maglev-bench): one row
    each, in the rows' form (no Mpps: a control-thread build, not forwarding)."""
    cmd = ["taskset", "-c", str(a.worker_lcore), a.maglev_bench, "--backends", str(MAGLEV_BACKENDS),
           "--size", str(MAGLEV_SIZE), "--builds", str(MAGLEV_BUILDS)]
    log(f"maglev table build: {MAGLEV_BACKENDS} backends, {MAGLEV_SIZE} entries")
    lines, stdout = run_micro(cmd)
    rows = []
    for what, values in lines:
        app = {"maglev": "maglev-build", "service_table": "service-table-build"}.get(what)
        if not app:
            continue
        rows.append({"case": f"{values['backends']} backends, {values['size']} entries", "app": app,
                     "flows": None, "frame_bytes": None, "mpps": None, "mode": "lb", "workload": "table_build",
                     "lb_backends": int(values["backends"]), "table_size": int(values["size"]),
                     "builds": int(values["builds"]), "build_ms": float(values["median_ms"]),
                     "build_ms_first": float(values["first_ms"]), "build_ms_min": float(values["min_ms"]),
                     "build_ms_max": float(values["max_ms"]),
                     "notes": f"median of {values['builds']} builds; first {float(values['first_ms']):.2f} ms, "
                              f"min {float(values['min_ms']):.2f}, max {float(values['max_ms']):.2f}"})
    if len(rows) != 2:
        raise Failure(f"{' '.join(cmd)} printed no build times: {stdout.strip()[:300]}")
    for row in rows:
        log(f"  {row['app']}: {row['build_ms']:.2f} ms median, {row['build_ms_max']:.2f} ms slowest")
    return rows


def run_memory_floor(a):
    """What random cache lines of the 1M case's flow-state size cost on this host at best
    (tests/bench/sluice-memory-floor): one row per pattern (a bucket; a bucket and an entry;
    a bucket and a NAT pair's two lines), read against sluice-lb's cycles at 1M flows."""
    cmd = ["taskset", "-c", str(a.worker_lcore), a.memory_floor, "--mib", str(MEMORY_FLOOR_MIB)]
    log(f"memory floor: random lines over {MEMORY_FLOOR_MIB} MiB, bursts of 32")
    lines, stdout = run_micro(cmd)
    rows = []
    for what, values in lines:
        if what != "floor":
            continue
        huge = values["hugepages"] == "1"
        rows.append({"case": f"{values['pattern']}, {values['mib']} MiB", "app": "memory-floor", "flows": None,
                     "frame_bytes": None, "mpps": None, "mode": "lb", "workload": "memory_floor",
                     "pattern": values["pattern"], "lines_per_packet": int(values["lines"]),
                     "region_mib": int(values["mib"]), "hugepages": huge,
                     "cycles_per_packet": float(values["cycles_per_packet"]),
                     "notes": "median of 5 runs" + ("" if huge else "; 4 KiB PAGES (no free hugepages)")})
    if len(rows) != 3:
        raise Failure(f"{' '.join(cmd)} printed no floor: {stdout.strip()[:300]}")
    for row in rows:
        log(f"  {row['pattern']}: {row['cycles_per_packet']:.1f} cycles/packet")
    return rows


def conntrack_numbers(row, case, c0, c1, packets, wall):
    """The flow counters over the window into `row`; returns the notes they call for."""
    f0, f1 = c0["flows"], c1["flows"]
    ct0, ct1 = c0["ct"], c1["ct"]
    d = {k: f1[k] - f0[k] for k in ("created", "evicted", "expired")}
    ct = {k: ct1.get(k, 0) - ct0.get(k, 0) for k in ("tracked", "established", "classified", "untracked", "invalid")}
    row.update(mode="conntrack", workload=case.workload, capacity=f1["max"], flows_active=f1["active"],
               flows_created=d["created"], flows_evicted=d["evicted"], flows_expired=d["expired"],
               new_flows_per_s=d["created"] / wall, created_per_packet=d["created"] / packets,
               # Per second of the worker's own CPU time: what a core not shared would do.
               new_flows_per_cpu_s=d["created"] / (row["cpu"] * wall) if row["cpu"] else None,
               mpps_per_cpu_s=row["mpps"] / row["cpu"] if row["cpu"] else None,
               evicted_per_packet=d["evicted"] / packets,
               ct_established_per_packet=ct["established"] / packets, ct_tracked_per_packet=ct["tracked"] / packets,
               classified=ct["classified"], rule_hits=c1["firewall_hits"] - c0["firewall_hits"],
               memory_bytes=f1["memory_bytes"], entry_bytes_ipv4=f1["entry_bytes_ipv4"],
               bytes_per_flow=f1["memory_bytes"] / f1["max"] if f1["max"] else None,
               bytes_per_active_flow=f1["memory_bytes"] / f1["active"] if f1["active"] else None,
               expected_bytes_per_flow=ct_table_bytes(case.capacity) / case.capacity,
               flow_states=f1["states"])
    notes = [f"flows {f1['active']}/{f1['max']}",
             f"window: created {row['created_per_packet']:.2f}/pkt, evicted {row['evicted_per_packet']:.2f}/pkt"
             + (f", expired {d['expired']}" if d["expired"] else "")]
    if row["classified"]:
        notes.append(f"acl {row['classified'] / packets:.2f}/pkt")
    if ct["untracked"] or ct["invalid"]:
        notes.append(f"UNTRACKED {ct['untracked']}, INVALID {ct['invalid']}")
    # What each workload promises, checked.
    if f1["max"] != case.capacity or f1["max_ipv4"] != case.capacity:
        notes.append(f"CAPACITY {f1['max']} != {case.capacity}")
    if f1["memory_bytes"] != ct_table_bytes(case.capacity):
        notes.append(f"MEMORY {f1['memory_bytes']} B != expected {ct_table_bytes(case.capacity)} B")
    if case.workload == "established":
        if f1["active"] != case.flows:
            notes.append(f"ACTIVE {f1['active']} != {case.flows} flows")
        if d["created"] or d["evicted"] or d["expired"]:
            notes.append("NOT ALL ESTABLISHED")
        if ct["established"] < 0.99 * packets:
            notes.append(f"ONLY {ct['established'] / packets:.1%} ESTABLISHED")
    else:
        if row["created_per_packet"] < 0.999:
            # Early drop keeps some flows through many turns of the table (its age stamp
            # is in whole seconds): their next packet finds them.
            notes.append(f"{1 - row['created_per_packet']:.1%} found a surviving flow")
        if row["created_per_packet"] < 0.9:
            notes.append("MOSTLY NOT NEW: raise the churn flows or lower its capacity")
        if abs(d["evicted"] - d["created"]) > 0.01 * d["created"]:
            notes.append("EVICTED != CREATED")
    if row["app"] == "sluice-fw" and abs(row["rule_hits"] - d["created"]) > 0.01 * max(d["created"], 1):
        notes.append(f"RULE HITS {row['rule_hits']} != created {d['created']}")
    return notes


def profile(pid, cpu0, cpu1, a, run_dir, app, case):
    """perf record (cpu-clock: no PMU here) on the worker thread, after the measurement."""
    deltas = {tid: cpu1[tid] - cpu0.get(tid, 0) for tid in cpu1}
    tid = max(deltas, key=deltas.get)
    data = os.path.join(run_dir, f"perf-{app}-{case.tag}.data")
    rec = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-g", "-t", str(tid),
                          "-o", data, "--", "sleep", str(a.seconds)], capture_output=True, text=True)
    if rec.returncode != 0:
        return f"perf record failed: {rec.stderr.strip()[:200]}"
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                          "--percent-limit", "1", "--sort", "dso,symbol"], capture_output=True, text=True)
    lines = [l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
    return "\n".join(lines[:25])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3,
                   help="run the apps N times per case, interleaved; rows are medians, targets judged in every round")
    p.add_argument("--suite", choices=("router", "conntrack", "nat", "lb"), default="router")
    p.add_argument("--flows", default="1,4K,1M")
    p.add_argument("--frames", default="64,1500")
    p.add_argument("--apps", default=",".join(ROUTER_APPS))
    p.add_argument("--churn", default="none",
                   help="conntrack, nat and lb suites: FLOWS:CAPACITY for the new-flows case (e.g. 1M:64K), or none")
    p.add_argument("--json")
    p.add_argument("--profile", action="store_true", help="perf record Sluice's worker after each window")
    p.add_argument("--data-dir", help="required unless --memory-only")
    p.add_argument("--sluice", help="required unless --memory-only")
    p.add_argument("--l3fwd", help="required unless --memory-only")
    p.add_argument("--sluice-notrace", help="app sluice-notrace: Sluice built with -Dtracer=false (the tracer's cost when off)")
    p.add_argument("--maglev-bench", help="lb suite: tests/bench/sluice-maglev-bench (no table build row without it)")
    p.add_argument("--memory-floor", help="lb suite: tests/bench/sluice-memory-floor (no memory floor rows without it)")
    p.add_argument("--main-lcore", type=int, default=0)
    p.add_argument("--worker-lcore", type=int, default=1)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--start-timeout", type=float, default=120)
    p.add_argument("--memory-only", action="store_true",
                   help="print the MiB of hugepages the largest case needs and exit (tools/bench sizes with it)")
    a = p.parse_args()
    a.started = []
    flows_list = [parse_count(x) for x in a.flows.split(",") if x]
    frames = [int(x) for x in a.frames.split(",") if x]
    apps = [x for x in a.apps.split(",") if x]
    for app in apps:
        if app not in APPS:
            sys.exit(f"unknown app {app} (known: {', '.join(APPS)})")
    cases = [Case(frame, flows) for frame in frames for flows in flows_list]
    tracking_apps = TRACKING_APPS + OVS_APPS
    if a.suite in ("conntrack", "nat", "lb") and a.churn != "none" and any(app in tracking_apps for app in apps):
        churn_flows, churn_capacity = (parse_count(x) for x in a.churn.split(":"))
        if churn_capacity < 1024 or churn_capacity & (churn_capacity - 1) or churn_flows < 4 * churn_capacity:
            sys.exit(f"--churn {a.churn}: the capacity must be a power of two >= 1024, the flows >= 4x it")
        cases += [Case(frame, churn_flows, "new", churn_capacity) for frame in frames]

    def apps_of(case):
        # The new-flows case measures Sluice's conntrack or NAT and Open vSwitch's; l3fwd
        # runs beside them for the ratio, testpmd for the harness's own cost.
        if case.workload == "established":
            return apps
        return [x for x in apps if x in ("testpmd", "l3fwd") or x in tracking_apps]

    if a.memory_only:
        print(max(case.memory_mb(apps_of(case)) for case in cases))
        return 0
    if not (a.data_dir and a.sluice and a.l3fwd):
        p.error("--data-dir, --sluice and --l3fwd are required")
    if "sluice-notrace" in apps and not a.sluice_notrace:
        p.error("app sluice-notrace needs --sluice-notrace")
    hz, hz_source = tsc_hz()
    run_dir = os.path.join(a.data_dir, "run-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    log(f"logs and configs in {run_dir}")

    rows, failures = [], []

    def on_signal(signum, _frame):
        for proc in list(a.started):
            stop(proc, 20)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for case in cases:
            case_apps = apps_of(case)
            # The lb suite's frames all go to the service's VIP; the others' to 198.18.1.1-254.
            to_vip = [LB_VIP] if a.suite == "lb" else []
            case.pcap = os.path.join(a.data_dir, f"udp4-{GEN_VERSION}-{case.flows}-{case.frame}B"
                                     + "".join(f"-to-{v}" for v in to_vip) + ".pcap")
            if not os.path.exists(case.pcap):
                log(f"writing {case.pcap}")
                subprocess.run([sys.executable, os.path.join(HERE, "genpcap.py"), case.pcap + ".tmp", str(case.flows),
                                str(case.frame), DUT_MAC] + to_vip, check=True)
                os.rename(case.pcap + ".tmp", case.pcap)
            # The previous app's pages may still be on their way back.
            need, deadline = case.memory_mb(case_apps), time.monotonic() + 15
            while hugepages_free_mb() < need and time.monotonic() < deadline:
                time.sleep(0.5)
            free = hugepages_free_mb()
            identity = {"case": case.label, "flows": case.flows, "frame_bytes": case.frame}
            if a.suite in ("conntrack", "nat", "lb"):
                identity.update(mode=a.suite, workload=case.workload)
            if free < need:
                msg = f"skipped: needs ~{need} MiB of free hugepages, {free} MiB free"
                log(f"{case.label}: {msg}")
                for app in case_apps:
                    rows.append({**identity, "app": app, "mpps": None, "ratio_vs_l3fwd": None, "notes": msg,
                                 "valid": False, "invalid_reasons": [msg]})
                continue
            runs = {app: [] for app in case_apps}
            for round_no in range(a.rounds):  # apps interleaved, round after round
                for app in case_apps:
                    log(f"{case.label}: {app}, {a.seconds:g} s" + (f", round {round_no + 1}" if a.rounds > 1 else ""))
                    try:
                        row = run_app(a, app, case, run_dir, hz, round_no)
                    except Failure as e:
                        failures.append(str(e))
                        log(f"FAILED: {e}")
                        row = {"app": app, "mpps": None, "valid": False, "invalid_reasons": [f"failed: {e}"],
                               "notes": f"FAILED: {e}"}
                    row.update(identity, round=round_no + 1)
                    runs[app].append(row)
                    if row.get("mpps"):
                        extra = ""
                        if app in tracking_apps:
                            extra = (f", {row['new_flows_per_s'] / 1e6:.2f}M new flows/s, "
                                     f"created {row['created_per_packet']:.2f}/pkt")
                        log(f"  {row['mpps']:.2f} Mpps forwarded, {fmt(row.get('cycles_per_packet'), '.0f')} "
                            f"cycles/packet" + extra)
                        if not row["valid"]:
                            log(f"  INVALID: {'; '.join(row['invalid_reasons'])}")
                # This round's ratios (to l3fwd, to OVS) and cycles above testpmd io,
                # between the apps of this round only: what each target is judged on.
                compare([runs[app][round_no] for app in case_apps])
            # The rows: each app's median round, carrying every round; their ratios again,
            # between the medians.
            rows.extend(compare([median_run(runs[app]) for app in case_apps]))
        # The lb suite's micro-benchmarks, each when tools/bench built it.
        for wanted, run in ((a.maglev_bench, run_maglev), (a.memory_floor, run_memory_floor)):
            if a.suite != "lb" or not wanted:
                continue
            try:
                rows.extend(run(a))
            except (Failure, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
                failures.append(str(e))
                log(f"FAILED: {e}")
    finally:
        for proc in list(a.started):
            stop(proc, 20)

    print()
    print_table([r for r in rows if r.get("workload") not in ("table_build", "memory_floor")], hz, hz_source, perf_cycles_supported(),
                a.suite)
    if a.suite == "conntrack" or any(r["app"] in CT_APPS for r in rows):
        print_conntrack(rows)
    nat_heap_per_flow(rows)
    print_nat(rows)
    print_lb(rows)
    print_ovs(rows, a.suite)
    if a.suite == "router":
        print_router_targets(rows)
    print_invalid([r for r in rows if r.get("workload") not in ("table_build", "memory_floor")])
    for r in rows:
        if r.get("profile"):
            print(f"\nperf (cpu-clock) on {r['app']}'s worker, {r['case']}:\n{r['profile']}")
    if a.json:
        keys = ROW_KEYS
        # Conntrack and NAT rows: the same keys, then these (only where the row has them).
        ct_keys = ("mode", "workload", "capacity", "flows_active", "flows_created", "flows_evicted", "flows_expired",
                   "new_flows_per_s", "new_flows_per_cpu_s", "mpps_per_cpu_s", "created_per_packet",
                   "evicted_per_packet", "ct_established_per_packet",
                   "classified", "rule_hits", "sluice_drops", "memory_bytes", "bytes_per_flow",
                   "expected_bytes_per_flow", "bytes_per_active_flow", "entry_bytes_ipv4", "flow_states",
                   # sluice-nat
                   "conntrack_capacity", "nat_created", "nat_removed", "nat_no_port", "nat_no_room",
                   "translated_per_packet", "mapped_per_packet", "entry_bytes_nat_ipv4", "table_bytes_per_nat_flow",
                   "other_heap_bytes", "other_heap_bytes_per_nat_flow",
                   # sluice-lb, and the table builds
                   "lb_connections", "lb_active", "lb_no_backend", "dst_translated_per_packet", "lb_backends",
                   "backend_share_min", "backend_share_max", "table_size", "builds", "build_ms", "build_ms_first",
                   "build_ms_min", "build_ms_max", "pattern", "lines_per_packet", "region_mib", "hugepages",
                   # Open vSwitch, and Sluice against it
                   "window_seconds", "bytes_per_flow_method", "ovs_pool_mbufs", "ratio_vs_ovs_new_flows")
        out = []
        for r in rows:
            o = {k: r.get(k) for k in keys}
            o["cycles_method"] = ("PMD thread CPU time x TSC Hz / packets forwarded" if r["app"] in OVS_APPS else
                                  "TSC cycles / packets" if r.get("workload") == "memory_floor" else
                                  None if r.get("workload") == "table_build" else
                                  "worker thread CPU time x TSC Hz / packets forwarded")
            for k in ("ratio_vs_ovs", "ratio_vs_ovs_cycles", "ovs_ratio_valid"):
                if k in r:
                    o[k] = r[k]
            if "mode" in r:
                o.update({k: r[k] for k in ct_keys if k in r})
            out.append(o)
        write_json(a.json, out)
    return report_failures(failures)


if __name__ == "__main__":
    sys.exit(main())
