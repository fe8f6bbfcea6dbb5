#!/bin/bash
# Live capture from a running Sluice with DPDK's dpdk-dumpcap (a secondary process that
# attaches through the EAL file prefix and asks Sluice's pdump to copy a port's
# packets): 10 pings west -> east through a cross-connect, captured on the west port
# with a BPF filter, read back with scapy: every echo request and reply, whole. Sluice
# keeps forwarding while captured and stops cleanly afterwards (every mbuf returned:
# the copies are dumpcap's own).
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init cap 9246
require_cmd ping dpdk-dumpcap
[[ -x $SLUICE_PY ]] && "$SLUICE_PY" -c 'import scapy' 2>/dev/null || fail "scapy for $SLUICE_PY is missing (package python3-scapy)"
# A secondary process maps the primary's hugepages: without them there is nothing to attach to.
[[ -z ${SLUICE_EAL_HUGE:-} ]] || fail "dpdk-dumpcap needs hugepages (Sluice runs with $SLUICE_EAL_HUGE here)"

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json
write_xconnect_config "$cfg" af_packet
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up
wait_ping 10.99.0.2
grep -q "pdump: ready: dpdk-dumpcap --file-prefix $IT_FP" "$SLUICE_LOG" ||
  fail "the log does not say pdump is ready: $(grep pdump "$SLUICE_LOG" || echo 'no pdump line')"

s=$(stats_get)
west=$(jget "$s" '.ports[] | select(.name == "west") | .port_id')
east=$(jget "$s" '.ports[] | select(.name == "east") | .port_id')
pcap=$IT_TMP/capture.pcapng
# West's 10 echo requests (received) and 10 replies (sent): 20 packets. (dpdk-dumpcap
# 22.11 captures one port per run: with two -i it takes the last.)
# Line-buffered: it says "Capturing on" only once its output is flushed.
timeout 60 stdbuf -oL -eL dpdk-dumpcap --file-prefix "$IT_FP" -i "$west" -f icmp -c 20 -w "$pcap" \
  >"$IT_TMP/dumpcap.log" 2>&1 &
dumpcap_pid=$!
it_on_exit "kill $dumpcap_pid 2>/dev/null || true"
deadline=$((SECONDS + 20))
until grep -q "Capturing on" "$IT_TMP/dumpcap.log"; do
  kill -0 "$dumpcap_pid" 2>/dev/null || fail "dpdk-dumpcap exited before capturing: $(cat "$IT_TMP/dumpcap.log")"
  ((SECONDS < deadline)) || fail "dpdk-dumpcap did not start capturing in 20 s: $(cat "$IT_TMP/dumpcap.log")"
  sleep 0.2
done
sleep 0.5
ping_ok 10.99.0.2 -c 10 -i 0.1
rc=0
timeout 20 tail --pid="$dumpcap_pid" -f /dev/null || fail "dpdk-dumpcap did not end after 20 packets: $(cat "$IT_TMP/dumpcap.log")"
wait "$dumpcap_pid" || rc=$?
((rc == 0)) || fail "dpdk-dumpcap exited with $rc: $(cat "$IT_TMP/dumpcap.log")"
it_log "dumpcap: $(tr '\n' ' ' <"$IT_TMP/dumpcap.log")"

summary=$("$SLUICE_PY" - "$pcap" <<'PY'
import sys
from scapy.all import rdpcap, ICMP, IP
from scapy.utils import PcapNgReader
counts = {}
with PcapNgReader(sys.argv[1]) as r:
    for p in r:
        if IP not in p or ICMP not in p:
            continue
        kind = {8: "request", 0: "reply"}.get(p[ICMP].type, str(p[ICMP].type))
        key = f"{p[IP].src}>{p[IP].dst}:{kind}:{len(p)}"
        counts[key] = counts.get(key, 0) + 1
print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
PY
) || fail "scapy could not read $pcap"
it_log "capture: $summary"
# ping's 64-byte payload: 98-byte frames.
assert_eq "$summary" "10.99.0.1>10.99.0.2:request:98=10 10.99.0.2>10.99.0.1:reply:98=10" \
  "captured echo requests and replies (src>dst:kind:frame length=count)"

# sluicectl capture: the port by name, the prefix from /config, dpdk-dumpcap run for it.
[[ -x $SLUICECTL_BIN ]] || fail "no sluicectl at $SLUICECTL_BIN"
( sleep 2; nsw ping -q -c 10 -i 0.1 10.99.0.2 >/dev/null 2>&1 ) &
pinger=$!
rc=0
timeout 60 "$SLUICECTL_BIN" --address "$IT_HTTP" capture --port east -w "$IT_TMP/east.pcapng" --duration 5 \
  >"$IT_TMP/ctl-capture.log" 2>&1 </dev/null || rc=$?
wait "$pinger" || true
((rc == 0)) || fail "sluicectl capture exited with $rc: $(cat "$IT_TMP/ctl-capture.log")"
east_echo=$("$SLUICE_PY" - "$IT_TMP/east.pcapng" <<'PY'
import sys
from scapy.all import rdpcap, ICMP
print(sum(1 for p in rdpcap(sys.argv[1]) if ICMP in p and p[ICMP].type in (0, 8)))
PY
) || fail "scapy could not read $IT_TMP/east.pcapng"
assert_eq "$east_echo" 20 "echo requests and replies sluicectl capture caught on east in 5 s"

# Still forwarding after the capture ended, and nothing lost to it.
ping_ok 10.99.0.2 -c 5 -i 0.1
assert_conservation
stop_sluice TERM
