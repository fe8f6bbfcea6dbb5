#!/usr/bin/python3
"""Runs the router, conntrack and NAT benchmarks; tools/bench prepares the machine and calls this.

For each case (frame size x flow count) it starts dpdk-testpmd (io forwarding, the
harness ceiling), l3fwd (LPM) and Sluice (route pipeline) one after another on the
same pcap, replayed by net_pcap with infinite_rx=1, and measures each for --seconds.
--suite conntrack adds Sluice with the conntrack stage (sluice-ct: tracking only;
sluice-fw: a 10-rule firewall, new flows classified by rte_acl), the table sized to
the case, and a "new flows" case (--churn: a pcap with many more flows than the
table holds, so every packet misses, is inserted and evicts an older flow):

  Mpps          port 0 rx_packets delta / wall time (testpmd and l3fwd: DPDK telemetry
                /ethdev/stats; Sluice: its HTTP /stats)
  cycles/pkt    the worker thread's CPU time over the window (/proc/PID/task/TID/schedstat)
                x TSC Hz / packets. This VM exposes no PMU (perf stat cycles is "not
                supported"), and the thread's own CPU time leaves out what other tenants of
                the core took, so it is fairer than TSC Hz / pps on a shared machine.
  fwd           port 1 tx_packets delta / port 0 rx delta (1.00 = all forwarded)
  cpu           worker thread CPU time / wall time (below ~95%: the core was shared)

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

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_VERSION = "v1"                  # bump when genpcap.py changes what it writes
DUT_MAC = "02:70:63:61:70:00"       # net_pcap's MAC for the first pcap port of a process
MBUF_BYTES = 2432                   # one 2176-byte-data-room mbuf with its headers, rounded up
WORKING_MBUFS = 32768               # beyond the pcap's own: queues, caches, bursts in flight
APPS = ("testpmd", "l3fwd", "sluice", "sluice-ct", "sluice-fw", "sluice-nat", "ovs-ct", "ovs-nat")
ROUTER_APPS = ("testpmd", "l3fwd", "sluice")     # the router suite's default
CT_APPS = ("sluice-ct", "sluice-fw")             # Sluice with the conntrack stage
NAT_APPS = ("sluice-nat",)                       # conntrack + nat: pairs beside the plain entries
TRACKING_APPS = CT_APPS + NAT_APPS               # Sluice apps with a flow table
SLUICE_APPS = ("sluice",) + TRACKING_APPS
OVS_APPS = ("ovs-ct", "ovs-nat")                 # Open vSwitch's userspace datapath
OVS_PEER = {"sluice-ct": "ovs-ct", "sluice-fw": "ovs-ct", "sluice-nat": "ovs-nat"}  # what a user would pick instead
FLOW_ENTRY_BYTES = 64               # lib/flow: one IPv4 FlowEntry4, one cache line
FLOW_BUCKET_BYTES = 64              # lib/flow: FlowBucket, 8 slots
NAT_PAIR_BYTES = 128                # lib/flow: NatPair4, an entry and its NatExt4
CT_MAX_CAPACITY = 1 << 26           # conntrack.capacity's upper bound


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


def ct_capacity(flows):
    """The table for a case: the next power of two >= 2 x flows, at least 1024."""
    capacity = 1024
    while capacity < 2 * flows and capacity < CT_MAX_CAPACITY:
        capacity <<= 1
    return capacity


def ct_buckets(capacity, pairs=0):
    """FlowTable::create: one key a plain entry, two a NAT pair; keys/4 buckets, rounded
    up to a power of two, at least 8."""
    buckets = 8
    while buckets < (capacity + 2 * pairs) // 4:
        buckets <<= 1
    return buckets


def ct_table_bytes(capacity, pairs=0):
    return capacity * FLOW_ENTRY_BYTES + pairs * NAT_PAIR_BYTES + ct_buckets(capacity, pairs) * FLOW_BUCKET_BYTES


def ct_memory_mb(capacity, pairs=0):
    # The flow table's rte_zmalloc blocks, plus room for the rte_acl tries, the RCU
    # state, the NAT context and malloc's own headers.
    return math.ceil(ct_table_bytes(capacity, pairs) / 2**20) + 16


def nat_pair_bytes(capacity, pairs):
    """What one NAT flow reserves: its pair and its two keys' share of the bucket index."""
    return NAT_PAIR_BYTES + ct_buckets(capacity, pairs) * FLOW_BUCKET_BYTES * 2 / (capacity + 2 * pairs)


