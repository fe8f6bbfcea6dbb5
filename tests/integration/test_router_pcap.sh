#!/bin/bash
# Issue 3: crafted frames through the router on net_pcap, every output frame compared
# byte for byte with the expected one, and /stats "drops" compared reason by reason with
# the drop each case declares (tests/pcap/router_cases.py lists the cases).
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
HTTP=9198
WORK=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
CASES=$SLUICE_ROOT/tests/pcap/router_cases.py
count=$($SLUICE_PY "$CASES" gen "$WORK")
$SLUICE_PY -c "from scapy.all import wrpcap; wrpcap('$WORK/empty.pcap', [])" 2>/dev/null
cat >"$WORK/sluice.json" <<JSON
{ "eal": {"lcores": "0-1", "memory_mb": 256, "file_prefix": "trp"},
  "ports": [
    {"name": "west", "device": "net_pcap0", "devargs": "rx_pcap=$WORK/in.pcap,tx_pcap=$WORK/out-west.pcap",
     "mac": "02:00:00:00:01:01", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"], "pipeline": ["parse", "route"]},
    {"name": "east", "device": "net_pcap1", "devargs": "rx_pcap=$WORK/empty.pcap,tx_pcap=$WORK/out-east.pcap",
     "mac": "02:00:00:00:02:01", "mtu": 1400, "ipv4": ["10.2.0.1/24"], "ipv6": ["fd00:2::1/64"],
     "pipeline": ["parse", "route"]}
  ],
  "neighbours": [{"address": "10.2.0.2", "mac": "02:00:00:00:02:02"}, {"address": "fd00:2::2", "mac": "02:00:00:00:02:02"},
                 {"address": "10.1.0.2", "mac": "02:00:00:00:01:02"}, {"address": "fd00:1::2", "mac": "02:00:00:00:01:02"}],
  "control": {"http": {"port": $HTTP}}
}
JSON
"$SLUICE_BIN" --config "$WORK/sluice.json" -- $SLUICE_EAL_HUGE >"$WORK/sluice.log" 2>&1 &
pid=$!
wait_for_http 127.0.0.1:$HTTP $pid || { cat "$WORK/sluice.log"; fail "Sluice did not start"; }
# net_pcap reads the whole file at once; wait until all $count frames were received.
for _ in $(seq 100); do
  rx=$(curl -fsS http://127.0.0.1:$HTTP/stats | $SLUICE_PY -c "import json,sys; print(json.load(sys.stdin)['ports'][0]['rx_packets'])")
  [[ $rx == "$count" ]] && break
  sleep 0.1
done
[[ $rx == "$count" ]] || fail "Sluice received $rx of $count frames"
# The drop counters once they stop moving (two reads 0.25 s apart agree).
prev=
for _ in $(seq 40); do
  sleep 0.25
  curl -fsS http://127.0.0.1:$HTTP/stats >"$WORK/stats.json"
  now=$($SLUICE_PY -c "import json,sys; print(json.load(open(sys.argv[1]))['drops'])" "$WORK/stats.json")
  [[ $now == "$prev" ]] && break
  prev=$now
done
$SLUICE_PY -c "import json,sys; print({k: v for k, v in json.load(open(sys.argv[1]))['drops'].items() if v})" "$WORK/stats.json"
drops_ok=0
$SLUICE_PY "$CASES" drops "$WORK/stats.json" || drops_ok=1
kill -TERM $pid
rc=0; wait $pid || rc=$?; pid=
[[ $rc == 0 ]] || { tail -20 "$WORK/sluice.log"; fail "Sluice exited $rc"; }
grep -q "all .* mbufs returned" "$WORK/sluice.log" || fail "mbufs not all returned"
$SLUICE_PY "$CASES" check "$WORK" || fail "output frames differ from the expected ones"
((drops_ok == 0)) || fail "/stats drops differ from the reasons the cases declare"
echo PASS
