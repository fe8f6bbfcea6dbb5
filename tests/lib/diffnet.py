"""What the differential tests against Linux share (tests/conntrack/diff_cases.py,
tests/nat/diff_cases.py): each router under test has host namespaces whose kernels see
nothing, and the drivers talk through raw packet sockets opened in them.

  netns(name)          runs a block in a network namespace (this thread only)
  Port                 one host interface: a raw AF_PACKET socket, its MAC, the frames
                       received during the current case
  arp_gateway()        asks for the router's MAC from a host port
  Markers              the 16-bit values (IPv4 ID) that tell a driver's packets apart
  pump()               drains ports until a condition holds or time runs out
  linux_conntrack(), sluice_get(), sluice_post()
                       flushing and listing each router's flows
  describe()           one short line for a packet
  Case, case_registry()
                       the cases a driver defines, by decorator
  internet_checksum(), l4_checksum_ok(), ...
                       checksums recomputed from the bytes, for checking what arrived
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
)
from scapy.layers.l2 import ARP, Ether  # noqa: E402
from scapy.layers.sctp import SCTP  # noqa: E402
from scapy.packet import Packet  # noqa: E402


def die(message: str):
    """The test cannot run (exit status 2, which the wrappers report as such)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------- network namespaces

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def netns(name: str):
    """Runs the block in netns NAME (this thread only); sockets made there stay there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    except FileNotFoundError:
        os.close(own)
        die(f"netns {name} does not exist (is the topology up? see the test script that runs this driver)")
    try:
        _setns(target)
        yield
    finally:
        _setns(own)
        os.close(own)
        os.close(target)


PACKET_OUTGOING = 4


class Port:
    """One host's interface: a raw packet socket opened inside its netns."""

    def __init__(self, ns: str, ifname: str):
        self.ns, self.ifname = ns, ifname
        with netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind((ifname, 0))
        self.sock.setblocking(False)
        out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", ifname], check=True,
                             capture_output=True, text=True).stdout
        self.mac = json.loads(out)[0]["address"]
        self.gw_mac = ""
        self.frames: list[tuple[float, Packet]] = []  # received in the current case

    def send(self, frame: Packet) -> None:
        self.sock.send(bytes(frame))

    def drain(self) -> int:
        """Reads every frame waiting; keeps the ones sent to this host (not its own)."""
        n = 0
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return n
            if addr[2] == PACKET_OUTGOING:
                continue
            self.frames.append((time.monotonic(), Ether(data)))
            n += 1

    def clear(self) -> None:
        self.drain()
        self.frames.clear()


def pump(ports: Iterable[Port], seconds: float, until: Optional[Callable[[], bool]] = None) -> None:
    """Drains PORTS for up to SECONDS, or until UNTIL() holds (checked after each drain)."""
    ports = list(ports)
    deadline = time.monotonic() + seconds
    while True:
        for p in ports:
            p.drain()
        if until is not None and until():
            return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        select.select([p.sock for p in ports], [], [], min(left, 0.05 if until is not None else 0.02))


def arp_gateway(port: Port, host_ip: str, gw_ip: str) -> str:
    req = Ether(src=port.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=port.mac, psrc=host_ip, pdst=gw_ip)
    for _ in range(40):
        port.clear()
        port.send(req)
        deadline = time.monotonic() + 0.25
        while time.monotonic() < deadline:
            select.select([port.sock], [], [], 0.05)
            port.drain()
            for _, f in port.frames:
                if ARP in f and f[ARP].op == 2 and f[ARP].psrc == gw_ip:
                    return f[ARP].hwsrc
    die(f"no ARP reply from {gw_ip} on {port.ns}/{port.ifname}")


class Markers:
    """Values for the IPv4 ID (or IPv6 flow label) of each packet sent, to recognise it
    after a router has forwarded it; they go round 0x1001..0xfff0."""

    def __init__(self):
        self.last = 0x1000

    def next(self) -> int:
        self.last = self.last + 1 if self.last < 0xfff0 else 0x1001
        return self.last


# ---------------------------------------------------------------------------- the routers' flows

def linux_conntrack(ns: str, *args: str) -> str:
    """Runs `conntrack ARGS` in netns NS; its output."""
    r = subprocess.run(["ip", "netns", "exec", ns, "conntrack", *args], capture_output=True, text=True)
    if r.returncode != 0:
        die(f"conntrack {' '.join(args)} in {ns} failed: {r.stderr.strip()}")
    return r.stdout