# Open vSwitch sizes a port's mbuf pool (other_config:per-port-memory=true, OVS 3.1's
# dpdk_calculate_mbufs) as n_rxq x n_rxq_desc + n_txq x n_txq_desc + n_rxq x 32 + 16384,
# n_rxq_desc at most 4096; the shared pool has a fixed 262,144. net_pcap's infinite_rx
# loads the whole pcap into that pool, so the bench asks for as many RX queues as the
# pcap needs 4096-mbuf slices: OVS sizes the pool by the request, then configures the one
# RX queue a net_pcap port has (the PMD polls rx queue 0 only; its log says so).
OVS_RXQ_DESC = 4096
OVS_MBUF_BYTES = 3008               # mempool element for MTU 1500: 2880 B + header and trailer


def ovs_rxq_request(flows):
    return max(1, math.ceil((flows + WORKING_MBUFS) / OVS_RXQ_DESC))


def ovs_mbufs(flows):
    n_rxq = ovs_rxq_request(flows)
    # Port 0's pool (n_txq: one PMD thread + the main thread), then port 1's (one queue each).
    return (n_rxq * OVS_RXQ_DESC + 2 * 2048 + n_rxq * 32 + 16384) + (2048 + 2 * 2048 + 32 + 16384)


def ovs_memory_mb(flows):
    """dpdk-socket-mem for the case: both ports' pools plus DPDK's own heap."""
    return math.ceil(ovs_mbufs(flows) * OVS_MBUF_BYTES / 2**20) + 256


class Case:
    """One pcap and what the conntrack apps make of it: `established` (the pcap's flows,
    replayed forever, all in a table twice their number) or `new` (more flows than the
    table holds: every packet a miss and an insert)."""

    def __init__(self, frame, flows, workload="established", capacity=None):
        self.frame, self.flows, self.workload = frame, flows, workload
        self.capacity = capacity or ct_capacity(flows)
        if workload == "established":
            self.label = f"{frame}B/{flows_label(flows)} flows"
            self.tag = f"{frame}B-{flows_label(flows)}"
        else:
            self.label = f"{frame}B/{flows_label(flows)} new, cap {flows_label(self.capacity)}"
            self.tag = f"{frame}B-{flows_label(flows)}-new{flows_label(self.capacity)}"
        self.pcap = None

    def memory_mb(self, apps):
        """Hugepages the hungriest app of the case needs."""
        need = 0
        for app in apps:
            if app in OVS_APPS:
                need = max(need, ovs_memory_mb(self.flows))
            else:
                need = max(need, case_memory_mb(self.flows) + app_table_mb(app, self.capacity))
        return need


def app_table_mb(app, capacity):
    """A Sluice app's flow table: conntrack's, and NAT pairs as many again for sluice-nat,
    whose NAT context also reserves an endpoint-independent mapping table of nat.capacity
    (a 28 B mapping and two rte_hash entries, about 112 B a flow in all)."""
    if app in NAT_APPS:
        return ct_memory_mb(capacity, capacity) + math.ceil(capacity * 112 / 2**20)
    return ct_memory_mb(capacity) if app in CT_APPS else 0


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
    def __init__(self, port, telemetry_prefix=None):
        self.url = f"http://127.0.0.1:{port}"
        self.telemetry_prefix = telemetry_prefix

    def heap(self):
        """DPDK's own account of the hugepage heap (telemetry): bytes allocated, and the
        bytes of them that are mempools. None when telemetry does not answer."""
        if not self.telemetry_prefix:
            return None
        t = Telemetry(self.telemetry_prefix)
        if not t.connect():
            return None
        try:
            alloc = t.query("/eal/heap_info,0")["/eal/heap_info"]["Alloc_size"]
            pools = 0
            for name in t.query("/mempool/list")["/mempool/list"]:
                info = t.query(f"/mempool/info,{name}")["/mempool/info"]
                pools += info["size"] * (info["header_size"] + info["elt_size"] + info["trailer_size"])
            return {"alloc": alloc, "mempools": pools}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            t.close()

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
        out = {"rx": ports["west"]["rx_packets"], "tx": ports["east"]["tx_packets"],
               "rx_nombuf": ports["west"]["rx_nombuf"],
               "drops_total": s["drops_total"],
               "drops": {k: v for k, v in s["drops"].items() if v},
               "busy_cycles": sum(l["busy_cycles"] for l in lcores),
               "lcore_rx": sum(l["rx_packets"] for l in lcores)}
        if "flows" in s:
            f = s["flows"]
            out["flows"] = {k: f[k] for k in ("active", "max", "created", "expired", "evicted", "memory_bytes")}
            out["flows"]["entry_bytes_ipv4"] = f["entry_bytes"]["ipv4"]
            out["flows"]["entry_bytes_nat_ipv4"] = f["entry_bytes"].get("nat_ipv4")
            out["flows"]["max_ipv4"] = sum(l["max_ipv4"] for l in f["lcores"])
            out["flows"]["max_ipv6"] = sum(l["max_ipv6"] for l in f["lcores"])
            out["flows"]["states"] = {k: v for k, v in f["states"].items() if v}
            stage = next((st for st in s["stages"] if st["port"] == "west" and st["stage"] == "conntrack"), {})
            out["ct"] = stage.get("counters", {})
            out["firewall_hits"] = sum(r["packets"] for r in s.get("firewall", {}).get("rules", []))
        if "nat" in s:
            n = s["nat"]
            out["nat"] = {k: n[k] for k in ("active", "max", "created", "removed", "no_port", "no_room")}
            for name in ("nat", "nat_src"):
                stage = next((st for st in s["stages"] if st["port"] == "west" and st["stage"] == name), {})
                out[name + "_stage"] = stage.get("counters", {})
        return out

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


