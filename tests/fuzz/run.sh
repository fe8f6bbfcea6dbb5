#!/bin/bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz and runs each
# for FUZZ_SECONDS (default 20) from a seed corpus. Exits non-zero on any finding.
# Prints one line per target: "fuzz TARGET: ok (N runs)" or "fuzz TARGET: FAILED".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}

command -v clang++ >/dev/null || { echo "fuzz: clang++ not installed" >&2; exit 1; }
if [[ ! -f $BUILD/build.ninja ]]; then
  CXX=clang++ CC=clang meson setup "$BUILD" "$ROOT" -Dfuzz=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$BUILD" tests/fuzz/fuzz_config tests/fuzz/fuzz_parse >"$BUILD/fuzz-build.log" 2>&1 ||
  { tail -40 "$BUILD/fuzz-build.log"; echo "fuzz: build failed" >&2; exit 1; }

work=$BUILD/fuzz-work
rm -rf "$work" && mkdir -p "$work/config" "$work/parse"
cp "$ROOT"/conf/*.json "$work/config/" 2>/dev/null || true
printf '{"eal":{"lcores":"0-1"},"ports":[]}' >"$work/config/min.json"
# Parse seeds: first byte is the segment split (0 = one segment), then the frame.
/usr/bin/python3 - "$work/parse" <<'PY'
import sys, struct
out = sys.argv[1]
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
PY

status=0
for target in config parse; do
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
