#!/usr/bin/python3
"""Differential test of Sluice's connection tracking and stateful firewall (issue 4).

The same scapy-crafted packet sequences go through two routers that should decide alike:

  linux   a netns router with nftables and nf_conntrack (`ct state established,related
          accept`, `ct state invalid drop`, policy drop, the service rules below)
  sluice  Sluice on net_af_packet with ["parse", "conntrack", "route"] and the same rules

Each router has its own pair of host namespaces (the addresses are the same on both):

  inside host  10.1.0.2 fd00:1::2, also 10.1.0.3  (gateway 10.1.0.1 fd00:1::1)
  outside host 10.2.0.2 fd00:2::2  (gateway 10.2.0.1 fd00:2::1)

The hosts' kernels see nothing (an nftables prerouting drop in each host netns, neighbour
discovery excepted): the driver sends raw frames from one host's interface and watches the
other's, so what arrives is only what the router forwarded. Every packet carries a marker
(IPv4 ID, IPv6 flow label) to recognise it; a packet "passes" when it reaches the other
host before its case ends. Anything the router sends back to the sender in reply (a RST
or an ICMP error quoting the packet, as `reject` does) is reported too ("drop+rst").

tests/integration/test_conntrack_diff.sh builds the topology, starts Sluice and runs this
with its own arguments, so for debugging:

  tests/conntrack/diff_cases.py --list
  tests/integration/test_conntrack_diff.sh --case 'tcp_rst_*' --explain
  tests/integration/test_conntrack_diff.sh --case tcp_rst_exact --router linux

(or, with the topology left up by CD_KEEP=1, this script directly with the same options).

Exit status: 0 when every decision matched (or is an allowlisted intended difference),
1 on any other mismatch, 2 when the test could not run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import sys
import time
import urllib.error
from dataclasses import dataclass
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
    linux_conntrack,
    pump,
    sluice_get,
    sluice_post,
)
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, fragment  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    ICMPv6Unknown,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    fragment6,
)
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkInitAck  # noqa: E402
from scapy.packet import Packet, Raw  # noqa: E402

# ---------------------------------------------------------------------------- topology

IN4, OUT4, GW_IN4, GW_OUT4 = "10.1.0.2", "10.2.0.2", "10.1.0.1", "10.2.0.1"
OTHER_IN4 = "10.1.0.3"  # a second address of the inside host: another inside host
IN6, OUT6 = "fd00:1::2", "fd00:2::2"
# test_conntrack_diff.sh shortens these on both routers (Linux sysctls, Sluice config) so
# that a case can wait for a flow to expire: UDP unreplied, ICMP and ICMPv6 seconds.
SHORT_TIMEOUT = 3
# Seconds to wait for a packet one router forwarded and the other not yet (as the NAT
# differential test does): a busy host stalls the polling worker for longer than --wait.
STRAGGLE = 3.0

# Host netns and interface of each side, per router (test_conntrack_diff.sh makes them).
ROUTERS = {
    "linux": {"in": ("cdli", "cdli0"), "out": ("cdlo", "cdlo0"), "router_ns": "cdlr"},
    "sluice": {"in": ("cdsi", "cdsi0"), "out": ("cdso", "cdso0")},
}
DEFAULT_HTTP_PORT = 9210

# ---------------------------------------------------------------------------- intended differences

# (case, step number as printed) -> (linux decision, sluice decision, one-line reason).
# Only deliberate design choices belong here (docs/conntrack-differences.md explains each);
# a difference that is a Sluice bug stays a failure until it is fixed.
INTENDED = {
    ("frag6_udp_from_outside", 2): (
        "drop", "pass",
        "Sluice does not reassemble: a later fragment has no ports and is forwarded (later_fragments: accept)"),
    ("sctp_ports", 3): (
        "drop", "pass",
        "Sluice tracks protocols other than TCP, UDP, ICMP by address pair only (no SCTP ports or chunk states)"),
    ("tcp_bad_checksum_data", 4): (
        "drop", "pass",
        "Sluice verifies no TCP checksum on data segments of a known flow (only on SYN, FIN, RST and new flows)"),
}
# On net_af_packet the kernel reassembles IPv4 fragments before Sluice sees them (DPDK's
# PMD joins its sockets to a fanout group with PACKET_FANOUT_FLAG_DEFRAG), so the IPv4
# fragment cases match there. test_conntrack_diff.sh runs the fragment cases a second time
# over net_tap (--sluice-driver tap), which hands Sluice the fragments themselves: IPv4
# later fragments then behave as the IPv6 one above, and the driver checks that Sluice's
# parse and conntrack stages counted every fragment it was sent (fragment_counts).
INTENDED_BY_DRIVER = {
    "af_packet": {},
    "tap": {
        ("frag_udp_from_outside", 2): (
            "drop", "pass",
            "Sluice does not reassemble: a later fragment has no ports and is forwarded (later_fragments: accept)"),
        ("frag_udp_from_outside", 3): (
            "drop", "pass",
            "Sluice does not reassemble: a later fragment has no ports and is forwarded (later_fragments: accept)"),
    },
}


# ---------------------------------------------------------------------------- packets

def signature(pkt: Packet):
    """What identifies a packet we sent after a router forwarded it (TTL, checksum changed)."""
    if IP in pkt:
        ip = pkt[IP]
        return ("4", ip.src, ip.dst, ip.proto, ip.id, ip.frag)
    if IPv6 in pkt:
        ip6 = pkt[IPv6]
        frag = pkt[IPv6ExtHdrFragment].offset if IPv6ExtHdrFragment in pkt else None
        return ("6", ip6.src, ip6.dst, ip6.fl, frag)
    return None


def datagram_span(pkt: Packet):
    """(datagram key, first byte, end) of the part of its IP datagram a packet carries:
    a fragment its own range, a whole datagram all of it. Routers may reassemble and
    fragment again (Linux conntrack does; af_packet's fanout reassembles IPv4), so a
    fragment has arrived when what reached the other side covers its bytes."""
    if IP in pkt:
        ip = pkt[IP]
        start = ip.frag * 8
        return ("4", ip.src, ip.dst, ip.proto, ip.id), start, start + len(ip.payload)
    ip6 = pkt[IPv6]
    if IPv6ExtHdrFragment in pkt:
        f = pkt[IPv6ExtHdrFragment]
        start = f.offset * 8
        return ("6", ip6.src, ip6.dst, ip6.fl), start, start + len(f.payload)
    return ("6", ip6.src, ip6.dst, ip6.fl), 0, len(ip6.payload)


def is_fragment(pkt: Packet) -> bool:
    if IP in pkt:
        return bool(pkt[IP].frag or pkt[IP].flags.MF)
    return IPv6ExtHdrFragment in pkt


def arrived(pkt: Packet, frames: list) -> bool:
    """Whether PKT (as sent) is among FRAMES (as received by the other host)."""
    if not is_fragment(pkt):
        sig = signature(pkt)
        return any(signature(f) == sig for _, f in frames)
    key, start, end = datagram_span(pkt)
    spans = sorted((s, e) for k, s, e in (datagram_span(f) for _, f in frames if IP in f or IPv6 in f) if k == key)
    reach = start
    for s, e in spans:
        if s <= reach < e:
            reach = e
        if reach >= end:
            return True
    return False


def back_kind(frame: Packet, sent: Packet) -> Optional[str]:
    """Whether FRAME, received by the host that sent SENT, is the router's answer to it:
    a RST for a TCP segment, or an ICMP error quoting it."""
    v4 = IP in sent
    outer = frame[IP] if v4 and IP in frame else (frame[IPv6] if not v4 and IPv6 in frame else None)
    if outer is None or outer.dst != (sent[IP].src if v4 else sent[IPv6].src):
        return None
    if TCP in sent and TCP in frame and not (IPerror in frame or IPerror6 in frame):
        t, s = frame[TCP], sent[TCP]
        if t.sport == s.dport and t.dport == s.sport and outer.src == (sent[IP].dst if v4 else sent[IPv6].dst) \
                and "R" in t.flags:
            return "rst"
        return None
    if v4 and ICMP in frame and IPerror in frame:
        inner = frame[IPerror]
        if inner.id == sent[IP].id and inner.src == sent[IP].src and inner.dst == sent[IP].dst:
            return f"icmp{frame[ICMP].type}/{frame[ICMP].code}"
    if not v4 and IPerror6 in frame:
        inner = frame[IPerror6]
        if inner.fl == sent[IPv6].fl and inner.src == sent[IPv6].src and inner.dst == sent[IPv6].dst:
            layer = frame[IPv6].payload
            return f"icmp6-{layer.type}/{layer.code}"
    return None


# ---------------------------------------------------------------------------- cases

PktOrBuilder = Union[Packet, Callable[[list], Packet]]


@dataclass
class Step:
    dir: str                 # "out": inside -> outside; "in": outside -> inside
    pkt: PktOrBuilder        # an L3 packet, or a function of the packets sent so far (for quoting)
    note: str = ""
    group: Optional[str] = None  # the fragments of one datagram share their marker
    delay: float = 0.0       # seconds to wait before sending (for timeouts)


CASES: list[Case] = []
case = case_registry(CASES)
_next_port = [20000]


def fresh_port() -> int:
    _next_port[0] += 1
    return _next_port[0]


def addr(side: str, v6: bool) -> str:
    return (IN6 if side == "in" else OUT6) if v6 else (IN4 if side == "in" else OUT4)


def l3(src_side: str, v6: bool) -> Packet:
    dst_side = "out" if src_side == "in" else "in"
    if v6:
        return IPv6(src=addr(src_side, True), dst=addr(dst_side, True))
    return IP(src=addr(src_side, False), dst=addr(dst_side, False))


def other(side: str) -> str:
    return "out" if side == "in" else "in"


def travel(sender_side: str) -> str:
    """The direction a packet sent by the host on SENDER_SIDE travels."""
    return "out" if sender_side == "in" else "in"


class Tcp:
    """A scripted TCP connection: the client (on side `client`) opens it to the server.
    Sequence numbers advance as an endpoint's would unless a step gives its own."""

    def __init__(self, client: str = "in", dport: int = 80, v6: bool = False, cisn: int = 1000,
                 sisn: int = 500000, cwin: int = 29200, swin: int = 28960, wscale=(None, None),
                 sport: Optional[int] = None):
        self.side = {"c": client, "s": other(client)}
        self.port = {"c": sport or fresh_port(), "s": dport}
        self.v6 = v6
        self.nxt = {"c": cisn, "s": sisn}
        self.win = {"c": cwin, "s": swin}
        self.wscale = {"c": wscale[0], "s": wscale[1]}

    def seg(self, who: str, flags: str, data: bytes = b"", seq: Optional[int] = None, ack: Optional[int] = None,
            win: Optional[int] = None, note: str = "", advance: Optional[bool] = None, options=None,
            **tcp_kw) -> Step:
        peer = "s" if who == "c" else "c"
        if advance is None:
            advance = seq is None
        seq = self.nxt[who] if seq is None else seq
        if ack is None:
            ack = self.nxt[peer] if "A" in flags else 0
        opts = list(options or [])
        if "S" in flags and options is None:
            opts = [("MSS", 1460), ("SAckOK", b"")]
            if self.wscale[who] is not None:
                opts.append(("WScale", self.wscale[who]))
        t = TCP(sport=self.port[who], dport=self.port[peer], flags=flags, seq=seq % 2**32, ack=ack % 2**32,
                window=self.win[who] if win is None else win, options=opts, **tcp_kw)
        pkt = l3(self.side[who], self.v6) / t
        if data:
            pkt = pkt / Raw(data)
        if advance:
            self.nxt[who] = (seq + len(data) + ("S" in flags) + ("F" in flags)) % 2**32
        return Step(travel(self.side[who]), pkt, note)

    def handshake(self) -> list:
        return [self.seg("c", "S"), self.seg("s", "SA"), self.seg("c", "A")]

    def close(self) -> list:
        return [self.seg("c", "FA"), self.seg("s", "A"), self.seg("s", "FA"), self.seg("c", "A")]


def udp(src_side: str, sport: int, dport: int, data: bytes = b"ping", v6: bool = False, note: str = "") -> Step:
    return Step(travel(src_side), l3(src_side, v6) / UDP(sport=sport, dport=dport) / Raw(data), note)


def echo(src_side: str, ident: int, seq: int, reply: bool = False, v6: bool = False, note: str = "") -> Step:
    if v6:
        body = (ICMPv6EchoReply if reply else ICMPv6EchoRequest)(id=ident, seq=seq, data=b"sluice")
    else:
        body = ICMP(type=0 if reply else 8, id=ident, seq=seq) / Raw(b"sluice")
    return Step(travel(src_side), l3(src_side, v6) / body, note)


def icmp_error(src_side: str, quote: Callable[[list], Packet], type_: int, code: int, v6: bool = False,
               dst: Optional[str] = None, note: str = "", **kw) -> Step:
    """An ICMP error sent by the host on SRC_SIDE (standing in for a router beyond it)
    quoting QUOTE(sent): the quoted packet's first bytes, as RFC 792/4443 say."""
    def build(sent: list) -> Packet:
        quoted = bytes(quote(sent))
        outer = l3(src_side, v6)
        if dst:
            outer.dst = dst
        if v6:
            cls = {1: ICMPv6DestUnreach, 2: ICMPv6PacketTooBig, 3: ICMPv6TimeExceeded}[type_]
            body = cls(code=code, **kw) if type_ != 2 else cls(**kw)
            return outer / body / Raw(quoted[:1232])
        return outer / ICMP(type=type_, code=code, **kw) / Raw(quoted[:28])
    return Step(travel(src_side), build, note)


def frag_steps(src_side: str, pkt: Packet, size: int, group: str, v6: bool = False) -> list:
    if v6:
        frags = fragment6(pkt, size)
    else:
        frags = fragment(pkt, fragsize=size)
    return [Step(travel(src_side), f, "fragment", group=group) for f in frags]


# --- TCP: the normal life of a connection

@case("full TCP handshake (window scaling), data both ways, FIN close")
def tcp_handshake_data_close():
    t = Tcp(client="in", dport=80, wscale=(7, 7), cwin=502, swin=509)
    return t.handshake() + [t.seg("c", "PA", b"GET / HTTP/1.0\r\n\r\n"), t.seg("s", "A"),
                            t.seg("s", "PA", b"x" * 300), t.seg("c", "A")] + t.close()


@case("SYN retransmitted before the SYN/ACK, then the connection proceeds")
def tcp_syn_retransmit():
    t = Tcp()
    syn = t.seg("c", "S")
    again = t.seg("c", "S", seq=1000, note="retransmission")
    return [syn, again, t.seg("s", "SA"), t.seg("c", "A"), t.seg("c", "PA", b"hello")]


@case("SYN/ACK retransmitted by the server")
def tcp_synack_retransmit():
    t = Tcp()
    return [t.seg("c", "S"), t.seg("s", "SA"), t.seg("s", "SA", seq=500000, note="retransmission"),
            t.seg("c", "A"), t.seg("s", "PA", b"banner")]


@case("ACK from the client while only its SYN has been seen")
def tcp_ack_before_synack():
    t = Tcp()
    return [t.seg("c", "S"), t.seg("c", "A", ack=777777, note="no SYN/ACK yet"), t.seg("s", "SA"), t.seg("c", "A")]


@case("simultaneous open: SYNs cross, then both SYN/ACKs")
def tcp_simultaneous_open():
    t = Tcp()
    c_syn = t.seg("c", "S")
    s_syn = t.seg("s", "S", note="the server's own SYN")
    return [c_syn, s_syn,
            t.seg("c", "SA", seq=1000, ack=500001, advance=False),
            t.seg("s", "SA", seq=500000, ack=1001, advance=False),
            t.seg("c", "A"), t.seg("s", "A"), t.seg("c", "PA", b"data")]


@case("connection closed (TIME_WAIT), then reused by the client with a new SYN")
def tcp_time_wait_reuse():
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "PA", b"one")] + [t.seg("s", "A")] + t.close()
    t.nxt = {"c": 900000, "s": 7000}
    return steps + [t.seg("c", "S", note="new ISN"), t.seg("s", "SA"), t.seg("c", "A"), t.seg("c", "PA", b"two")]


