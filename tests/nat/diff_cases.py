#!/usr/bin/python3
"""Differential test of Sluice's NAT44 (issue 11): masquerade, port forwards, hairpin,
ICMP errors (RFC 5508) and fragments, against a Linux netns router with nftables.

The same scapy-crafted packet sequences go through two routers that should translate alike:

  linux   a netns router: `oifname wan masquerade`, `dnat to` port forwards, a hairpin
          `snat`, and the conntrack differential test's forward filter
  sluice  Sluice on net_tap with ["parse", "conntrack", "nat", "route"] and the
          equivalent `nat` and `firewall` sections

Each router has its own pair of host namespaces (the addresses are the same on both):

  inside host  10.1.0.2, also 10.1.0.3 (a second inside host)   gateway 10.1.0.1
  outside host 10.2.0.2 (also sends as 10.2.0.254, a router beyond it)
  the router's wan address 10.2.0.1: masquerade, port forwards tcp 8080 -> 10.1.0.2:80,
  udp 5353 -> 10.1.0.2:53, tcp 9000-9009 -> 10.1.0.2:7000-7009 (offset by offset)

The hosts' kernels see nothing: the driver sends raw frames from one host's interface
and watches every interface. Every packet carries a marker (its IPv4 ID, which NAT
keeps) to recognise it after translation; what the router sends of its own (an ICMP
error quoting a marked packet, an echo reply) is reported as "+back".

For each packet the routers' results are compared: dropped, or where it arrived and as
what (addresses, ports, ICMP identifiers, flags; an ICMP error's quoted header too).
The port a router chooses for a flow's outside end is its own affair: the first packet
of flow `a` that leaves with the wan address as its source fixes that router's port
for `a`, which then reads `WAN:~a`; a later packet of `a` with any other port shows
the number and fails. Every packet that arrives is checked on each router: IPv4
header, TCP/UDP (a zero UDP checksum must stay zero) and ICMP checksums recomputed, an
ICMP error's quoted IPv4 header and, when the quote holds the whole packet, its L4
checksum; a quoted L4 checksum in a partial quote must equal that of the packet as its
sender sent it; every byte NAT has no reason to touch must be as sent, and the TTL one
less.

tests/integration/test_nat_diff.sh builds the topology, starts Sluice and runs this with
its own arguments:

  tests/nat/diff_cases.py --list
  tests/integration/test_nat_diff.sh --case 'icmp_*' --explain
  tests/integration/test_nat_diff.sh --case hairpin_tcp --router sluice

A packet has passed when it comes out before its case ends. Each step waits --wait
(0.35 s) for the packet on both routers; when one has forwarded it and the other not yet,
and at the end of a case whose results differ, it waits up to --straggle (3 s) more: a
busy host can stall Sluice's polling worker for longer than that, and the late packet
then decides (the table says how late), never a second run.

Exit status: 0 when every packet matched (or is an allowlisted intended difference,
docs/nat-differences.md), 1 on any other difference or failed check, 2 when the test
could not run. There are no reruns: a case must match the first time.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import struct
import sys
import time
import urllib.error
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from diffnet import (  # noqa: E402  (tests/lib: what the differential tests share)
    Case,
    Markers,
    Port,
    arp_gateway,
    case_registry,
    describe,
    die,
    internet_checksum,
    ipv4_header_ok,
    l4_checksum_ok,
    linux_conntrack,
    pump,
    sluice_get,
    sluice_post,
)
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Packet, Raw  # noqa: E402

# ---------------------------------------------------------------------------- topology

IN4, IN2 = "10.1.0.2", "10.1.0.3"  # the inside host, and a second one (an address of the same netns)
OUT4 = "10.2.0.2"                  # the outside host
OUTR = "10.2.0.254"                # a router beyond the outside host (the outside host sends as it)
LAN4, WAN4 = "10.1.0.1", "10.2.0.1"  # the router: its inside address, its outside (masquerade) address
NAMES = {IN4: "IN", IN2: "IN2", OUT4: "OUT", OUTR: "OUTR", LAN4: "LAN", WAN4: "WAN"}

# Port forwards on WAN4, as test_nat_diff.sh configures both routers.
FWD_TCP, FWD_TCP_TO = 8080, 80         # tcp 8080 -> IN4:80 (also from inside: hairpin)
FWD_UDP, FWD_UDP_TO = 5353, 53         # udp 5353 -> IN4:53
FWD_RANGE, FWD_RANGE_TO = 9000, 7000   # tcp 9000-9009 -> IN4:7000-7009

# Host netns and interface of each side, per router (test_nat_diff.sh makes them).
ROUTERS = {
    "linux": {"in": ("ndli", "ndli0"), "out": ("ndlo", "ndlo0"), "router_ns": "ndlr"},
    "sluice": {"in": ("ndsi", "ndsi0"), "out": ("ndso", "ndso0")},
}
DEFAULT_HTTP_PORT = 9230

# ---------------------------------------------------------------------------- intended differences

# (case, step number as printed) -> (linux result, sluice result, one-line reason), the
# results exactly as the table prints them. Only deliberate design choices and the known
# limits docs/nat-differences.md describes belong here (it explains each); a difference
# that is a Sluice bug stays a failure until it is fixed.
INTENDED = {
    ("frag_udp_snat", 3): (
        "pass out: UDP WAN:~a > OUT:7000 [3 fragments]", "pass out: UDP WAN:~a > OUT:7000",
        "Sluice sends a reassembled datagram whole when it fits the egress MTU; Linux refragments it "
        "to the largest fragment it received"),
    ("frag_udp_dnat", 3): (
        "pass in: UDP OUT:37281 > IN:53 [3 fragments]", "pass in: UDP OUT:37281 > IN:53",
        "Sluice sends a reassembled datagram whole when it fits the egress MTU; Linux refragments it "
        "to the largest fragment it received"),
}


def side_of(addr: str) -> str:
    """Which host sends as ADDR: the inside one (10.1.0.0/24) or the outside one."""
    return "in" if addr.startswith("10.1.0.") else "out"


# ---------------------------------------------------------------------------- flows and steps

@dataclass
class Flow:
    """A translated connection. `fixed`: its wan-address ports that no router chooses
    (a port forward's); `guess`: the port to address before a router's choice is known
    (only when its first packet did not get through, a mismatch already)."""
    name: str
    proto: int
    server: tuple = ()  # (address, port) of its remote end: flows to one server need distinct mappings
    fixed: tuple = ()
    guess: int = 0


class Ctx:
    """One router's view of a running case: what was sent to it, what came out, the
    outside ports it chose."""

    def __init__(self, name: str):
        self.name = name
        self.sent: list[Packet] = []          # per step, as sent (a fragment step: its fragment)
        self.whole: dict[int, Packet] = {}    # step -> its whole datagram, for fragment steps
        self.rx: dict[int, list] = {}         # marker -> [(side, frame)] with that IPv4 ID
        self.rx_at: dict[int, float] = {}     # marker -> when its last frame came
        self.back: dict[int, list] = {}       # marker -> [(side, frame)] the router's answers to it
        self.stray: dict[int, list] = {}      # step -> [(side, frame)] anything else during its window
        self.chosen: dict[str, int] = {}      # flow -> the wan port this router gave it
        self.groups: dict[str, Packet] = {}   # fragment group -> the datagram, built once
        self.marker_of: list[int] = []        # step -> its marker (the runner sets it)
        self.sent_at: list[float] = []        # step -> when it was sent

    def port(self, flow: Flow) -> int:
        return self.chosen.get(flow.name, flow.guess)

    def arrived(self, k: int) -> Packet:
        """Step K's packet as it came out of this router (reassembled), or as it was sent
        when it did not come out (for quoting in an ICMP error)."""
        dg = self.datagram_of(k)
        return IP(dg[0]) if dg else self.sent[k]

    def datagram_of(self, k: int):
        """(IPv4 bytes, fragments, side, copies) of the datagram step K's marker came out
        as, or None when it has not (completely)."""
        frames = self.rx.get(self.marker_of[k], [])
        return assemble(frames)


PktOrBuilder = Union[Packet, Callable[[Ctx], Packet]]


@dataclass
class Step:
    pkt: PktOrBuilder            # an IPv4 packet, or a function of the router's Ctx
    flow: Optional[Flow] = None  # the translated flow it belongs to (or quotes)
    note: str = ""
    group: Optional[str] = None  # the fragments of one datagram share their marker
    last: bool = True            # a fragment: the last of its datagram
    frag_span: tuple = ()        # a fragment: (first byte, end) of the datagram it carries


def build(step: Step, cx: Ctx) -> Packet:
    return step.pkt(cx) if callable(step.pkt) else step.pkt


# ---------------------------------------------------------------------------- what a router sent out

def assemble(frames: list):
    """(IPv4 bytes, number of frames, side, copies) of the one datagram FRAMES carry
    (fragments joined), or None when it is not complete."""
    if not frames:
        return None
    side = frames[0][0]
    ips = [bytes(f[IP]) for _, f in frames]
    whole = [b for b in ips if not is_fragment_bytes(b)]
    if whole:
        first = whole[0]
        total = struct.unpack("!H", first[2:4])[0]
        return first[:total], 1, side, len(whole)
    pieces = {}
    last_end = None
    for b in ips:
        ihl = (b[0] & 0x0f) * 4
        total = struct.unpack("!H", b[2:4])[0]
        flags_off = struct.unpack("!H", b[6:8])[0]
        off = (flags_off & 0x1fff) * 8
        pieces.setdefault(off, b[:total])
        if not flags_off & 0x2000:
            last_end = off + total - ihl
    if last_end is None or 0 not in pieces:
        return None
    data = bytearray(last_end)
    covered = 0
    for off in sorted(pieces):
        b = pieces[off]
        ihl = (b[0] & 0x0f) * 4
        if off > covered:
            return None
        payload = b[ihl:]
        data[off:off + len(payload)] = payload
        covered = max(covered, off + len(payload))
    if covered < last_end:
        return None
    head = bytearray(pieces[0][:(pieces[0][0] & 0x0f) * 4])
    struct.pack_into("!H", head, 2, len(head) + last_end)
    struct.pack_into("!H", head, 6, struct.unpack("!H", head[6:8])[0] & 0x4000)  # DF kept, MF and offset cleared
    struct.pack_into("!H", head, 10, 0)
    struct.pack_into("!H", head, 10, ~internet_checksum(bytes(head)) & 0xffff)
    return bytes(head) + bytes(data), len(pieces), side, 1


def is_fragment_bytes(ip: bytes) -> bool:
    return bool(struct.unpack("!H", ip[6:8])[0] & 0x3fff)


def covered(frames: list, span: tuple) -> bool:
    """Whether the bytes SPAN of a datagram are among FRAMES (fragments or whole)."""
    spans = []
    for _, f in frames:
        b = bytes(f[IP])
        ihl = (b[0] & 0x0f) * 4
        total = struct.unpack("!H", b[2:4])[0]
        off = (struct.unpack("!H", b[6:8])[0] & 0x1fff) * 8
        spans.append((off, off + total - ihl))
    reach = span[0]
    for s, e in sorted(spans):
        if s <= reach < e:
            reach = e
        if reach >= span[1]:
            return True
    return False


ICMP_ERRORS = (3, 4, 5, 11, 12)
ICMP_QUERIES = {8: "echo-request", 0: "echo-reply", 13: "timestamp", 14: "timestamp-reply"}


def endpoint(addr: str, port, flow: Optional[Flow], cx: Ctx) -> str:
    name = NAMES.get(addr, addr)
    if port is None:
        return name
    if addr == WAN4 and flow is not None and cx.chosen.get(flow.name) == port and port not in flow.fixed:
        return f"{name}:~{flow.name}"
    return f"{name}:{port}"


def l4_fields(proto: int, l4: bytes):
    """(source port, destination port, rest) of an L4 header as far as L4 holds it."""
    if proto in (6, 17) and len(l4) >= 4:
        return struct.unpack("!H", l4[0:2])[0], struct.unpack("!H", l4[2:4])[0]
    return None, None


def normal(ip: bytes, flow: Optional[Flow], cx: Ctx, quoted: bool = False) -> str:
    """A packet as the comparison sees it: protocol, both ends by name (a flow's chosen
    wan port as ~name), TCP flags, ICMP type, an error's quoted packet."""
    ihl = (ip[0] & 0x0f) * 4
    proto = ip[9]
    src = ".".join(str(b) for b in ip[12:16])
    dst = ".".join(str(b) for b in ip[16:20])
    l4 = ip[ihl:]
    if proto in (6, 17):
        sport, dport = l4_fields(proto, l4)
        text = f"{'TCP' if proto == 6 else 'UDP'} {endpoint(src, sport, flow, cx)} > {endpoint(dst, dport, flow, cx)}"
        if proto == 6 and len(l4) >= 14 and not quoted:
            text += f" [{tcp_flags(l4[13])}]"
        if proto == 17 and len(l4) >= 8 and l4[6:8] == b"\0\0":
            text += " cksum=0"
        return text
    if proto == 1 and len(l4) >= 8:
        t, code = l4[0], l4[1]
        if t in (8, 13):  # queries: the identifier is the querier's (the source)
            ident = struct.unpack("!H", l4[4:6])[0]
            return f"ICMP {ICMP_QUERIES[t]} {endpoint(src, ident, flow, cx)} > {endpoint(dst, None, flow, cx)}"
        if t in (0, 14):  # answers: the querier is the destination
            ident = struct.unpack("!H", l4[4:6])[0]
            return f"ICMP {ICMP_QUERIES[t]} {endpoint(src, None, flow, cx)} > {endpoint(dst, ident, flow, cx)}"
        if t in ICMP_ERRORS and not quoted:
            extra = f" mtu={struct.unpack('!H', l4[6:8])[0]}" if (t, code) == (3, 4) else ""
            inner = l4[8:]
            what = normal(inner, flow, cx, quoted=True) if len(inner) >= 20 and inner[0] >> 4 == 4 else "?"
            return f"ICMP {t}/{code}{extra} {endpoint(src, None, flow, cx)} > {endpoint(dst, None, flow, cx)} " \
                   f"quoting {what}"
        return f"ICMP {t}/{code} {endpoint(src, None, flow, cx)} > {endpoint(dst, None, flow, cx)}"
    return f"IP proto {proto} {endpoint(src, None, flow, cx)} > {endpoint(dst, None, flow, cx)}"


def tcp_flags(bits: int) -> str:
    return "".join(c for c, b in zip("FSRPAUEC", range(8)) if bits >> b & 1) or "none"


def tuple_of(ip: bytes):
    ihl = (ip[0] & 0x0f) * 4
    return (ip[12:16], ip[16:20], ip[9]) + l4_fields(ip[9], ip[ihl:])


# ---------------------------------------------------------------------------- checks

def mutable_offsets(ip: bytes, fragmented: bool) -> set:
    """Byte offsets of IPv4 packet IP that NAT and forwarding may change: TTL, header
    checksum, addresses; ports and L4 checksums; an ICMP identifier and checksum; in an
    ICMP error, the same fields of the quoted packet. For a datagram sent in fragments,
    the fragment fields too."""
    ihl = (ip[0] & 0x0f) * 4
    out = {8, 10, 11} | set(range(12, 20))
    if fragmented:
        out |= {6, 7}
    proto = ip[9]
    if proto == 6:
        out |= {ihl + i for i in (0, 1, 2, 3, 16, 17)}
    elif proto == 17:
        out |= {ihl + i for i in (0, 1, 2, 3, 6, 7)}
    elif proto == 1 and len(ip) >= ihl + 8:
        out |= {ihl + 2, ihl + 3}
        t = ip[ihl]
        if t in (0, 8, 13, 14):
            out |= {ihl + 4, ihl + 5}
        elif t in ICMP_ERRORS and len(ip) >= ihl + 8 + 20:
            inner_at = ihl + 8
            inner = ip[inner_at:]
            iihl = (inner[0] & 0x0f) * 4
            out |= {inner_at + i for i in (10, 11)} | set(range(inner_at + 12, inner_at + 20))
            ip4 = inner[9]
            fields = {6: (0, 1, 2, 3, 16, 17), 17: (0, 1, 2, 3, 6, 7), 1: (2, 3, 4, 5)}.get(ip4, ())
            out |= {inner_at + iihl + i for i in fields}
    return out


def check_arrival(dg: bytes, frames: list, sent: Packet, whole: Optional[Packet]) -> list:
    """What is wrong with datagram DG (from FRAMES) that came out of a router for SENT
    (WHOLE: the whole datagram, when SENT is one of its fragments)."""
    problems = []
    for _, f in frames:
        if not ipv4_header_ok(bytes(f[IP])):
            problems.append("IPv4 header checksum does not verify")
    original = bytes(whole if whole is not None else sent)
    proto = dg[9]
    ok = l4_checksum_ok(dg)
    sent_l4 = original[(original[0] & 0x0f) * 4:]
    l4 = dg[(dg[0] & 0x0f) * 4:]
    if proto == 17 and len(sent_l4) >= 8:
        if sent_l4[6:8] == b"\0\0" and l4[6:8] != b"\0\0":
            problems.append(f"UDP checksum 0 (none) became {l4[6:8].hex()}")
        elif sent_l4[6:8] != b"\0\0" and ok is not True:
            problems.append("UDP checksum does not verify" if ok is False else "UDP checksum became 0")
    elif proto in (1, 6) and ok is not True:
        problems.append(f"{'ICMP' if proto == 1 else 'TCP'} checksum does not verify")
    if proto == 1:
        problems += check_quote(dg)
    if len(dg) != len(original):
        problems.append(f"length {len(dg)}, sent {len(original)}")
    else:
        free = mutable_offsets(original, whole is not None)
        changed = [i for i in range(len(dg)) if dg[i] != original[i] and i not in free]
        if changed:
            problems.append(f"bytes changed that NAT has no reason to touch, at offsets {changed[:8]}")
        if dg[8] != original[8] - 1:
            problems.append(f"TTL {dg[8]}, sent {original[8]} (forwarding takes one)")
    return problems


def check_quote(ip: bytes, originals: Optional[list] = None) -> list:
    """An ICMP error's quoted packet: its IPv4 header checksum verifies, and its L4
    checksum when the quote holds the whole packet; in a shorter quote, a quoted L4
    checksum must be that of the packet as sent (ORIGINALS: candidates with the same
    IPv4 ID, the one with the quoted addresses and ports is it)."""
    ihl = (ip[0] & 0x0f) * 4
    l4 = ip[ihl:]
    if len(l4) < 8 or l4[0] not in ICMP_ERRORS:
        return []
    inner = l4[8:]
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return ["the quoted packet is not IPv4"]
    problems = []
    iihl = (inner[0] & 0x0f) * 4
    if len(inner) >= iihl and not ipv4_header_ok(inner):
        problems.append("quoted IPv4 header checksum does not verify")
    ok = l4_checksum_ok(inner)
    if ok is False:
        problems.append("quoted L4 checksum does not verify (the whole packet is quoted)")
    elif ok is None and originals:
        at = {6: 16, 17: 6, 1: 2}.get(inner[9])
        mine = [o for o in originals if tuple_of(o) == tuple_of(inner)]
        if at is not None and mine and len(inner) >= iihl + at + 2:
            theirs = mine[0][(mine[0][0] & 0x0f) * 4 + at:][:2]
            if inner[iihl + at:iihl + at + 2] != theirs:
                problems.append(f"quoted L4 checksum {inner[iihl + at:iihl + at + 2].hex()}, "
                                f"the packet had {theirs.hex()}")
    return problems


# ---------------------------------------------------------------------------- building cases

CASES: list[Case] = []
case = case_registry(CASES)
_next_port = [20000]


def fresh_port() -> int:
    _next_port[0] += 1
    return _next_port[0]


class Conn:
    """A TCP, UDP or ICMP echo conversation through the router. The client (address,
    port) sends to `to` (the server itself, or a port forward on WAN4); the server answers
    from `server` to the client as it sees it: `peer(cx)`, the router's chosen wan end
    for source NAT, the client itself for a port forward. TCP sequence numbers advance as
    an endpoint's would unless a step gives its own."""

    def __init__(self, proto: int, client: tuple, to: tuple, server: tuple, flow: Flow,
                 peer: Callable[[Ctx], tuple], cisn: int = 1000, sisn: int = 500000):
        self.proto, self.client, self.to, self.server, self.flow, self.peer = proto, client, to, server, flow, peer
        self.nxt = {"c": cisn, "s": sisn}
        self.win = {"c": 29200, "s": 28960}

    def _ends(self, who: str, cx: Ctx):
        if who == "c":
            return self.client, self.to
        return self.server, self.peer(cx)

    def seg(self, who: str, flags: str, data: bytes = b"", seq: Optional[int] = None, ack: Optional[int] = None,
            note: str = "", ttl: int = 64, advance: Optional[bool] = None) -> Step:
        peer_of = "s" if who == "c" else "c"
        if advance is None:
            advance = seq is None
        seq = self.nxt[who] if seq is None else seq
        if ack is None:
            ack = self.nxt[peer_of] if "A" in flags else 0
        opts = [("MSS", 1460), ("SAckOK", b"")] if "S" in flags else []
        win = self.win[who]
        if advance:
            self.nxt[who] = (seq + len(data) + ("S" in flags) + ("F" in flags)) % 2**32

        def make(cx: Ctx, seq=seq % 2**32, ack=ack % 2**32) -> Packet:
            (sa, sp), (da, dp) = self._ends(who, cx)
            pkt = IP(src=sa, dst=da, ttl=ttl) / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, window=win,
                                                    options=opts)
            return pkt / Raw(data) if data else pkt
        return Step(make, self.flow, note)

    def handshake(self) -> list:
        return [self.seg("c", "S"), self.seg("s", "SA"), self.seg("c", "A")]

    def close(self) -> list:
        return [self.seg("c", "FA"), self.seg("s", "A"), self.seg("s", "FA"), self.seg("c", "A")]

    def udp(self, who: str, data: bytes = b"ping", chksum: Optional[int] = None, note: str = "",
            ttl: int = 64) -> Step:
        def make(cx: Ctx) -> Packet:
            (sa, sp), (da, dp) = self._ends(who, cx)
            u = UDP(sport=sp, dport=dp) if chksum is None else UDP(sport=sp, dport=dp, chksum=chksum)
            return IP(src=sa, dst=da, ttl=ttl) / u / Raw(data)
        return Step(make, self.flow, note)

    def echo(self, who: str, seq: int, note: str = "") -> Step:
        """An echo request from the client (its id its port), or the server's reply."""
        def make(cx: Ctx) -> Packet:
            (sa, sp), (da, dp) = self._ends(who, cx)
            if who == "c":
                return IP(src=sa, dst=da) / ICMP(type=8, id=sp, seq=seq) / Raw(b"sluice-nat")
            return IP(src=sa, dst=da) / ICMP(type=0, id=dp, seq=seq) / Raw(b"sluice-nat")
        return Step(make, self.flow, note)


