#!/bin/bash
# Scale-out: two Sluice boxes with the same ipip service behind a Linux router that
# spreads the VIP over both by an ECMP route hashed on layer 4
# (net.ipv4.fib_multipath_hash_policy=1). 200 long-lived connections from a client
# spread over both boxes; then box A's next hop is removed and box A stopped: the
# connections it carried reach box B mid-stream, B picks them up (tcp_loose) and its
# Maglev table, built from the same configuration, sends each to the backend A chose.
# At least 99% must carry on to the end, every byte counted by the same backend.
#
#   ns c (client 10.5.0.2) -- ns r (router 10.5.0.1; ECMP 10.7.0.100 via 10.6.1.2, 10.6.2.2)
#        r 10.6.1.1 -- Sluice A west 10.6.1.2 (af_packet)   Sluice A east 10.9.0.1 --+
#        r 10.6.2.1 -- Sluice B west 10.6.2.2 (af_packet)   Sluice B east 10.9.0.2 --+-- ns l (bridge)
#        r 10.9.0.254 (the backends' gateway) ---------------------------------------+
#   ns k1..k3: backends 10.9.0.11-13, each with the VIP on lo, the tunnel's end
#   (lb/ipip_decap.py) and a sink on VIP:9000; their answers go to the client through
#   the router (direct server return), never through a Sluice.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init lbx 9223
require_cmd ethtool
P=$IT_NS
VIP=10.7.0.100
N_CONN=200
HOLD_S=9
LB_DIR=$(cd "$(dirname "$0")/lb" && pwd)
B_HTTP=127.0.0.1:9224
B_FP=${IT_FP}b
B_PID=""
NAMESPACES=("${P}c" "${P}r" "${P}l" "${P}k1" "${P}k2" "${P}k3")

scaleout_destroy() {
  local ns pid
  for ns in "${NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null || true
  done
  local dev
  for dev in aw bw ae be; do ip link del "${P}$dev" 2>/dev/null || true; done
}
it_on_exit 'scaleout_destroy'
it_on_exit '[[ -n $B_PID ]] && kill -KILL "$B_PID" 2>/dev/null; rm -rf "/var/run/dpdk/$B_FP" "/dev/hugepages/${B_FP}map_"*; true'

step() { echo "--- [$(printf '%3d' "$SECONDS")s] $*"; }

# A veth pair: END1 in netns NS1 ("" root), END2 in NS2, offloads off (af_packet sees real checksums).
pair() { # ns1 end1 ns2 end2
  ip link add "$2" type veth peer name "$4"
  [[ -n $1 ]] && ip link set "$2" netns "$1"
  [[ -n $3 ]] && ip link set "$4" netns "$3"
  veth_offloads_off "$1" "$2"
  veth_offloads_off "$3" "$4"
  if [[ -n $1 ]]; then ip -n "$1" link set "$2" up; else ip link set "$2" up; fi
  if [[ -n $3 ]]; then ip -n "$3" link set "$4" up; else ip link set "$4" up; fi
}

step "topology: client, ECMP router, two Sluice boxes, three ipip backends"
scaleout_destroy
for ns in "${NAMESPACES[@]}"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
pair "${P}c" "${P}c0" "${P}r" "${P}rc"
pair "${P}r" "${P}ra" "" "${P}aw"
pair "${P}r" "${P}rb" "" "${P}bw"
pair "" "${P}ae" "${P}l" "${P}la"
pair "" "${P}be" "${P}l" "${P}lb"
pair "${P}r" "${P}rl" "${P}l" "${P}lr"
for dev in aw bw ae be; do sysctl -qw "net.ipv6.conf.${P}$dev.disable_ipv6=1" 2>/dev/null || true; done
ip -n "${P}l" link add "${P}br" type bridge
ip -n "${P}l" link set "${P}br" up
for dev in la lb lr; do ip -n "${P}l" link set "${P}$dev" master "${P}br"; done
ip -n "${P}c" addr add 10.5.0.2/24 dev "${P}c0"
ip -n "${P}c" route add default via 10.5.0.1
ip -n "${P}r" addr add 10.5.0.1/24 dev "${P}rc"
ip -n "${P}r" addr add 10.6.1.1/24 dev "${P}ra"
ip -n "${P}r" addr add 10.6.2.1/24 dev "${P}rb"
ip -n "${P}r" addr add 10.9.0.254/24 dev "${P}rl"
ip netns exec "${P}r" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
  net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