@case("connection closed (TIME_WAIT), then a SYN from the outside on the same ports")
def tcp_time_wait_syn_from_outside():
    t = Tcp()
    steps = t.handshake() + t.close()
    t.nxt["s"] = 3000000
    return steps + [t.seg("s", "S", note="reverse SYN reopens as new from outside"),
                    t.seg("c", "S", note="client again")]


@case("a SYN from the client inside an established connection (ignored), the server's challenge ACK")
def tcp_syn_in_established():
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "PA", b"abc"), t.seg("s", "A")]
    syn = t.seg("c", "S", seq=4000000, advance=False, note="new ISN, old connection alive")
    challenge = t.seg("s", "A", note="challenge ACK")
    return steps + [syn, challenge, t.seg("c", "R", seq=4000001, advance=False, note="client resets the new attempt"),
                    t.seg("c", "PA", b"more")]


# --- TCP: what the firewall opens and refuses

@case("SYN from outside to a port no rule opens")
def tcp_syn_from_outside():
    t = Tcp(client="out", dport=5000)
    return [t.seg("c", "S"), t.seg("c", "S", seq=1000, note="retransmission")]


@case("SYN/ACK from outside with no SYN seen")
def tcp_synack_from_outside_noflow():
    t = Tcp(client="in")
    return [t.seg("s", "SA", ack=1001)]