def outbound(proto: int, server: tuple, name: str = "a", client: str = IN4, sport: Optional[int] = None) -> Conn:
    """A connection from an inside host to SERVER, translated by masquerade."""
    p = sport or fresh_port()
    flow = Flow(name, proto, server=server, guess=p)
    return Conn(proto, (client, p), server, server, flow, lambda cx: (WAN4, cx.port(flow)))


def ping(name: str = "e", client: str = IN4, ident: Optional[int] = None) -> Conn:
    i = ident or fresh_port()
    flow = Flow(name, 1, server=(OUT4, 0), guess=i)
    return Conn(1, (client, i), (OUT4, 0), (OUT4, 0), flow, lambda cx: (WAN4, cx.port(flow)))


def forwarded(proto: int, port: int, to_port: int, name: str = "f") -> Conn:
    """A connection from the outside host to a port forward on WAN4."""
    q = fresh_port()
    flow = Flow(name, proto, fixed=(port,))
    return Conn(proto, (OUT4, q), (WAN4, port), (IN4, to_port), flow, lambda cx: (OUT4, q))


def hairpin(name: str = "h") -> Conn:
    """The second inside host reaching the inside server by the wan address's forward."""
    p = fresh_port()
    flow = Flow(name, 6, server=(IN4, FWD_TCP_TO), fixed=(FWD_TCP,), guess=p)
    return Conn(6, (IN2, p), (WAN4, FWD_TCP), (IN4, FWD_TCP_TO), flow, lambda cx: (WAN4, cx.port(flow)))


