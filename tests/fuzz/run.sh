#!/bin/bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz (kept between
# runs: meson is set up once, ninja rebuilds what changed) and runs each for
# FUZZ_SECONDS (default 15) from its seed corpus: the committed one in
# tests/fuzz/corpus/TARGET/ or the one generated below, plus every input in
# tests/fuzz/regressions/TARGET/. Prints the build's time and one line per target:
# "fuzz TARGET: ok (N runs in S s)" or "fuzz TARGET: FAILED (why)".
#
# A target fails when
#   - it exits non-zero: every sanitizer finding is fatal (ASan and LeakSanitizer stop at
#     the first error; UBSan's checks recover by default, UBSAN_OPTIONS halt_on_error=1
#     makes the first report fatal);
#   - its log holds a sanitizer report whatever its exit status ("runtime error",
#     "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ... Sanitizer"): a
#     report that did not stop it still fails the run;
#   - it ran fewer inputs than its minimum (FUZZ_MIN_RUNS, default 1000, or the
#     target's own below), read from libFuzzer's final stats
#     (stat::number_of_executed_units): a target that hangs, dies quietly or crawls
#     cannot pass on its seeds alone.
#   FUZZ_TARGETS   the targets to run (default: all of them, as tests/fuzz/meson.build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-15}
MIN_RUNS=${FUZZ_MIN_RUNS:-1000}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-config parse conntrack nat route neighbour pipeline http}"
# A target's own minimum where FUZZ_MIN_RUNS does not fit it (none yet), as
# TARGET_MIN_RUNS[neighbour]=N: still far above what a replay of its seeds gives.
declare -A TARGET_MIN_RUNS=()

