#!/bin/bash
# net_af_xdp on veths (DPDK 22.11's PMD; the XDP program native on veth, its sockets in
# copy mode, as Sluice logs them). (a) The shipped conf/xconnect-af_xdp.json, on this
# test's veths, started and stopped by SIGTERM a few seconds later without traffic:
# exit 0, every mbuf returned but the 2048 a port the PMD's fill ring keeps (counted
# exactly, drivers-config/net_af_xdp.md). (b) Again after traffic both ways (ICMP v4/v6,
# exact ping and UDP counts, iperf3, conservation), so TX completions are in flight at
# the stop. (c) An MTU beyond the PMD's frame is refused with its range.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/stats_lib.sh"

it_init xad 9250
require_cmd ping iperf3

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json

# ---- (a) the shipped example, idle
jq --arg w "$(af_xdp_devargs "${IT_NS}w1")" --arg e "$(af_xdp_devargs "${IT_NS}e1")" --arg fp "$IT_FP" \
  --argjson port "$IT_PORT" '.ports[0].devargs = $w | .ports[1].devargs = $e | .eal.file_prefix = $fp |
  .control.http.port = $port' "$SLUICE_ROOT/conf/xconnect-af_xdp.json" >"$cfg"
start_sluice "$cfg" "$IT_TMP/sluice-idle.log"
wait_links_up
af_xdp_modes "$SLUICE_LOG"
# While it runs, the fill rings' mbufs are in use: 2048 a port, and nothing else idle.
s=$(stats_get)
assert_ge "$(jget "$s" '.mempools[0].in_use')" 4096 "mbufs in use while idle (2 fill rings x 2048)"
sleep 3
stop_sluice TERM
assert_af_xdp_accounted "$IT_TMP/sluice-idle.log" west east

# ---- (b) after traffic
write_xconnect_config "$cfg" af_xdp
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up
wait_ping 10.99.0.2
ping_exact_ok 10.99.0.2 1000 -i 0.002
ping4_sent=$PING_SENT
udp_exact_ok 1000 200
ping_ok fd00:99::2 -6 -c 20 -i 0.05
iperf_tcp_ok 3
it_log "iperf3 TCP through net_af_xdp: $((IPERF_BPS / 1000000)) Mbit/s"
udp_exchange_ok 500
assert_conservation
s=$(stats_get)
assert_ge "$(jget "$s" '.ports[] | select(.name == "west") | .rx_packets')" "$((ping4_sent + 20))" "west rx_packets"
assert_eq "$(stage_counter "$s" west parse udp)" 1500 "west parse udp counter"
assert_eq "$(stage_counter "$s" east parse udp)" 500 "east parse udp counter"
assert_eq "$(jget "$s" '[.ports[].rx_nombuf] | add')" 0 "rx_nombuf"
# The last bursts end the traffic: their mbufs wait in the completion rings until the stop reaps them.
ping_ok 10.99.0.2 -c 5 -i 0.05
stop_sluice TERM
assert_af_xdp_accounted "$IT_TMP/sluice.log" west east

# ---- (c) MTU: the PMD's frame (a 4 KiB page less headroom) bounds it
write_xconnect_config "$cfg" af_xdp '.ports[0].mtu = 9000 | .mempool.data_room = 9216'
rc=0
timeout 60 "$SLUICE_BIN" --config "$cfg" ${SLUICE_EAL_HUGE:+-- $SLUICE_EAL_HUGE} >"$IT_TMP/sluice-mtu.log" 2>&1 || rc=$?
assert_eq "$rc" 1 "start with mtu 9000 on net_af_xdp: exit status"
line=$(grep -Eo "ports\[0\]\.mtu: device net_af_xdp0 supports 68\.\.[0-9]+, got 9000" "$IT_TMP/sluice-mtu.log") ||
  fail "no 'ports[0].mtu: device net_af_xdp0 supports 68..N, got 9000' in the log: $(tail -5 "$IT_TMP/sluice-mtu.log")"
it_log "ok: $line"
echo "test_xconnect_af_xdp: all checks passed"
