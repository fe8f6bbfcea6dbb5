#!/usr/bin/python3
"""tools/bench --afxdp: Sluice over net_af_xdp against Sluice over net_af_packet, on the
same veth pair and the same traffic; tools/bench prepares the machine and calls this.

Two namespaces joined only through Sluice ([parse, xconnect], one worker on lcore 1),
as in the integration tests:

  netns bxw: bxw0 10.98.0.1/24  <veth>  bxw1 (root ns, Sluice port west)
  netns bxe: bxe0 10.98.0.2/24  <veth>  bxe1 (root ns, Sluice port east)

Offloads off on every end (af_packet needs real frames; both drivers get the same). For
each round, Sluice runs on af_packet, then on af_xdp (DPDK 22.11's PMD: its XDP program
native on veth, the sockets in copy mode, as Sluice logs), and each time iperf3 sends,
west to east, for --seconds:

  tcp      one TCP stream: Gbit/s the east host received
  udp64    UDP with 18-byte payloads (64-byte frames), unlimited rate: Mpps the east
           host received (iperf3's packets - lost); the sender's kernel is the limit as
           much as Sluice, on both drivers alike

Per run also: Sluice's Mpps (packets it forwarded west -> east: east tx_packets over the
window), its worker's CPU share and cycles per packet (thread CPU time x TSC Hz / packets
it forwarded, both ways), and the stop's exit status (0: every mbuf returned or, on
af_xdp, accounted for). A run is invalid (honesty.py) when Sluice forwarded under 99% of
what it received or any of its drop counters grew (drops_total, and each port's
rx_nombuf, rx_missed, rx_errors, tx_errors); what the kernel drops around it (iperf3's
loss) is in the notes, not Sluice's to count. Each row is the median round (default 3
rounds); ratio_vs_af_packet is af_xdp's number over af_packet's in the same case, per
round in "rounds" and between the medians. --json FILE writes the rows in the suites' form.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

from common import Failure, free_tcp_port, log, stop, thread_cpu_ns, tsc_hz
from honesty import drop_deltas, invalid_reasons, median_run, running_rate, skew_packets, uncounted_loss, window_rates
from report import ROW_KEYS, fmt, print_invalid, print_rows, report_failures, write_json

NS = "bx"
DRIVERS = ("af_packet", "af_xdp")
WORKLOADS = ("tcp", "udp64")


def sh(*cmd, check=True, **kw):
    return subprocess.run(list(cmd), check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def ns(side, *cmd, **kw):
    return sh("ip", "netns", "exec", f"{NS}{side}", *cmd, **kw)


def topo_destroy():
    for side in "we":
        sh("ip", "netns", "del", f"{NS}{side}", check=False)
        sh("ip", "link", "del", f"{NS}{side}1", check=False)


def topo_create():
    topo_destroy()
    for n, side in ((1, "w"), (2, "e")):
        sh("ip", "netns", "add", f"{NS}{side}")
        sh("ip", "link", "add", f"{NS}{side}0", "type", "veth", "peer", "name", f"{NS}{side}1")
        sh("ip", "link", "set", f"{NS}{side}0", "netns", f"{NS}{side}")
        sh("sysctl", "-qw", f"net.ipv6.conf.{NS}{side}1.disable_ipv6=1")
        sh("ip", "link", "set", f"{NS}{side}1", "up")
        sh("ethtool", "-K", f"{NS}{side}1", "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off",
           check=False)
        ns(side, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        ns(side, "ip", "link", "set", "lo", "up")
        ns(side, "ip", "addr", "add", f"10.98.0.{n}/24", "dev", f"{NS}{side}0")
        ns(side, "ip", "link", "set", f"{NS}{side}0", "up")
        ns(side, "ethtool", "-K", f"{NS}{side}0", "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off",
           check=False)


def sluice_config(driver, prefix, http_port):
    devargs = {side: f"iface={NS}{side}1" + (",start_queue=0,queue_count=1" if driver == "af_xdp" else "")
               for side in "we"}
    return {
        "eal": {"lcores": "0-1", "memory_mb": 256, "file_prefix": prefix},
        "ports": [
            {"name": "west", "device": f"net_{driver}0", "devargs": devargs["w"],
             "pipeline": ["parse", {"stage": "xconnect", "peer": "east"}]},
            {"name": "east", "device": f"net_{driver}1", "devargs": devargs["e"],
             "pipeline": ["parse", {"stage": "xconnect", "peer": "west"}]},
        ],
        "workers": "auto",
        "control": {"http": {"address": "127.0.0.1", "port": http_port}},
        "logging": {"level": "info"},
    }


def stats(port):
    start = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        s = json.load(r)
    ports = {p["name"]: p for p in s["ports"]}
    drop_counters = {"drops_total": s["drops_total"]}
    for name, p in ports.items():
        for k in ("rx_nombuf", "rx_missed", "rx_errors", "tx_errors"):
            drop_counters[f"{name} {k}"] = p[k]
    return {"west_rx": ports["west"]["rx_packets"], "east_tx": ports["east"]["tx_packets"], "rx": sum(p["rx_packets"] for p in s["ports"]),
            "tx": sum(p["tx_packets"] for p in s["ports"]), "drops": s["drops_total"],
            "drop_counters": drop_counters, "read_seconds": time.monotonic() - start}


def iperf(workload, seconds):
    server = subprocess.Popen(["ip", "netns", "exec", f"{NS}e", "iperf3", "-s", "-1", "-B", "10.98.0.2", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "5201" not in ns("e", "ss", "-Hltn", check=False).stdout:
            if time.monotonic() > deadline:
                raise Failure("iperf3 server did not start")
            time.sleep(0.1)
        cmd = ["iperf3", "-c", "10.98.0.2", "-p", "5201", "-t", f"{seconds:g}", "-J"]
        if workload == "udp64":
            cmd += ["-u", "-l", "18", "-b", "0"]
        out = ns("w", "timeout", str(int(seconds) + 30), *cmd, check=False)
        try:
            result = json.loads(out.stdout)
        except ValueError as e:
            raise Failure(f"iperf3 {workload}: no JSON: {out.stderr.strip()[:300]}") from e
        if "error" in result:
            raise Failure(f"iperf3 {workload}: {result['error']}")
        end = result["end"]
        if workload == "tcp":
            return {"gbps": end["sum_received"]["bits_per_second"] / 1e9}
        got = end["sum"]["packets"] - end["sum"]["lost_packets"]
        return {"mpps": got / end["sum"]["seconds"] / 1e6, "lost_percent": end["sum"]["lost_percent"]}
    finally:
        try:
            server.wait(timeout=5)  # -1: it ends after one test
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_driver(a, driver, round_no, hz, run_dir):
    http_port = free_tcp_port()
    prefix = f"{a.prefix}-{driver}"
    cfg = os.path.join(run_dir, f"sluice-{driver}.json")
    with open(cfg, "w") as f:
        json.dump(sluice_config(driver, prefix, http_port), f, indent=2)
    log_path = os.path.join(run_dir, f"sluice-{driver}-{round_no + 1}.log")
    with open(log_path, "w") as out:
        proc = subprocess.Popen([a.sluice, "--config", cfg], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    rows = []
    try:
        deadline = time.monotonic() + a.start_timeout
        while True:
            try:
                stats(http_port)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise Failure(f"Sluice on {driver} did not start (see {log_path})")
                time.sleep(0.2)
        deadline = time.monotonic() + 15
        while ns("w", "ping", "-c", "1", "-W", "1", "10.98.0.2", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise Failure(f"no ping through Sluice on {driver} (see {log_path})")
        for workload in WORKLOADS:
            log(f"{workload}: sluice-{driver}, {a.seconds:g} s" + (f", round {round_no + 1}" if a.rounds > 1 else ""))
            t0, c0, cpu0 = time.monotonic(), stats(http_port), thread_cpu_ns(proc.pid)
            result = iperf(workload, a.seconds)
            t1, c1, cpu1 = time.monotonic(), stats(http_port), thread_cpu_ns(proc.pid)
            wall, packets, sent = t1 - t0, c1["rx"] - c0["rx"], c1["tx"] - c0["tx"]
            deltas = {tid: cpu1[tid] - cpu0.get(tid, 0) for tid in cpu1}
            worker_ns = max(deltas.values()) if deltas else 0
            drops = drop_deltas(c0, c1)
            rate, read_seconds = running_rate(packets, wall, worker_ns), c0["read_seconds"] + c1["read_seconds"]
            uncounted = uncounted_loss(packets, sent, drops.get("drops_total", 0), rate, read_seconds)
            reasons = invalid_reasons(packets, sent, drops, uncounted, skew_packets=skew_packets(rate, read_seconds))
            notes = [f"drops {c1['drops'] - c0['drops']}"]
            if reasons:
                notes.insert(0, "INVALID: " + "; ".join(reasons))
            if "lost_percent" in result:
                notes.append(f"iperf3 lost {result['lost_percent']:.1f}%")
            row = {"case": f"veth {workload}", "app": f"sluice-{driver}", "mode": "afxdp", "workload": workload,
                   "flows": 1, "frame_bytes": 64 if workload == "udp64" else 1514,
                   "gbps": result.get("gbps"), "host_mpps": result.get("mpps"),
                   **window_rates(packets, sent, wall, worker_ns, hz),
                   # The rate: what it forwarded west -> east (the cycles: both ways).
                   "mpps": (c1["east_tx"] - c0["east_tx"]) / wall / 1e6,
                   "rx_mpps": (c1["west_rx"] - c0["west_rx"]) / wall / 1e6,
                   "valid": not reasons, "invalid_reasons": reasons, "round": round_no + 1, "log": log_path}
            rows.append((row, notes))
            log("  " + (f"{row['gbps']:.2f} Gbit/s" if row["gbps"] else f"{row['host_mpps']:.3f} Mpps at the host")
                + f", Sluice forwarded {row['mpps']:.3f} Mpps west -> east, "
                  f"{row['cycles_per_packet'] or 0:.0f} cycles/packet" + (f"; INVALID: {'; '.join(reasons)}" if reasons else ""))
    finally:
        rc = stop(proc, 60)
    for row, notes in rows:
        row["exit_code"] = rc
        if rc != 0:
            notes.append(f"exit {rc} (see {log_path})")
        row["notes"] = "; ".join(notes)
    if rc != 0:
        raise Failure(f"Sluice on {driver} exited {rc} at its stop (see {log_path})")
    return [row for row, _ in rows]


def measure(row):
    return row["gbps"] if row["workload"] == "tcp" else row["host_mpps"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--sluice", required=True)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--start-timeout", type=float, default=60)
    a = p.parse_args()
    for tool in ("iperf3", "ethtool", "ip"):
        if not shutil.which(tool):
            sys.exit(f"tools/bench --afxdp needs {tool}")
    hz, _ = tsc_hz()
    run_dir = os.path.join(a.data_dir, "afxdp-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    log(f"logs and configs in {run_dir}")
    runs, failures = {}, []
    topo_create()
    try:
        for round_no in range(a.rounds):
            for driver in DRIVERS:
                try:
                    for row in run_driver(a, driver, round_no, hz, run_dir):
                        runs.setdefault((row["case"], row["app"]), []).append(row)
                except (Failure, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
                    failures.append(str(e))
                    log(f"FAILED: {e}")
    finally:
        topo_destroy()

    # Each round's ratios between that round's runs, then the median round of each app.
    for group in runs.values():
        for r in group:
            ratios_vs_af_packet(r, [b for g in runs.values() for b in g if b["round"] == r["round"]])
    rows = [median_run(group, measure, ".3f", "") for group in runs.values()]
    for r in rows:
        ratios_vs_af_packet(r, rows)

    print()
    print("Sluice [parse, xconnect] on one veth pair, iperf3 west -> east, one worker core; "
          "ratio = af_xdp / af_packet (throughput; cycles: af_packet's cycles/packet over af_xdp's)")
    lines = [("case", "app", "host rate", "Sluice Mpps", "cyc/pkt", "cpu", "ratio", "ratio cyc", "exit", "valid",
              "notes")]
    for r in sorted(rows, key=lambda r: (r["case"], r["app"])):
        rate = f"{r['gbps']:.2f} Gbit/s" if r["workload"] == "tcp" else f"{r['host_mpps']:.3f} Mpps"
        lines.append((r["case"], r["app"], rate, fmt(r["mpps"], ".3f"), fmt(r.get("cycles_per_packet"), ".0f"),
                      fmt(r["cpu"], ".0%"), fmt(r["ratio_vs_af_packet"], ".2f"),
                      fmt(r["ratio_vs_af_packet_cycles"], ".2f"), str(r["exit_code"]),
                      "ok" if r["valid"] else "INVALID", r["notes"]))
    print_rows("", lines, left_last=True)
    print("Sluice Mpps: packets it forwarded west -> east (east tx_packets delta) / wall time; cyc/pkt: worker "
          "thread CPU time\nx TSC Hz / packets it forwarded both ways; each row the median round (by host rate), "
          "the spread in the notes.")
    print_invalid(rows)
    if a.json:
        keys = ROW_KEYS + ("mode", "workload", "gbps", "host_mpps", "ratio_vs_af_packet", "ratio_vs_af_packet_cycles",
                           "exit_code")
        out = []
        for r in rows:
            o = {k: r.get(k) for k in keys}
            o["cycles_method"] = "worker thread CPU time x TSC Hz / packets forwarded"
            out.append(o)
        write_json(a.json, out)
    return report_failures(failures)


def ratios_vs_af_packet(r, rows):
    """af_xdp's measure and cycles over af_packet's in the same case, among `rows` (one
    round's runs, or the medians); valid when both rows are."""
    base = next((b for b in rows if b["case"] == r["case"] and b["app"] == "sluice-af_packet"), None)
    r["ratio_vs_af_packet"] = measure(r) / measure(base) if base and measure(base) and measure(r) else None
    r["ratio_vs_af_packet_cycles"] = (base["cycles_per_packet"] / r["cycles_per_packet"]
                                      if base and base.get("cycles_per_packet") and r.get("cycles_per_packet")
                                      else None)
    r["ratio_valid"] = bool(base and r.get("valid") and base.get("valid"))


if __name__ == "__main__":
    sys.exit(main())