@case("ACK from outside mid-stream, no flow: loose pickup makes it new, the policy drops it; "
      "then the inside answers (picked up) and the outside's next ACK is a reply")
def tcp_ack_from_outside_noflow():
    t = Tcp(client="out", dport=5001)
    return [t.seg("c", "PA", b"mid-stream"), t.seg("s", "A", note="inside host picks it up"),
            t.seg("c", "PA", b"now a reply")]


@case("ACK from inside mid-stream, no flow: picked up, passes, and so do the replies")
def tcp_ack_from_inside_pickup():
    t = Tcp(client="in", dport=80)
    return [t.seg("c", "PA", b"mid-stream"), t.seg("s", "A"), t.seg("s", "PA", b"answer"), t.seg("c", "A")] + t.close()


@case("TCP to the service port 8080 from outside: accepted, with its replies")
def tcp_service_from_outside():
    t = Tcp(client="out", dport=8080)
    return t.handshake() + [t.seg("c", "PA", b"GET /"), t.seg("s", "PA", b"200 OK"), t.seg("c", "A")] + t.close()


@case("TCP to port 23 (a drop rule) both ways")
def tcp_dropped_port():
    a = Tcp(client="in", dport=23)
    b = Tcp(client="out", dport=23)
    return [a.seg("c", "S"), b.seg("c", "S")]


@case("TCP to port 113 from outside: rejected with a RST")
def tcp_rejected_port():
    t = Tcp(client="out", dport=113)
    return [t.seg("c", "S"), t.seg("c", "PA", b"ident?", note="mid-stream, rejected too")]


@case("segments that cannot open a flow, from inside: FIN/ACK and RST with no flow")
def tcp_fin_rst_noflow():
    a, b, c = Tcp(), Tcp(), Tcp()
    return [a.seg("c", "FA"), b.seg("c", "R"), c.seg("c", "RA")]


@case("bad flag combinations from inside: SYN+FIN, NULL, XMAS, FIN alone, SYN+RST")
def tcp_bad_flags():
    return [Tcp().seg("c", flags, note=note) for flags, note in
            (("SF", "SYN+FIN"), ("", "NULL"), ("FPU", "XMAS"), ("F", "FIN alone"), ("SR", "SYN+RST"))]


