#!/usr/bin/env python3
"""Writes the committed seed corpora of fuzz_route, fuzz_neighbour, fuzz_pipeline and
fuzz_http into tests/fuzz/corpus/TARGET/ (run it after changing a seed; the files are
committed, tests/fuzz/run.sh copies them). Frames use the targets' addresses (see the
head of each fuzz_*.cpp); every checksum is right unless the seed's name says otherwise.
Record format (fuzz_route, fuzz_neighbour): ctl (bit 7 east, bit 6 two segments, bit 5
NIC flag, bits 0-4 clock step), 2-byte length, frame. fuzz_pipeline: ctl, then one frame.
fuzz_http: the raw request."""
import ipaddress
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def csum(data):
    data += b"\0" * (len(data) & 1)
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def a4(text):
    return ipaddress.IPv4Address(text).packed


def a6(text):
    return ipaddress.IPv6Address(text).packed


US = b"\x02\x00\x00\x00\x00\xaa"  # any unicast: the targets put the ingress port's MAC here
HOST = b"\x02\x00\x00\x00\x01\x02"


def eth(t, dst=US, src=HOST):
    return dst + src + struct.pack("!H", t)


def l4sum(p, body, pseudo):
    at = {6: 16, 17: 6, 58: 2}.get(p)
    if at is None or len(body) < at + 2:
        return body
    body = body[:at] + b"\0\0" + body[at + 2:]
    return body[:at] + struct.pack("!H", csum(pseudo + body) or 0xffff) + body[at + 2:]


