#!/bin/bash
# NAT under software steering: two worker lcores (1 and 2, both on CPU 1 of this 2-CPU
# machine) behind net_af_packet ports with qpairs=2 / rx_queues 2, so the kernel's
# fanout spreads frames over both queues without regard to direction, and a translated
# flow's replies (another tuple) must be handed to the worker that holds it. The
# firewall topology (firewall_lib.sh) with [parse, conntrack, nat, route] on both
# ports: masquerade out of east, TCP and UDP port forwards on east's address to the
# inside host. Parallel TCP connections (16 curls), UDP flows and pings through SNAT and
# through the forwards must all work, the server seeing only 10.2.0.1; /stats must show
# handoffs both ways; /nat mappings on both workers; each worker w must hold only
# outside ports p with p % 2 == w (every translated flow's reply.dst_port against its
# lcore); no unexpected drop; SIGTERM must return every mbuf.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nat_lib.sh"

it_init nts 9213
fw_init af_packet
require_cmd tcpdump
nat_write_helpers

cfg=$IT_TMP/sluice.json
step "start Sluice: eal.lcores 0-2, -- --lcores=0@0,1@1,2@1, qpairs=2 and rx_queues 2, NAT: masquerade out of east, forwards tcp/udp 10.2.0.1 -> 10.1.0.2"
fw_write_config "$cfg" '.eal.lcores = "0-2"' '.ports[].devargs += ",qpairs=2"' '.ports[].rx_queues = 2' \
  '.ports[].pipeline = ["parse", "conntrack", "nat", "route"]' '.conntrack.timeouts = {udp: 120}' \
  '.firewall.rules += [{name: "udp-fwd-in", from: "outside", to: "inside", protocol: "udp", dst_ports: 5300, action: "accept"}]' \
  '.nat = {capacity: 16384,
     snat: [{name: "masq", from: ["inside"], out_port: ["east"], masquerade: true}],
     dnat: [{name: "web", dst: "10.2.0.1", protocol: "tcp", port: 8080, to_address: "10.1.0.2"},
            {name: "udp", dst: "10.2.0.1", protocol: "udp", port: 5300, to_address: "10.1.0.2"}]}'
fw_start "$cfg" "$IT_TMP/sluice.log" --lcores=0@0,1@1,2@1
grep -q "conntrack: steering software across 2 workers" "$SLUICE_LOG" ||
  fail "the log does not say 'conntrack: steering software across 2 workers': $(grep -i steering "$SLUICE_LOG")"
s=$(fw_stats)
expect_jq "$s" '[.lcores[].lcore] == [1, 2]' "worker lcores 1 and 2 (worker w = lcore - 1)"
expect_jq "$s" '.flows.steering == "software"' "/stats flows.steering"
expect_jq "$s" '[.stages[] | select(.stage == "steer") | .port] | sort == ["east", "west"]' "a steer stage on both ports"
expect_jq "$s" '[.stages[] | select(.stage == "nat_src") | .port] | sort == ["east", "west"]' "a nat_src stage on both ports"
expect_jq "$(nat_get)" '[.lcores[].lcore] == [1, 2] and ([.rules[].name] == ["masq", "web", "udp"])' "/nat: both workers, the three rules"

step "traffic: pings through SNAT; 8 curls out (SNAT) and 8 in (port forward, TCP 8080, 1 MB over 2 s each); 32 UDP flows each way"
before=$(fw_stats)
nat_capture_start e "${IT_NS}e0" e-snat 'ip and src net 10.1.0.0/16'
capture_inside=$NAT_CAPTURE_PID
nat_capture_start e "${IT_NS}e0" e-syn 'tcp dst port 8000 and tcp[tcpflags] & tcp-syn != 0'
capture_syn=$NAT_CAPTURE_PID
fw_ping w 10.2.0.2 -c 100 -i 0.01
fw_trickle_server e 10.2.0.2 8000 2
fw_trickle_server w 10.1.0.2 8080 2
nat_udp_server e 10.2.0.2 5300 e-5300
nat_udp_server w 10.1.0.2 5300 w-5300
pids=()
for i in 0 1 2 3 4 5 6 7; do
  nsw curl -sS -m 60 --local-port $((41000 + i)) -o "$IT_TMP/got-out-$i" http://10.2.0.2:8000/blob &
  pids+=($!)
  nse curl -sS -m 60 --local-port $((42000 + i)) -o "$IT_TMP/got-in-$i" http://10.2.0.1:8080/blob &
  pids+=($!)