@case("bad flags inside an established connection")
def tcp_bad_flags_established():
    t = Tcp()
    return t.handshake() + [t.seg("c", "SF", advance=False, note="SYN+FIN"), t.seg("s", "FPU", advance=False),
                            t.seg("c", "PA", b"ok")]


# --- TCP: RSTs

@case("RST from outside with the exact next sequence number: closes the connection")
def tcp_rst_exact():
    t = Tcp()
    return t.handshake() + [t.seg("c", "PA", b"req"), t.seg("s", "R", note="exact"),
                            t.seg("c", "PA", b"after rst"), t.seg("s", "A", note="after rst")]


@case("RST from outside in the window but not exact (RFC 5961 challenge ACK): the flow stays")
def tcp_rst_in_window_not_exact():
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "PA", b"req"), t.seg("s", "A")]
    return steps + [t.seg("s", "R", seq=500001 + 100, advance=False, note="in window"),
                    t.seg("c", "A", note="challenge ACK"), t.seg("c", "PA", b"more"), t.seg("s", "PA", b"answer")]


@case("RST from outside far outside the window: invalid, the connection goes on")
def tcp_rst_out_of_window():
    t = Tcp()
    return t.handshake() + [t.seg("s", "R", seq=500001 + 10_000_000, advance=False),
                            t.seg("c", "PA", b"still here"), t.seg("s", "A")]


@case("RST below what the peer already acknowledged: invalid")
def tcp_rst_before_ack():
    t = Tcp()
    steps = t.handshake() + [t.seg("s", "PA", b"z" * 200), t.seg("c", "A")]
    return steps + [t.seg("s", "R", seq=500001 + 50, advance=False, note="seq below the peer's ack"),
                    t.seg("s", "PA", b"more")]


@case("RST as part of a data train (seq = end of the data just sent)")
def tcp_rst_after_data():
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "PA", b"q"), t.seg("s", "PA", b"y" * 19)]
    return steps + [t.seg("s", "RA", note="right after its data"), t.seg("c", "PA", b"late")]


@case("RST from the server answering a SYN (connection refused)")
def tcp_rst_answers_syn():
    t = Tcp()
    return [t.seg("c", "S"), t.seg("s", "RA", seq=0, ack=1001),
            t.seg("c", "S", note="client retries, same ISN", seq=1000)]


@case("after an exact RST from outside the client opens again on the same ports")
def tcp_rst_then_new_syn():
    t = Tcp()
    steps = t.handshake() + [t.seg("s", "R", note="exact")]
    t.nxt = {"c": 2_000_000, "s": 9_000_000}
    return steps + [t.seg("c", "S"), t.seg("s", "SA"), t.seg("c", "A"), t.seg("s", "PA", b"hi")]


@case("after an exact RST from the server the client sends a SYN and then an ACK inside the old window")
def tcp_syn_after_server_rst():
    # nf_conntrack reopens a CLOSE flow only for a SYN from the side whose RST closed it
    # (last_dir == dir && last_index == RST); otherwise the SYN is ignored and the old
    # flow, in CLOSE, goes on judging the old window.
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "PA", b"req"), t.seg("s", "R", note="exact, from the server")]
    return steps + [t.seg("c", "S", seq=t.nxt["c"], advance=False, note="client SYN on the same ports"),
                    t.seg("c", "A", note="ACK in the old window"), t.seg("s", "A", note="server ACK, old window")]


@case("after a RST from the client the client opens again (reopened as new)")
def tcp_syn_after_client_rst():
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "R", note="client aborts")]
    t.nxt = {"c": 3_000_000, "s": 8_000_000}
    return steps + [t.seg("c", "S"), t.seg("s", "SA"), t.seg("c", "A"), t.seg("c", "PA", b"again")]


# --- TCP: windows

@case("data far beyond the receiver's window after the handshake: invalid")
def tcp_data_beyond_window():
    t = Tcp(cwin=8192, swin=8192)
    steps = t.handshake()
    return steps + [t.seg("c", "PA", b"far", seq=1001 + 500_000, advance=False),
                    t.seg("s", "PA", b"far too", seq=500001 + 2_000_000, advance=False),
                    t.seg("c", "PA", b"in order")]


@case("an ACK for data never sent: invalid")
def tcp_ack_unsent_data():
    t = Tcp()
    return t.handshake() + [t.seg("c", "A", ack=500001 + 200_000), t.seg("c", "PA", b"fine")]


@case("an old retransmission far below the window (ignored, passes)")
def tcp_old_retransmission():
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "PA", b"a" * 1000), t.seg("s", "A")] + \
        [t.seg("c", "PA", b"b" * 1000), t.seg("s", "A")]
    return steps + [t.seg("c", "PA", b"a" * 10, seq=1001 - 3_000_000, advance=False, note="ancient"),
                    t.seg("c", "PA", b"a" * 1000, seq=1001, advance=False, note="recent retransmission")]


@case("window scaling on both sides: data beyond 64 KiB but inside the scaled window")
def tcp_window_scaled():
    t = Tcp(wscale=(7, 7), cwin=1000, swin=1000)  # 128000 bytes each way once scaled
    steps = t.handshake()
    return steps + [t.seg("s", "PA", b"s" * 100, seq=500001 + 100_000, advance=False, note="inside 128000"),
                    t.seg("s", "PA", b"s" * 100, seq=500001 + 400_000, advance=False, note="beyond 128000")]


@case("window scale offered by one side only: no scaling, 64 KiB limit")
def tcp_window_scale_one_sided():
    t = Tcp(wscale=(7, None), cwin=1000, swin=1000)
    steps = t.handshake()
    return steps + [t.seg("s", "PA", b"s" * 100, seq=500001 + 100_000, advance=False, note="beyond 1000 unscaled"),
                    t.seg("s", "PA", b"s" * 100)]


@case("a sender overshooting the receiver's window a little (passes), then by far (invalid)")
def tcp_window_overshoot():
    t = Tcp(cwin=1000)
    steps = t.handshake()
    return steps + [t.seg("s", "PA", b"o" * 1400, note="1400 bytes into a 1000-byte window"),
                    t.seg("s", "PA", b"o" * 100, note="starts beyond the window's edge"),
                    t.seg("s", "PA", b"o" * 100, seq=500001 + 80_000, advance=False, note="far beyond"),
                    t.seg("c", "A")]