def thread_name(pid, tid):
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


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
    if app == "sluice-fw":
        config["firewall"] = {"default_policy": "drop", "rules": FIREWALL_RULES}
    name = f"sluice-{case.flows}.json" if app == "sluice" else f"{app}-{case.tag}.json"
    path = os.path.join(run_dir, name)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return [a.sluice, "--config", path], {}, SluiceStats(http_port, a.prefix + "-sl" if app in NAT_APPS else None)


# ---------------------------------------------------------------- Open vSwitch

OVS_VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"  # Debian's openvswitch-switch-dpdk
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
OVS_NAT_ADDRESS = "192.168.1.1"     # what sluice-nat masquerades to: its east port's address
# Every IPv4 packet from port 1 through conntrack (committed: a connection each 5-tuple),
# then out of port 2. The bridge is fail-mode secure: nothing else is forwarded.
OVS_FLOWS = {
    "ovs-ct": "table=0,priority=10,ip,in_port=1,actions=ct(commit),output:2",
    "ovs-nat": f"table=0,priority=10,ip,in_port=1,actions=ct(commit,nat(src={OVS_NAT_ADDRESS})),output:2",
}


def process_rss_bytes(pid):
    """VmRSS: the heap OVS's connections live in (hugepages are not in it)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def parse_dump_ports(text):
    """`ovs-ofctl dump-ports` -> {port number: {"rx": packets, "rx_drop": n, "tx": packets}}."""
    ports, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("port "):
            name, rest = line[5:].split(":", 1)
            current = None if name.strip() == "LOCAL" else int(name)
            if current is not None:
                fields = dict(kv.strip().split("=", 1) for kv in rest.replace("rx ", "", 1).split(","))
                ports[current] = {"rx": int(fields["pkts"]), "rx_drop": int(fields["drop"])}
        elif line.startswith("tx ") and current is not None:
            fields = dict(kv.strip().split("=", 1) for kv in line[3:].split(","))
            ports[current]["tx"] = int(fields["pkts"])
    return ports


class Ovs:
    """ovsdb-server and ovs-vswitchd-dpdk with a database, sockets and logs of their own
    (OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR = build-bench/ovs/APP-CASE); also the source of the
    counters. Started by ovs_cmd, stopped by stop() (ovs-appctl exit, then the database)."""

    def __init__(self, a, app, case, run_dir):
        self.a, self.app, self.case = a, app, case
        self.dir = os.path.join(os.path.dirname(os.path.abspath(a.data_dir)), "ovs", f"{app}-{case.tag}")
        self.env = {**os.environ, "OVS_RUNDIR": self.dir, "OVS_DBDIR": self.dir, "OVS_LOGDIR": self.dir}
        self.ctl = os.path.join(self.dir, "ovs-vswitchd.ctl")
        self.db_ctl = os.path.join(self.dir, "ovsdb-server.ctl")
        self.db = None
        self.pid = None
        self.rss0 = None
        self.mempool_mbufs = None
        self.log_path = os.path.join(self.dir, "ovs-vswitchd.log")

    def run(self, *args, timeout=30):
        r = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise Failure(f"{' '.join(args[:3])}: {(r.stderr or r.stdout).strip()[:300]} (see {self.dir})")
        return r.stdout

    def vsctl(self, *args):
        return self.run("ovs-vsctl", "--no-wait", *args)

    def appctl(self, *args):
        return self.run("ovs-appctl", "-t", self.ctl, *args)

    def start_database(self):
        subprocess.run(["rm", "-rf", self.dir], check=True)
        os.makedirs(self.dir)
        db_file = os.path.join(self.dir, "conf.db")
        self.run("ovsdb-tool", "create", db_file, OVS_SCHEMA)
        log = open(os.path.join(self.dir, "ovsdb-server.out"), "w")
        self.db = subprocess.Popen(
            ["ovsdb-server", db_file, f"--remote=punix:{self.dir}/db.sock", f"--unixctl={self.db_ctl}",
             f"--pidfile={self.dir}/ovsdb-server.pid", f"--log-file={self.dir}/ovsdb-server.log"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        self.a.started.append(self.db)
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(self.dir, "db.sock")):
            if self.db.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"ovsdb-server did not start (see {self.dir}/ovsdb-server.log)")
            time.sleep(0.1)

    def configure(self):
        a, case = self.a, self.case
        eal = (f"-n 1 --no-pci --file-prefix {a.prefix}-ovs "
               f"--vdev net_pcap0,rx_pcap={case.pcap},infinite_rx=1 --vdev net_null0,no-rx=1")
        self.vsctl("init")
        # DPDK's main lcore on the main core, one PMD thread on the worker core; each port
        # its own mbuf pool, sized by the RX queues asked for (see ovs_rxq_request).
        self.vsctl("set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                   f"other_config:dpdk-lcore-mask={1 << a.main_lcore:#x}",
                   f"other_config:pmd-cpu-mask={1 << a.worker_lcore:#x}",
                   f"other_config:dpdk-socket-mem={ovs_memory_mb(case.flows)}",
                   "other_config:per-port-memory=true", f"other_config:dpdk-extra={eal}")
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail-mode=secure",
                   "--", "add-port", "br0", "p0", "--", "set", "Interface", "p0", "type=dpdk",
                   "options:dpdk-devargs=net_pcap0", f"options:n_rxq={ovs_rxq_request(case.flows)}",
                   f"options:n_rxq_desc={OVS_RXQ_DESC}", "ofport_request=1",
                   "--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=dpdk",
                   "options:dpdk-devargs=net_null0", "options:n_rxq=1", "ofport_request=2")

    def connect(self):
        """Ready when both ports are in the bridge with a pool that holds the pcap; then the
        flow goes in (in the new-sessions case, when the window opens: see ovs_first_pass)."""
        if not os.path.exists(self.ctl):
            return False
        try:
            ports = parse_dump_ports(self.run("ovs-ofctl", "dump-ports", "br0", timeout=5))
        except (Failure, subprocess.TimeoutExpired, ValueError, KeyError):
            return False
        if 1 not in ports or 2 not in ports:
            return False
        if self.rss0 is None:
            info = self.appctl("netdev-dpdk/get-mempool-info", "p0")
            sizes = [int(l.split("=")[1]) for l in info.splitlines() if l.strip().startswith("size=")]
            self.mempool_mbufs = sizes[0] if sizes else None
            if self.mempool_mbufs is not None and self.mempool_mbufs < self.case.flows:
                raise Failure(f"OVS's pool for p0 has {self.mempool_mbufs} mbufs, fewer than the pcap's "
                              f"{self.case.flows} frames (see {self.log_path})")
            # Conntrack's default limit (3,000,000 in 3.1) above the largest case, said aloud.
            self.appctl("dpctl/ct-set-maxconns", str(max(3000000, 2 * self.case.flows)))
            self.rss0 = process_rss_bytes(self.pid)
            if self.case.workload == "established":
                self.add_flow()
        return True

    def add_flow(self):
        self.run("ovs-ofctl", "add-flow", "br0", OVS_FLOWS[self.app])

    def conns(self):
        return int(self.appctl("dpctl/ct-get-nconns").strip())

    def counters(self):
        before = time.monotonic()
        ports = parse_dump_ports(self.run("ovs-ofctl", "dump-ports", "br0", timeout=5))
        when = (before + time.monotonic()) / 2
        return {"rx": ports[1]["rx"], "tx": ports[2]["tx"], "rx_nombuf": ports[1]["rx_drop"], "t": when,
                "conns": self.conns(), "rss": process_rss_bytes(self.pid)}

    def close(self):
        pass

    def stop(self, proc):
        """ovs-appctl exit (the PMD thread released, the ports closed), then the database."""
        if proc.poll() is None:
            try:
                self.appctl("exit")
                proc.wait(30)
            except (Failure, subprocess.SubprocessError):
                pass
        rc = stop(proc, 30)
        if self.db is not None:
            if self.db.poll() is None:
                subprocess.run(["ovs-appctl", "-t", self.db_ctl, "exit"], env=self.env, capture_output=True,
                               timeout=10)
            stop(self.db, 10)
            if self.db in self.a.started:
                self.a.started.remove(self.db)
        return rc


def ovs_cmd(a, app, case, run_dir):
    ovs = Ovs(a, app, case, run_dir)
    ovs.start_database()
    try:
        ovs.configure()
    except Failure:
        ovs.stop(subprocess.Popen(["true"]))
        raise
    cmd = [OVS_VSWITCHD, f"unix:{ovs.dir}/db.sock", f"--unixctl={ovs.ctl}", f"--pidfile={ovs.dir}/ovs-vswitchd.pid",
           f"--log-file={ovs.log_path}"]
    return cmd, ovs.env, ovs


COMMANDS = {"testpmd": testpmd_cmd, "l3fwd": l3fwd_cmd, "sluice": sluice_cmd, "sluice-ct": sluice_cmd,
            "sluice-fw": sluice_cmd, "sluice-nat": sluice_cmd, "ovs-ct": ovs_cmd, "ovs-nat": ovs_cmd}


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
    packets = c1["rx"] - c0["rx"]
    if packets <= 0:
        raise Failure(f"{app} moved 0 packets in the window (see {log_path})")
    deltas = {tid: cpu1[tid] - cpu0.get(tid, 0) for tid in cpu1}
    if app in OVS_APPS:
        # The PMD thread by name, not the busiest: creating connections, OVS's other
        # threads (urcu's deferred frees, ct_clean) may outrun it.
        deltas = {tid: ns for tid, ns in deltas.items() if thread_name(proc.pid, tid).startswith("pmd")} or deltas
    worker_tid, worker_ns = max(deltas.items(), key=lambda kv: kv[1]) if deltas else (0, 0)
    row.update(mpps=packets / wall / 1e6,
               cycles_per_packet=worker_ns * 1e-9 * hz / packets if hz else None,
               forwarded=(c1["tx"] - c0["tx"]) / packets,
               cpu=worker_ns * 1e-9 / wall,
               exit_code=rc, log=log_path)
    notes = []
    if app in SLUICE_APPS:
        drops = c1["drops_total"] - c0["drops_total"]
        lcore_rx = c1["lcore_rx"] - c0["lcore_rx"]
        row["sluice_busy_cycles_per_packet"] = (c1["busy_cycles"] - c0["busy_cycles"]) / lcore_rx if lcore_rx else None
        row["sluice_drops"] = drops
        # Drops (not_for_us above all) would make the comparison unfair: always shown.
        notes.append(f"drops {drops / packets:.2%}: {c1['drops']}" if drops else "drops 0")
        if row["sluice_busy_cycles_per_packet"]:
            notes.append(f"own busy {row['sluice_busy_cycles_per_packet']:.0f} cyc/pkt")
        if app in CT_APPS:
            notes.extend(conntrack_numbers(row, case, c0, c1, packets, wall))
        if app in NAT_APPS:
            notes.extend(nat_numbers(row, case, c0, c1, packets, wall))
        if rc not in (0, None):
            notes.append(f"exit {rc}")
    if app in OVS_APPS:
        row["ovs_rss0"] = source.rss0
        row["ovs_pool_mbufs"] = source.mempool_mbufs
        notes.extend(ovs_numbers(row, case, c0, c1, packets, wall))
        if rc not in (0, None):
            notes.append(f"exit {rc}")
    elif c1["rx_nombuf"] > c0["rx_nombuf"]:
        notes.append("rx_nombuf")
    if row["forwarded"] < 0.99:
        notes.append(f"only {row['forwarded']:.1%} forwarded")
    row["notes"] = "; ".join(notes)
    return row


def sluice_established(app, source, case, proc, deadline):
    """The warm-up starts once every flow of the pcap is in the table (translated, for
    sluice-nat): the first pass goes at the new-flow rate, which can outlast the warm-up."""
    def active():
        c = source.counters()
        return c["nat"]["active"] if app in NAT_APPS else c["flows"]["active"]
    while active() < case.flows:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Failure(f"{app} has only {active()} of {case.flows} flows in its table")
        time.sleep(0.2)


def ovs_established(a, source, case, proc, deadline):
    """The window opens once every flow of the pcap has its connection."""
    while source.conns() < case.flows:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Failure(f"OVS made only {source.conns()} of {case.flows} connections (see {source.log_path})")
        time.sleep(0.2)


def ovs_first_pass(a, source, case, proc):
    """Open vSwitch's conntrack never evicts (a full table refuses new connections) and
    keeps a UDP connection 30 s, so a pcap replayed in a loop stops making new ones after
    its first pass. The new-sessions window is that first pass: the flow goes in, the
    window opens, and it closes when 60% of the pcap's flows have their connection (or
    after --seconds): a query takes tens of milliseconds on a busy machine, and the pass
    must not end before the last one. Every frame in it is a 5-tuple not seen before."""
    source.add_flow()
    t0, c0, cpu0 = sample(source, proc.pid)
    deadline = time.monotonic() + a.seconds
    while source.conns() < 0.6 * case.flows and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failure(f"OVS stopped (see {source.log_path})")
        time.sleep(0.005)
    t1, c1, cpu1 = sample(source, proc.pid)
    return t0, c0, cpu0, t1, c1, cpu1


def ovs_numbers(row, case, c0, c1, packets, wall):
    """Connections over the window into `row`; returns the notes they call for."""
    created = c1["conns"] - c0["conns"]
    row.update(workload=case.workload, flows_active=c1["conns"], flows_created=created,
               new_flows_per_s=created / wall, created_per_packet=created / packets,
               new_flows_per_cpu_s=created / (row["cpu"] * wall) if row["cpu"] else None,
               mpps_per_cpu_s=row["mpps"] / row["cpu"] if row["cpu"] else None,
               window_seconds=wall)
    notes = [f"conns {c1['conns']}", f"window: created {row['created_per_packet']:.2f}/pkt"]
    grew = c1["rss"] - row["ovs_rss0"] if c1.get("rss") is not None and row.get("ovs_rss0") is not None else None
    if grew is not None and c1["conns"] >= 100000:
        # Heap growth since before the first connection: conn structs, cmap, NAT's extra conn.
        row["bytes_per_flow"] = grew / c1["conns"]
        row["bytes_per_flow_method"] = "ovs-vswitchd VmRSS growth since the flow went in / connections"
        notes.append(f"{row['bytes_per_flow']:.0f} B RSS/conn")
    if case.workload == "established":
        if c1["conns"] != case.flows:
            notes.append(f"CONNS {c1['conns']} != {case.flows} flows")
        if created:
            notes.append("NOT ALL ESTABLISHED")
    else:
        notes.append(f"first pass, {wall:.3f} s window")
        if row["created_per_packet"] < 0.95:
            notes.append("NOT ALL NEW: the window ran past the first pass")
    if c1["rx_nombuf"] > c0["rx_nombuf"]:
        notes.append(f"rx drop {c1['rx_nombuf'] - c0['rx_nombuf']}")
    return notes


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


def print_table(rows, hz, hz_source, pmu, suite="router"):
    with_ovs = any(r["app"] in OVS_APPS for r in rows)
    head = ("case", "app", "Mpps", "cyc/pkt", "vs l3fwd", "by cycles") + (("vs OVS",) if with_ovs else ()) + \
        ("fwd", "cpu", "notes")

    def times(value):
        return fmt(value, ".2f", "-") + ("x" if value is not None else "")

    lines = [head]
    for r in rows:
        lines.append((r["case"], r["app"], fmt(r.get("mpps"), ".2f"), fmt(r.get("cycles_per_packet"), ".0f"),
                      times(r.get("ratio_vs_l3fwd")), times(r.get("ratio_vs_l3fwd_cycles")))
                     + ((times(r.get("ratio_vs_ovs")),) if with_ovs else ())
                     + (fmt(r.get("forwarded"), ".2f"), fmt(r.get("cpu"), ".0%"), r.get("notes", "")))
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
          "which count time the thread was preempted.\nvs l3fwd: Mpps / l3fwd's Mpps in the same case (the target: " +
          {"conntrack": "sluice-ct >= 0.5x with 1M flows). ", "nat": "sluice-nat >= 0.45x with 1M flows). "}
          .get(suite, "Sluice >= 1.0x). ") +
          "by cycles: l3fwd's cyc/pkt / this app's,\nthe same ratio without the time other tenants took from the core. "
          "fwd: port 1 tx / port 0 rx. cpu: worker thread CPU time / wall time." +
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
            print(f"  {r['case']}, {r['app']}: {r['ratio_vs_l3fwd']:.2f}x l3fwd-lpm, "
                  f"{fmt(r.get('ratio_vs_l3fwd_cycles'), '.2f')}x by cycles (target >= 0.5x): "
                  f"{verdict(r['ratio_vs_l3fwd'] >= 0.5)}")
    for r in (r for r in ct if r.get("workload") == "new"):
        per_cpu = r.get("new_flows_per_cpu_s") or 0
        print(f"  {r['case']}, {r['app']}: {r['new_flows_per_s'] / 1e6:.2f}M new flows/s per core, "
              f"{per_cpu / 1e6:.2f}M per CPU second (target >= 5M): {verdict(r['new_flows_per_s'] >= 5e6)}"
              + ("" if r['new_flows_per_s'] >= 5e6 or per_cpu < 5e6 else " (met per CPU second: the core was shared)"))
    entry = max(r["entry_bytes_ipv4"] for r in ct)
    table = max(r["bytes_per_flow"] for r in ct)
    print(f"  IPv4 flow entry: {entry} B (target <= 64 B): {verdict(entry <= 64)}; with the bucket index, "
          f"{table:.0f} B per flow of capacity")


def print_rows(title, lines):
    """A table: the first line is the heading; the first two columns left-aligned."""
    widths = [max(len(str(l[i])) for l in lines) for i in range(len(lines[0]))]
    print(f"\n{title}")
    for n, l in enumerate(lines):
        cells = (str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(l, widths)))
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
            print(f"  {r['case']}, {r['app']}: {r['ratio_vs_l3fwd']:.2f}x l3fwd-lpm, "
                  f"{fmt(r.get('ratio_vs_l3fwd_cycles'), '.2f')}x by cycles (target >= 0.45x): "
                  f"{verdict(r['ratio_vs_l3fwd'] >= 0.45)}")
    for r in (r for r in nat if r.get("workload") == "new"):
        per_cpu = r.get("new_flows_per_cpu_s") or 0
        print(f"  {r['case']}, {r['app']}: {r['new_flows_per_s'] / 1e6:.2f}M new NAT sessions/s per core, "
              f"{per_cpu / 1e6:.2f}M per CPU second (target >= 3M): {verdict(r['new_flows_per_s'] >= 3e6)}"
              + ("" if r['new_flows_per_s'] >= 3e6 or per_cpu < 3e6 else " (met per CPU second: the core was shared)"))
    entry = max(r["entry_bytes_nat_ipv4"] for r in nat)
    table = max(r["bytes_per_flow"] or 0 for r in nat)
    print(f"  IPv4 NAT flow (pair): {entry} B (target <= 128 B): {verdict(entry <= 128)}; with its two keys' "
          f"bucket slots, {table:.0f} B per NAT flow of capacity")


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
        line = (f"  {r['case']}, {r['app']}: {r['ratio_vs_ovs']:.2f}x {peer} Mpps, "
                f"{fmt(r.get('ratio_vs_ovs_cycles'), '.2f')}x by cycles: {verdict(r['ratio_vs_ovs'] >= 5)}")
        if r.get("ratio_vs_ovs_new_flows") is not None:
            line += f"; {r['ratio_vs_ovs_new_flows']:.2f}x its new sessions/s: {verdict(r['ratio_vs_ovs_new_flows'] >= 5)}"
        print(line)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=1, help="run the apps N times per case, interleaved; report medians")
    p.add_argument("--suite", choices=("router", "conntrack", "nat"), default="router")
    p.add_argument("--flows", default="1,4K,1M")
    p.add_argument("--frames", default="64,1500")
    p.add_argument("--apps", default=",".join(ROUTER_APPS))
    p.add_argument("--churn", default="none",
                   help="conntrack and nat suites: FLOWS:CAPACITY for the new-flows case (e.g. 1M:64K), or none")
    p.add_argument("--json")
    p.add_argument("--profile", action="store_true", help="perf record Sluice's worker after each window")
    p.add_argument("--data-dir", help="required unless --memory-only")
    p.add_argument("--sluice", help="required unless --memory-only")
    p.add_argument("--l3fwd", help="required unless --memory-only")
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
    if a.suite in ("conntrack", "nat") and a.churn != "none" and any(app in tracking_apps for app in apps):
        churn_flows, churn_capacity = (parse_count(x) for x in a.churn.split(":"))
        if churn_capacity < 1024 or churn_capacity & (churn_capacity - 1) or churn_flows < 4 * churn_capacity:
            sys.exit(f"--churn {a.churn}: the capacity must be a power of two >= 1024, the flows >= 4x it")
        cases += [Case(frame, churn_flows, "new", churn_capacity) for frame in frames]

    def apps_of(case):
        # The new-flows case measures Sluice's conntrack or NAT and Open vSwitch's; l3fwd
        # runs beside them for the ratio.
        if case.workload == "established":
            return apps
        return [x for x in apps if x == "l3fwd" or x in tracking_apps]

    if a.memory_only:
        print(max(case.memory_mb(apps_of(case)) for case in cases))
        return 0
    if not (a.data_dir and a.sluice and a.l3fwd):
        p.error("--data-dir, --sluice and --l3fwd are required")
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
            case.pcap = os.path.join(a.data_dir, f"udp4-{GEN_VERSION}-{case.flows}-{case.frame}B.pcap")
            if not os.path.exists(case.pcap):
                log(f"writing {case.pcap}")
                subprocess.run([sys.executable, os.path.join(HERE, "genpcap.py"), case.pcap + ".tmp", str(case.flows),
                                str(case.frame), DUT_MAC], check=True)
                os.rename(case.pcap + ".tmp", case.pcap)
            # The previous app's pages may still be on their way back.
            need, deadline = case.memory_mb(case_apps), time.monotonic() + 15
            while hugepages_free_mb() < need and time.monotonic() < deadline:
                time.sleep(0.5)
            free = hugepages_free_mb()
            identity = {"case": case.label, "flows": case.flows, "frame_bytes": case.frame}
            if a.suite in ("conntrack", "nat"):
                identity.update(mode=a.suite, workload=case.workload)
            if free < need:
                msg = f"skipped: needs ~{need} MiB of free hugepages, {free} MiB free"
                log(f"{case.label}: {msg}")
                for app in case_apps:
                    rows.append({**identity, "app": app, "mpps": None, "ratio_vs_l3fwd": None, "notes": msg})
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
                        row = {"app": app, "mpps": None, "notes": f"FAILED: {e}"}
                    row.update(identity)
                    runs[app].append(row)
                    if row.get("mpps"):
                        extra = ""
                        if app in tracking_apps:
                            extra = (f", {row['new_flows_per_s'] / 1e6:.2f}M new flows/s, "
                                     f"created {row['created_per_packet']:.2f}/pkt")
                        log(f"  {row['mpps']:.2f} Mpps, {fmt(row.get('cycles_per_packet'), '.0f')} cycles/packet"
                            + extra)
            case_rows = [median_run(runs[app]) for app in case_apps]
            base = next((r for r in case_rows if r["app"] == "l3fwd" and r.get("mpps")), None)
            for r in case_rows:
                r["ratio_vs_l3fwd"] = r["mpps"] / base["mpps"] if base and r.get("mpps") else None
                # The same ratio from CPU time: packets per CPU second, blind to time the
                # core spent on other tenants' work.
                mine, theirs = r.get("cycles_per_packet"), base and base.get("cycles_per_packet")
                r["ratio_vs_l3fwd_cycles"] = theirs / mine if mine and theirs else None
                # Sluice against the Open vSwitch set-up a user would pick instead.
                peer = next((p for p in case_rows if p["app"] == OVS_PEER.get(r["app"]) and p.get("mpps")), None)
                if peer and r.get("mpps"):
                    r["ratio_vs_ovs"] = r["mpps"] / peer["mpps"]
                    if mine and peer.get("cycles_per_packet"):
                        r["ratio_vs_ovs_cycles"] = peer["cycles_per_packet"] / mine
                    if r.get("new_flows_per_s") and peer.get("new_flows_per_s") and case.workload == "new":
                        r["ratio_vs_ovs_new_flows"] = r["new_flows_per_s"] / peer["new_flows_per_s"]
            rows.extend(case_rows)
    finally:
        for proc in list(a.started):
            stop(proc, 20)

    print()
    print_table(rows, hz, hz_source, perf_cycles_supported(), a.suite)
    if a.suite == "conntrack" or any(r["app"] in CT_APPS for r in rows):
        print_conntrack(rows)
    nat_heap_per_flow(rows)
    print_nat(rows)
    print_ovs(rows, a.suite)
    for r in rows:
        if r.get("profile"):
            print(f"\nperf (cpu-clock) on {r['app']}'s worker, {r['case']}:\n{r['profile']}")
    if a.json:
        keys = ("case", "app", "flows", "frame_bytes", "mpps", "ratio_vs_l3fwd", "cycles_per_packet",
                "ratio_vs_l3fwd_cycles", "forwarded", "cpu", "notes")
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
                   # Open vSwitch, and Sluice against it
                   "window_seconds", "bytes_per_flow_method", "ovs_pool_mbufs", "ratio_vs_ovs_new_flows")
        out = []
        for r in rows:
            o = {k: r.get(k) for k in keys}
            o["cycles_method"] = ("PMD thread CPU time x TSC Hz / packets" if r["app"] in OVS_APPS else
                                  "worker thread CPU time x TSC Hz / packets")
            for k in ("ratio_vs_ovs", "ratio_vs_ovs_cycles"):
                if k in r:
                    o[k] = r[k]
            if "mode" in r:
                o.update({k: r[k] for k in ct_keys if k in r})
            out.append(o)
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