def icmp_error(src: str, dst: Union[str, Callable[[Ctx], str]], type_: int, code: int,
               quote: Callable[[Ctx], Packet], flow: Optional[Flow], size: Optional[int] = 28, note: str = "",
               **icmp_kw) -> Step:
    """An ICMP error from SRC quoting QUOTE(cx): its first SIZE bytes (28: RFC 792's
    header and 8 bytes; None: all of it)."""
    def make(cx: Ctx) -> Packet:
        quoted = bytes(quote(cx))
        if size is not None:
            quoted = quoted[:size]
        to = dst(cx) if callable(dst) else dst
        return IP(src=src, dst=to) / ICMP(type=type_, code=code, **icmp_kw) / Raw(quoted)
    return Step(make, flow, note)


def frag_steps(datagram: Callable[[Ctx], Packet], size: int, group: str, flow: Optional[Flow]) -> list:
    """The fragments of DATAGRAM(cx) (payload pieces of SIZE bytes), one step each."""
    sample = fragment(datagram(Ctx("sample")), fragsize=size)
    steps = []
    for i, piece in enumerate(sample):
        def make(cx: Ctx, i=i) -> Packet:
            whole = cx.groups.setdefault(group, datagram(cx))
            return fragment(whole, fragsize=size)[i]
        start = piece[IP].frag * 8
        steps.append(Step(make, flow, "fragment", group=group, last=i == len(sample) - 1,
                          frag_span=(start, start + len(piece[IP].payload))))
    return steps