@case("zero window: the receiver closes its window, the sender probes with one byte")
def tcp_zero_window_probe():
    t = Tcp()
    steps = t.handshake() + [t.seg("s", "PA", b"z" * 500), t.seg("c", "A", win=0, note="window 0")]
    return steps + [t.seg("s", "PA", b"z", note="window probe"),
                    t.seg("s", "PA", b"z" * 100, seq=t.nxt["s"] + 200, advance=False, note="beyond the closed window"),
                    t.seg("c", "A", note="window open again")]


@case("SACK blocks: one inside the data sent (passes), one beyond anything sent (invalid)")
def tcp_sack_blocks():
    t = Tcp()
    steps = t.handshake() + [t.seg("s", "PA", b"k" * 1000)]
    base = t.nxt["s"] - 1000
    return steps + [
        t.seg("c", "A", ack=base, options=[("NOP", None), ("NOP", None), ("SAck", (base + 500, base + 1000))],
              note="SACK within the data"),
        t.seg("c", "A", ack=base, options=[("NOP", None), ("NOP", None), ("SAck", (base + 500, base + 90_000))],
              note="SACK beyond the data"),
        t.seg("c", "A")]


@case("bad TCP checksum on a SYN from inside, then a good SYN")
def tcp_bad_checksum():
    t = Tcp()
    return [t.seg("c", "S", chksum=0xdead, note="bad checksum", advance=False), t.seg("c", "S"),
            t.seg("s", "SA", chksum=0xdead, note="bad checksum", advance=False), t.seg("s", "SA"), t.seg("c", "A")]


@case("bad TCP checksum on a data segment of an established connection, then the good one")
def tcp_bad_checksum_data():
    t = Tcp()
    return t.handshake() + [
        t.seg("c", "PA", b"d" * 100, chksum=0xdead, note="bad checksum", advance=False),
        t.seg("c", "PA", b"d" * 100, note="the same segment, good checksum"),
        t.seg("s", "A")]


# --- UDP

@case("UDP out and replies back")
def udp_out_reply():
    p = fresh_port()
    return [udp("in", p, 53), udp("out", 53, p, b"answer"), udp("in", p, 53, b"again"), udp("out", 53, p)]


@case("UDP from outside without a flow; then the inside opens the same pair")
def udp_from_outside():
    p = fresh_port()
    return [udp("out", 5353, p), udp("in", p, 5353, note="inside opens it"), udp("out", 5353, p, note="now a reply")]


@case("UDP to port 113 from outside: rejected with ICMP port unreachable")
def udp_rejected_port():
    return [udp("out", fresh_port(), 113)]


# --- ICMP

@case("ICMP echo out, replies back (and a duplicate reply)")
def icmp_echo():
    i = fresh_port()
    return [echo("in", i, 1), echo("out", i, 1, reply=True), echo("out", i, 1, reply=True, note="duplicate"),
            echo("in", i, 2), echo("out", i, 2, reply=True)]


@case("ICMP echo reply with a nonzero code (nf_conntrack's ICMP tuple includes the code)")
def icmp_echo_reply_code():
    i = fresh_port()
    odd = echo("out", i, 1, reply=True, note="code 1")
    odd.pkt = odd.pkt.copy()
    odd.pkt[ICMP].code = 1
    return [echo("in", i, 1), odd, echo("out", i, 1, reply=True, note="code 0")]


@case("ICMP echo reply from outside with no request; echo request from outside")
def icmp_echo_reply_noflow():
    i = fresh_port()
    return [echo("out", i, 1, reply=True), echo("out", i, 2)]


@case("ICMP port unreachable from outside quoting an inside->outside UDP packet (related)")
def icmp_unreach_related():
    p = fresh_port()
    return [udp("in", p, 4000), icmp_error("out", lambda s: s[0], 3, 3)]


@case("ICMP port unreachable quoting a UDP flow never seen")
def icmp_unreach_unknown():
    p = fresh_port()
    ghost = IP(src=IN4, dst=OUT4, id=1) / UDP(sport=p, dport=4001) / Raw(b"ghost")
    return [icmp_error("out", lambda s: ghost, 3, 3)]


@case("ICMP time exceeded from outside quoting a SYN from inside (related)")
def icmp_time_exceeded_related():
    t = Tcp()
    return [t.seg("c", "S"), icmp_error("out", lambda s: s[0], 11, 0)]


@case("ICMP fragmentation needed quoting data of an established connection (related)")
def icmp_frag_needed_related():
    t = Tcp()
    steps = t.handshake() + [t.seg("c", "PA", b"d" * 1200)]
    return steps + [icmp_error("out", lambda s: s[3], 3, 4, nexthopmtu=1000), t.seg("c", "PA", b"d" * 900)]


@case("ICMP error quoting the flow's reply direction (outer destination is not the quoted source)")
def icmp_error_wrong_direction():
    p = fresh_port()
    reply_dir = IP(src=OUT4, dst=IN4, id=2) / UDP(sport=4002, dport=p) / Raw(b"rev")
    return [udp("in", p, 4002), icmp_error("out", lambda s: reply_dir, 3, 3)]


@case("TTL 1 from inside: the router answers with time exceeded; no flow is left behind")
def ttl_expiring():
    p = fresh_port()
    first = udp("in", p, 33434)
    first.pkt = first.pkt.copy()
    first.pkt[IP].ttl = 1
    return [first, udp("out", 33434, p, note="reply to the expired packet")]


@case("ICMP echo request from outside using the identifier of an inside host's ping")
def icmp_echo_id_reuse():
    i = fresh_port()
    return [echo("in", i, 1), echo("out", i, 1, note="request, not reply, same id"),
            echo("out", i, 1, reply=True)]


@case("other ICMP queries: timestamp request and reply; a type that is neither query nor error")
def icmp_other_types():
    i = fresh_port()
    return [Step("out", l3("in", False) / ICMP(type=13, id=i, seq=1) / Raw(b"\0" * 12), "timestamp request"),
            Step("in", l3("out", False) / ICMP(type=14, id=i, seq=1) / Raw(b"\0" * 12), "timestamp reply"),
            Step("out", l3("in", False) / ICMP(type=9, code=0) / Raw(b"\0" * 8), "router advertisement"),
            Step("in", l3("out", False) / ICMP(type=14, id=fresh_port(), seq=1) / Raw(b"\0" * 12),
                 "timestamp reply, no request")]


@case("flow expiry: replies after the unreplied UDP/ICMP timeout, and after a reply seen within 2 s")
def udp_icmp_expiry():
    a, b, i = fresh_port(), fresh_port(), fresh_port()
    late = udp("out", 53, a, note=f"reply after {SHORT_TIMEOUT + 1} s, never answered before")
    late.delay = SHORT_TIMEOUT + 1.0
    return [udp("in", a, 53), udp("in", b, 53), udp("out", 53, b, note="answered at once"), echo("in", i, 1),
            late, udp("out", 53, b, note="answered flow, later"), echo("out", i, 1, reply=True, note="late reply")]


