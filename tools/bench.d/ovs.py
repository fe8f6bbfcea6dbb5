"""Open vSwitch's userspace (DPDK) datapath as a peer: its own database and run dir,
ct(commit) and ct(commit,nat) flows, connection counts (tools/bench --conntrack, --nat)."""
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
    """`ovs-ofctl dump-ports` -> {port number: {"rx": packets, "rx_drop": n, "rx_errs": n,
    "tx": packets, "tx_drop": n, "tx_errs": n}}; a counter the port does not have ("?")
    is None."""
    def count(value):
        return None if value.strip() == "?" else int(value)

    ports, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("port "):
            name, rest = line[5:].split(":", 1)
            current = None if name.strip() == "LOCAL" else int(name)
            if current is not None:
                fields = dict(kv.strip().split("=", 1) for kv in rest.replace("rx ", "", 1).split(","))
                ports[current] = {"rx": int(fields["pkts"]), "rx_drop": count(fields["drop"]),
                                  "rx_errs": count(fields.get("errs", "?"))}
        elif line.startswith("tx ") and current is not None:
            fields = dict(kv.strip().split("=", 1) for kv in line[3:].split(","))
            ports[current].update(tx=int(fields["pkts"]), tx_drop=count(fields.get("drop", "?")),
                                  tx_errs=count(fields.get("errs", "?")))
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
        after = time.monotonic()
        # The ports' drop and error counters (OpenFlow port stats); OVS's datapath drops
        # (coverage counters datapath_drop_*) are not read: they show as packets not forwarded.
        p0, p1 = ports[1], ports[2]
        return {"rx": p0["rx"], "tx": p1["tx"], "rx_nombuf": p0["rx_drop"], "t": (before + after) / 2,
                "read_seconds": after - before,
                "drop_counters": {"port 1 rx drop": p0["rx_drop"], "port 1 rx errs": p0["rx_errs"],
                                  "port 2 tx drop": p1["tx_drop"], "port 2 tx errs": p1["tx_errs"],
                                  "port 1 tx pkts (sent back out)": p0.get("tx")},
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
    return notes