# --- source NAT (masquerade): TCP

@case("TCP through masquerade: handshake, data both ways, FIN close")
def tcp_snat_handshake_data_fin():
    t = outbound(6, (OUT4, 80))
    return t.handshake() + [t.seg("c", "PA", b"GET / HTTP/1.0\r\n\r\n"), t.seg("s", "A"),
                            t.seg("s", "PA", b"x" * 300), t.seg("c", "A")] + t.close()


@case("TCP through masquerade: the server resets the connection; the client's data after it")
def tcp_snat_rst_from_server():
    t = outbound(6, (OUT4, 80))
    return t.handshake() + [t.seg("c", "PA", b"req"), t.seg("s", "R", note="exact"),
                            t.seg("c", "PA", b"after rst", note="after the RST")]


@case("TCP through masquerade: the client resets the connection; the server's data after it")
def tcp_snat_rst_from_client():
    t = outbound(6, (OUT4, 80))
    return t.handshake() + [t.seg("s", "PA", b"banner"), t.seg("c", "RA", note="client aborts"),
                            t.seg("s", "PA", b"late", note="after the RST")]


@case("TCP through masquerade: the server refuses (RST/ACK to the SYN), the client tries again")
def tcp_snat_refused():
    t = outbound(6, (OUT4, 81))
    return [t.seg("c", "S"), t.seg("s", "RA", seq=0, ack=1001),
            t.seg("c", "S", seq=1000, advance=False, note="retry, same ISN")]


@case("TCP: the server's SYN/ACK sent to the inside host's untranslated address, then to the mapping")
def tcp_reply_to_untranslated():
    t = outbound(6, (OUT4, 80))
    syn = t.seg("c", "S")
    wrong = t.seg("s", "SA", advance=False, note="to IN, not the router")
    wrong_pkt = wrong.pkt
    wrong.pkt = lambda cx: retarget(wrong_pkt(cx), IN4, t.client[1])
    return [syn, wrong, t.seg("s", "SA"), t.seg("c", "A")]


