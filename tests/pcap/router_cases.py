#!/usr/bin/python3
"""Packet-by-packet router test: crafted frames in, expected frames out.

    router_cases.py gen DIR      writes DIR/in.pcap and DIR/expect-west.pcap, DIR/expect-east.pcap
    router_cases.py check DIR    compares DIR/out-west.pcap, DIR/out-east.pcap with the expected ones
    router_cases.py drops FILE   compares the "drops" of FILE (Sluice's /stats after the replay) with
                                 the reasons the cases declare: exactly that many per reason, no other

Sluice runs with net_pcap: west reads in.pcap and writes out-west.pcap, east writes
out-east.pcap (see test_router_pcap.sh for its config). Its own announcements (the
gratuitous ARP and unsolicited NA sent at start) are not part of the comparison.
"""
import json
import sys

from scapy.all import (ARP, ICMP, IP, UDP, Ether, ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                       ICMPv6ND_NA, ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPOption_NOP, IPv6, Raw, rdpcap,
                       wrpcap)
from scapy.layers.inet import IPerror  # noqa: F401  (registers quoting layers)

WEST_MAC = "02:00:00:00:01:01"   # Sluice west (10.1.0.1, fd00:1::1)
EAST_MAC = "02:00:00:00:02:01"   # Sluice east (10.2.0.1, fd00:2::1), MTU 1400
HOST_W = "02:00:00:00:01:02"     # 10.1.0.2 / fd00:1::2, the sender
HOST_E = "02:00:00:00:02:02"     # 10.2.0.2 / fd00:2::2, static neighbour
PAYLOAD = bytes(range(32))


def w(pkt):
    """A frame from the west host to Sluice."""
    return Ether(src=HOST_W, dst=WEST_MAC) / pkt


def icmp4_error(orig, typ, code, **kw):
    quote = bytes(orig[IP])[: 576 - 28]
    return Ether(src=WEST_MAC, dst=HOST_W) / IP(src="10.1.0.1", dst=orig[IP].src, tos=0xC0, id=0, ttl=64,
                                                flags=0) / ICMP(type=typ, code=code, **kw) / Raw(quote)


def icmp6_error(orig, layer):
    quote = bytes(orig[IPv6])[: 1280 - 48]
    return Ether(src=WEST_MAC, dst=HOST_W) / IPv6(src="fd00:1::1", dst=orig[IPv6].src, hlim=64) / layer / Raw(quote)


def forwarded(pkt_in, ttl_field):
    """What the east host should see: TTL/hop limit one less, MACs rewritten."""
    out = Ether(bytes(pkt_in))
    out.src, out.dst = EAST_MAC, HOST_E
    if ttl_field == "ttl":
        out[IP].ttl -= 1
        del out[IP].chksum
    else:
        out[IPv6].hlim -= 1
    return Ether(bytes(out))


