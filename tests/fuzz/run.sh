#!/bin/bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz and runs each
# for FUZZ_SECONDS (default 20) from a seed corpus. Exits non-zero on any finding, UBSan's
# included (its checks recover by default: halt_on_error makes the first one fatal).
# Prints one line per target: "fuzz TARGET: ok (N runs)" or "fuzz TARGET: FAILED".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}

command -v clang++ >/dev/null || { echo "fuzz: clang++ not installed" >&2; exit 1; }
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/tests/fuzz/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
if [[ ! -f $BUILD/build.ninja ]]; then
  CXX=clang++ CC=clang meson setup "$BUILD" "$ROOT" -Dfuzz=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$BUILD" tests/fuzz/fuzz_config tests/fuzz/fuzz_parse tests/fuzz/fuzz_conntrack >"$BUILD/fuzz-build.log" 2>&1 ||
  { tail -40 "$BUILD/fuzz-build.log"; echo "fuzz: build failed" >&2; exit 1; }

work=$BUILD/fuzz-work
rm -rf "$work" && mkdir -p "$work/config" "$work/parse" "$work/conntrack"
cp "$ROOT"/conf/*.json "$work/config/" 2>/dev/null || true
printf '{"eal":{"lcores":"0-1"},"ports":[]}' >"$work/config/min.json"
# Parse seeds: first byte is the segment split (0 = one segment), then the frame.
# Conntrack seeds (fuzz_conntrack.cpp): a policy byte, then records of ctl (bit 7 east,
# bit 6 two segments, bit 5 checksums found good by the NIC, bits 0-4 clock steps of
# 500 ms), 2-byte length, frame; TCP and UDP checksums are right in both cases.
/usr/bin/python3 - "$work/parse" "$work/conntrack" <<'PY'
import sys, struct
out, ct_out = sys.argv[1], sys.argv[2]
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
PY

status=0
for target in config parse conntrack; do
  log=$work/$target.log
  if "$BUILD/tests/fuzz/fuzz_$target" -max_total_time="$SECONDS_PER_TARGET" -timeout=5 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$work/$target-" "$work/$target" >"$log" 2>&1; then
    echo "fuzz $target: ok ($(awk '/stat::number_of_executed_units/ {print $2}' "$log") runs)"
  else
    echo "fuzz $target: FAILED (log $log)"
    grep -m5 -E "ERROR|SUMMARY|runtime error" "$log" || tail -20 "$log"
    status=1
  fi
done
exit $status