def retarget(pkt: Packet, addr: str, port: int) -> Packet:
    pkt = pkt.copy()
    pkt[IP].dst = addr
    if TCP in pkt:
        pkt[TCP].dport = port
    elif UDP in pkt:
        pkt[UDP].dport = port
    return pkt


@case("two inside hosts, same source port, same server port: two mappings, each reply to its host")
def tcp_two_hosts_same_port():
    p = fresh_port()
    a = outbound(6, (OUT4, 80), "a", IN4, p)
    b = outbound(6, (OUT4, 80), "b", IN2, p)
    return [a.seg("c", "S"), b.seg("c", "S"), b.seg("s", "SA"), a.seg("s", "SA"), a.seg("c", "A"), b.seg("c", "A"),
            a.seg("c", "PA", b"from a"), b.seg("c", "PA", b"from b"), b.seg("s", "PA", b"to b"),
            a.seg("s", "PA", b"to a")]


# --- source NAT: UDP and ICMP echo

@case("UDP through masquerade: request, answer, a second exchange on the same mapping")
def udp_snat_request_answer():
    u = outbound(17, (OUT4, 53))
    return [u.udp("c", b"query 1"), u.udp("s", b"answer 1"), u.udp("c", b"query 2"), u.udp("s", b"answer 2")]


@case("UDP with a zero checksum (none) both ways: it stays zero")
def udp_snat_zero_checksum():
    u = outbound(17, (OUT4, 5001))
    return [u.udp("c", b"no checksum", chksum=0), u.udp("s", b"none back", chksum=0),
            u.udp("c", b"with checksum")]


@case("UDP from a privileged source port (123) through masquerade")
def udp_snat_low_port():
    u = outbound(17, (OUT4, 123), sport=123)
    return [u.udp("c", b"ntp?"), u.udp("s", b"ntp!")]


@case("UDP: endpoint-dependent filtering: the mapping answers only the server it was made for")
def udp_snat_filtering():
    u = outbound(17, (OUT4, 53))
    other_port = Conn(17, u.client, u.to, (OUT4, 54), u.flow, u.peer)
    other_host = Conn(17, u.client, u.to, (OUTR, 53), u.flow, u.peer)
    return [u.udp("c", b"query"), other_port.udp("s", b"from port 54"), other_host.udp("s", b"from 10.2.0.254"),
            u.udp("s", b"the server")]


@case("UDP: the server answers to the inside host's untranslated address (then to the mapping)")
def udp_reply_to_untranslated():
    u = outbound(17, (OUT4, 53))
    wrong = u.udp("s", b"misaddressed", note="to IN, not the router")
    wrong_pkt = wrong.pkt
    wrong.pkt = lambda cx: retarget(wrong_pkt(cx), IN4, u.client[1])
    return [u.udp("c", b"query"), wrong, u.udp("s", b"answer")]


@case("ICMP echo through masquerade: the identifier is translated, the same for every request")
def icmp_echo_snat():
    e = ping()
    return [e.echo("c", 1), e.echo("s", 1), e.echo("s", 1, note="duplicate reply"), e.echo("c", 2), e.echo("s", 2)]


@case("ICMP echo from two inside hosts with the same identifier: two mappings")
def icmp_echo_two_hosts():
    i = fresh_port()
    a = ping("a", IN4, i)
    b = ping("b", IN2, i)
    return [a.echo("c", 1), b.echo("c", 1), b.echo("s", 1), a.echo("s", 1)]


# --- unsolicited traffic to the wan address

@case("unsolicited inbound to the masquerade address: UDP, TCP SYN, a port next to a forward")
def unsolicited_to_wan():
    p, q = fresh_port(), fresh_port()
    return [Step(IP(src=OUT4, dst=WAN4) / UDP(sport=p, dport=40000) / Raw(b"hello?")),
            Step(IP(src=OUT4, dst=WAN4) / TCP(sport=q, dport=40001, flags="S", seq=1)),
            Step(IP(src=OUT4, dst=WAN4) / TCP(sport=q, dport=FWD_TCP + 1, flags="S", seq=1)),
            Step(IP(src=OUT4, dst=WAN4) / UDP(sport=p, dport=FWD_UDP + 1) / Raw(b"next door"))]


@case("echo request from outside to the wan address: the router answers it itself")
def echo_to_wan():
    i = fresh_port()
    return [Step(IP(src=OUT4, dst=WAN4) / ICMP(type=8, id=i, seq=1) / Raw(b"router?"))]


# --- port forwards (destination NAT)

@case("TCP port forward 8080 -> IN:80 from outside: SYN, the server's SYN/ACK, data, close")
def dnat_tcp_forward():
    t = forwarded(6, FWD_TCP, FWD_TCP_TO)
    return t.handshake() + [t.seg("c", "PA", b"GET /"), t.seg("s", "PA", b"200 OK"), t.seg("c", "A")] + t.close()


@case("TCP port forward: the inside server refuses with RST/ACK")
def dnat_tcp_refused():
    t = forwarded(6, FWD_TCP, FWD_TCP_TO)
    return [t.seg("c", "S"), t.seg("s", "RA", seq=0, ack=1001)]


@case("UDP port forward 5353 -> IN:53 from outside: request and answer, twice")
def dnat_udp_forward():
    u = forwarded(17, FWD_UDP, FWD_UDP_TO)
    return [u.udp("c", b"query"), u.udp("s", b"answer"), u.udp("c", b"again"), u.udp("s", b"answer 2")]


@case("TCP port range forward 9000-9009 -> IN:7000-7009: offset by offset; 9010 is not forwarded")
def dnat_port_range():
    first = forwarded(6, FWD_RANGE, FWD_RANGE_TO, "r0")
    mid = forwarded(6, FWD_RANGE + 7, FWD_RANGE_TO + 7, "r7")
    last = forwarded(6, FWD_RANGE + 9, FWD_RANGE_TO + 9, "r9")
    beyond = forwarded(6, FWD_RANGE + 10, FWD_RANGE_TO + 10, "rx")
    return [first.seg("c", "S"), first.seg("s", "SA"), mid.seg("c", "S"), mid.seg("s", "SA"),
            last.seg("c", "S"), last.seg("s", "SA"), beyond.seg("c", "S", note="outside the range")]


@case("hairpin: the second inside host connects to the wan address's forward; the server answers through the router")
def hairpin_tcp():
    t = hairpin()
    return t.handshake() + [t.seg("c", "PA", b"GET / (hairpin)"), t.seg("s", "PA", b"200 OK"), t.seg("c", "A")]


# --- ICMP errors about translated flows

@case("time exceeded from a router beyond, about a SYN that left through masquerade (28-byte quote)")
def icmp_time_exceeded_snat():
    t = outbound(6, (OUT4, 80))
    return [t.seg("c", "S"), icmp_error(OUTR, WAN4, 11, 0, lambda cx: cx.arrived(0), t.flow)]