done
out_udp=$(nat_udp w flows 10.2.0.2 5300 32 5)
in_udp=$(nat_udp e flows 10.2.0.1 5300 32 5)
for pid in "${pids[@]}"; do wait "$pid" || fail "one of the 16 parallel curls failed"; done
for i in 0 1 2 3 4 5 6 7; do
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-out-$i" || fail "curl out #$i (SNAT): the 1 MB file came back different"
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-in-$i" || fail "curl in #$i (port forward): the 1 MB file came back different"
done
expect_jq "$out_udp" '.answered == 32' "UDP w -> 10.2.0.2:5300 through SNAT: 32 flows answered ($out_udp)"
expect_jq "$in_udp" '.answered == 32' "UDP e -> 10.2.0.1:5300 through the port forward: 32 flows answered ($in_udp)"
nat_capture_stop "$capture_inside"
nat_capture_stop "$capture_syn"
expect_eq "$(pcap_count e-snat 'ip')" 0 "packets on e with an inside source address"
out=$(tcpdump -r "$IT_TMP/e-syn.pcap" -n 2>/dev/null | awk '{print $3}' | sort -u | sed 's/\.[0-9]*$//' | uniq -c | awk '{print $2 "=" $1}')
expect_eq "$out" "10.2.0.1=8" "connections to e's server on port 8000 (SYNs' distinct source address and port), by source address"
out=$(grep -v ready "$IT_TMP/udp-e-5300.log" | awk '{print $1}' | sort | uniq -c | awk '{print $2 "=" $1}')
expect_eq "$out" "10.2.0.1=32" "UDP datagrams at e's server, by source address"
out=$(grep -v ready "$IT_TMP/udp-w-5300.log" | awk '{print $1}' | sort | uniq -c | awk '{print $2 "=" $1}')
expect_eq "$out" "10.2.0.2=32" "UDP datagrams at w's forwarded server, by source address (the client as itself)"

step "/stats: handoffs both ways, both queues used; no unexpected drop"
s=$(fw_stats)
expect_jq "$s" '[.ports[] | .xstats.rx_q0_packets > 0 and .xstats.rx_q1_packets > 0] | all' \
  "the kernel spread frames over both queues of both ports (xstats rx_q0/rx_q1_packets)"
expect_jq "$s" '[.flows.handoffs[] | select(.from == 1 and .to == 2 and .packets > 0)] | length == 1' "handoffs lcore 1 -> 2"
expect_jq "$s" '[.flows.handoffs[] | select(.from == 2 and .to == 1 and .packets > 0)] | length == 1' "handoffs lcore 2 -> 1"
expect_jq "$s" '[.lcores[] | .handoff_received > 0] | all' "both lcores received handed-off packets"
expect_jq "$s" '[.stages[] | select(.stage == "steer") | .counters.handed_off > 0 and .counters.kept > 0] | all' \
  "each port's steer stage kept some packets and handed some off"