@case("ICMP error about an inside host's flow, sent to another inside host")
def icmp_error_to_other_host():
    p = fresh_port()
    return [udp("in", p, 4005), icmp_error("out", lambda s: s[0], 3, 3, dst=OTHER_IN4, note=f"to {OTHER_IN4}")]


@case("ICMP host unreachable quoting an echo request from inside (related)")
def icmp_error_about_echo():
    i = fresh_port()
    return [echo("in", i, 1), icmp_error("out", lambda s: s[0], 3, 1)]


@case("ICMP error from inside about a connection opened from outside to the service port (related)")
def icmp_error_from_inside():
    t = Tcp(client="out", dport=8080)
    return [t.seg("c", "S"), icmp_error("in", lambda s: s[0], 3, 3)]


# --- IPv6

@case("IPv6: TCP handshake, data, close")
def ipv6_tcp_handshake():
    t = Tcp(v6=True, wscale=(7, 7), cwin=502, swin=509)
    return t.handshake() + [t.seg("c", "PA", b"v6 data"), t.seg("s", "PA", b"v6 answer"), t.seg("c", "A")] + t.close()


@case("IPv6: SYN from outside (dropped) and to the service port (accepted)")
def ipv6_tcp_from_outside():
    a = Tcp(v6=True, client="out", dport=5000)
    b = Tcp(v6=True, client="out", dport=8080)
    return [a.seg("c", "S"), b.seg("c", "S"), b.seg("s", "SA"), b.seg("c", "A")]


@case("IPv6: TCP RST out of window, bad flags")
def ipv6_tcp_invalid():
    t = Tcp(v6=True)
    return t.handshake() + [t.seg("s", "R", seq=500001 + 10_000_000, advance=False),
                            t.seg("c", "SF", advance=False), t.seg("c", "PA", b"ok")]


@case("IPv6: ICMPv6 echo out and reply; a reply without request")
def ipv6_icmp_echo():
    i, j = fresh_port(), fresh_port()
    return [echo("in", i, 1, v6=True), echo("out", i, 1, reply=True, v6=True),
            echo("out", j, 1, reply=True, v6=True, note="no request")]


@case("IPv6: packet too big quoting established TCP data (related); one quoting nothing known")
def ipv6_packet_too_big():
    t = Tcp(v6=True)
    steps = t.handshake() + [t.seg("c", "PA", b"p" * 1300)]
    ghost = IPv6(src=IN6, dst=OUT6, fl=5) / TCP(sport=fresh_port(), dport=80, flags="A")
    return steps + [icmp_error("out", lambda s: s[3], 2, 0, v6=True, mtu=1280),
                    icmp_error("out", lambda s: ghost, 2, 0, v6=True, mtu=1280)]


@case("IPv6: UDP out and reply; UDP to port 113 from outside rejected")
def ipv6_udp():
    p = fresh_port()
    return [udp("in", p, 53, v6=True), udp("out", 53, p, v6=True), udp("out", fresh_port(), 113, v6=True)]


@case("IPv6: ICMPv6 port unreachable quoting an inside->outside UDP packet (related)")
def ipv6_icmp_unreach_related():
    p = fresh_port()
    return [udp("in", p, 4000, v6=True), icmp_error("out", lambda s: s[0], 1, 4, v6=True)]


@case("IPv6: ICMPv6 error quoting the flow's reply direction (outer destination is not the quoted source)")
def ipv6_icmp_error_wrong_direction():
    p = fresh_port()
    reply_dir = IPv6(src=OUT6, dst=IN6, fl=3) / UDP(sport=4003, dport=p) / Raw(b"rev")
    return [udp("in", p, 4003, v6=True), icmp_error("out", lambda s: reply_dir, 1, 4, v6=True)]


@case("IPv6: UDP with a destination options header, and an ICMPv6 error quoting it (related)")
def ipv6_ext_header_quoted():
    p = fresh_port()
    pkt = l3("in", True) / IPv6ExtHdrDestOpt() / UDP(sport=p, dport=4004) / Raw(b"opts")
    return [Step("out", pkt), udp("out", 4004, p, v6=True), icmp_error("out", lambda s: s[0], 1, 4, v6=True)]


@case("IPv6: ICMPv6 node information query from inside (RFC 4620) and its reply")
def ipv6_node_information():
    i = fresh_port()
    def ni(type_):
        # type, code, checksum, qtype (nf_conntrack reads it as the id), flags, nonce
        return ICMPv6Unknown(type=type_, code=0, msgbody=i.to_bytes(2, "big") + b"\0\0" +
                             b"nonce123")
    return [Step("out", l3("in", True) / ni(139), "NI query"), Step("in", l3("out", True) / ni(140), "NI reply")]


# --- other protocols

@case("an IP protocol Sluice and Linux track generically (253): out and back")
def generic_protocol():
    return [Step("out", IP(src=IN4, dst=OUT4, proto=253) / Raw(b"out")),
            Step("in", IP(src=OUT4, dst=IN4, proto=253) / Raw(b"back"))]


@case("SCTP: an association from inside (INIT, INIT ACK); then an INIT from outside on other ports")
def sctp_ports():
    p, q = fresh_port(), fresh_port()
    init = IP(src=IN4, dst=OUT4) / SCTP(sport=p, dport=5060, tag=0) / SCTPChunkInit(
        init_tag=0x11111111, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1)
    init_ack = IP(src=OUT4, dst=IN4) / SCTP(sport=5060, dport=p, tag=0x11111111) / SCTPChunkInitAck(
        init_tag=0x22222222, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1)
    other = IP(src=OUT4, dst=IN4) / SCTP(sport=q, dport=5061, tag=0) / SCTPChunkInit(
        init_tag=0x33333333, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1)
    return [Step("out", init, "INIT"), Step("in", init_ack, "INIT ACK"),
            Step("in", other, "INIT from outside, other ports")]


# --- fragments

@case("IPv4 UDP fragmented in three, from inside (new, accepted), and the reply")
def frag_udp_from_inside():
    p = fresh_port()
    big = l3("in", False) / UDP(sport=p, dport=7000) / Raw(b"F" * 1000)
    return frag_steps("in", big, 400, "a") + [udp("out", 7000, p)]


@case("IPv4 UDP fragmented in three, from outside (policy drops it)")
def frag_udp_from_outside():
    p = fresh_port()
    big = l3("out", False) / UDP(sport=7001, dport=p) / Raw(b"G" * 1000)
    return frag_steps("out", big, 400, "a")