def ip4(p, body, src, dst, ttl=64, df=False, ident=0x100, frag=0):
    if p == 1:
        body = body[:2] + struct.pack("!H", csum(body[:2] + b"\0\0" + body[4:])) + body[4:]
    elif not frag:
        body = l4sum(p, body, a4(src) + a4(dst) + struct.pack("!BBH", 0, p, len(body)))
    flags = (0x4000 if df else 0) | frag
    hdr = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(body), ident, flags, ttl, p, 0) + a4(src) + a4(dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + body


def ip6(nh, body, src, dst, hops=64):
    s, d = a6(src), a6(dst)
    body = l4sum(nh, body, s + d + struct.pack("!IxxxB", len(body), nh))
    return struct.pack("!IHBB", 6 << 28, len(body), nh, hops) + s + d + body


def tcp(sport, dport, flags=0x02, data=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 0x50, flags, 65535, 0, 0) + data


def udp(sport, dport, data=b""):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp(t, code, rest=0, data=b""):
    return struct.pack("!BBHI", t, code, 0, rest) + data


def arp(op, sender_mac, sender_ip, target_mac, target_ip, dst=b"\xff" * 6, src=HOST):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sender_mac + a4(sender_ip) + target_mac + a4(target_ip)
    return eth(0x0806, dst, src) + body + b"\0" * 18  # padded to 60


def opt(t, data):
    """An ND option: type, length in 8-octet units, data padded."""
    total = (2 + len(data) + 7) // 8 * 8
    return bytes([t, total // 8]) + data + b"\0" * (total - 2 - len(data))


def nd(t, src, dst, target=None, flags=0, options=b"", hops=255, mac_dst=US, mac_src=HOST):
    body = bytes([t, 0, 0, 0, flags, 0, 0, 0]) + (a6(target) if target else b"") + options
    return eth(0x86dd, mac_dst, mac_src) + ip6(58, body, src, dst, hops)


def rec(frame, east=False, two=False, flag=False, step=0):
    ctl = (0x80 if east else 0) | (0x40 if two else 0) | (0x20 if flag else 0) | step
    return bytes([ctl]) + struct.pack("!H", len(frame)) + frame


E4, E6 = eth(0x0800), eth(0x86dd)
W_HOST, W_HOST6 = "10.1.0.2", "fd00:1::2"
E_HOST, E_HOST6 = "198.18.0.5", "2001:db8:5::1"


def route_seeds():
    fwd = E4 + ip4(6, tcp(40000, 80), W_HOST, E_HOST)
    fwd6 = E6 + ip6(6, tcp(40000, 80), W_HOST6, E_HOST6)
    udp_in = E4 + ip4(17, udp(53, 5353, b"a" * 20), E_HOST, W_HOST)
    unreach_in = ip4(1, icmp(3, 1, 0, ip4(17, udp(5353, 53), W_HOST, E_HOST)), "192.0.2.254", W_HOST, ttl=1)
    return {
        "forward-burst": b"".join(rec(fwd) for _ in range(4)) + rec(fwd, two=True),
        "forward-both-ways": rec(fwd) + rec(udp_in, east=True) + rec(fwd6) + rec(E6 + ip6(17, udp(53, 40000, b"x"), E_HOST6, W_HOST6), east=True),
        "ttl-1": rec(E4 + ip4(17, udp(1, 2, b"t" * 8), W_HOST, E_HOST, ttl=1)) + rec(fwd),
        "ttl-1-two-segments": rec(E4 + ip4(6, tcp(1, 2, data=b"s" * 600), W_HOST, E_HOST, ttl=1), two=True),
        "hop-limit-1": rec(E6 + ip6(17, udp(1, 2, b"h" * 8), W_HOST6, E_HOST6, hops=1)),
        "no-route": rec(E4 + ip4(17, udp(1, 2, b"n"), W_HOST, "8.8.8.8")) + rec(E6 + ip6(17, udp(1, 2, b"n"), W_HOST6, "2001:db9::1")),
        "frag-needed": rec(E4 + ip4(17, udp(1, 2, b"b" * 1420), W_HOST, E_HOST, df=True)),
        "fragmented-on-output": rec(E4 + ip4(17, udp(1, 2, b"f" * 1420), W_HOST, E_HOST)),
        "packet-too-big": rec(E6 + ip6(17, udp(1, 2, b"b" * 1400), W_HOST6, E_HOST6)),
        "packet-too-big-long": rec(E6 + ip6(17, udp(1, 2, b"L" * 1500), W_HOST6, E_HOST6)),
        "ttl-1-long-quote": rec(E4 + ip4(17, udp(1, 2, b"q" * 1000), W_HOST, E_HOST, ttl=1)),
        "no-error-about-errors": rec(E4 + unreach_in) + rec(E6 + ip6(58, icmp(1, 0, 0, b"\0" * 48), W_HOST6, E_HOST6, hops=1)),
        "later-fragment-ttl-1": rec(E4 + ip4(17, b"z" * 40, W_HOST, E_HOST, ttl=1, frag=0x2000 | 10)),
        "echo": rec(E4 + ip4(1, icmp(8, 0, 0x10001, b"ping"), W_HOST, "10.1.0.1")) +
                rec(E6 + ip6(58, icmp(128, 0, 0x10001, b"ping"), E_HOST6, "2001:db8:ffff::1"), east=True),
        "ecmp": b"".join(rec(E4 + ip4(17, udp(1000 + k, 53), W_HOST, f"203.0.113.{k}")) for k in range(1, 6)),
        "unresolved": rec(E4 + ip4(17, udp(1, 2), E_HOST, "10.1.0.3"), east=True) +
                      rec(E6 + ip6(17, udp(1, 2), E_HOST6, "fd00:1::3"), east=True),
        "bad-checksum-nic": rec(E4 + ip4(17, udp(1, 2), W_HOST, E_HOST)[:-10] + b"\xde\xad" + b"\0" * 8, flag=True) +
                            rec(fwd, flag=True),
        "options-ttl-1": rec(E4 + bytes([0x46]) + ip4(17, udp(1, 2), W_HOST, E_HOST, ttl=1)[1:20] + b"\x01\x01\x01\x00" +
                             udp(1, 2)),
        "not-for-us": rec(b"\x00\x11\x22\x33\x44\x55" + HOST + b"\x08\x00" + ip4(17, udp(1, 2), W_HOST, E_HOST)) +
                      rec(eth(0x0800, b"\xff" * 6) + ip4(17, udp(1, 2), W_HOST, E_HOST)),
        "vlan-arp-martian": rec(US + HOST + b"\x81\x00\x00\x05\x08\x00" + ip4(17, udp(1, 2), W_HOST, E_HOST)) +
                            rec(arp(1, HOST, W_HOST, b"\0" * 6, "10.1.0.1")) +
                            rec(E4 + ip4(17, udp(1, 2), "127.0.0.1", E_HOST, ttl=1)) +
                            rec(E4 + ip4(17, udp(1, 2), "224.0.0.5", E_HOST, ttl=1)),
    }


def neighbour_seeds():
    GW_MAC = b"\x02\x00\x00\x00\x01\xfe"
    to_gw = E4 + ip4(17, udp(1, 2, b"g"), "192.0.2.9", "10.1.0.254")  # on the west link, unresolved
    to_gw6 = E6 + ip6(17, udp(1, 2, b"g"), "2001:db8:ffff::9", "fd00:1::fe")
    ll = "fe80::1"
    return {
        "arp-request": rec(arp(1, HOST, W_HOST, b"\0" * 6, "10.1.0.1")),
        "arp-request-off-link": rec(arp(1, HOST, "10.9.9.9", b"\0" * 6, "10.1.0.1")),
        "arp-gratuitous": rec(arp(1, HOST, W_HOST, b"\0" * 6, W_HOST)) + rec(arp(2, HOST, W_HOST, b"\xff" * 6, W_HOST)),
        "arp-resolves-gateway": rec(to_gw, east=True) + rec(to_gw, east=True, step=1) +
                                rec(arp(2, GW_MAC, "10.1.0.254", b"\x02\x00\x00\x00\x00\xaa", "10.1.0.1", dst=US, src=GW_MAC)) +
                                rec(to_gw, east=True),
        "arp-malformed": rec(eth(0x0806, b"\xff" * 6) + struct.pack("!HHBBH", 1, 0x0800, 8, 4, 1) + b"\0" * 22) +
                         rec(eth(0x0806, b"\xff" * 6) + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 9) + b"\0" * 20) +
                         rec(eth(0x0806, b"\xff" * 6) + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)) +
                         rec(arp(1, b"\x01\0\0\0\0\1", W_HOST, b"\0" * 6, "10.1.0.1")),
        "unresolved-then-failed": rec(E4 + ip4(17, udp(1, 2), "192.0.2.9", "10.1.0.3"), east=True) * 3 +
                                  rec(b"", step=4) + rec(b"", step=8),
        "ns-for-us": rec(nd(135, W_HOST6, "ff02::1:ff00:1", "fd00:1::1", options=opt(1, HOST), mac_dst=b"\x33\x33\xff\0\0\1")),
        "ns-dad": rec(nd(135, "::", "ff02::1:ff00:1", "fd00:1::1", mac_dst=b"\x33\x33\xff\0\0\1")),
        "ns-options": rec(nd(135, W_HOST6, "fd00:1::1", "fd00:1::1", options=opt(14, b"\1\2\3\4\5\6") + opt(1, HOST) + opt(99, b"x" * 12))),
        "ns-bad-option": rec(nd(135, W_HOST6, "fd00:1::1", "fd00:1::1", options=b"\x01\x00" + HOST)) +
                         rec(nd(135, W_HOST6, "fd00:1::1", "fd00:1::1", options=opt(1, HOST), hops=64)),
        "na-resolves-gateway": rec(to_gw6, east=True) + rec(to_gw6, east=True, step=1) +
                               rec(nd(136, "fd00:1::fe", "fd00:1::1", "fd00:1::fe", flags=0x60, options=opt(2, GW_MAC), mac_src=GW_MAC)) +
                               rec(to_gw6, east=True) +
                               rec(nd(136, "fd00:1::fe", "ff02::1", "fd00:1::fe", flags=0x00, options=opt(2, b"\x02\0\0\0\0\x77"))),
        "na-no-option": rec(to_gw6, east=True, step=1) + rec(nd(136, "fd00:1::fe", "fd00:1::1", "fd00:1::fe", flags=0x40)),
        "rs-ra": rec(nd(133, ll, "ff02::2", options=b"\0\0\0\0" + opt(1, HOST), mac_dst=b"\x33\x33\0\0\0\2")) +
                 rec(nd(134, ll, "ff02::1", options=b"\x40\x00\x07\x08" + b"\0" * 8 + opt(5, b"\0\0\0\0\x05\xdc") +
                        opt(3, b"\x40\xc0" + b"\0\0\x0e\x10" * 2 + b"\0" * 4 + a6("fd00:1::")) + opt(1, HOST),
                        mac_dst=b"\x33\x33\0\0\0\1")) +
                 rec(nd(133, W_HOST6, "fd00:1::1", options=b"\0\0\0\0" + opt(1, HOST))),
        "mixed-two-segments": rec(arp(1, HOST, W_HOST, b"\0" * 6, "10.1.0.1"), two=True) +
                              rec(nd(135, W_HOST6, "fd00:1::1", "fd00:1::1", options=opt(1, HOST)), two=True),
    }


def pipeline_seeds():
    def one(frame, east=False, two=False, flag=False, policy=0):
        return bytes([(0x80 if east else 0) | (0x40 if two else 0) | (0x20 if flag else 0) | policy]) + frame
    seeds = {
        "syn-out": one(E4 + ip4(6, tcp(40000, 80), W_HOST, E_HOST)),
        "syn-in-web": one(E4 + ip4(6, tcp(40000, 80), E_HOST, "10.1.0.10"), east=True),
        "syn-in-ssh-rst": one(E4 + ip4(6, tcp(40000, 22), E_HOST, "10.1.0.10"), east=True),
        "udp-in-refused": one(E4 + ip4(17, udp(40000, 9, b"d" * 8), E_HOST, "10.1.0.10"), east=True),
        "udp-in-dropped": one(E4 + ip4(17, udp(40000, 53, b"d" * 8), E_HOST, "10.1.0.10"), east=True, flag=True),
        "echo-us": one(E4 + ip4(1, icmp(8, 0, 0x10001, b"ping"), W_HOST, "10.1.0.1")),
        "ttl-1": one(E4 + ip4(17, udp(1, 2, b"t" * 30), W_HOST, E_HOST, ttl=1)),
        "frag-needed": one(E4 + ip4(17, udp(1, 2, b"b" * 1420), W_HOST, E_HOST, df=True)),
        "fragmented": one(E4 + ip4(17, udp(1, 2, b"f" * 1420), W_HOST, E_HOST), two=True),
        "tcp6-out": one(E6 + ip6(6, tcp(40000, 443), W_HOST6, E_HOST6), flag=True),
        "ping6-in": one(E6 + ip6(58, icmp(128, 0, 0x10001, b"p"), E_HOST6, W_HOST6), east=True),
        "udp6-in-refused": one(E6 + ip6(17, udp(1, 9, b"r"), E_HOST6, W_HOST6), east=True),
        "hbh6": one(E6 + ip6(0, bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp(1, 2), W_HOST6, E_HOST6)),
        "arp": one(arp(1, HOST, W_HOST, b"\0" * 6, "10.1.0.1")),
        "icmp-error-in": one(E4 + ip4(1, icmp(3, 3, 0, ip4(17, udp(5353, 53), W_HOST, E_HOST)), E_HOST, W_HOST), east=True),
        "unresolved": one(E4 + ip4(17, udp(1, 2), E_HOST, "10.1.0.77"), east=True, policy=1),
    }
    for name in list(seeds):
        if name.startswith("syn") or name.startswith("udp"):
            seeds[name + "-nofw"] = bytes([seeds[name][0] | 1]) + seeds[name][1:]
    return seeds


def http_seeds():
    def req(line, headers=(), body=b""):
        text = line.encode() + b"\r\nHost: 127.0.0.1:8080\r\n" + b"".join(h.encode() + b"\r\n" for h in headers)
        if body:
            text += f"Content-Length: {len(body)}\r\n".encode()
        return text + b"\r\n" + body
    return {
        "flows": req("GET /flows HTTP/1.1"),
        "flows-filter": req("GET /flows?address=10.0.0.0%2F8&port=80&protocol=tcp&state=established&zone=0&limit=10 HTTP/1.1"),
        "flows-v6-state": req("GET /flows?address=fd00::1&protocol=icmpv6&state=udp_replied HTTP/1.1"),
        "flows-cursor": req("GET /flows?cursor=0:5&limit=10000 HTTP/1.1"),
        "flows-bad": req("GET /flows?port=70000&limit=0&x=1 HTTP/1.1"),
        "flows-percent": req("GET /flows?address=%ff%fe&protocol=%00 HTTP/1.1"),
        "flush": req("POST /flows/flush?protocol=udp&port=53 HTTP/1.1"),
        "flush-limit": req("POST /flows/flush?limit=5 HTTP/1.1"),
        "reload": req("POST /reload HTTP/1.1", ("Content-Length: 0",)),
        "reload-get": req("GET /reload HTTP/1.1"),
        "reload-put-body": req("PUT /reload HTTP/1.1", ("Content-Type: application/json",), b'{"ports": []}'),
        "trace-arm": req("POST /trace?port=west&count=5&drops=1&proto=icmp6&src=fd00::/8&dport=53 HTTP/1.1"),
        "trace-arm-host": req("POST /trace?host=10.1.0.0/24&l4port=443&sport=1&drops=no HTTP/1.1"),
        "trace-bad": req("POST /trace?count=0&port=nowhere HTTP/1.1"),
        "trace-get": req("GET /trace HTTP/1.1"),
        "trace-stop": req("POST /trace/stop HTTP/1.1"),
        "stats": req("GET /stats HTTP/1.1"),
        "metrics": req("GET /metrics HTTP/1.1"),
        "config": req("GET /config HTTP/1.1"),
        "health-head": req("HEAD /health HTTP/1.1"),
        "neighbours-routes": req("GET /neighbours HTTP/1.1"),
        "nat": req("GET /nat HTTP/1.1"),
        "services": req("GET /services HTTP/1.1"),
        "delete": req("DELETE /flows HTTP/1.1"),
        "unknown": req("GET /nope?a=b HTTP/1.1"),
        "chunked": req("POST /flows/flush HTTP/1.1", ("Transfer-Encoding: chunked",), b"5\r\nhello\r\n0\r\n\r\n"),
        "expect": req("POST /reload HTTP/1.1", ("Expect: 100-continue", "Content-Length: 3"), b"abc"),
        "telemetry-style": req("GET /flows?protocol=tcp,port=80 HTTP/1.1"),
    }


def main():
    for target, seeds in (("route", route_seeds()), ("neighbour", neighbour_seeds()),
                          ("pipeline", pipeline_seeds()), ("http", http_seeds())):
        out = os.path.join(HERE, target)
        os.makedirs(out, exist_ok=True)
        for old in os.listdir(out):
            os.remove(os.path.join(out, old))
        for name, data in seeds.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
