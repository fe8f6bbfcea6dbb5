#!/bin/bash
# Two namespaces joined only through Sluice (net_af_packet on the root-side veth ends,
# pipeline [parse, xconnect]): ICMP v4/v6, TCP (iperf3) and UDP cross it without loss;
# counted exactly (1000 pings, 1000 UDP datagrams: parse counters and port deltas);
# then the control plane: /stats conservation, /metrics == /stats, promtool lint,
# /config == --check-config, DPDK telemetry, 404/405, clean shutdown.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/stats_lib.sh"

it_init itxa 9190
require_cmd ping iperf3 promtool

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json
write_xconnect_config "$cfg" af_packet
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up

wait_ping 10.99.0.2
ping_exact_ok 10.99.0.2 1000 -i 0.002
ping4_sent=$PING_SENT
udp_exact_ok 1000 200
ping_ok fd00:99::2 -6 -c 20 -i 0.05
iperf_tcp_ok 3
udp_exchange_ok 500

# ---- /stats after the traffic
assert_conservation
s=$(stats_get)
assert_ge "$(jget "$s" '.ports[] | select(.name == "west") | .rx_packets')" "$((ping4_sent + 20))" "west rx_packets"
assert_ge "$(jget "$s" '.ports[] | select(.name == "east") | .rx_packets')" "$((ping4_sent + 20))" "east rx_packets"
assert_ge "$(jget "$s" '.stages[] | select(.port == "west" and .stage == "parse") | .counters.icmp')" "$ping4_sent" \
  "west parse icmp counter"
assert_ge "$(jget "$s" '.stages[] | select(.port == "west" and .stage == "parse") | .counters.icmpv6')" 20 \
  "west parse icmpv6 counter"
assert_gt "$(jget "$s" '.stages[] | select(.port == "west" and .stage == "parse") | .counters.tcp')" 0 "west parse tcp counter"
# UDP is only what the test sent: 1000 + 500 datagrams west -> east, 500 answers back.
assert_eq "$(stage_counter "$s" west parse udp)" 1500 "west parse udp counter"
assert_eq "$(stage_counter "$s" east parse udp)" 500 "east parse udp counter"
assert_eq "$(jget "$s" '.drops | length')" "$(jget "$s" '.drops | keys | length')" "drop reasons listed"
assert_eq "$(jget "$s" '[.mempools[] | .size == .in_use + .free] | all')" true "mempool size == in_use + free"
assert_eq "$(jget "$s" '[.lcores[].lcore] | join(",")')" 1 "worker lcores"

# ---- /metrics carries the same numbers as /stats
assert_metrics_match_stats
m=$METRICS_TEXT
for name in sluice_uptime_seconds sluice_port_link_up sluice_lcore_polls_total sluice_stage_packets_in_total \
  sluice_stage_events_total sluice_mempool_size sluice_port_link_speed_mbps; do
  printf '%s\n' "$m" | grep -q "^$name" || fail "/metrics has no $name"
done
printf '%s\n' "$m" >"$IT_TMP/metrics.txt"
promtool check metrics <"$IT_TMP/metrics.txt" >"$IT_TMP/promtool.out" 2>&1 ||
  fail "promtool check metrics: $(cat "$IT_TMP/promtool.out")"
it_log "ok: promtool check metrics passes"
ctype=$(curl -sS -m 5 -o /dev/null -w '%{content_type}' "http://$IT_HTTP/metrics")
assert_contains "$ctype" "text/plain; version=0.0.4" "/metrics content type"

# ---- /config is what --check-config prints
assert_exit 0 "--check-config" -- "$SLUICE_BIN" --config "$cfg" --check-config
cp "$IT_TMP/out" "$IT_TMP/check-config.json"
assert_eq "$(stats_get /config | jq -S -c .)" "$(jq -S -c . "$IT_TMP/check-config.json")" "/config vs --check-config"

# ---- /health, errors
h=$(stats_get /health)
assert_eq "$(jget "$h" .status)" ok "/health status"
assert_eq "$(http_status GET /nope)" 404 "GET /nope"
assert_eq "$(http_status POST /stats -d x=1)" 405 "POST /stats"
assert_eq "$(http_status DELETE /config)" 405 "DELETE /config"
assert_eq "$(http_status GET /stats)" 200 "GET /stats"
assert_contains "$(curl -sS -m 5 -D - -o /dev/null -X POST "http://$IT_HTTP/stats")" "Allow: GET, HEAD" "405 Allow header"

# ---- DPDK telemetry
[[ -S /var/run/dpdk/$IT_FP/dpdk_telemetry.v2 ]] || fail "no telemetry socket /var/run/dpdk/$IT_FP/dpdk_telemetry.v2"
telemetry_ok "$IT_FP" /sluice/stats /sluice/ports /sluice/lcores /sluice/ports,west /sluice/lcores,1
tel_stats=${TELEMETRY_REPLIES[0]}
assert_ge "$(jget "$tel_stats" '."/sluice/stats".rx_packets')" "$((2 * ping4_sent))" "telemetry rx_packets"
jget "$tel_stats" '."/sluice/stats" | has("drop_bad_udp_length")' | grep -q true || fail "telemetry stats lack drop_* keys"
tel_ports=${TELEMETRY_REPLIES[1]}
assert_eq "$(jget "$tel_ports" '."/sluice/ports" | keys | sort | join(",")')" east,west "telemetry ports"
tel_lcores=${TELEMETRY_REPLIES[2]}
assert_eq "$(jget "$tel_lcores" '."/sluice/lcores" | keys | join(",")')" lcore_1 "telemetry lcores"
assert_eq "$(jget "${TELEMETRY_REPLIES[3]}" '."/sluice/ports".name')" west "telemetry /sluice/ports,west name"
assert_eq "$(jget "${TELEMETRY_REPLIES[4]}" '."/sluice/lcores".lcore')" 1 "telemetry /sluice/lcores,1 lcore"

# ---- still forwarding after all of that, then a clean stop
ping_ok 10.99.0.2 -c 5 -i 0.05
stop_sluice TERM
echo "test_xconnect_af_packet: all checks passed"
