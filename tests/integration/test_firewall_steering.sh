#!/bin/bash
# Software steering: two worker lcores (1 and 2, both on CPU 1 of this 2-CPU machine)
# behind net_af_packet ports with qpairs=2 / rx_queues 2, so the kernel's fanout spreads
# frames over both queues without regard to direction and Sluice must hand each packet
# to the worker that owns its flow. TCP (8 parallel curls each way, iperf3 -P 4), UDP
# and ping must all work through the firewall; /stats must show handoffs both ways,
# flows on both lcores, each connection tracked once, no drop but the expected ones;
# /flows paging must walk both workers; SIGTERM must return every mbuf.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/firewall_lib.sh"

it_init fws 9202
fw_init af_packet

cfg=$IT_TMP/sluice.json
step "start Sluice: eal.lcores 0-2, -- --lcores=0@0,1@1,2@1, qpairs=2 and rx_queues 2 on both ports"
fw_write_config "$cfg" '.eal.lcores = "0-2"' '.ports[].devargs += ",qpairs=2"' '.ports[].rx_queues = 2'
fw_start "$cfg" "$IT_TMP/sluice.log" --lcores=0@0,1@1,2@1
grep -q "conntrack: steering software across 2 workers" "$SLUICE_LOG" ||
  fail "the log does not say 'conntrack: steering software across 2 workers': $(grep -i steering "$SLUICE_LOG")"
s=$(fw_stats)
expect_jq "$s" '[.lcores[].lcore] == [1, 2]' "worker lcores 1 and 2"
expect_jq "$s" '.flows.steering == "software"' "/stats flows.steering"
expect_jq "$s" '[.stages[] | select(.stage == "steer") | .port] | sort == ["east", "west"]' "a steer stage on both ports"
expect_jq "$s" '[.flows.lcores[].lcore] == [1, 2]' "a flow table per worker"

# A modest load (the two workers share one CPU with whatever else runs here): every
# drop must then be a bug, not overload.
step "traffic: ping, 8 curls out and 8 in (TCP 8080, 1 MB over 2 s each), iperf3 -P 4 -b 20M, UDP request/answer, related ICMP"
before=$(fw_stats)
fw_ping w 10.2.0.2 -c 200 -i 0.01
fw_ping e 10.1.0.2 -c 100 -i 0.01
fw_ping w fd00:2::2 -6 -c 100 -i 0.01
fw_trickle_server e 10.2.0.2 8000 2
fw_trickle_server w 10.1.0.2 8080 2
pids=()
for i in 0 1 2 3 4 5 6 7; do
  nsw curl -sS -m 60 --local-port $((41000 + i)) -o "$IT_TMP/got-out-$i" http://10.2.0.2:8000/blob &
  pids+=($!)
  nse curl -sS -m 60 --local-port $((42000 + i)) -o "$IT_TMP/got-in-$i" http://10.1.0.2:8080/blob &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || fail "one of the 16 parallel curls failed"; done
for i in 0 1 2 3 4 5 6 7; do
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-out-$i" || fail "curl out #$i: the 1 MB file came back different"
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-in-$i" || fail "curl in #$i: the 1 MB file came back different"
done
fw_iperf_server e 10.2.0.2 5201
out=$(nsw timeout 40 iperf3 -c 10.2.0.2 -p 5201 -P 4 -b 20M -t 3 -J) || fail "iperf3 -P 4 failed: $(printf '%s' "$out" | jq -r .error 2>/dev/null)"
expect_jq "$out" '.end.streams | length == 4' "iperf3 -P 4 ran 4 streams"
# Each stream is paced at 20 Mbit/s: each must deliver at least half of it. A stream
# steered to a lcore that loses or stalls it (a broken handoff) moves a small part or
# nothing, while the sum over four could still look healthy.
expect_jq "$out" '[.end.streams[] | .receiver.bits_per_second >= 10e6] | all' \
  "iperf3 -P 4: every stream received at least 10 Mbit/s of its 20 ($(printf '%s' "$out" | jq -c '[.end.streams[] | .receiver.bits_per_second / 1e6 | floor]') Mbit/s)"
mbit=$(printf '%s' "$out" | jq '.end.sum_received.bits_per_second / 1e6 | floor')
# Now: the streams end with a RST (state close, 10 s) and would soon be gone.
expect_jq "$(flows_get "port=5201")" '[.flows[] | select(.src == "10.1.0.2" and .dst == "10.2.0.2" and .protocol == "tcp")] | length == 5' \
  "iperf3 -P 4: 5 flows (control + 4 streams), each tracked once"
retrans=$(printf '%s' "$out" | jq '.end.sum_sent.retransmits')
nse "$SLUICE_PY" "$IT_TMP/py/udp_echo_server.py" 10.2.0.2 5300 200 >"$IT_TMP/echo.log" 2>&1 &
deadline=$((SECONDS + 10))
until grep -q ready "$IT_TMP/echo.log" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "UDP echo server did not start"
  sleep 0.1