for dev in rc ra rb rl; do ip netns exec "${P}r" sysctl -qw "net.ipv4.conf.${P}$dev.rp_filter=0"; done
ip -n "${P}r" route add "$VIP/32" nexthop via 10.6.1.2 dev "${P}ra" nexthop via 10.6.2.2 dev "${P}rb"
for k in 1 2 3; do
  ns=${P}k$k
  pair "$ns" "${P}k${k}0" "${P}l" "${P}lk$k"
  ip -n "${P}l" link set "${P}lk$k" master "${P}br"
  ip -n "$ns" addr add "10.9.0.1$k/24" dev "${P}k${k}0"
  ip -n "$ns" route add default via 10.9.0.254
  ip -n "$ns" addr add "$VIP/32" dev lo
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  ip netns exec "$ns" "$SLUICE_PY" "$LB_DIR/ipip_decap.py" "${P}t$k" "$IT_TMP/decap$k.stats" >"$IT_TMP/decap$k.log" 2>&1 &
  wait_ready "$IT_TMP/decap$k.log" "k$k's tunnel end"
  ip -n "$ns" link set "${P}t$k" up
  ip netns exec "$ns" sysctl -qw "net.ipv4.conf.${P}t$k.rp_filter=0"
  ip netns exec "$ns" "$SLUICE_PY" "$LB_DIR/backend.py" "k$k" "$VIP" >"$IT_TMP/k$k.log" 2>&1 &
done
for k in 1 2 3; do
  deadline=$((SECONDS + 10))
  until ip netns exec "${P}k$k" ss -Hltn "src $VIP:9000" | grep -q .; do
    ((SECONDS < deadline)) || fail "backend k$k does not listen on $VIP:9000 ($(cat "$IT_TMP/k$k.log"))"
    sleep 0.1
  done
done

# One config for both boxes but their own addresses, ports, HTTP port and file prefix:
# the services (and so the Maglev table) are the same.
write_box() { # file letter west-address east-address http-port file-prefix
  jq -n --arg w "iface=${P}${2}w" --arg e "iface=${P}${2}e" --arg wa "$3" --arg ea "$4" --argjson port "$5" \
    --arg fp "$6" --arg vip "$VIP" '{
    eal: {lcores: "0-1", memory_mb: 256, file_prefix: $fp},
    ports: [
      {name: "front", device: "net_af_packet0", devargs: $w, ipv4: [$wa], pipeline: ["parse", "conntrack", "lb", "nat", "route"]},
      {name: "back", device: "net_af_packet1", devargs: $e, ipv4: [$ea], pipeline: ["parse", "conntrack", "lb", "nat", "route"]}
    ],
    routes: [{prefix: "10.5.0.0/24", via: "10.6.\($wa | split(".")[2]).1"}],
    conntrack: {capacity: 8192, capacity_ipv6: 1024, tcp_loose: true},
    services: [
      {name: "sink", vip: $vip, protocol: "tcp", port: 9000, mode: "ipip",
       backends: [{name: "k1", address: "10.9.0.11"}, {name: "k2", address: "10.9.0.12"}, {name: "k3", address: "10.9.0.13"}]}
    ],
    workers: "auto",
    polling: {idle: "sleep"},
    control: {http: {address: "127.0.0.1", port: $port}},
    logging: {level: "info"}
  }' >"$1" || fail "cannot write $1"
  "$SLUICE_BIN" --config "$1" --check-config >/dev/null 2>"$IT_TMP/check-$2.err" ||
    fail "$1 does not pass --check-config: $(cat "$IT_TMP/check-$2.err")"
}

