#!/usr/bin/python3
"""Runs the router benchmark; tools/bench prepares the machine and calls this.

For each case (frame size x flow count) it starts dpdk-testpmd (io forwarding, the
harness ceiling), l3fwd (LPM) and Sluice (route pipeline) one after another on the
same pcap, replayed by net_pcap with infinite_rx=1, and measures each for --seconds:

  Mpps          port 0 rx_packets delta / wall time (testpmd and l3fwd: DPDK telemetry
                /ethdev/stats; Sluice: its HTTP /stats)
  cycles/pkt    the worker thread's CPU time over the window (/proc/PID/task/TID/schedstat)
                x TSC Hz / packets. This VM exposes no PMU (perf stat cycles is "not
                supported"), and the thread's own CPU time leaves out what other tenants of
                the core took, so it is fairer than TSC Hz / pps on a shared machine.
  fwd           port 1 tx_packets delta / port 0 rx delta (1.00 = all forwarded)
  cpu           worker thread CPU time / wall time (below ~95%: the core was shared)
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

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_VERSION = "v1"                  # bump when genpcap.py changes what it writes
DUT_MAC = "02:70:63:61:70:00"       # net_pcap's MAC for the first pcap port of a process
MBUF_BYTES = 2432                   # one 2176-byte-data-room mbuf with its headers, rounded up
WORKING_MBUFS = 32768               # beyond the pcap's own: queues, caches, bursts in flight
APPS = ("testpmd", "l3fwd", "sluice")


def log(msg):
    print(f"\033[1m==>\033[0m {msg}", file=sys.stderr, flush=True)


def flows_label(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10}K"
    return str(n)


def parse_count(text):
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def tsc_hz():
    """The TSC rate the kernel calibrated (what rte_get_tsc_hz() finds on this VM)."""
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if "tsc: Detected" in line and "MHz" in line:
                return float(line.split("Detected")[1].split("MHz")[0]) * 1e6, "dmesg"
    except (OSError, subprocess.SubprocessError):
        pass
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1e6, "/proc/cpuinfo"
    return 0.0, "unknown"


def perf_cycles_supported():
    try:
        r = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "--", "true"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and "not supported" not in r.stderr and "cycles" in r.stderr


def hugepages_free_mb():
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
    return info.get("HugePages_Free", 0) * info.get("Hugepagesize", 2048) // 1024


def case_memory_mb(flows):
    return math.ceil((flows + WORKING_MBUFS) * MBUF_BYTES / 2**20 + flows * 16 / 2**20) + 160


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- measurement sources

class Telemetry:
    """Minimal client of DPDK's /var/run/dpdk/PREFIX/dpdk_telemetry.v2 socket."""

    def __init__(self, prefix):
        self.path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        self.sock = None

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.settimeout(2)
        try:
            sock.connect(self.path)
            json.loads(sock.recv(1 << 16))  # the greeting: version, pid, max_output_len
        except (OSError, ValueError):
            sock.close()
            return False
        self.sock = sock
        return True

    def query(self, command):
        self.sock.send(command.encode())
        return json.loads(self.sock.recv(1 << 20))

    def counters(self):
        before = time.monotonic()
        rx = self.query("/ethdev/stats,0")["/ethdev/stats"]
        when = (before + time.monotonic()) / 2  # the rate comes from rx: time that query alone
        tx = self.query("/ethdev/stats,1")["/ethdev/stats"]
        return {"rx": rx["ipackets"], "tx": tx["opackets"], "rx_nombuf": rx["rx_nombuf"], "t": when}

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None