# As in test_firewall_steering.sh: the hosts' own multicast, router solicitations and
# resolver traffic (not_routable, local_unhandled, no_route); nat_untranslated or
# nat_no_port here would be a reply on the wrong worker or a lost port.
bad=$(printf '%s' "$s" | jq -c --argjson b "$before" '.drops | to_entries
  | map(select(.value > ($b.drops[.key] // 0) and (.key | IN("not_routable", "local_unhandled", "no_route") | not)))
  | map("\(.key) +\(.value - ($b.drops[.key] // 0))")')
expect_eq "$bad" "[]" "drops other than not_routable/local_unhandled/no_route during the traffic"
fw_check_flow_accounting "after the traffic"

step "/nat and /flows: mappings on both workers; worker w holds only outside ports p with p % 2 == w"
n=$(nat_get)
expect_jq "$n" '[.lcores[] | .created > 0 and .active > 0] | all' "/nat: mappings created and active on both lcores"
expect_jq "$n" '.no_port == 0 and .no_room == 0' "/nat: no refused mapping"
expect_jq "$n" '.addresses[] | select(.address == "10.2.0.1") | [.lcores[] | .in_use > 0] | all' \
  "/nat addresses[10.2.0.1]: ports in use on both lcores"
expect_jq "$n" '[.rules[] | select(.name == "masq") | .translated >= 8 + 32 + 1] == [true]' "/nat rules[masq]: 8 curls, 32 UDP flows, pings"
expect_jq "$n" '[.rules[] | select(.name == "web") | .translated >= 8] == [true]' "/nat rules[web]: the 8 forwarded curls"
expect_jq "$n" '[.rules[] | select(.name == "udp") | .translated >= 32] == [true]' "/nat rules[udp]: the 32 forwarded UDP flows"
all=$(flows_get "limit=10000")
snat='[.flows[] | select(.reply.dst == "10.2.0.1")]'
expect_jq "$all" "$snat | length >= 8 + 32 + 1" "/flows: the SNAT flows (8 curls, 32 UDP flows, the ping) with reply.dst 10.2.0.1"
expect_jq "$all" "$snat | [.[].lcore] | unique == [1, 2]" "/flows: SNAT flows on both lcores"
wrong=$(printf '%s' "$all" | jq -c "$snat | map(select(((.reply.dst_port // .reply.icmp_id) % 2) != .lcore - 1))
  | map(\"lcore \(.lcore): \(.protocol) \(.src):\(.src_port // .icmp_id) -> \(.dst) as 10.2.0.1:\(.reply.dst_port // .reply.icmp_id)\")")
expect_eq "$wrong" "[]" "SNAT flows whose outside port is not their worker's (p % 2 != lcore - 1)"
for i in 0 1 2 3 4 5 6 7; do
  expect_jq "$all" "[.flows[] | select(.src_port == $((41000 + i)) and .dst_port == 8000)] | length == 1 and (.[0] | .reply.dst == \"10.2.0.1\" and .state == \"time_wait\" and .assured)" \
    "curl out #$i (10.1.0.2:$((41000 + i)) -> 10.2.0.2:8000): one flow, translated, time_wait"
  expect_jq "$all" "[.flows[] | select(.src_port == $((42000 + i)) and .dst_port == 8080)] | length == 1 and (.[0] | .dst == \"10.2.0.1\" and .reply.src == \"10.1.0.2\" and .reply.src_port == 8080 and .state == \"time_wait\" and (.nat.kind == [\"dnat\"]))" \
    "curl in #$i (10.2.0.2:$((42000 + i)) -> 10.2.0.1:8080 -> 10.1.0.2:8080): one flow, forwarded, time_wait"
done
expect_jq "$all" '[.flows[] | select(.dst == "10.2.0.1" and .dst_port == 5300 and .reply.src == "10.1.0.2")] | length == 32' \
  "/flows: the 32 forwarded UDP flows"
expect_jq "$all" '[.flows[] | select(.nat.kind == ["dnat"]) | .lcore] | unique == [1, 2]' \
  "/flows: forwarded flows on both lcores (each on the owner of its translated key)"
dups=$(flow_keys "$all" | awk '{$1 = ""; print}' | sort | uniq -d)
expect_eq "$dups" "" "connections tracked on more than one lcore"
printf '    SNAT flows by lcore: %s\n' "$(printf '%s' "$all" | jq -c "$snat | group_by(.lcore) | map({lcore: .[0].lcore, flows: length})")"

step "SIGTERM: exit 0, every mbuf returned"
stop_sluice TERM
echo PASS
