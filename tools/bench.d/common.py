"""What every part of the benchmark shares: constants, sizes, the cases, the
measurement sources (DPDK telemetry, Sluice's HTTP stats, thread CPU time)."""
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
APPS = ("testpmd", "l3fwd", "sluice", "sluice-notrace", "sluice-ct", "sluice-fw", "sluice-nat", "sluice-lb", "ovs-ct", "ovs-nat")
ROUTER_APPS = ("testpmd", "l3fwd", "sluice")     # the router suite's default
CT_APPS = ("sluice-ct", "sluice-fw")             # Sluice with the conntrack stage
NAT_APPS = ("sluice-nat",)                       # conntrack + nat: pairs beside the plain entries
LB_APPS = ("sluice-lb",)                         # conntrack + lb + nat: full-NAT pairs to a service's backends
TRACKING_APPS = CT_APPS + NAT_APPS + LB_APPS     # Sluice apps with a flow table
SLUICE_APPS = ("sluice", "sluice-notrace") + TRACKING_APPS  # sluice-notrace: built with -Dtracer=false
OVS_APPS = ("ovs-ct", "ovs-nat")                 # Open vSwitch's userspace datapath
OVS_PEER = {"sluice-ct": "ovs-ct", "sluice-fw": "ovs-ct", "sluice-nat": "ovs-nat"}  # what a user would pick instead
FLOW_ENTRY_BYTES = 64               # lib/flow: one IPv4 FlowEntry4, one cache line
FLOW_BUCKET_BYTES = 64              # lib/flow: FlowBucket, 8 slots
NAT_PAIR_BYTES = 128                # lib/flow: NatPair4, an entry and its NatExt4
CT_MAX_CAPACITY = 1 << 26           # conntrack.capacity's upper bound
# The load-balancer suite's service: every frame goes to the VIP (in 198.18.1.0/24, which
# l3fwd's default table sends to port 1, so l3fwd and testpmd forward the same pcap),
# UDP port 9, full-NAT to LB_BACKENDS backends in 198.18.2.0/24 from the local addresses
# of LB_LOCAL. A local address has 64,512 ports toward each backend (the reply tuple
# names the backend), so 16 addresses hold 1M connections even when Maglev sends twice
# the mean to one backend. Sluice routes 198.18.0.0/15 out of port 1.
LB_VIP = "198.18.1.100"
LB_BACKENDS = 16
LB_LOCAL = "198.18.3.0/28"
MAGLEV_BACKENDS = 1000              # the table build the issue times, at the default size
MAGLEV_SIZE = 65537
MAGLEV_BUILDS = 21                  # builds timed; the rows give their median and slowest
# The memory floor's region: the 1M-flow lb case's bucket index (2M buckets, 128 MiB) and pair
# pool (2M pairs, 256 MiB), the two things a load-balanced packet reads at random.
MEMORY_FLOOR_MIB = 384


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
    """A Sluice app's flow table: conntrack's, and NAT pairs as many again for sluice-nat
    and sluice-lb, whose NAT context also reserves an endpoint-independent mapping table of
    nat.capacity (a 28 B mapping and two rte_hash entries, about 112 B a flow in all)."""
    if app in NAT_APPS + LB_APPS:
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
        start = time.monotonic()
        rx = self.query("/ethdev/stats,0")["/ethdev/stats"]
        before = time.monotonic()
        tx = self.query("/ethdev/stats,1")["/ethdev/stats"]
        end = time.monotonic()
        # The rate comes from port 1's tx (packets forwarded): time that query alone.
        # testpmd and l3fwd count no drops of their own here (testpmd's TX-dropped comes
        # from its exit statistics; l3fwd has none): the ports' counters are all there is.
        return {"rx": rx["ipackets"], "tx": tx["opackets"], "rx_nombuf": rx["rx_nombuf"],
                "t": (before + end) / 2, "read_seconds": end - start,
                "drop_counters": {"port 0 rx_nombuf": rx["rx_nombuf"], "port 0 imissed": rx["imissed"],
                                  "port 0 ierrors": rx["ierrors"], "port 1 oerrors": tx["oerrors"],
                                  "port 0 opackets (sent back out)": rx["opackets"]}}

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
        start = time.monotonic()
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            s = json.load(r)
        ports = {p["name"]: p for p in s["ports"]}
        west, east = ports["west"], ports["east"]
        lcores = s["lcores"]
        out = {"rx": west["rx_packets"], "tx": east["tx_packets"],
               "rx_nombuf": west["rx_nombuf"], "read_seconds": time.monotonic() - start,
               # Every discarded packet has a reason in drops (tx_queue_full included).
               "drop_counters": {"drops_total": s["drops_total"], "port 0 rx_nombuf": west["rx_nombuf"],
                                 "port 0 rx_missed": west["rx_missed"], "port 0 rx_errors": west["rx_errors"],
                                 "port 1 tx_errors": east["tx_errors"],
                                 "port 0 tx_packets (sent back out)": west["tx_packets"]},
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
            for name in ("nat", "nat_src", "lb"):
                stage = next((st for st in s["stages"] if st["port"] == "west" and st["stage"] == name), {})
                out[name + "_stage"] = stage.get("counters", {})
        if "services" in s:
            # The load balancer's own account, summed over services (the bench has one).
            services = s["services"]
            backends = [b for sv in services for b in sv["backends"]]
            out["lb"] = {"connections": sum(sv["connections"] for sv in services),
                         "active": sum(sv["active_connections"] for sv in services),
                         "no_backend": sum(sv["no_backend"] for sv in services),
                         "backend_connections": [b["connections"] for b in backends],
                         "backend_active": [b["active_connections"] for b in backends]}
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
    """Counters, the time they were read (midway through the query of port 1's tx) and
    thread CPU times; counters["read_seconds"]: how long reading them all took."""
    before = time.monotonic()
    counters = source.counters()
    after = time.monotonic()
    counters.setdefault("read_seconds", after - before)
    return counters.get("t", (before + after) / 2), counters, thread_cpu_ns(pid)