done
for port in 0 1 2 3; do # four UDP flows, so both workers likely own some
  out=$(nsw timeout 30 "$SLUICE_PY" "$IT_TMP/py/udp_echo_client.py" 10.2.0.2 5300 50)
  expect_eq "$out" "answers 50" "UDP flow #$port: answers to 50 datagrams"
done
# ICMP errors go to the worker that owns the flow they quote: 16 closed-port probes
# (16 source ports, so both workers own some) each get the host's port unreachable.
for i in $(seq 1 16); do
  out=$(nsw timeout 10 "$SLUICE_PY" "$IT_TMP/py/udp_reject_probe.py" 10.2.0.2 6999)
  expect_eq "$out" "errno 111 origin 2 type 3 code 3 offender 10.2.0.2" "closed-port probe #$i: the host's port unreachable comes back"
done
expect_jq "$(flows_get "protocol=udp&port=6999&limit=10000")" '.count == 16 and ([.flows[].lcore] | unique == [1, 2])' \
  "the 16 closed-port probe flows, spread over both lcores"
printf '    iperf3 -P 4: %s Mbit/s, %s retransmits\n' "$mbit" "$retrans"

step "/stats: handoffs both ways, both queues used, flows on both lcores, no unexpected drop"
s=$(fw_stats)
expect_jq "$s" '[.ports[] | .xstats.rx_q0_packets > 0 and .xstats.rx_q1_packets > 0] | all' \
  "the kernel spread frames over both queues of both ports (xstats rx_q0/rx_q1_packets)"
expect_jq "$s" '[.flows.handoffs[] | select(.from == 1 and .to == 2 and .packets > 0)] | length == 1' "handoffs lcore 1 -> 2"
expect_jq "$s" '[.flows.handoffs[] | select(.from == 2 and .to == 1 and .packets > 0)] | length == 1' "handoffs lcore 2 -> 1"
expect_jq "$s" '[.lcores[] | .handoff_received > 0] | all' "both lcores received handed-off packets"
expect_jq "$s" '[.flows.lcores[] | .created > 0 and .active > 0] | all' "flows created and active on both lcores"
expect_jq "$s" '[.stages[] | select(.stage == "conntrack" and .port == "east") | .counters.related >= 16] | all' "conntrack on east saw the 16 related ICMP errors"
expect_jq "$s" '[.stages[] | select(.stage == "steer") | .counters.handed_off > 0 and .counters.kept > 0] | all' \
  "each port's steer stage kept some packets and handed some off"
# Drops a routed link legitimately sees: the hosts' own multicast and router
# solicitations (not_routable, local_unhandled) and their resolver's DNS queries to the
# host's nameserver, for which Sluice has no route (no_route); anything else, and
# handoff_ring_full or any tcp_* above all, is a bug.
bad=$(printf '%s' "$s" | jq -c --argjson b "$before" '.drops | to_entries
  | map(select(.value > ($b.drops[.key] // 0) and (.key | IN("not_routable", "local_unhandled", "no_route") | not)))
  | map("\(.key) +\(.value - ($b.drops[.key] // 0))")')
expect_eq "$bad" "[]" "drops other than not_routable/local_unhandled/no_route during the traffic"
fw_check_flow_accounting "after the traffic"

step "/flows: each connection once, on its owner, state time_wait; both lcores; paging across workers"
all=$(flows_get "protocol=tcp&limit=10000")
for i in 0 1 2 3 4 5 6 7; do
  expect_jq "$all" "[.flows[] | select(.src_port == $((41000 + i)))] | length == 1 and (.[0] | .dst_port == 8000 and .src == \"10.1.0.2\" and .state == \"time_wait\" and .assured)" \
    "curl out #$i (10.1.0.2:$((41000 + i)) -> 10.2.0.2:8000): one flow, time_wait, assured"
  expect_jq "$all" "[.flows[] | select(.src_port == $((42000 + i)))] | length == 1 and (.[0] | .dst_port == 8080 and .src == \"10.2.0.2\" and .state == \"time_wait\" and .rule == $FW_RULE_WEB_IN)" \
    "curl in #$i (10.2.0.2:$((42000 + i)) -> 10.1.0.2:8080): one flow, time_wait, rule web-in"
done
expect_jq "$all" '[.flows[].lcore] | unique == [1, 2]' "TCP flows live on both lcores"
dups=$(flow_keys "$all" | awk '{$1 = ""; print}' | sort | uniq -d)
expect_eq "$dups" "" "connections tracked on more than one lcore"
fw_check_paging "paging across two workers"
# At least the flows that cannot have expired yet: 16 curls and the iperf3 control
# connection (time_wait, 120 s) and the 4 UDP echo flows (replied, 120 s).
expect_num "$FW_PAGED" -ge 21 "flows walked with limit=1 across both workers"

step "SIGTERM: exit 0, every mbuf returned"
stop_sluice TERM
echo PASS