@case("port unreachable from the server about a UDP datagram through masquerade (whole datagram quoted)")
def icmp_port_unreach_snat():
    u = outbound(17, (OUT4, 4000))
    return [u.udp("c", b"anyone?"), icmp_error(OUT4, WAN4, 3, 3, lambda cx: cx.arrived(0), u.flow, size=None)]


@case("fragmentation needed from a router beyond, about TCP data through masquerade (548-byte quote)")
def icmp_frag_needed_snat():
    t = outbound(6, (OUT4, 80))
    steps = t.handshake() + [t.seg("c", "PA", b"d" * 1200)]
    return steps + [icmp_error(OUTR, WAN4, 3, 4, lambda cx: cx.arrived(3), t.flow, size=548, nexthopmtu=1000),
                    t.seg("c", "PA", b"d" * 900, note="smaller")]


@case("host unreachable from a router beyond, about an echo request through masquerade")
def icmp_error_about_echo():
    e = ping()
    return [e.echo("c", 1), icmp_error(OUTR, WAN4, 3, 1, lambda cx: cx.arrived(0), e.flow, size=None)]


@case("the inside host's port unreachable about a reply (outer source and quoted destination become WAN)")
def icmp_inside_unreach_about_reply():
    u = outbound(17, (OUT4, 53))
    return [u.udp("c", b"query"), u.udp("s", b"answer"),
            icmp_error(IN4, OUT4, 3, 3, lambda cx: cx.arrived(1), u.flow, size=None)]


@case("ICMP errors about a port-forwarded flow: the inside server's port unreachable, and time exceeded "
      "from beyond about the server's answer")
def icmp_errors_dnat():
    u = forwarded(17, FWD_UDP, FWD_UDP_TO)
    return [u.udp("c", b"query"), icmp_error(IN4, OUT4, 3, 3, lambda cx: cx.arrived(0), u.flow, size=None),
            u.udp("c", b"query 2"), u.udp("s", b"answer"),
            icmp_error(OUTR, WAN4, 11, 0, lambda cx: cx.arrived(3), u.flow)]


@case("an ICMP error to the wan address quoting a flow that does not exist")
def icmp_error_no_flow():
    ghost = IP(src=WAN4, dst=OUT4, id=7) / UDP(sport=40002, dport=53) / Raw(b"ghost")
    return [icmp_error(OUT4, WAN4, 3, 3, lambda cx: ghost, None, size=None)]


@case("an ICMP error sent to the inside host's untranslated address, quoting the untranslated packet")
def icmp_error_to_untranslated():
    u = outbound(17, (OUT4, 4001))
    return [u.udp("c", b"probe"), icmp_error(OUT4, IN4, 3, 3, lambda cx: cx.sent[0], u.flow, size=None)]


# --- the router's own ICMP errors

@case("TTL 1 from inside through masquerade: the router's time exceeded quotes the packet as sent")
def router_ttl_snat():
    u = outbound(17, (OUT4, 33434))
    return [u.udp("c", b"traceroute", ttl=1), u.udp("c", b"next hop", ttl=2)]


@case("TTL 1 from outside to the TCP port forward: the router's time exceeded")
def router_ttl_dnat():
    t = forwarded(6, FWD_TCP, FWD_TCP_TO)
    return [t.seg("c", "S", ttl=1, advance=False), t.seg("c", "S", ttl=2)]


@case("TTL 1 on a reply to a masqueraded flow: the router's time exceeded")
def router_ttl_reply():
    u = outbound(17, (OUT4, 53))
    return [u.udp("c", b"query"), u.udp("s", b"answer", ttl=1), u.udp("s", b"answer", ttl=2)]


# --- fragments

@case("UDP in three fragments from inside through masquerade, and the answer")
def frag_udp_snat():
    u = outbound(17, (OUT4, 7000))
    return frag_steps(u.udp("c", b"F" * 1000).pkt, 400, "a", u.flow) + [u.udp("s", b"got it")]


@case("UDP in three fragments from outside to the UDP port forward, and the answer")
def frag_udp_dnat():
    u = forwarded(17, FWD_UDP, FWD_UDP_TO)
    return frag_steps(u.udp("c", b"G" * 1000).pkt, 400, "a", u.flow) + [u.udp("s", b"got it")]


# ---------------------------------------------------------------------------- running

class Router:
    def __init__(self, name: str, http_port: int):
        self.name = name
        spec = ROUTERS[name]
        self.ports = {"in": Port(*spec["in"]), "out": Port(*spec["out"])}
        self.router_ns = spec.get("router_ns")
        self.http_port = http_port

    def flush(self) -> None:
        if self.name == "linux":
            linux_conntrack(self.router_ns, "-F")
            return
        for attempt in range(5):
            try:
                sluice_post(self.http_port, "/flows/flush")
                return
            except urllib.error.HTTPError as e:  # 503: the worker did not answer within 2 s (a busy host)
                if e.code != 503 or attempt == 4:
                    raise

    def explain(self) -> str:
        if self.name == "linux":
            return linux_conntrack(self.router_ns, "-L").strip() or "(no conntrack entries)"
        flows = sluice_get(self.http_port, "/flows?limit=50")
        stats = sluice_get(self.http_port, "/stats")
        drops = {k: v for k, v in stats.get("drops", {}).items() if v}
        return json.dumps(flows.get("flows", flows)) + "\ndrops so far: " + json.dumps(drops)

    def send(self, pkt: Packet) -> None:
        port = self.ports[side_of(pkt[IP].src)]
        port.send(Ether(src=port.mac, dst=port.gw_mac) / pkt)


@dataclass
class Outcome:
    """One router's result for one step."""
    text: str
    problems: list = field(default_factory=list)
    late: float = 0.0  # seconds it came out after it was sent, when beyond the wait