def sluice_get(http_port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def sluice_post(http_port: int, path: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()


# ---------------------------------------------------------------------------- cases

@dataclass
class Case:
    name: str
    what: str
    build: Callable[[], list]


def case_registry(cases: list):
    """A decorator `@case("what it shows")` that appends the function to CASES as a Case."""
    def case(what: str):
        def register(fn):
            cases.append(Case(fn.__name__, what, fn))
            return fn
        return register
    return case


# ---------------------------------------------------------------------------- describing packets

def describe(pkt: Packet) -> str:
    """One short line for the table."""
    if IPv6ExtHdrFragment in pkt:
        f = pkt[IPv6ExtHdrFragment]
        return f"IPv6 fragment off={f.offset * 8} m={f.m} ({len(pkt[IPv6ExtHdrFragment].payload)}B)"
    if IP in pkt and (pkt[IP].frag or pkt[IP].flags.MF):
        ip = pkt[IP]
        return f"IPv4 fragment off={ip.frag * 8} mf={int(ip.flags.MF)} ({len(ip.payload)}B)"
    fam = "" if IP in pkt else "v6 "
    if TCP in pkt and not (IPerror in pkt or IPerror6 in pkt):
        t = pkt[TCP]
        flags = str(t.flags) or "none"
        extra = f" len={len(t.payload)}" if len(t.payload) else ""
        bad = " badsum" if t.chksum is not None and t.chksum == 0xdead else ""
        return f"{fam}TCP {t.sport}>{t.dport} [{flags}] seq={t.seq} ack={t.ack} win={t.window}{extra}{bad}"
    if UDP in pkt and not (IPerror in pkt or IPerror6 in pkt):
        u = pkt[UDP]
        ext = " (destination options)" if IPv6ExtHdrDestOpt in pkt else ""
        return f"{fam}UDP {u.sport}>{u.dport} len={len(u.payload)}{ext}"
    if ICMP in pkt:
        i = pkt[ICMP]
        if i.type in (0, 8):
            return f"ICMP echo-{'request' if i.type == 8 else 'reply'} id={i.id} seq={i.seq}" + \
                (f" code={i.code}" if i.code else "")
        if i.type in (3, 4, 5, 11, 12):
            return f"ICMP type={i.type} code={i.code} quoting {describe_quoted(IPerror(bytes(i.payload)))}"
        return f"ICMP type={i.type} code={i.code}"
    if SCTP in pkt:
        chunk = pkt[SCTP].payload
        return f"SCTP {pkt[SCTP].sport}>{pkt[SCTP].dport} {chunk.name}"
    if IPv6 in pkt:
        l4 = pkt[IPv6].payload
        if isinstance(l4, (ICMPv6EchoRequest, ICMPv6EchoReply)):
            return f"ICMPv6 echo-{'request' if l4.type == 128 else 'reply'} id={l4.id} seq={l4.seq}"
        if hasattr(l4, "type") and 1 <= l4.type <= 4:
            return f"ICMPv6 type={l4.type} code={l4.code} quoting {describe_quoted(IPerror6(bytes(l4.payload)))}"
        if hasattr(l4, "type"):
            return f"ICMPv6 type={l4.type} code={l4.code}"
        if pkt[IPv6].nh == 58 and len(l4) >= 2:  # a type scapy does not dissect
            raw = bytes(l4)
            return f"ICMPv6 type={raw[0]} code={raw[1]}"
    if IP in pkt:
        return f"IP proto {pkt[IP].proto} len={len(pkt[IP].payload)}"
    return pkt.summary()


def describe_quoted(inner: Packet) -> str:
    src, dst = inner.src, inner.dst
    l4 = inner.payload
    ext = ""
    while isinstance(l4, IPv6ExtHdrDestOpt):
        ext, l4 = "dest-opts ", l4.payload
    if ext:
        return f"{ext}{src}>{dst}"
    if isinstance(l4, (TCP, TCPerror)):
        return f"TCP {src}:{l4.sport}>{dst}:{l4.dport}"
    if isinstance(l4, (UDP, UDPerror)):
        return f"UDP {src}:{l4.sport}>{dst}:{l4.dport}"
    return f"{src}>{dst} proto {getattr(inner, 'proto', getattr(inner, 'nh', '?'))}"


# ---------------------------------------------------------------------------- checksums, from the bytes

def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's-complement sum folded to 16 bits (0 or 0xffff: the data,
    checksum field included, verifies)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return total


def sum_verifies(data: bytes) -> bool:
    return internet_checksum(data) == 0xffff


def ipv4_header_ok(ip: bytes) -> bool:
    """Whether an IPv4 header (the first IHL*4 bytes of IP) has a checksum that verifies."""
    ihl = (ip[0] & 0x0f) * 4
    return len(ip) >= ihl >= 20 and sum_verifies(ip[:ihl])


def l4_checksum_ok(ip: bytes) -> Optional[bool]:
    """Whether the TCP, UDP or ICMP checksum of a whole IPv4 datagram (its bytes up to
    the total length) verifies: None when there is none to verify (a UDP checksum of 0,
    another protocol, or fewer bytes than the total length says)."""
    ihl = (ip[0] & 0x0f) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    proto = ip[9]
    if len(ip) < total or total < ihl:
        return None
    l4 = ip[ihl:total]
    if proto == 1:
        return sum_verifies(l4)
    if proto not in (6, 17) or len(l4) < (20 if proto == 6 else 8):
        return None
    if proto == 17 and l4[6:8] == b"\0\0":
        return None
    pseudo = ip[12:20] + struct.pack("!BBH", 0, proto, len(l4))
    return sum_verifies(pseudo + l4)