@case("IPv6 UDP fragmented in two, from inside, and the reply")
def frag6_udp_from_inside():
    p = fresh_port()
    big = l3("in", True) / IPv6ExtHdrFragment() / UDP(sport=p, dport=7002) / Raw(b"H" * 1000)
    return frag_steps("in", big, 600, "a", v6=True) + [udp("out", 7002, p, v6=True)]


@case("IPv6 UDP fragmented in two, from outside (policy drops it)")
def frag6_udp_from_outside():
    p = fresh_port()
    big = l3("out", True) / IPv6ExtHdrFragment() / UDP(sport=7003, dport=p) / Raw(b"I" * 1000)
    return frag_steps("out", big, 600, "a", v6=True)


# --- fixed pseudo-random sequences

def random_conversation(seed: int, length: int) -> list:
    rng = random.Random(seed)
    t = Tcp()
    steps = t.handshake()
    for _ in range(length):
        who = rng.choice("cscsc")  # the client a little more often
        peer = "s" if who == "c" else "c"
        flags = rng.choice(["A", "PA", "PA", "PA", "A", "FA", "R", "RA", "S", "SA"])
        data = b"r" * rng.choice([0, 1, 50, 1000]) if flags in ("A", "PA", "FA") else b""
        seq_delta = rng.choice([0, 0, 0, 0, 0, -1, 1, -3000, 3000, 90_000, -90_000, 2**31])
        ack_delta = rng.choice([0, 0, 0, 0, 0, -1, 1, 5000, -5000, 300_000])
        seq = t.nxt[who] + seq_delta
        ack = t.nxt[peer] + ack_delta
        steps.append(t.seg(who, flags, data, seq=seq, ack=ack, advance=seq_delta == 0,
                           note=f"seq{seq_delta:+d} ack{ack_delta:+d}"))
    return steps


@case("pseudo-random TCP segments after a handshake (seed 1)")
def tcp_random_1():
    return random_conversation(1, 14)


@case("pseudo-random TCP segments after a handshake (seed 7)")
def tcp_random_7():
    return random_conversation(7, 14)


@case("pseudo-random TCP segments after a handshake (seed 42)")
def tcp_random_42():
    return random_conversation(42, 14)


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

    def l2(self, step_dir: str, pkt: Packet) -> tuple:
        sender = self.ports["in" if step_dir == "out" else "out"]
        receiver = self.ports["out" if step_dir == "out" else "in"]
        return sender, receiver, Ether(src=sender.mac, dst=sender.gw_mac) / pkt


class Runner:
    def __init__(self, routers: list, wait: float, explain: bool):
        self.routers = routers
        self.wait = wait
        self.explain = explain
        self.markers = Markers()

    def all_ports(self) -> list:
        return [p for r in self.routers for p in r.ports.values()]

    def prepare(self) -> None:
        for r in self.routers:
            r.ports["in"].gw_mac = arp_gateway(r.ports["in"], IN4, GW_IN4)
            r.ports["out"].gw_mac = arp_gateway(r.ports["out"], OUT4, GW_OUT4)
        # Both routers learn both hosts' MACs (IPv4 and IPv6) before any case counts.
        for v6 in (False, True):
            warm = [udp("in", 9, 9, b"warm-up", v6=v6), udp("out", 9, 9, b"warm-up", v6=v6)]
            if not v6:  # the second inside address too
                warm += [Step("out", IP(src=OTHER_IN4, dst=OUT4) / UDP(sport=9, dport=9) / Raw(b"warm-up")),
                         Step("in", IP(src=OUT4, dst=OTHER_IN4) / UDP(sport=9, dport=9) / Raw(b"warm-up"))]
            for attempt in range(20):
                result = self.run_steps(warm, wait=0.5)
                if all(d == "pass" for r in self.routers for d in result[r.name]["decisions"]):
                    break
            else:
                die(f"warm-up traffic ({'IPv6' if v6 else 'IPv4'}) does not get through: "
                    f"{ {r.name: result[r.name] for r in self.routers} }")
        for r in self.routers:
            r.flush()

    def materialise(self, steps: list) -> list:
        """Gives every step its final packet, with its marker."""
        sent, groups = [], {}
        for step in steps:
            pkt = step.pkt(sent) if callable(step.pkt) else step.pkt
            pkt = pkt.copy()
            if step.group is not None:
                marker = groups.setdefault(step.group, self.markers.next())
            else:
                marker = self.markers.next()
            if IP in pkt:
                pkt[IP].id = marker
                pkt[IP].chksum = None
            else:
                pkt[IPv6].fl = marker
            pkt = pkt.__class__(bytes(pkt))  # freeze checksums and lengths as sent
            sent.append(pkt)
        return sent

    def run_steps(self, steps: list, wait: Optional[float] = None) -> dict:
        wait = self.wait if wait is None else wait
        pkts = self.materialise(steps)
        for p in self.all_ports():
            p.clear()
        sigs_sent = {signature(p) for p in pkts}
        send_times = []
        for step, pkt in zip(steps, pkts):
            if step.delay:
                time.sleep(step.delay)
            t0 = time.monotonic()
            send_times.append(t0)
            targets = []
            for r in self.routers:
                sender, receiver, frame = r.l2(step.dir, pkt)
                sender.send(frame)
                targets.append(receiver)
            pump(self.all_ports(), t0 + wait - time.monotonic(),
                 until=lambda: all(arrived(pkt, rcv.frames) for rcv in targets))
            if len(targets) > 1 and not is_fragment(pkt) and any(arrived(pkt, rcv.frames) for rcv in targets) \
                    and not all(arrived(pkt, rcv.frames) for rcv in targets):
                # One router forwarded it, the other not yet: a busy host can stall a
                # polling worker for longer than `wait`. The packet, not a rerun, decides.
                # Not for a fragment: Linux holds it until its datagram is whole, and the
                # wait would age the flow Sluice made from the first one (3 s UDP timeout).
                pump(self.all_ports(), STRAGGLE, until=lambda: all(arrived(pkt, rcv.frames) for rcv in targets))
        # Stragglers (a reassembled datagram, a late RST): a short last look.
        pump(self.all_ports(), 0.05)
        send_times.append(float("inf"))
        results = {}
        for r in self.routers:
            decisions = []
            for k, (step, pkt) in enumerate(zip(steps, pkts)):
                sender, receiver, _ = r.l2(step.dir, pkt)
                got = arrived(pkt, receiver.frames)
                back = set()
                for t, f in sender.frames:
                    if send_times[k] <= t < send_times[k + 1] and signature(f) not in sigs_sent:
                        kind = back_kind(f, pkt)
                        if kind:
                            back.add(kind)
                decisions.append(("pass" if got else "drop") + "".join("+" + b for b in sorted(back)))
            results[r.name] = {"decisions": decisions}
        results["_packets"] = pkts
        return results

    def run_case(self, c: Case) -> dict:
        for r in self.routers:
            r.flush()
        steps = c.build()
        res = self.run_steps(steps)
        res["_steps"] = steps
        if self.explain:
            for r in self.routers:
                res.setdefault("_explain", {})[r.name] = r.explain()
        return res