class Runner:
    def __init__(self, routers: list, wait: float, straggle: float, explain: bool):
        self.routers = routers
        self.wait = wait
        self.straggle = straggle
        self.explain = explain
        self.markers = Markers()

    def all_ports(self) -> list:
        return [p for r in self.routers for p in r.ports.values()]

    def prepare(self) -> None:
        for r in self.routers:
            r.ports["in"].gw_mac = arp_gateway(r.ports["in"], IN4, LAN4)
            r.ports["out"].gw_mac = arp_gateway(r.ports["out"], OUT4, WAN4)
        # Both routers learn both inside hosts' and the outside host's MACs before any case counts.
        def warm():
            a = outbound(17, (OUT4, 9), "a", IN4, 9)
            b = outbound(17, (OUT4, 9), "b", IN2, 9)
            return [a.udp("c", b"warm-up"), b.udp("c", b"warm-up"), a.udp("s", b"warm-up"), b.udp("s", b"warm-up")]
        warm_case = Case("warm_up", "neighbours", warm)
        for _ in range(20):
            res = self.run_case(warm_case, 0.5)
            if all(o.text.startswith("pass") for r in self.routers for o in res[r.name]):
                break
        else:
            die(f"warm-up traffic does not get through: { {r.name: [o.text for o in res[r.name]] for r in self.routers} }")
        for r in self.routers:
            r.flush()

    def materialise(self, step: Step, cx: Ctx, marker: int) -> Packet:
        pkt = build(step, cx).copy()
        pkt[IP].id = marker
        pkt[IP].chksum = None
        if step.group is not None:
            whole = cx.groups[step.group]
            whole[IP].id = marker
            cx.whole[len(cx.sent)] = IP(bytes(whole))
        return IP(bytes(pkt))  # freeze checksums and lengths as sent

    def attribute(self, cx: Ctx, router: Router, seen: dict, markers: dict, step_now: int) -> None:
        """Files the frames ROUTER's hosts received since the last call."""
        for side, port in router.ports.items():
            for t, f in port.frames[seen[side]:]:
                self.file_frame(cx, side, f, markers, step_now, t)
            seen[side] = len(port.frames)

    @staticmethod
    def file_frame(cx: Ctx, side: str, f: Packet, markers: dict, step_now: int, t: float) -> None:
        if IP not in f:
            return
        ip = f[IP]
        raw = bytes(ip)
        ihl = ip.ihl * 4
        inner_id = None
        if ip.proto == 1 and len(raw) >= ihl + 28 and raw[ihl] in ICMP_ERRORS:
            inner_id = struct.unpack("!H", raw[ihl + 12:ihl + 14])[0]
        k = markers.get(ip.id)
        if k is not None and k >= len(cx.sent):
            k = None  # a marker not sent yet: the router's own packet
        if k is not None and ip.proto == cx.sent[k][IP].proto and inner_id != ip.id:
            sent = cx.sent[k]
            answer = ICMP in sent and sent[ICMP].type == 8 and raw[ihl] == 0 and ip.dst == sent[IP].src
            if not answer:
                cx.rx.setdefault(ip.id, []).append((side, f))
                cx.rx_at[ip.id] = t
                return
        if inner_id is not None and markers.get(inner_id, len(cx.sent)) < len(cx.sent):
            cx.back.setdefault(inner_id, []).append((side, f))
            return
        if ip.proto == 1 and len(raw) >= ihl + 8 and raw[ihl] == 0:
            ident, seq = struct.unpack("!HH", raw[ihl + 4:ihl + 8])
            for m, j in markers.items():
                s = cx.sent[j] if j < len(cx.sent) else None
                if s is not None and ICMP in s and s[ICMP].type == 8 and s[ICMP].id == ident and s[ICMP].seq == seq \
                        and s[IP].src == ip.dst:
                    cx.back.setdefault(m, []).append((side, f))
                    return
        cx.stray.setdefault(step_now, []).append((side, f))

    def learn(self, cx: Ctx, k: int, step: Step) -> None:
        """The wan port a router chose for STEP's flow: the source port (an echo request's
        identifier) of its first packet that left with the wan address as source."""
        f = step.flow
        if f is None or f.name in cx.chosen:
            return
        dg = cx.datagram_of(k)
        if not dg:
            return
        ip = dg[0]
        ihl = (ip[0] & 0x0f) * 4
        if ip[12:16] != bytes(int(x) for x in WAN4.split(".")):
            return
        if ip[9] in (6, 17):
            port = l4_fields(ip[9], ip[ihl:])[0]
        elif ip[9] == 1 and ip[ihl] == 8:
            port = struct.unpack("!H", ip[ihl + 4:ihl + 6])[0]
        else:
            return
        if port is not None and port not in f.fixed:
            cx.chosen[f.name] = port

    def run_case(self, c: Case, wait: Optional[float] = None) -> dict:
        wait = self.wait if wait is None else wait
        for r in self.routers:
            r.flush()
        # Each case's ports from its name: the same whichever cases run, and in what order.
        _next_port[0] = 20000 + 40 * (zlib.crc32(c.name.encode()) % 1000)
        steps = c.build()
        marker_of, groups = [], {}
        for step in steps:
            if step.group is not None:
                marker_of.append(groups.setdefault(step.group, self.markers.next()))
            else:
                marker_of.append(self.markers.next())
        markers = {}
        for k, m in enumerate(marker_of):
            markers.setdefault(m, k)
        ctxs = {r.name: Ctx(r.name) for r in self.routers}
        for cx in ctxs.values():
            cx.marker_of = marker_of
        seen = {r.name: {"in": 0, "out": 0} for r in self.routers}
        for p in self.all_ports():
            p.clear()

        for k, step in enumerate(steps):
            for r in self.routers:
                cx = ctxs[r.name]
                pkt = self.materialise(step, cx, marker_of[k])
                cx.sent.append(pkt)
                cx.sent_at.append(time.monotonic())
                r.send(pkt)

            def arrived_at(which):
                for r in self.routers:
                    self.attribute(ctxs[r.name], r, seen[r.name], markers, k)
                return which(bool(ctxs[r.name].datagram_of(k)) for r in self.routers)
            # A fragment before the last cannot come out alone where the router reassembles.
            pump(self.all_ports(), wait if step.last else 0.02, until=(lambda: arrived_at(all)) if step.last else None)
            if step.last and len(self.routers) > 1 and arrived_at(any) and not arrived_at(all):
                # One router forwarded it, the other not yet: a busy host can stall a
                # polling worker for longer than `wait`. The packet, not a rerun, decides.
                pump(self.all_ports(), self.straggle, until=lambda: arrived_at(all))
            for r in self.routers:
                self.attribute(ctxs[r.name], r, seen[r.name], markers, k)
                self.learn(ctxs[r.name], k, step)
        # Stragglers (a late fragment, an ICMP error): a short last look, longer while the
        # routers' results differ.
        deadline = time.monotonic() + self.straggle
        while True:
            pump(self.all_ports(), 0.05)
            for r in self.routers:
                self.attribute(ctxs[r.name], r, seen[r.name], markers, len(steps) - 1)
            res = {"_steps": steps, "_ctx": ctxs}
            for r in self.routers:
                cx = ctxs[r.name]
                res[r.name] = [self.outcome(cx, k, step, marker_of[k]) for k, step in enumerate(steps)]
                res[r.name][-1].problems += self.mapping_problems(cx, steps)
            if len(self.routers) < 2 or time.monotonic() >= deadline or all(
                    verdict(c.name, k, a, b)[0] != "MISMATCH"
                    for k, (a, b) in enumerate(zip(res["linux"], res["sluice"]), start=1)):
                break
        if self.explain:
            res["_explain"] = {r.name: r.explain() for r in self.routers}
        return res

    def outcome(self, cx: Ctx, k: int, step: Step, marker: int) -> Outcome:
        frames = cx.rx.get(marker, [])
        problems = []
        late = 0.0
        if step.group is not None and not step.last:
            text = "pass" if covered(frames, step.frag_span) else "drop"
        else:
            dg = assemble(frames)
            if dg:
                ip, n, side, copies = dg
                late = cx.rx_at[marker] - cx.sent_at[k]
                text = f"pass {side}: {normal(ip, step.flow, cx)}"
                if n > 1:
                    text += f" [{n} fragments]"
                if copies > 1:
                    text += f" [{copies} copies]"
                problems += check_arrival(ip, frames, cx.sent[k], cx.whole.get(k))
                if ip[9] == 1:
                    problems += self.quote_problems(cx, ip)
                sides = {s for s, _ in frames}
                if len(sides) > 1:
                    text += " [also on the other side]"
            elif frames:
                text = f"partial {frames[0][0]}: {len(frames)} frames"
            else:
                text = "drop"
        if step.group is None or step.last:
            for side, f in cx.back.get(marker, []):
                raw = bytes(f[IP])
                text += f" +back {side}: {normal(raw, step.flow, cx)}"
                if not ipv4_header_ok(raw):
                    problems.append("the router's answer: IPv4 header checksum does not verify")
                if l4_checksum_ok(raw) is False:
                    problems.append("the router's answer: ICMP checksum does not verify")
                problems += [f"the router's answer: {p}" for p in check_quote(raw)]
        for side, f in cx.stray.get(k, []):
            text += f" +stray {side}: {describe(f)}"
        return Outcome(text, problems, late if late > self.wait else 0.0)

    @staticmethod
    def quote_problems(cx: Ctx, ip: bytes) -> list:
        """A forwarded ICMP error: its quoted L4 checksum against the quoted packet as
        each end saw it (as sent, as it came out of this router)."""
        ihl = (ip[0] & 0x0f) * 4
        if len(ip) < ihl + 28 or ip[ihl] not in ICMP_ERRORS:
            return []
        inner_id = struct.unpack("!H", ip[ihl + 12:ihl + 14])[0]
        originals = []
        for k, m in enumerate(cx.marker_of):
            if m == inner_id:
                originals.append(bytes(cx.whole.get(k, cx.sent[k])))
                dg = cx.datagram_of(k)
                if dg:
                    originals.append(dg[0])
        return [p for p in check_quote(ip, originals) if "checksum" in p and "packet had" in p]

    @staticmethod
    def mapping_problems(cx: Ctx, steps: list) -> list:
        """Flows to one server must have distinct outside ports."""
        problems = []
        flows = {s.flow.name: s.flow for s in steps if s.flow is not None}
        by_server = {}
        for name, port in cx.chosen.items():
            f = flows[name]
            if f.server:
                by_server.setdefault((f.proto, f.server, port), []).append(name)
        for (proto, server, port), names in by_server.items():
            if len(names) > 1:
                problems.append(f"flows {', '.join(names)} to {server} share the outside port {port}")
        return problems


