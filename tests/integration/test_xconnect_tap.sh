#!/bin/bash
# The cross-connect over net_tap: Sluice creates the taps ${IT_NS}w0/${IT_NS}e0, which
# topo_tap_attach then moves into the two namespaces. ICMP, TCP and UDP cross without
# loss, 1000 pings and 1000 UDP datagrams are counted exactly, the counters balance,
# /metrics agrees with /stats, and the shutdown returns every mbuf.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/stats_lib.sh"

it_init ittp 9191
require_cmd ping iperf3
[[ -c /dev/net/tun ]] || fail "/dev/net/tun is missing: net_tap cannot work here"

cfg=$IT_TMP/sluice.json
write_xconnect_config "$cfg" tap
start_sluice "$cfg" "$IT_TMP/sluice.log"
topo_tap_attach "$IT_NS" 20 || fail "topo_tap_attach: the taps did not appear"
it_log "taps attached: $(ip -n "${IT_NS}w" -br link show "${IT_NS}w0") / $(ip -n "${IT_NS}e" -br link show "${IT_NS}e0")"

wait_ping 10.99.0.2 20
ping_exact_ok 10.99.0.2 1000 -i 0.002
ping4_sent=$PING_SENT
udp_exact_ok 1000 200
ping_ok fd00:99::2 -6 -c 10 -i 0.05
iperf_tcp_ok 3
udp_exchange_ok 500

assert_conservation
s=$(stats_get)
assert_eq "$(jget "$s" '[.ports[].device] | join(",")')" net_tap0,net_tap1 "devices"
assert_ge "$(jget "$s" '.ports[] | select(.name == "west") | .rx_packets')" "$ping4_sent" "west rx_packets"
assert_ge "$(jget "$s" '.ports[] | select(.name == "east") | .rx_packets')" "$ping4_sent" "east rx_packets"
# UDP is only what the test sent: 1000 + 500 datagrams west -> east, 500 answers back.
assert_eq "$(stage_counter "$s" west parse udp)" 1500 "west parse udp counter"
assert_eq "$(stage_counter "$s" east parse udp)" 500 "east parse udp counter"
assert_metrics_match_stats

ping_ok 10.99.0.2 -c 5 -i 0.05
stop_sluice TERM
echo "test_xconnect_tap: all checks passed"