def cases():
    """(name, frame in, frames expected on west, frames expected on east, drop reason or None)

    A case that Sluice drops (whether or not it answers with an ICMP error) names the
    /stats drop reason it must count; every other case must count no drop."""
    c = []
    udp4 = w(IP(src="10.1.0.2", dst="10.2.0.2", ttl=64) / UDP(sport=1000, dport=2000) / Raw(PAYLOAD))
    c.append(("ipv4 forwarded", udp4, [], [forwarded(udp4, "ttl")], None))
    udp6 = w(IPv6(src="fd00:1::2", dst="fd00:2::2", hlim=64) / UDP(sport=1000, dport=2000) / Raw(PAYLOAD))
    c.append(("ipv6 forwarded", udp6, [], [forwarded(udp6, "hlim")], None))
    opts = w(IP(src="10.1.0.2", dst="10.2.0.2", options=[IPOption_NOP()] * 4) / UDP(sport=1, dport=2) / Raw(PAYLOAD))
    c.append(("ipv4 options forwarded", opts, [], [forwarded(opts, "ttl")], None))
    frag = w(IP(src="10.1.0.2", dst="10.2.0.2", flags="MF", frag=0, id=7) / Raw(PAYLOAD))
    c.append(("first fragment forwarded", frag, [], [forwarded(frag, "ttl")], None))
    frag2 = w(IP(src="10.1.0.2", dst="10.2.0.2", frag=4, id=7, proto=17) / Raw(PAYLOAD))
    c.append(("later fragment forwarded", frag2, [], [forwarded(frag2, "ttl")], None))
    ttl1 = w(IP(src="10.1.0.2", dst="10.2.0.2", ttl=1) / UDP(sport=33434, dport=33434) / Raw(PAYLOAD))
    c.append(("ttl 1: time exceeded", ttl1, [icmp4_error(ttl1, 11, 0)], [], "ttl_exceeded"))
    hl1 = w(IPv6(src="fd00:1::2", dst="fd00:2::2", hlim=1) / UDP(sport=33434, dport=33434) / Raw(PAYLOAD))
    c.append(("hop limit 1: time exceeded", hl1, [icmp6_error(hl1, ICMPv6TimeExceeded(code=0))], [], "ttl_exceeded"))
    ttl0 = w(IP(src="10.1.0.2", dst="10.2.0.2", ttl=0) / UDP(sport=1, dport=2))
    c.append(("ttl 0: time exceeded", ttl0, [icmp4_error(ttl0, 11, 0)], [], "ttl_exceeded"))
    noroute = w(IP(src="10.1.0.2", dst="10.77.0.1") / UDP(sport=1, dport=2) / Raw(PAYLOAD))
    c.append(("no route: net unreachable", noroute, [icmp4_error(noroute, 3, 0)], [], "no_route"))
    noroute6 = w(IPv6(src="fd00:1::2", dst="fd00:77::1") / UDP(sport=1, dport=2) / Raw(PAYLOAD))
    c.append(("no route v6: unreachable", noroute6, [icmp6_error(noroute6, ICMPv6DestUnreach(code=0))], [], "no_route"))
    big_df = w(IP(src="10.1.0.2", dst="10.2.0.2", flags="DF") / UDP(sport=1, dport=2) / Raw(bytes(1472)))
    c.append(("DF over MTU: frag needed", big_df, [icmp4_error(big_df, 3, 4, nexthopmtu=1400)], [], "too_big"))
    big6 = w(IPv6(src="fd00:1::2", dst="fd00:2::2") / UDP(sport=1, dport=2) / Raw(bytes(1452)))
    c.append(("v6 over MTU: packet too big", big6, [icmp6_error(big6, ICMPv6PacketTooBig(mtu=1400))], [], "too_big"))
    big = w(IP(src="10.1.0.2", dst="10.2.0.2", id=99) / UDP(sport=1, dport=2) / Raw(bytes(range(256)) * 5 + bytes(192)))
    fwd = forwarded(big, "ttl")
    frags = []
    # Fragments of 1400 - 20 = 1376 bytes of payload (a multiple of 8), then the rest.
    data = bytes(fwd[IP].payload)
    for off in range(0, len(data), 1376):
        chunk = data[off:off + 1376]
        more = off + 1376 < len(data)
        frags.append(Ether(src=EAST_MAC, dst=HOST_E) / IP(src="10.1.0.2", dst="10.2.0.2", id=99, ttl=63, proto=17,
                                                            flags="MF" if more else 0, frag=off // 8) / Raw(chunk))
    c.append(("no DF over MTU: fragmented", big, [], frags, None))
    echo = w(IP(src="10.1.0.2", dst="10.1.0.1") / ICMP(type=8, id=5, seq=1) / Raw(PAYLOAD))
    c.append(("echo to own address", echo,
              [Ether(src=WEST_MAC, dst=HOST_W) / IP(src="10.1.0.1", dst="10.1.0.2", ttl=64, id=echo[IP].id)
               / ICMP(type=0, id=5, seq=1) / Raw(PAYLOAD)], [], None))
    echo_far = w(IP(src="10.1.0.2", dst="10.2.0.1") / ICMP(type=8, id=6, seq=1) / Raw(PAYLOAD))
    c.append(("echo to the other port's address", echo_far,
              [Ether(src=WEST_MAC, dst=HOST_W) / IP(src="10.2.0.1", dst="10.1.0.2", ttl=64, id=echo_far[IP].id)
               / ICMP(type=0, id=6, seq=1) / Raw(PAYLOAD)], [], None))
    echo6 = w(IPv6(src="fd00:1::2", dst="fd00:1::1") / ICMPv6EchoRequest(id=5, seq=1, data=PAYLOAD))
    c.append(("echo6 to own address", echo6,
              [Ether(src=WEST_MAC, dst=HOST_W) / IPv6(src="fd00:1::1", dst="fd00:1::2", hlim=64)
               / ICMPv6EchoReply(id=5, seq=1, data=PAYLOAD)], [], None))
    udp_local = w(IP(src="10.1.0.2", dst="10.1.0.1") / UDP(sport=1, dport=53))
    c.append(("udp to own address: dropped", udp_local, [], [], "local_unhandled"))
    bad_sum = w(IP(src="10.1.0.2", dst="10.2.0.2", chksum=0x1234) / UDP(sport=1, dport=2))
    c.append(("bad checksum: dropped", bad_sum, [], [], "bad_ipv4_checksum"))
    # Reasons as docs/routing.md gives them (RFC 1812 5.3.4, 5.3.7).
    for name, src, dst, reason in [("martian source 127/8", "127.0.0.1", "10.2.0.2", "martian_source"),
                                   ("martian source 0/8", "0.1.2.3", "10.2.0.2", "martian_source"),
                                   ("multicast source", "224.0.0.5", "10.2.0.2", "martian_source"),
                                   ("multicast destination", "10.1.0.2", "239.1.1.1", "not_routable"),
                                   ("limited broadcast", "10.1.0.2", "255.255.255.255", "not_routable"),
                                   ("loopback destination", "10.1.0.2", "127.0.0.1", "martian_destination"),
                                   ("subnet broadcast", "10.1.0.2", "10.2.0.255", "not_routable")]:
        c.append((name, w(IP(src=src, dst=dst) / UDP(sport=1, dport=2)), [], [], reason))
    c.append(("link-local v6 destination", w(IPv6(src="fd00:1::2", dst="fe80::1") / UDP(sport=1, dport=2)), [], [],
              "not_routable"))
    c.append(("frame for another MAC", Ether(src=HOST_W, dst="02:99:99:99:99:99") /
              IP(src="10.1.0.2", dst="10.2.0.2") / UDP(sport=1, dport=2), [], [], "not_for_us"))
    arp = Ether(src=HOST_W, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=HOST_W, psrc="10.1.0.2", pdst="10.1.0.1")
    c.append(("arp request for own address", arp,
              [Ether(src=WEST_MAC, dst=HOST_W) / ARP(op=2, hwsrc=WEST_MAC, psrc="10.1.0.1", hwdst=HOST_W,
                                                      pdst="10.1.0.2") / Raw(bytes(18))], [], None))
    assert all(len(case) == 5 for case in c), "every case is (name, in, west, east, drop reason)"
    return c


def is_announcement(p):
    if ARP in p and p[ARP].op == 1 and p[ARP].psrc == p[ARP].pdst:
        return True  # gratuitous ARP
    return ICMPv6ND_NA in p and p[IPv6].dst == "ff02::1"


def flow_of(frame):
    p = Ether(frame)
    for layer in (IP, IPv6):
        if layer in p:
            return (p[layer].src, p[layer].dst, p[layer].payload.__class__.__name__)
    return ("l2", p.src, p.dst)


def expected_drops(all_cases):
    want = {}
    for c in all_cases:
        if c[4] is not None:
            want[c[4]] = want.get(c[4], 0) + 1
    return want


def check_drops(all_cases, stats_file):
    """Sluice's /stats "drops" (every reason, zeros included) against the declared reasons."""
    with open(stats_file) as f:
        got = json.load(f)["drops"]
    want = expected_drops(all_cases)
    failures = 0
    for reason in sorted(set(got) | set(want)):
        if reason not in got:
            failures += 1
            print(f"FAIL drops: {reason}: declared by a case but not a reason /stats knows")
            continue
        if got[reason] != want.get(reason, 0):
            failures += 1
            cases_for = [c[0] for c in all_cases if c[4] == reason]
            print(f"FAIL drops: {reason}: expected {want.get(reason, 0)} ({', '.join(cases_for) or 'no case'}), "
                  f"got {got[reason]}")
        elif reason in want:
            print(f"ok   drops: {reason} = {got[reason]}")
    print(f"{failures} drop reasons differ")
    return 1 if failures else 0


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    all_cases = cases()
    if cmd == "drops":
        return check_drops(all_cases, d)
    if cmd == "gen":
        wrpcap(f"{d}/in.pcap", [c[1] for c in all_cases])
        wrpcap(f"{d}/expect-west.pcap", [p for c in all_cases for p in c[2]])
        wrpcap(f"{d}/expect-east.pcap", [p for c in all_cases for p in c[3]])
        print(len(all_cases))
        return 0
    # Frames of different flows may leave in another order than they came (ICMP errors
    # and fragments go straight to the TX buffer); within one flow the order must hold.
    failures = 0
    for side in ("west", "east"):
        expect = [(c[0], bytes(p)) for c in all_cases for p in (c[2] if side == "west" else c[3])]
        got = [bytes(p) for p in rdpcap(f"{d}/out-{side}.pcap") if not is_announcement(p)]
        remaining = list(got)
        for name, frame in expect:
            if frame in remaining:
                remaining.remove(frame)
                print(f"ok   {side}: {name}")
            else:
                failures += 1
                print(f"FAIL {side}: {name}: expected frame not sent")
                print(f"  expected: {Ether(frame).summary()}\n            {frame.hex()}")
        for frame in remaining:
            failures += 1
            print(f"FAIL {side}: unexpected frame: {Ether(frame).summary()}\n            {frame.hex()}")
        flows = {}
        for frame in got:
            flows.setdefault(flow_of(frame), []).append(frame)
        for key, frames in flows.items():
            want = [f for _, f in expect if flow_of(f) == key]
            if frames != want and sorted(frames) == sorted(want):
                failures += 1
                print(f"FAIL {side}: frames of flow {key} reordered")
    print(f"{failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