def verdict(case_name: str, k: int, linux: Outcome, sluice: Outcome) -> tuple:
    if linux.problems or sluice.problems:
        return "MISMATCH", "failed checks"
    if linux.text == sluice.text:
        return "ok", ""
    allowed = INTENDED.get((case_name, k))
    if allowed and allowed[0] == linux.text and allowed[1] == sluice.text:
        return "intended", allowed[2]
    return "MISMATCH", ""


def print_case(c: Case, res: dict, names: list, out) -> dict:
    counts = {"ok": 0, "intended": 0, "MISMATCH": 0}
    print(f"\n== {c.name}: {c.what}", file=out)
    first = res["_ctx"][names[0]]
    for k, step in enumerate(res["_steps"], start=1):
        sent = first.sent[k - 1]
        what = describe(sent) if step.group is not None else normal(bytes(sent), step.flow, first)
        if step.note and step.note != "fragment":
            what += f" ({step.note})"
        line = f"  {k:>2}  {what}"
        if len(names) == 2:
            v, why = verdict(c.name, k, res["linux"][k - 1], res["sluice"][k - 1])
            counts[v] += 1
            line += "  -> " + {"ok": "match", "intended": "intended difference", "MISMATCH": "MISMATCH"}[v]
            if why:
                line += f": {why}"
        print(line, file=out)
        same = len(names) == 2 and res["linux"][k - 1].text == res["sluice"][k - 1].text
        for n in names:
            o = res[n][k - 1]
            if not (same and n == "sluice"):
                print(f"        {('both' if same else n):7} {o.text}", file=out)
            for p in o.problems:
                print(f"        {n:7} CHECK FAILED: {p}", file=out)
            if o.late:
                print(f"        {n:7} (came out {o.late:.2f} s after it was sent)", file=out)
    chosen = {n: res["_ctx"][n].chosen for n in names}
    flows = sorted({f for n in names for f in chosen[n]})
    if flows:
        print("      outside ports chosen: " + ", ".join(
            f"~{f} " + "/".join(f"{n} {chosen[n].get(f, '-')}" for n in names) for f in flows), file=out)
    for n, text in res.get("_explain", {}).items():
        print(f"  --- {n} after the case:", file=out)
        for t in text.splitlines():
            print(f"      {t}", file=out)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--router", choices=["linux", "sluice", "both"], default="both",
                    help="run against one router (prints what it did) or both (compares them)")
    ap.add_argument("--case", action="append", default=[], metavar="NAME",
                    help="run only this case (shell pattern; repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--wait", type=float, default=0.35, help="seconds to wait for each packet (default 0.35)")
    ap.add_argument("--straggle", type=float, default=3.0,
                    help="seconds to wait on for a packet one router forwarded and the other not yet, and at the "
                         "end of a case whose results differ (default 3)")
    ap.add_argument("--http", type=int, default=DEFAULT_HTTP_PORT, help="Sluice's HTTP port (flush, --explain)")
    ap.add_argument("--explain", action="store_true", help="after each case, show each router's flows")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = ap.parse_args()

    if args.list:
        for c in CASES:
            print(f"{c.name:32} {c.what}")
        return 0
    selected = [c for c in CASES if not args.case or any(fnmatch.fnmatch(c.name, p) for p in args.case)]
    if not selected:
        print(f"error: no case matches {args.case} (see --list)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("error: needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    names = ["linux", "sluice"] if args.router == "both" else [args.router]
    routers = [Router(n, args.http) for n in names]
    runner = Runner(routers, args.wait, args.straggle, args.explain)
    started = time.monotonic()
    runner.prepare()

    totals = {"ok": 0, "intended": 0, "MISMATCH": 0}
    failed_cases, dump = [], {}
    packets = 0
    for c in selected:
        res = runner.run_case(c)
        counts = print_case(c, res, names, sys.stdout)
        for k in totals:
            totals[k] += counts[k]
        if counts["MISMATCH"] or any(o.problems for n in names for o in res[n]):
            failed_cases.append(c.name)
        packets += len(res["_steps"])
        dump[c.name] = {n: [{"result": o.text, "problems": o.problems} for o in res[n]] for n in names}
        sys.stdout.flush()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dump, f, indent=1)
    elapsed = time.monotonic() - started
    print(f"\n{len(selected)} cases, {packets} packets, {elapsed:.1f} s")
    if len(names) == 1:
        if failed_cases:
            print(f"failed checks in: {' '.join(failed_cases)}")
        return 1 if failed_cases else 0
    print(f"packets: {totals['ok']} match, {totals['intended']} intended differences, "
          f"{totals['MISMATCH']} mismatches")
    if failed_cases:
        print(f"FAIL: unexpected differences or failed checks in: {' '.join(failed_cases)}")
        return 1
    print("PASS: Sluice translated as Linux nftables NAT did, but for the intended differences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