def verdict(case_name: str, k: int, linux: str, sluice: str, driver: str = "af_packet") -> tuple:
    if linux == sluice:
        return "ok", ""
    allowed = INTENDED.get((case_name, k)) or INTENDED_BY_DRIVER[driver].get((case_name, k))
    if allowed and allowed[0] == linux and allowed[1] == sluice:
        return "intended", allowed[2]
    return "MISMATCH", ""


def print_case(c: Case, res: dict, names: list, out, driver: str = "af_packet") -> dict:
    counts = {"ok": 0, "intended": 0, "MISMATCH": 0}
    print(f"\n== {c.name}: {c.what}", file=out)
    header = f"  {'#':>2}  {'dir':3}  {'packet':66}" + "".join(f"  {n:14}" for n in names)
    if len(names) == 2:
        header += "  result"
    print(header, file=out)
    for k, (step, pkt) in enumerate(zip(res["_steps"], res["_packets"]), start=1):
        ds = [res[n]["decisions"][k - 1] for n in names]
        desc = describe(pkt) + (f" ({step.note})" if step.note and step.note != "fragment" else "")
        arrow = "i>o" if step.dir == "out" else "o>i"
        line = f"  {k:>2}  {arrow:3}  {desc[:66]:66}" + "".join(f"  {d:14}" for d in ds)
        if len(names) == 2:
            v, why = verdict(c.name, k, ds[0], ds[1], driver)
            counts[v] += 1
            line += "  " + {"ok": "match", "intended": "intended difference", "MISMATCH": "MISMATCH"}[v]
            if why:
                line += f": {why}"
        print(line, file=out)
    for n, text in res.get("_explain", {}).items():
        print(f"  --- {n} after the case:", file=out)
        for t in text.splitlines():
            print(f"      {t}", file=out)
    return counts


def fragment_counts(http_port: int) -> tuple:
    """(fragments Sluice's parse stages saw, later fragments its conntrack stages passed
    untracked), summed over the ports."""
    stats = sluice_get(http_port, "/stats")

    def total(stage: str, counter: str) -> int:
        return sum((s.get("counters") or {}).get(counter, 0) for s in stats["stages"] if s["stage"] == stage)
    return total("parse", "fragments"), total("conntrack", "later_fragments")


def check_fragment_counts(http_port: int, before: tuple, sent: list, driver: str) -> Optional[str]:
    """Whether Sluice counted the fragments the driver sent it: every one over net_tap; over
    net_af_packet only the IPv6 ones (the kernel hands it IPv4 datagrams reassembled). An
    error message, or None."""
    def counts_in(pkts):
        frags = [p for p in pkts if is_fragment(p)]
        later = [p for p in frags if (p[IP].frag if IP in p else p[IPv6ExtHdrFragment].offset) != 0]
        return len(frags), len(later)
    if driver == "af_packet":
        sent = [p for p in sent if IPv6 in p]
    want = counts_in(sent)
    deadline = time.monotonic() + 10  # counters are committed once per burst; a busy host stalls the worker
    while True:
        now = fragment_counts(http_port)
        got = (now[0] - before[0], now[1] - before[1])
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(f"fragments sent to Sluice ({driver}{', IPv6 only' if driver == 'af_packet' else ''}): "
          f"{want[0]}, {want[1]} of them later fragments; Sluice counted parse.fragments +{got[0]}, "
          f"conntrack.later_fragments +{got[1]}")
    if got != want:
        return (f"Sluice counted {got[0]} fragments and {got[1]} later fragments, "
                f"the driver sent it {want[0]} and {want[1]}")
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--router", choices=["linux", "sluice", "both"], default="both",
                    help="run against one router (prints its decisions) or both (compares them)")
    ap.add_argument("--case", action="append", default=[], metavar="NAME",
                    help="run only this case (shell pattern; repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--wait", type=float, default=0.35, help="seconds to wait for each packet (default 0.35)")
    ap.add_argument("--http", type=int, default=DEFAULT_HTTP_PORT, help="Sluice's HTTP port (flush, --explain)")
    ap.add_argument("--explain", action="store_true", help="after each case, show each router's flows")
    ap.add_argument("--json", metavar="FILE", help="write the decisions as JSON")
    ap.add_argument("--sluice-driver", choices=sorted(INTENDED_BY_DRIVER), default="af_packet",
                    help="the PMD Sluice's ports use (its intended differences and fragment counts depend on it)")
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
    runner = Runner(routers, args.wait, args.explain)
    started = time.monotonic()
    runner.prepare()
    frag_before = fragment_counts(args.http) if "sluice" in names else None
    sent_to_sluice = []

    totals = {"ok": 0, "intended": 0, "MISMATCH": 0}
    failed_cases, dump = [], {}
    packets = 0
    for c in selected:
        # Each case runs once: a mismatch fails, no rerun turns it into a pass.
        res = runner.run_case(c)
        counts = print_case(c, res, names, sys.stdout, args.sluice_driver)
        sent_to_sluice += res["_packets"]
        for k in totals:
            totals[k] += counts[k]
        if counts["MISMATCH"]:
            failed_cases.append(c.name)
        packets += len(res["_steps"])
        dump[c.name] = {n: res[n]["decisions"] for n in names}
        sys.stdout.flush()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dump, f, indent=1)
    elapsed = time.monotonic() - started
    print(f"\n{len(selected)} cases, {packets} packets, {elapsed:.1f} s")
    frag_error = None
    if frag_before is not None:
        frag_error = check_fragment_counts(args.http, frag_before, sent_to_sluice, args.sluice_driver)
    if len(names) == 1:
        if frag_error:
            print(f"FAIL: {frag_error}")
            return 1
        return 0
    print(f"decisions: {totals['ok']} match, {totals['intended']} intended differences, "
          f"{totals['MISMATCH']} mismatches")
    if frag_error:
        print(f"FAIL: {frag_error}")
    if failed_cases:
        print(f"FAIL: unexpected differences in: {' '.join(failed_cases)}")
    if frag_error or failed_cases:
        return 1
    print("PASS: Sluice decided as Linux nf_conntrack did, but for the intended differences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