step "start box A and box B (same services, idle polling: two boxes on two cores)"
write_box "$IT_TMP/a.json" a 10.6.1.2/24 10.9.0.1/24 9223 "$IT_FP"
write_box "$IT_TMP/b.json" b 10.6.2.2/24 10.9.0.2/24 9224 "$B_FP"
start_sluice "$IT_TMP/a.json" "$IT_TMP/a.log"
A_PID=$SLUICE_PID
b_eal=()
[[ -n ${SLUICE_EAL_HUGE:-} ]] && b_eal=(-- "$SLUICE_EAL_HUGE")
"$SLUICE_BIN" --config "$IT_TMP/b.json" "${b_eal[@]}" >"$IT_TMP/b.log" 2>&1 &
B_PID=$!
wait_for_http "$B_HTTP" "$B_PID" 40 || fail "box B did not start: $(tail -20 "$IT_TMP/b.log")"
it_log "box A pid $A_PID http $IT_HTTP, box B pid $B_PID http $B_HTTP"

b_stat() { curl -fsS -m 5 "http://$B_HTTP/$1"; }
a_stat() { curl -fsS -m 5 "http://$IT_HTTP/$1"; }
service_of() { jq -c '.services[] | select(.name == "sink") | {connections, picked_up, backends: [.backends[] | {(.id): .connections}] | add}'; }

step "$N_CONN long-lived connections through the ECMP route"
ip netns exec "${P}c" "$SLUICE_PY" "$LB_DIR/client.py" hold "$VIP" 9000 "$N_CONN" "$HOLD_S" \
  >"$IT_TMP/hold.json" 2>"$IT_TMP/hold.err" &
client=$!
deadline=$((SECONDS + 60))
until grep -q READY "$IT_TMP/hold.err"; do
  kill -0 "$client" 2>/dev/null || fail "the client failed to open its connections: $(cat "$IT_TMP/hold.err")"
  ((SECONDS < deadline)) || fail "the client did not open $N_CONN connections in 60 s"
  sleep 0.2
done
a_before=$(a_stat services | service_of)
b_before=$(b_stat services | service_of)
echo "    box A: $a_before"
echo "    box B: $b_before"
on_a=$(jq .connections <<<"$a_before")
on_b=$(jq .connections <<<"$b_before")
assert_eq $((on_a + on_b)) "$N_CONN" "every connection went through one box"
assert_ge "$on_a" 40 "box A carries a share of the connections (layer-4 ECMP)"
assert_ge "$on_b" 40 "box B carries a share of the connections (layer-4 ECMP)"
sleep 2

step "remove box A's next hop and stop box A mid-stream"
ip -n "${P}r" route replace "$VIP/32" via 10.6.2.2 dev "${P}rb"
stop_sluice TERM

step "the connections carry on through box B, each to the backend box A chose"
wait "$client" || fail "client failed: $(cat "$IT_TMP/hold.err")"
r=$(cat "$IT_TMP/hold.json")
echo "    client: $r"
b_after=$(b_stat services | service_of)
echo "    box B after: $b_after"
ok=$(jq .ok <<<"$r")
assert_ge "$((ok * 100))" $((N_CONN * 99)) "at least 99% of $N_CONN connections carried on to the same backend ($ok did)"
picked=$(($(jq .picked_up <<<"$b_after") - $(jq .picked_up <<<"$b_before")))
assert_ge "$picked" $((on_a * 99 / 100)) "box B picked up box A's connections mid-stream ($picked of $on_a)"
# Each backend's count on B grew by what A had sent it: B chose as A did.
for k in k1 k2 k3; do
  a_k=$(jq --arg k "$k" '.backends[$k] // 0' <<<"$a_before")
  grow=$(($(jq --arg k "$k" '.backends[$k] // 0' <<<"$b_after") - $(jq --arg k "$k" '.backends[$k] // 0' <<<"$b_before")))
  assert_ge "$grow" $((a_k * 99 / 100)) "box B sent $k the connections box A had sent it ($grow of $a_k)"
done
drops=$(b_stat stats | jq -c '.drops | with_entries(select(.value > 0))')
echo "    box B drops: $drops"

step "stop box B: exit 0, every mbuf returned"
SLUICE_PID=$B_PID SLUICE_LOG=$IT_TMP/b.log
B_PID=""
stop_sluice TERM
echo PASS