command -v clang++ >/dev/null || { echo "fuzz: clang++ not installed" >&2; exit 1; }
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/tests/fuzz/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
build_start=$(date +%s)
if [[ ! -f $BUILD/build.ninja ]]; then
  CXX=clang++ CC=clang meson setup "$BUILD" "$ROOT" -Dfuzz=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$BUILD" "${TARGETS[@]/#/tests/fuzz/fuzz_}" >"$BUILD/fuzz-build.log" 2>&1 ||
  { tail -40 "$BUILD/fuzz-build.log"; echo "fuzz: build failed" >&2; exit 1; }
echo "fuzz build: $(($(date +%s) - build_start)) s ($(grep -c '^\[' "$BUILD/fuzz-build.log" || true) steps)"

work=$BUILD/fuzz-work
rm -rf "$work" && mkdir -p "${TARGETS[@]/#/$work/}" "$work/config" "$work/parse" "$work/conntrack" "$work/nat"
cp "$ROOT"/conf/*.json "$work/config/" 2>/dev/null || true
printf '{"eal":{"lcores":"0-1"},"ports":[]}' >"$work/config/min.json"
# Parse seeds: first byte is the segment split (0 = one segment), then the frame.
# Conntrack seeds (fuzz_conntrack.cpp): a policy byte, then records of ctl (bit 7 east,
# bit 6 two segments, bit 5 checksums found good by the NIC, bits 0-4 clock steps of
# 500 ms), 2-byte length, frame; TCP and UDP checksums are right in both cases.
/usr/bin/python3 - "$work/parse" "$work/conntrack" "$work/nat" <<'PY'
import sys, struct
out, ct_out, nat_out = sys.argv[1], sys.argv[2], sys.argv[3]
eth = lambda t: b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", t)
ip4 = lambda p, l: bytes([0x45, 0, *struct.pack("!H", 20 + l), 0, 0, 0x40, 0, 64, p, 0, 0]) + bytes([10, 0, 0, 1, 10, 0, 0, 2])
ip6 = lambda nh, l: bytes([0x60, 0, 0, 0, *struct.pack("!H", l), nh, 64]) + bytes(16) + bytes(16)
tcp = struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 0x50, 2, 1024, 0, 0)
udp = struct.pack("!HHHH", 1, 2, 8, 0)
icmp = bytes([8, 0, 0, 0, 0, 1, 0, 1])
seeds = {
  "tcp4": eth(0x0800) + ip4(6, 20) + tcp,
  "udp4": eth(0x0800) + ip4(17, 8) + udp,
  "icmp4": eth(0x0800) + ip4(1, 8) + icmp,
  "tcp6": eth(0x86dd) + ip6(6, 20) + tcp,
  "hbh6": eth(0x86dd) + ip6(0, 16) + bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp,
  "vlan": eth(0x8100)[:-2] + b"\x81\x00\x00\x05\x08\x00" + ip4(17, 8) + udp,
  "arp": eth(0x0806) + bytes([0, 1, 8, 0, 6, 4, 0, 1]) + bytes(20),
}
for name, frame in seeds.items():
  for split in (0, 20):
    open(f"{out}/{name}-{split}", "wb").write(bytes([split]) + frame)

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
A6, B6 = bytes(15) + b"\x01", bytes(15) + b"\x02"
def csum(data):
  data += b"\0" * (len(data) & 1)
  s = sum(struct.unpack(f"!{len(data) // 2}H", data))
  while s >> 16: s = (s & 0xffff) + (s >> 16)
  return ~s & 0xffff
def l4sum(p, body, pseudo):  # TCP/UDP/ICMPv6 checksum filled in
  at = {6: 16, 17: 6, 58: 2}.get(p)
  if at is None or len(body) < at + 2: return body
  body = body[:at] + b"\0\0" + body[at + 2:]
  return body[:at] + struct.pack("!H", csum(pseudo + body) or 0xffff) + body[at + 2:]
def ip4a(p, body, src=A, dst=B):
  body = l4sum(p, body, src + dst + struct.pack("!BBH", 0, p, len(body))) if p != 1 else \
         body[:2] + struct.pack("!H", csum(body[:2] + b"\0\0" + body[4:])) + body[4:]
  hdr = bytes([0x45, 0, *struct.pack("!H", 20 + len(body)), 0, 0, 0x40, 0, 64, p, 0, 0]) + src + dst
  return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + body
def ip6a(nh, body, src=A6, dst=B6):
  body = l4sum(nh, body, src + dst + struct.pack("!IxxxB", len(body), nh))
  return bytes([0x60, 0, 0, 0, *struct.pack("!H", len(body)), nh, 64]) + src + dst + body
def tcpa(sport, dport, seq, ack, flags, data=b""):
  return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + data
def udpa(sport, dport, data=b""):
  return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
def rec(frame, east=False, two=False, step=0, good=False):
  ctl = (0x80 if east else 0) | (0x40 if two else 0) | (0x20 if good else 0) | step
  return bytes([ctl]) + struct.pack("!H", len(frame)) + frame
E4, E6 = eth(0x0800), eth(0x86dd)
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
c, s = 1000, 500000
handshake = [
  rec(E4 + ip4a(6, tcpa(40000, 80, c, 0, SYN))),
  rec(E4 + ip4a(6, tcpa(80, 40000, s, c + 1, SYN | ACK), B, A), east=True),
  rec(E4 + ip4a(6, tcpa(40000, 80, c + 1, s + 1, ACK))),
  rec(E4 + ip4a(6, tcpa(40000, 80, c + 1, s + 1, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n"))),
  rec(E4 + ip4a(6, tcpa(80, 40000, s + 1, c + 19, ACK, b"x" * 100), B, A), east=True, two=True),
  rec(E4 + ip4a(6, tcpa(40000, 80, c + 19, s + 101, FIN | ACK)), step=1),
  rec(E4 + ip4a(6, tcpa(80, 40000, s + 101, c + 20, FIN | ACK), B, A), east=True),
  rec(E4 + ip4a(6, tcpa(40000, 80, c + 20, s + 102, ACK))),
  rec(E4 + ip4a(6, tcpa(40000, 80, c + 70000, 0, SYN)), step=4),  # reuses the TIME_WAIT flow
]
udp_out = E4 + ip4a(17, udpa(5353, 53, b"q" * 12))
ct_seeds = {
  "handshake": b"".join(handshake),
  "handshake6": b"".join([
    rec(E6 + ip6a(6, tcpa(40000, 80, c, 0, SYN))),
    rec(E6 + ip6a(6, tcpa(80, 40000, s, c + 1, SYN | ACK), B6, A6), east=True),
    rec(E6 + ip6a(6, tcpa(40000, 80, c + 1, s + 1, ACK))),
    rec(E6 + ip6a(6, tcpa(40000, 80, c + 1, s + 1, RST)), step=2)]),
  "reject": b"".join([
    rec(E4 + ip4a(6, tcpa(40001, 22, c, 0, SYN))),
    rec(E4 + ip4a(17, udpa(40002, 9, b"d" * 8))),
    rec(E6 + ip6a(58, bytes([128, 0, 0, 0, 0, 1, 0, 1])))]),
  "udp-icmp": b"".join([
    rec(udp_out),
    rec(E4 + ip4a(17, udpa(53, 5353, b"a" * 12), B, A), east=True),
    rec(E4 + ip4a(1, bytes([3, 3, 0, 0, 0, 0, 0, 0]) + udp_out[14:42], B, A), east=True),
    rec(E4 + ip4a(1, bytes([8, 0, 0, 0, 0, 7, 0, 1]))),
    rec(E4 + ip4a(1, bytes([0, 0, 0, 0, 0, 7, 0, 1]), B, A), east=True),
    rec(E4 + ip4a(1, bytes([0, 0, 0, 0, 0, 8, 0, 1]), B, A), east=True, step=8)]),
  "inbound": b"".join([
    rec(E4 + ip4a(6, tcpa(50000, 8080, c, 0, SYN), B, A), east=True),
    rec(E4 + ip4a(6, tcpa(50001, 443, c, 0, SYN), B, A), east=True),
    rec(E4 + ip4a(6, tcpa(50002, 25, c, 0, SYN), B, A), east=True),
    rec(E4 + ip4a(6, tcpa(50003, 25, c, 0, SYN | FIN), B, A), east=True)]),
}
for name, frame in seeds.items():  # each parse seed, once as it is and once in two segments
  ct_seeds[f"frame-{name}"] = rec(frame) + rec(frame, east=True, two=True, good=True)
ct_seeds["handshake-offload"] = b"".join(bytes([r[0] | 0x20]) + r[1:] for r in handshake)
for name, body in ct_seeds.items():
  for policy in range(3):
    open(f"{ct_out}/{name}-{policy}", "wb").write(bytes([policy]) + body)

# NAT seeds (fuzz_nat.cpp): the same records; west 10.1.0.1/24 inside, east 192.0.2.1/24
# (MTU 1400) outside, hosts out there behind 192.0.2.254. Every IPv4 frame has its own IP
# ID, so the fuzzer can tell which output is whose translation.
ids = iter(range(0x100, 0x10000))
def ip4n(p, body, src, dst, ttl=64, df=True, frag=None, ident=None, l4sum=True):
  """An IPv4 datagram (checksums right; l4sum False: L4 as given); frag=(offset bytes,
  more, data): a fragment of it."""
  if l4sum: body = ip4a(p, body, src, dst)[20:]  # the L4 checksum over the whole datagram
  ident = next(ids) if ident is None else ident
  flags = 0x4000 if df else 0
  if frag is not None:
    offset, more, body = frag
    flags = (0x2000 if more else 0) | offset // 8
  hdr = bytes([0x45, 0, *struct.pack("!H", 20 + len(body)), *struct.pack("!HH", ident, flags), ttl, p, 0, 0]) + src + dst
  return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + body
def fragments(p, body, src, dst, cuts, ident):
  """The datagram cut at `cuts` (payload offsets, multiples of 8): one IP header each."""
  whole = ip4n(p, body, src, dst, ident=ident)[20:]
  edges = [0] + list(cuts) + [len(whole)]
  return [ip4n(p, b"", src, dst, frag=(a, b < len(whole), whole[a:b]), ident=ident) for a, b in zip(edges, edges[1:])]
def icmp4(t, code, rest, quoted):
  return struct.pack("!BBHI", t, code, 0, rest) + quoted  # ip4n fills the checksum
def ip6n(nh, body, src, dst, hops=64):
  packet = ip6a(nh, body, src, dst)
  return packet[:7] + bytes([hops]) + packet[8:]
a4 = lambda text: bytes(int(x) for x in text.split("."))
def a6(text):
  import ipaddress
  return ipaddress.IPv6Address(text).packed
def npt_out(addr):  # RFC 6296 /48: fd00:1::/48 -> 2001:db8:1::/48, word 3 absorbs the difference
  words = list(struct.unpack("!8H", addr))
  fold16 = lambda v: (v & 0xffff) + (v >> 16)
  inside, outside = fold16(0xfd00 + 0x0001), fold16(0x2001 + 0x0db8 + 0x0001)
  w = fold16(fold16(words[3] + inside) + (~outside & 0xffff))
  words[:4] = [0x2001, 0x0db8, 0x0001, 0 if w == 0xffff else w]
  return struct.pack("!8H", *words)
def pool_address(inside, first, size):  # mapping.cpp pool_start: paired pooling by the inside host
  h = (struct.unpack("<I", inside)[0] * 0x9e3779b1) & 0xffffffff
  return first[:3] + bytes([first[3] + ((h * size) >> 32)])
IN, IN2, TINY, EIM, SRV, GAMES = (a4(x) for x in ("10.1.0.2", "10.1.0.3", "10.1.0.34", "10.1.0.66", "10.1.0.10", "10.1.0.11"))
WAN, GW, REMOTE, REMOTE2 = a4("192.0.2.1"), a4("192.0.2.254"), a4("198.18.0.5"), a4("198.18.0.9")
EIM_OUT = pool_address(EIM, a4("198.51.100.8"), 4)
IN6, REMOTE6, GW6 = a6("fd00:1::2"), a6("2001:db8:5::1"), a6("2001:db8:ffff::fe")
nw = lambda ip, **kw: rec(E4 + ip, **kw)         # into west
ne = lambda ip, **kw: rec(E4 + ip, east=True, **kw)  # into east
udp_q = ip4n(17, udpa(5353, 53, b"q" * 12), IN, REMOTE)
udp_q_out = ip4n(17, udpa(5353, 53, b"q" * 12), WAN, REMOTE)  # as it left east (TTL aside)
tcp_fwd_reply = ip4n(6, tcpa(80, 50000, s, c + 1, SYN | ACK), SRV, REMOTE)
nat_seeds = {
  # Masquerade both ways: the inside port is kept (free, in range), so replies come to WAN:40000.
  "masq-tcp": b"".join([
    nw(ip4n(6, tcpa(40000, 80, c, 0, SYN), IN, REMOTE)),
    ne(ip4n(6, tcpa(80, 40000, s, c + 1, SYN | ACK), REMOTE, WAN)),
    nw(ip4n(6, tcpa(40000, 80, c + 1, s + 1, ACK), IN, REMOTE)),
    nw(ip4n(6, tcpa(40000, 80, c + 1, s + 1, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n"), IN, REMOTE), two=True),
    ne(ip4n(6, tcpa(80, 40000, s + 1, c + 19, ACK, b"x" * 100), REMOTE, WAN), good=True),
    nw(ip4n(6, tcpa(40000, 80, c + 19, s + 101, FIN | ACK), IN, REMOTE), step=1),
    ne(ip4n(6, tcpa(80, 40000, s + 101, c + 20, FIN | ACK), REMOTE, WAN)),
    nw(ip4n(6, tcpa(40000, 80, c + 20, s + 102, ACK), IN, REMOTE))]),
  "masq-udp-icmp": b"".join([
    nw(udp_q),
    ne(ip4n(17, udpa(53, 5353, b"a" * 12), REMOTE, WAN)),
    nw(ip4n(17, struct.pack("!HHHH", 5354, 53, 12, 0) + b"nock", IN, REMOTE, l4sum=False)),  # no UDP checksum: stays none
    ne(ip4n(1, icmp4(3, 3, 0, udp_q_out[:28]), REMOTE, WAN)),       # port unreachable quoting 8 bytes
    ne(ip4n(1, icmp4(11, 0, 0, udp_q_out), GW, WAN)),               # time exceeded quoting it all
    nw(ip4n(1, bytes([8, 0, 0, 0, 0, 7, 0, 1]) + b"ping", IN, REMOTE)),
    ne(ip4n(1, bytes([0, 0, 0, 0, 0, 7, 0, 1]) + b"ping", REMOTE, WAN)),
    nw(ip4n(17, udpa(5353, 53, b"t" * 12), IN, REMOTE, ttl=1)),     # the router's own error: untranslated
    nw(ip4n(17, udpa(5353, 53, b"b" * 1400), IN, REMOTE)),          # DF over east's MTU: fragmentation needed
    nw(ip4n(17, udpa(5353, 53, b"f" * 1400), IN, REMOTE, df=False)),  # fragmented on the way out
    nw(ip4n(17, udpa(5353, 53, b"z"), IN, REMOTE), step=8)]),
  # A port forward and its server's answers; an inside host hairpinned to it.
  "forward": b"".join([
    ne(ip4n(6, tcpa(50000, 8080, c, 0, SYN), REMOTE, WAN)),
    nw(tcp_fwd_reply),
    ne(ip4n(6, tcpa(50000, 8080, c + 1, s + 1, ACK), REMOTE, WAN)),
    nw(ip4n(1, icmp4(3, 4, 1280, ip4n(6, tcpa(50000, 80, c + 1, s + 1, ACK, b"d" * 40), REMOTE, SRV)[:48]), SRV, REMOTE)),
    ne(ip4n(1, icmp4(3, 1, 0, ip4n(6, tcpa(8080, 50000, s, c + 1, SYN | ACK), WAN, REMOTE)), GW, WAN)),
    ne(ip4n(17, udpa(40000, 27001, b"g" * 20), REMOTE, WAN)),
    nw(ip4n(17, udpa(27001, 40000, b"h" * 20), GAMES, REMOTE)),
    nw(ip4n(1, icmp4(3, 3, 0, ip4n(17, udpa(40000, 27001, b"g" * 20), REMOTE, GAMES)), GAMES, REMOTE)),
    ne(ip4n(6, tcpa(50001, 22, c, 0, SYN), REMOTE, WAN))]),         # refused: a RST or nothing
  "hairpin": b"".join([
    nw(ip4n(6, tcpa(40001, 8080, c, 0, SYN), IN, WAN)),
    nw(ip4n(6, tcpa(80, 40001, s, c + 1, SYN | ACK), SRV, WAN)),
    nw(ip4n(6, tcpa(40001, 8080, c + 1, s + 1, ACK), IN, WAN)),
    nw(ip4n(17, udpa(40002, 27000, b"u" * 8), IN2, WAN)),
    nw(ip4n(17, udpa(27000, 40002, b"v" * 8), GAMES, WAN))]),
  # Four ports for 10.1.0.34: the fifth flow to one server finds none (nat_no_port).
  "tiny-pool": b"".join(
    [nw(ip4n(17, udpa(5000 + k, 53, b"p" * 8), TINY, REMOTE)) for k in range(5)] +
    [ne(ip4n(17, udpa(53, 5001, b"r" * 8), REMOTE, a4("198.51.100.1"))),
     nw(ip4n(17, udpa(5001, 53, b"p" * 8), TINY, REMOTE2)),
     nw(ip4n(17, udpa(5002, 53, b"p" * 8), TINY, REMOTE), step=7)]),
  # One outside endpoint for 10.1.0.66:6001 whatever the destination, and anyone may use it.
  "eim": b"".join([
    nw(ip4n(17, udpa(6001, 3478, b"s" * 8), EIM, REMOTE)),
    nw(ip4n(17, udpa(6001, 3478, b"s" * 8), EIM, REMOTE2)),
    ne(ip4n(17, udpa(3478, 6001, b"m" * 8), REMOTE, EIM_OUT)),
    ne(ip4n(17, udpa(4000, 6001, b"n" * 8), a4("198.18.7.7"), EIM_OUT)),
    nw(ip4n(17, udpa(6001, 4000, b"o" * 8), EIM, a4("198.18.7.7"))),
    ne(ip4n(17, udpa(4001, 6001, b"n" * 8), a4("198.18.7.8"), EIM_OUT), step=8),
    ne(ip4n(17, udpa(4001, 6001, b"n" * 8), a4("198.18.7.8"), EIM_OUT))]),
  # Nine translated flows for eight pairs, forty for 32 plain entries: eviction both ways.
  "eviction": b"".join(
    [nw(ip4n(17, udpa(20000 + k, 53, b"e" * 8), IN, REMOTE)) for k in range(9)] +
    [ne(ip4n(17, udpa(53, 20000 + k, b"f" * 8), REMOTE, WAN)) for k in range(9)] +
    [nw(ip4n(6, tcpa(30000 + k, 443, c, 0, SYN), IN2, REMOTE)) for k in range(40)]),
  # A full pair pool gives a pair to a new flow in the middle of a burst: packets of the
  # evicted flow before and after it in that burst, and a mapping whose only flow goes.
  "evicted-in-burst": b"".join(
    [ne(ip4n(17, udpa(40000 + k, 27001, b"g" * 8), REMOTE, WAN)) for k in range(8)] +
    [ne(ip4n(17, udpa(40000 + k, 27001, b"X" * 8), REMOTE, WAN), step=1 if k == 0 else 0) for k in range(4)] +
    [ne(ip4n(6, tcpa(50000, 8080, c, 0, SYN), REMOTE2, WAN))] +
    [ne(ip4n(17, udpa(40000 + k, 27001, b"X" * 8), REMOTE, WAN)) for k in range(4, 8)] +
    [nw(ip4n(17, udpa(6001 + k, 53, b"m" * 8), EIM, REMOTE), step=1 if k == 0 else 0) for k in range(8)] +
    [nw(ip4n(17, udpa(6001, 53, b"M" * 8), EIM, REMOTE2), step=1)]),
  # Three fragments of one datagram out of order, then an overlap, a duplicate, a set that
  # never completes (the clock passes the reassembly timeout), and answers in fragments.
  "fragments": b"".join(
    [nw(f) for f in reversed(fragments(17, udpa(5353, 53, b"F" * 200), IN, REMOTE, (64, 128), 0x4242))] +
    [ne(f) for f in fragments(17, udpa(53, 5353, b"R" * 200), REMOTE, WAN, (96, 160), 0x4343)] +
    [nw(f) for f in fragments(17, udpa(5353, 53, b"O" * 200), IN, REMOTE, (64, 128), 0x4444)[:2]] +
    [nw(ip4n(17, b"", IN, REMOTE, frag=(56, True, b"X" * 16), ident=0x4444))] +      # overlaps the first
    [nw(f) for f in fragments(17, udpa(5353, 53, b"D" * 200), IN, REMOTE, (64, 128), 0x4545)[:2] * 2] +
    [nw(f) for f in fragments(6, tcpa(40000, 80, c, 0, SYN, b"T" * 100), IN, REMOTE, (64,), 0x4646)[1:]] +
    [nw(ip4n(17, udpa(5353, 53, b"L" * 100), IN, REMOTE), step=5)] +
    [nw(f) for f in fragments(17, udpa(5353, 53, b"B" * 2000), IN, REMOTE, (1000,), 0x4747)]),  # refragmented for east
  # NPTv6 both ways: the inside prefix leaves as the outside one, answers come back in.
  "nptv6": b"".join([
    rec(E6 + ip6n(6, tcpa(40000, 80, c, 0, SYN), IN6, REMOTE6)),
    rec(E6 + ip6n(6, tcpa(80, 40000, s, c + 1, SYN | ACK), REMOTE6, npt_out(IN6)), east=True),
    rec(E6 + ip6n(58, bytes([128, 0, 0, 0, 0, 9, 0, 1]), IN6, REMOTE6)),
    rec(E6 + ip6n(58, bytes([129, 0, 0, 0, 0, 9, 0, 1]), REMOTE6, npt_out(IN6)), east=True),
    rec(E6 + ip6n(58, bytes([1, 4, 0, 0, 0, 0, 0, 0]) + ip6n(17, udpa(40000, 9, b"6" * 8), npt_out(IN6), REMOTE6),
                  GW6, npt_out(IN6)), east=True),
    rec(E6 + ip6n(17, udpa(40000, 9, b"h" * 8), IN6, REMOTE6, hops=1))]),
}
for name, body in nat_seeds.items():
  for policy in range(3):
    open(f"{nat_out}/{name}-{policy}", "wb").write(bytes([policy]) + body)
PY
# Committed seeds (tests/fuzz/corpus/TARGET/, made by tests/fuzz/corpus/make_seeds.py).
for dir in "$ROOT"/tests/fuzz/corpus/*/; do
  [[ -d $dir && -d $work/$(basename "$dir") ]] && cp "$dir"* "$work/$(basename "$dir")/"
done
# Inputs that once broke a target (tests/fuzz/regressions/TARGET/, named by what they
# caught): libFuzzer runs its whole corpus first, so each is replayed every run.
for dir in "$ROOT"/tests/fuzz/regressions/*/; do
  [[ -d $dir && -d $work/$(basename "$dir") ]] && cp "$dir"* "$work/$(basename "$dir")/"
done

# What a sanitizer prints when it finds something (UBSan: "runtime error"; ASan, LSan and
# the rest: "ERROR: ...Sanitizer" or a "WARNING: ...Sanitizer" that did not stop it).
SANITIZER_REPORT='runtime error|ERROR: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|WARNING: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer'

status=0
for target in "${TARGETS[@]}"; do
  log=$work/$target.log
  binary=$BUILD/tests/fuzz/fuzz_$target
  want=${TARGET_MIN_RUNS[$target]:-$MIN_RUNS}
  start=$(date +%s)
  rc=0
  "$binary" -max_total_time="$SECONDS_PER_TARGET" -timeout=5 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$work/$target-" "$work/$target" >"$log" 2>&1 || rc=$?
  took=$(($(date +%s) - start))
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  why=""
  if ((rc != 0)); then
    why="exit status $rc"
  elif grep -qE "$SANITIZER_REPORT" "$log"; then
    why="a sanitizer report in the log, exit status 0"
  elif [[ -z $runs ]]; then
    why="no final stats (stat::number_of_executed_units) in the log"
  elif ((runs < want)); then
    why="$runs runs, fewer than the minimum $want"
  fi
  if [[ -z $why ]]; then
    echo "fuzz $target: ok ($runs runs in $took s)"
  else
    echo "fuzz $target: FAILED ($why, ${runs:-0} runs in $took s; log $log)"
    grep -m5 -E "$SANITIZER_REPORT|ERROR|invariant broken|SUMMARY" "$log" || tail -20 "$log"
    status=1
  fi
done
exit $status