class SluiceStats:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"

    def connect(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def counters(self):
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            s = json.load(r)
        ports = {p["name"]: p for p in s["ports"]}
        lcores = s["lcores"]
        return {"rx": ports["west"]["rx_packets"], "tx": ports["east"]["tx_packets"],
                "rx_nombuf": ports["west"]["rx_nombuf"],
                "drops_total": s["drops_total"],
                "drops": {k: v for k, v in s["drops"].items() if v},
                "busy_cycles": sum(l["busy_cycles"] for l in lcores),
                "lcore_rx": sum(l["rx_packets"] for l in lcores)}

    def close(self):
        pass


def thread_cpu_ns(pid):
    """{tid: nanoseconds on CPU} for every thread of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


# ---------------------------------------------------------------- the three apps

def eal_common(prefix, vdev_pcap):
    return ["-n", "1", "--no-pci", "--file-prefix", prefix, "--huge-unlink",
            "--vdev", f"net_pcap0,rx_pcap={vdev_pcap},infinite_rx=1", "--vdev", "net_null0,no-rx=1"]


def testpmd_cmd(a, pcap, flows, run_dir):
    cmd = ["dpdk-testpmd", "-l", f"{a.main_lcore},{a.worker_lcore}", "--main-lcore", str(a.main_lcore)]
    cmd += eal_common(a.prefix + "-tp", pcap)
    cmd += ["--", "--forward-mode=io", "--nb-cores=1", "--rxq=1", "--txq=1", "--burst=32",
            f"--total-num-mbufs={flows + WORKING_MBUFS}",
            "--stats-period=3600"]  # non-interactive without waiting on stdin
    return cmd, {}, Telemetry(a.prefix + "-tp")


def l3fwd_cmd(a, pcap, flows, run_dir):
    # One EAL lcore: l3fwd gives every lcore a TX queue on every port, and a net_pcap
    # port with one rx_pcap has exactly one TX queue. Its main lcore is the worker.
    cmd = [a.l3fwd, "-l", str(a.worker_lcore)] + eal_common(a.prefix + "-l3", pcap)
    cmd += ["--", "-p", "0x3", "--lookup=lpm", "--parse-ptype",
            f"--config=(0,0,{a.worker_lcore}),(1,0,{a.worker_lcore})"]
    env = {"BENCH_MIN_MBUFS": str(flows + WORKING_MBUFS)}  # read by tools/bench's patch of main.c
    return cmd, env, Telemetry(a.prefix + "-l3")


def sluice_cmd(a, pcap, flows, run_dir):
    http_port = free_tcp_port()
    config = {
        "eal": {"lcores": f"{a.main_lcore},{a.worker_lcore}", "main_lcore": a.main_lcore,
                "memory_mb": case_memory_mb(flows), "file_prefix": a.prefix + "-sl",
                "extra_args": ["--huge-unlink", "-n", "1"]},
        "ports": [
            {"name": "west", "device": "net_pcap0", "devargs": f"rx_pcap={pcap},infinite_rx=1",
             "rss": "off", "ipv4": ["192.168.0.1/24"], "pipeline": ["parse", "route"]},
            {"name": "east", "device": "net_null0", "devargs": "no-rx=1",
             "rss": "off", "ipv4": ["192.168.1.1/24"], "pipeline": ["parse", "route"]},
        ],
        # The same destinations l3fwd's default table sends to port 1, via a gateway whose
        # MAC is configured, so no ARP is ever needed.
        "routes": [{"prefix": "198.18.1.0/24", "via": "192.168.1.2"}],
        "neighbours": [{"address": "192.168.1.2", "mac": "02:00:00:00:00:01"}],
        "mempool": {"mbufs": flows + WORKING_MBUFS},
        "control": {"http": {"address": "127.0.0.1", "port": http_port}},
        "logging": {"level": "info"},
    }
    path = os.path.join(run_dir, f"sluice-{flows}.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return [a.sluice, "--config", path], {}, SluiceStats(http_port)


COMMANDS = {"testpmd": testpmd_cmd, "l3fwd": l3fwd_cmd, "sluice": sluice_cmd}


class Failure(Exception):
    pass


def stop(proc, timeout=60):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def sample(source, pid):
    """Counters, the time they were read (midway through the query) and thread CPU times."""
    before = time.monotonic()
    counters = source.counters()
    return counters.get("t", (before + time.monotonic()) / 2), counters, thread_cpu_ns(pid)


def run_app(a, app, pcap, flows, frame, run_dir, hz, round_no=0):
    cmd, env, source = COMMANDS[app](a, pcap, flows, run_dir)
    log_path = os.path.join(run_dir, f"{app}-{frame}B-{flows_label(flows)}-{round_no + 1}.log")
    with open(log_path, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **env})
    a.started.append(proc)
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
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"{app} moved no packets (see {log_path})")
            tx = source.counters()["tx"]
            if first is None:
                first = tx
            elif tx - first > 1000:
                break
            time.sleep(0.2)
        time.sleep(a.warmup)
        t0, c0, cpu0 = sample(source, proc.pid)
        time.sleep(a.seconds)
        t1, c1, cpu1 = sample(source, proc.pid)
        if a.profile and app == "sluice":
            row["profile"] = profile(proc.pid, cpu0, cpu1, a, run_dir, frame, flows)
    except (OSError, ValueError, KeyError) as e:
        raise Failure(f"{app}: reading its counters failed: {e} (see {log_path})") from e
    finally:
        source.close()
        rc = stop(proc)
        if proc in a.started:
            a.started.remove(proc)

    wall = t1 - t0
    packets = c1["rx"] - c0["rx"]
    if packets <= 0:
        raise Failure(f"{app} moved 0 packets in the window (see {log_path})")
    deltas = {tid: cpu1[tid] - cpu0.get(tid, 0) for tid in cpu1}
    worker_tid, worker_ns = max(deltas.items(), key=lambda kv: kv[1]) if deltas else (0, 0)
    row.update(mpps=packets / wall / 1e6,
               cycles_per_packet=worker_ns * 1e-9 * hz / packets if hz else None,
               forwarded=(c1["tx"] - c0["tx"]) / packets,
               cpu=worker_ns * 1e-9 / wall,
               exit_code=rc, log=log_path)
    notes = []
    if app == "sluice":
        drops = c1["drops_total"] - c0["drops_total"]
        lcore_rx = c1["lcore_rx"] - c0["lcore_rx"]
        row["sluice_busy_cycles_per_packet"] = (c1["busy_cycles"] - c0["busy_cycles"]) / lcore_rx if lcore_rx else None
        row["sluice_drops"] = drops
        # Drops (not_for_us above all) would make the comparison unfair: always shown.
        notes.append(f"drops {drops / packets:.2%}: {c1['drops']}" if drops else "drops 0")
        if row["sluice_busy_cycles_per_packet"]:
            notes.append(f"own busy {row['sluice_busy_cycles_per_packet']:.0f} cyc/pkt")
        if rc not in (0, None):
            notes.append(f"exit {rc}")
    if c1["rx_nombuf"] > c0["rx_nombuf"]:
        notes.append("rx_nombuf")
    if row["forwarded"] < 0.99:
        notes.append(f"only {row['forwarded']:.1%} forwarded")
    row["notes"] = "; ".join(notes)
    return row


def profile(pid, cpu0, cpu1, a, run_dir, frame, flows):
    """perf record (cpu-clock: no PMU here) on the worker thread, after the measurement."""
    deltas = {tid: cpu1[tid] - cpu0.get(tid, 0) for tid in cpu1}
    tid = max(deltas, key=deltas.get)
    data = os.path.join(run_dir, f"perf-sluice-{frame}B-{flows_label(flows)}.data")
    rec = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-g", "-t", str(tid),
                          "-o", data, "--", "sleep", str(a.seconds)], capture_output=True, text=True)
    if rec.returncode != 0:
        return f"perf record failed: {rec.stderr.strip()[:200]}"
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                          "--percent-limit", "1", "--sort", "dso,symbol"], capture_output=True, text=True)
    lines = [l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
    return "\n".join(lines[:25])


def median_run(rows):
    """With --rounds N: the run with the median Mpps, whole, so its other columns match it."""
    good = sorted((r for r in rows if r.get("mpps")), key=lambda r: r["mpps"])
    if not good:
        return rows[0]
    if len(rows) == 1:
        return good[0]
    median = dict(good[(len(good) - 1) // 2])
    spread = f"median of {len(good)}: {good[0]['mpps']:.2f}..{good[-1]['mpps']:.2f} Mpps"
    if len(good) < len(rows):
        spread += f", {len(rows) - len(good)} failed"
    median["notes"] = "; ".join(x for x in (spread, median.get("notes")) if x)
    return median


# ---------------------------------------------------------------- output

def fmt(value, spec, empty="-"):
    return empty if value is None else format(value, spec)


def print_table(rows, hz, hz_source, pmu):
    head = ("case", "app", "Mpps", "cyc/pkt", "vs l3fwd", "by cycles", "fwd", "cpu", "notes")
    lines = [head]
    for r in rows:
        lines.append((r["case"], r["app"], fmt(r.get("mpps"), ".2f"), fmt(r.get("cycles_per_packet"), ".0f"),
                      fmt(r.get("ratio_vs_l3fwd"), ".2f", "-") + ("x" if r.get("ratio_vs_l3fwd") is not None else ""),
                      fmt(r.get("ratio_vs_l3fwd_cycles"), ".2f", "-") +
                      ("x" if r.get("ratio_vs_l3fwd_cycles") is not None else ""),
                      fmt(r.get("forwarded"), ".2f"), fmt(r.get("cpu"), ".0%"), r.get("notes", "")))
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
    print(f"\ncyc/pkt: worker thread CPU time x TSC {hz / 1e6:.0f} MHz ({hz_source}) / packets; {why}.\n"
          "Sluice's own busy cycles per packet (lcores[] in /stats) are in the notes: TSC cycles of busy polls, "
          "which count time the thread was preempted.\nvs l3fwd: Mpps / l3fwd's Mpps in the same case (the target: Sluice >= 1.0x). "
          "by cycles: l3fwd's cyc/pkt / this app's,\nthe same ratio without the time other tenants took from the core. "
          "fwd: port 1 tx / port 0 rx. cpu: worker thread CPU time / wall time.")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=1, help="run the apps N times per case, interleaved; report medians")
    p.add_argument("--flows", default="1,4K,1M")
    p.add_argument("--frames", default="64,1500")
    p.add_argument("--apps", default=",".join(APPS))
    p.add_argument("--json")
    p.add_argument("--profile", action="store_true", help="perf record Sluice's worker after each window")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--sluice", required=True)
    p.add_argument("--l3fwd", required=True)
    p.add_argument("--main-lcore", type=int, default=0)
    p.add_argument("--worker-lcore", type=int, default=1)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--start-timeout", type=float, default=120)
    a = p.parse_args()
    a.started = []
    flows_list = [parse_count(x) for x in a.flows.split(",") if x]
    frames = [int(x) for x in a.frames.split(",") if x]
    apps = [x for x in a.apps.split(",") if x]
    for app in apps:
        if app not in APPS:
            sys.exit(f"unknown app {app} (known: {', '.join(APPS)})")
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
        for frame in frames:
            for flows in flows_list:
                case = f"{frame}B/{flows_label(flows)} flows"
                pcap = os.path.join(a.data_dir, f"udp4-{GEN_VERSION}-{flows}-{frame}B.pcap")
                if not os.path.exists(pcap):
                    log(f"writing {pcap}")
                    subprocess.run([sys.executable, os.path.join(HERE, "genpcap.py"), pcap + ".tmp", str(flows),
                                    str(frame), DUT_MAC], check=True)
                    os.rename(pcap + ".tmp", pcap)
                # The previous app's pages may still be on their way back.
                need, deadline = case_memory_mb(flows), time.monotonic() + 15
                while hugepages_free_mb() < need and time.monotonic() < deadline:
                    time.sleep(0.5)
                free = hugepages_free_mb()
                if free < need:
                    msg = f"skipped: needs ~{need} MiB of free hugepages, {free} MiB free"
                    log(f"{case}: {msg}")
                    for app in apps:
                        rows.append({"case": case, "app": app, "flows": flows, "frame_bytes": frame, "mpps": None,
                                     "ratio_vs_l3fwd": None, "notes": msg})
                    continue
                runs = {app: [] for app in apps}
                for round_no in range(a.rounds):  # apps interleaved, round after round
                    for app in apps:
                        log(f"{case}: {app}, {a.seconds:g} s" + (f", round {round_no + 1}" if a.rounds > 1 else ""))
                        try:
                            row = run_app(a, app, pcap, flows, frame, run_dir, hz, round_no)
                        except Failure as e:
                            failures.append(str(e))
                            log(f"FAILED: {e}")
                            row = {"app": app, "mpps": None, "notes": f"FAILED: {e}"}
                        row.update(case=case, flows=flows, frame_bytes=frame)
                        runs[app].append(row)
                        if row.get("mpps"):
                            log(f"  {row['mpps']:.2f} Mpps, {fmt(row.get('cycles_per_packet'), '.0f')} cycles/packet")
                case_rows = [median_run(runs[app]) for app in apps]
                base = next((r for r in case_rows if r["app"] == "l3fwd" and r.get("mpps")), None)
                for r in case_rows:
                    r["ratio_vs_l3fwd"] = r["mpps"] / base["mpps"] if base and r.get("mpps") else None
                    # The same ratio from CPU time: packets per CPU second, blind to time the
                    # core spent on other tenants' work.
                    mine, theirs = r.get("cycles_per_packet"), base and base.get("cycles_per_packet")
                    r["ratio_vs_l3fwd_cycles"] = theirs / mine if mine and theirs else None
                rows.extend(case_rows)
    finally:
        for proc in list(a.started):
            stop(proc, 20)

    print()
    print_table(rows, hz, hz_source, perf_cycles_supported())
    for r in rows:
        if r.get("profile"):
            print(f"\nperf (cpu-clock) on Sluice's worker, {r['case']}:\n{r['profile']}")
    if a.json:
        keys = ("case", "app", "flows", "frame_bytes", "mpps", "ratio_vs_l3fwd", "cycles_per_packet",
                "ratio_vs_l3fwd_cycles", "forwarded", "cpu", "notes")
        out = [{k: r.get(k) for k in keys} for r in rows]
        for o in out:
            o["cycles_method"] = "worker thread CPU time x TSC Hz / packets"
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        log(f"wrote {a.json}")
    if failures:
        log(f"{len(failures)} harness failure(s):")
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
