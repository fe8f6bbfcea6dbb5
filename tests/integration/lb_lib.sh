# shellcheck shell=bash
# Shared by test_lb_af_packet.sh and test_lb_tap.sh: the L4 load balancer with real
# clients and servers. Source tools/lib/common.sh, then lib.sh, then this; then
# it_init PREFIX PORT and lb_main DRIVER.
#
#   netns ${p}w (clients): 10.1.0.2/24, gw 10.1.0.1  <->  Sluice west 10.1.0.1 [parse, conntrack, lb, nat, route]
#   netns ${p}e (backends): 10.2.0.2/24 and .11 .12 .13 .14, gw 10.2.0.1  <->  Sluice east 10.2.0.1 (same pipeline)
#
# Backends b1..b4 (10.2.0.11-14) are separate processes (tests/integration/lb/backend.py):
# HTTP on :8000 answering "<name> <client address>", a byte-counting sink on :9000.
# Services (VIPs in the clients' subnet: Sluice answers ARP for them):
#   full   10.1.0.100 tcp 8000 fullnat (local 10.2.0.200) b1 b2 b3, tcp health checks every 300 ms
#   sink   10.1.0.100 tcp 9000 fullnat (local 10.2.0.200) b1 b2 b3, tcp health checks on port 8000
#   dnat   10.1.0.101 tcp 8000 dnat b1 b2 b3 (the backends route back through Sluice)
#   dsink  10.1.0.101 tcp 9000 dnat b1 b2 b3
# conntrack.tcp_loose is on: a connection whose flow is gone is picked up mid-stream.
#   weigh  10.1.0.102 tcp 8000 fullnat b1 (weight 1), b2 (weight 2)
#   rr     10.1.0.103 tcp 8000 dnat round-robin b1 b2 b3, icmp health checks
#   dsr    10.1.0.104 tcp 8000 ipip b1 b2, and dsrsink on 9000: the east host holds the VIP
#          and answers the client directly over a link of its own to the clients' host
#   dsr6   fd00:104::1 tcp 8000 ipip (IPv6-in-IPv6) to fd00:2::11 and ::12 (ICMPv6 echo health
#          checks), and dsrsink6 on 9000: the same with IPv6 (the VIP routed to Sluice by the
#          clients' default route)
# The topology and the reporting helpers are firewall_lib.sh's.

source "$(dirname "${BASH_SOURCE[0]}")/firewall_lib.sh"

LB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/lb" && pwd)
declare -A LB_BACKEND_PID=()
LB_INTERVAL=300
LB_TIMEOUT=250
LB_FALL=3
LB_RISE=2

lb_write_config() { # file [jq-filter...]
  local file=$1 west east
  shift
  case $FW_DRIVER in
    af_packet) west="iface=${IT_NS}w1" east="iface=${IT_NS}e1" ;;
    tap) west="iface=${IT_NS}w0" east="iface=${IT_NS}e0" ;;
    *) fail "lb_write_config: unknown driver '$FW_DRIVER'" ;;
  esac
  jq -n --arg fp "$IT_FP" --argjson port "$IT_PORT" --arg drv "net_$FW_DRIVER" --arg w "$west" --arg e "$east" \
    --argjson interval $LB_INTERVAL --argjson timeout $LB_TIMEOUT --argjson fall $LB_FALL --argjson rise $LB_RISE '
    def b(n): {name: ("b" + (n | tostring)), address: ("10.2.0.1" + (n | tostring))};
    def health(t; p): {type: t, interval_ms: $interval, timeout_ms: $timeout, fall: $fall, rise: $rise}
                      + (if p then {port: p} else {} end);
    {
    eal: {lcores: "0-1", memory_mb: 256, file_prefix: $fp},
    ports: [
      {name: "west", device: ($drv + "0"), devargs: $w, zone: "clients",
       ipv4: ["10.1.0.1/24"], ipv6: ["fd00:1::1/64"], pipeline: ["parse", "conntrack", "lb", "nat", "route"]},
      {name: "east", device: ($drv + "1"), devargs: $e, zone: "backends",
       ipv4: ["10.2.0.1/24"], ipv6: ["fd00:2::1/64"], pipeline: ["parse", "conntrack", "lb", "nat", "route"]}
    ],
    conntrack: {capacity: 65536, capacity_ipv6: 1024, tcp_loose: true},
    nat: {capacity: 65536},
    services: [
      {name: "full", vip: "10.1.0.100", protocol: "tcp", port: 8000, mode: "fullnat",
       local_addresses: ["10.2.0.200/32"], backends: [b(1), b(2), b(3)], health: health("tcp"; null)},
      {name: "sink", vip: "10.1.0.100", protocol: "tcp", port: 9000, mode: "fullnat",
       local_addresses: ["10.2.0.200/32"], backends: [b(1), b(2), b(3)], health: health("tcp"; 8000)},
      {name: "dnat", vip: "10.1.0.101", protocol: "tcp", port: 8000, mode: "dnat", backends: [b(1), b(2), b(3)]},
      {name: "dsink", vip: "10.1.0.101", protocol: "tcp", port: 9000, mode: "dnat", backends: [b(1), b(2), b(3)]},
      {name: "weigh", vip: "10.1.0.102", protocol: "tcp", port: 8000, mode: "fullnat",
       local_addresses: ["10.2.0.200/32"], backends: [b(1) + {weight: 1}, b(2) + {weight: 2}]},
      {name: "rr", vip: "10.1.0.103", protocol: "tcp", port: 8000, mode: "dnat", scheduler: "round-robin",
       backends: [b(1), b(2), b(3)], health: health("icmp"; null)},
      {name: "dsr", vip: "10.1.0.104", protocol: "tcp", port: 8000, mode: "ipip", backends: [b(1), b(2)]},
      {name: "dsrsink", vip: "10.1.0.104", protocol: "tcp", port: 9000, mode: "ipip", backends: [b(1), b(2)]},
      {name: "dsr6", vip: "fd00:104::1", protocol: "tcp", port: 8000, mode: "ipip",
       backends: [{name: "v1", address: "fd00:2::11"}, {name: "v2", address: "fd00:2::12"}], health: health("icmp"; null)},
      {name: "dsrsink6", vip: "fd00:104::1", protocol: "tcp", port: 9000, mode: "ipip",
       backends: [{name: "v1", address: "fd00:2::11"}, {name: "v2", address: "fd00:2::12"}]}
    ],
    workers: "auto",
    control: {http: {address: "127.0.0.1", port: $port}, telemetry: true},
    logging: {level: "info"}
  }' >"$file" || fail "cannot write $file"
  local f
  for f in "$@"; do
    jq "$f" "$file" >"$file.new" && mv "$file.new" "$file" || fail "jq '$f' on $file failed"
  done
  "$SLUICE_BIN" --config "$file" --check-config >/dev/null 2>"$IT_TMP/check-config.err" ||
    fail "the test's own config $file does not pass --check-config: $(cat "$IT_TMP/check-config.err")"
}

# One backend.py server on the east host (HTTP :8000, sink :9000) named NAME on ADDRESS,
# its pid under LB_BACKEND_PID[KEY]; returns once both ports listen.
lb_server_start() { # key name address
  local key=$1 name=$2 addr=$3 at=$3 deadline
  [[ $addr == *:* ]] && at="[$addr]"
  # ip netns exec execs python: $! is the server itself (a shell function would fork).
  ip netns exec "${IT_NS}e" "$SLUICE_PY" "$LB_DIR/backend.py" "$name" "$addr" >"$IT_TMP/$name.log" 2>&1 &
  LB_BACKEND_PID[$key]=$!
  deadline=$((SECONDS + 10))
  until nse ss -Hltn "src $at:8000" | grep -q . && nse ss -Hltn "src $at:9000" | grep -q .; do
    ((SECONDS < deadline)) || fail "server $name does not listen on $at:8000 and :9000 ($(cat "$IT_TMP/$name.log"))"
    sleep 0.1
  done
}

lb_backend_start() { # n
  lb_server_start "$1" "b$1" "10.2.0.1$1"
}

lb_backend_stop() { # n
  local n=$1
  kill "${LB_BACKEND_PID[$n]}" 2>/dev/null || true
  wait "${LB_BACKEND_PID[$n]}" 2>/dev/null || true
  LB_BACKEND_PID[$n]=""
}

lb_services() {
  fw_http GET /services
  [[ $HTTP_CODE == 200 ]] || fail "GET /services: HTTP $HTTP_CODE: $HTTP_BODY"
  printf '%s' "$HTTP_BODY"
}

# One backend's state ("up"/"down") in a service.
lb_state() { # service backend
  lb_services | jq -r --arg s "$1" --arg b "$2" '.services[] | select(.name == $s) | .backends[] | select(.id == $b) | .state'
}

# Waits until backend B of service S is STATE; prints how long it took (ms).
lb_wait_state() { # service backend state timeout_ms
  local start end deadline
  start=$(date +%s%3N)
  deadline=$((start + $4))
  while :; do
    [[ $(lb_state "$1" "$2") == "$3" ]] && break
    end=$(date +%s%3N)
    ((end < deadline)) || fail "service $1 backend $2 not $3 within $4 ms: $(lb_services | jq -c --arg s "$1" '.services[] | select(.name == $s)')"
    sleep 0.05
  done
  end=$(date +%s%3N)
  echo $((end - start))
}

lb_spread() { # vip port n -> JSON
  nsw "$SLUICE_PY" "$LB_DIR/client.py" spread "$1" "$2" "$3"
}

# Asserts each named backend got within +-PCT% of its expected share of N connections.
lb_expect_shares() { # json n pct name=weight...
  local json=$1 n=$2 pct=$3 total=0 pair name w got expect
  shift 3
  for pair in "$@"; do total=$((total + ${pair#*=})); done
  for pair in "$@"; do
    name=${pair%%=*} w=${pair#*=}
    got=$(printf '%s' "$json" | jq -r --arg b "$name" '.backends[$b] // 0')
    expect=$((n * w / total))
    expect_num "$got" -ge $((expect * (100 - pct) / 100)) "connections to $name (expected ~$expect)"
    expect_num "$got" -le $((expect * (100 + pct) / 100)) "connections to $name (expected ~$expect)"
  done
}

lb_start() {
  fw_start "$1" "$2"
}

# ---------------------------------------------------------------- the checks

lb_check_spread() {
  step "(a) 3000 connections to a fullnat VIP over 3 equal backends: each within +-15%, backends see 10.2.0.200"
  local r
  r=$(lb_spread 10.1.0.100 8000 3000)
  expect_jq "$r" '.errors == 0' "every connection answered"
  lb_expect_shares "$r" 3000 15 b1=1 b2=1 b3=1
  expect_jq "$r" '.sources == {"10.2.0.200": 3000}' "backends saw only the local address 10.2.0.200 (fullnat)"
  echo "    spread: $(printf '%s' "$r" | jq -c .backends)"

  step "(b) 1:2 weights: 1500 connections"
  r=$(lb_spread 10.1.0.102 8000 1500)
  expect_jq "$r" '.errors == 0' "every connection answered"
  lb_expect_shares "$r" 1500 15 b1=1 b2=2
  echo "    weights 1:2: $(printf '%s' "$r" | jq -c .backends)"

  step "(d) round-robin with icmp health checks: exact turns"
  r=$(lb_spread 10.1.0.103 8000 300)
  expect_jq "$r" '.errors == 0' "every connection answered"
  # Before (c): a dnat backend still holding TIME_WAIT for a client port (c) used may
  # refuse the SYN (an older timestamp: another VIP, another offset), the client resets
  # and retries, and the retry is a new connection with the next turn. Otherwise a turn
  # is lost only when a connection given one is refused, and counted: say which.
  expect_jq "$r" '.backends == {"b1": 100, "b2": 100, "b3": 100}' \
    "round-robin: 100 each (drops so far: $(fw_stat '.drops | with_entries(select(.value > 0))' | jq -c .))"

  step "(c) dnat: backends see the client's own address"
  r=$(lb_spread 10.1.0.101 8000 300)
  expect_jq "$r" '.errors == 0' "every connection answered"
  expect_jq "$r" '.sources == {"10.1.0.2": 300}' "backends saw the client 10.1.0.2 (dnat)"
  lb_expect_shares "$r" 300 30 b1=1 b2=1 b3=1

  step "(e) /services: connections, shares, probes"
  local s
  s=$(lb_services)
  expect_jq "$s" '.services[] | select(.name == "full") | .connections >= 3000' "service full counted its connections"
  expect_jq "$s" '[.services[] | select(.name == "full") | .backends[] | .maglev_entries] | add == 65537' \
    "the Maglev table's entries add up to its size"
  expect_jq "$s" '[.services[] | select(.name == "full") | .backends[] | .probe.good > 0] | all' "tcp probes answered"
  expect_jq "$s" '[.services[] | select(.name == "rr") | .backends[] | .probe.good > 0] | all' "icmp probes answered"
  expect_jq "$s" '[.services[] | select(.name == "dsr6") | .backends[] | .probe.good > 0] | all' "ICMPv6 echo probes answered"
  expect_jq "$s" '[.services[] | select(.name == "full") | .backends[] | .packets > 0 and .bytes > 0] | all' \
    "backends counted packets and bytes"
}

lb_check_health() {
  step "(f) kill b2's server: down within fall x interval + timeout, new connections avoid it, a long stream to another backend loses nothing"
  local budget=$((LB_FALL * LB_INTERVAL + LB_TIMEOUT + 400)) took r stream
  # A long-lived connection to a backend other than b2, through the VIP, for the whole step.
  nsw "$SLUICE_PY" "$LB_DIR/client.py" stream 10.1.0.100 9000 6 b2 >"$IT_TMP/stream.json" 2>"$IT_TMP/stream.err" &
  stream=$!
  wait_ready "$IT_TMP/stream.err" "the stream client"
  lb_backend_stop 2
  took=$(lb_wait_state full b2 down "$budget")
  echo "    b2 marked down after ${took} ms (budget ${budget} ms = fall x interval + timeout + 400 ms of polling)"
  expect_contains "$(cat "$SLUICE_LOG")" "backend b2 (10.2.0.12) is DOWN" "the transition is logged"
  r=$(lb_spread 10.1.0.100 8000 300)
  expect_jq "$r" '.errors == 0 and (.backends.b2 // 0) == 0' "300 new connections: none to b2, none failed"
  wait "$stream" || fail "stream client failed: $(cat "$IT_TMP/stream.err")"
  r=$(cat "$IT_TMP/stream.json")
  expect_jq "$r" '.ok == true' "the long stream to $(printf '%s' "$r" | jq -r .backend) arrived whole"
  echo "    stream: $(printf '%s' "$r" | jq -c .)"

  step "(g) restart b2's server: it rises within rise x interval"
  lb_backend_start 2
  took=$(lb_wait_state full b2 up $((LB_RISE * LB_INTERVAL + LB_INTERVAL + 400)))
  echo "    b2 up again after ${took} ms"
  expect_contains "$(cat "$SLUICE_LOG")" "backend b2 (10.2.0.12) is UP" "the transition is logged"
  r=$(lb_spread 10.1.0.100 8000 600)
  expect_jq "$r" '.errors == 0 and .backends.b2 > 100' "b2 takes new connections again"
}

lb_check_reload() {
  step "(h) reload adding b4 under a long stream: no established connection lost, b4 takes new ones"
  local cfg=$1 stream r
  nsw "$SLUICE_PY" "$LB_DIR/client.py" stream 10.1.0.100 9000 4 none >"$IT_TMP/stream2.json" 2>"$IT_TMP/stream2.err" &
  stream=$!
  wait_ready "$IT_TMP/stream2.err" "the stream client"
  lb_write_config "$cfg" '(.services[] | select(.name == "full" or .name == "sink") | .backends) += [{name: "b4", address: "10.2.0.14"}]'
  fw_http POST /reload
  [[ $HTTP_CODE == 200 ]] || fail "POST /reload: HTTP $HTTP_CODE: $HTTP_BODY"
  r=$(lb_spread 10.1.0.100 8000 800)
  expect_jq "$r" '.errors == 0 and .backends.b4 > 100' "b4 takes about a quarter of new connections"
  wait "$stream" || fail "stream client failed: $(cat "$IT_TMP/stream2.err")"
  r=$(cat "$IT_TMP/stream2.json")
  expect_jq "$r" '.ok == true' "the long stream across the reload arrived whole"
}

lb_check_pickup() {
  step "(k) tcp_loose: a dnat stream survives a flush of every flow (picked up mid-stream, same backend)"
  local stream r before after
  before=$(lb_services | jq '.services[] | select(.name == "dsink") | .picked_up')
  nsw "$SLUICE_PY" "$LB_DIR/client.py" stream 10.1.0.101 9000 4 none >"$IT_TMP/stream3.json" 2>"$IT_TMP/stream3.err" &
  stream=$!
  wait_ready "$IT_TMP/stream3.err" "the stream client"
  sleep 1
  fw_http POST /flows/flush
  [[ $HTTP_CODE == 200 ]] || fail "POST /flows/flush: HTTP $HTTP_CODE: $HTTP_BODY"
  wait "$stream" || fail "stream client failed: $(cat "$IT_TMP/stream3.err")"
  r=$(cat "$IT_TMP/stream3.json")
  expect_jq "$r" '.ok == true' "the dnat stream across the flush arrived whole"
  after=$(lb_services | jq '.services[] | select(.name == "dsink") | .picked_up')
  expect_num "$after" -gt "$before" "dsink connections picked up mid-stream"
  echo "    stream: $(printf '%s' "$r" | jq -c .), picked up: $((after - before))"
}

# The east host as an ipip backend (as Katran's): the VIP on lo, the tunnel's end (this
# kernel may lack the ipip module: ipip_decap.py reads protocol 4 from a raw socket and
# hands the inner packet to the kernel through a TUN device, as tunl0 would), and its
# answers from the VIP going straight to the clients' host over a link that bypasses
# Sluice (policy routing by the VIP source; the dnat services' answers still go back
# through Sluice).
lb_ipip_backend() {
  local t=${IT_NS}t0
  nse ip addr add 10.1.0.104/32 dev lo
  ip netns exec "${IT_NS}e" "$SLUICE_PY" "$LB_DIR/ipip_decap.py" "$t" "$IT_TMP/decap.stats" >"$IT_TMP/decap.log" 2>&1 &
  LB_BACKEND_PID[decap]=$!
  wait_ready "$IT_TMP/decap.log" "the tunnel end"
  nse ip link set "$t" up
  ip link add "${IT_NS}rd" netns "${IT_NS}e" type veth peer name "${IT_NS}rw" netns "${IT_NS}w" ||
    fail "cannot make the direct return link"
  nse ip addr add 10.9.0.1/30 dev "${IT_NS}rd"
  nse ip link set "${IT_NS}rd" up
  nsw ip addr add 10.9.0.2/30 dev "${IT_NS}rw"
  nsw ip link set "${IT_NS}rw" up
  nse ip rule add from 10.1.0.104 table 104
  nse ip route add 10.1.0.0/24 via 10.9.0.2 table 104
  # The tunnel's packets come from the client by way of the tunnel; the answers reach
  # the client on a link its route to the VIP does not use.
  local k
  for k in all default "$t"; do nse sysctl -qw "net.ipv4.conf.$k.rp_filter=0"; done
  for k in all default "${IT_NS}rw"; do nsw sysctl -qw "net.ipv4.conf.$k.rp_filter=0"; done
  lb_server_start dsr dsr 10.1.0.104
}

lb_check_ipip() {
  step "(l) ipip: the backend takes the client's packets out of the tunnel and answers the client directly"
  lb_ipip_backend
  local r s east_rx_before east_rx_after direct stream
  east_rx_before=$(fw_stat '.ports[] | select(.name == "east") | .rx_packets')
  r=$(lb_spread 10.1.0.104 8000 300)
  expect_jq "$r" '.errors == 0' "every connection answered"
  expect_jq "$r" '.sources == {"10.1.0.2": 300}' "the backend saw the client 10.1.0.2 (ipip delivers the packet as sent)"
  east_rx_after=$(fw_stat '.ports[] | select(.name == "east") | .rx_packets')
  direct=$(nse cat "/sys/class/net/${IT_NS}rd/statistics/tx_packets")
  expect_num "$direct" -ge 900 "the answers (SYN-ACK, data, FIN a connection) left by the direct link"
  expect_num $((east_rx_after - east_rx_before)) -lt 100 "Sluice's east port saw none of them"
  s=$(lb_services)
  expect_jq "$s" '[.services[] | select(.name == "dsr") | .backends[] | .connections] | (add == 300 and all(. > 50))' \
    "both backend addresses took tunnelled connections"
  echo "    connections: $(printf '%s' "$s" | jq -c '[.services[] | select(.name == "dsr") | .backends[] | {(.id): .connections}] | add')," \
    "answers on the direct link: $direct, east rx during the spread: $((east_rx_after - east_rx_before))"
  # Full-size segments are 1520 bytes in the tunnel: Sluice fragments the outer packet,
  # the backend host puts it back together.
  nsw "$SLUICE_PY" "$LB_DIR/client.py" stream 10.1.0.104 9000 3 none >"$IT_TMP/stream4.json" 2>"$IT_TMP/stream4.err" &
  stream=$!
  wait "$stream" || fail "stream client failed: $(cat "$IT_TMP/stream4.err")"
  r=$(cat "$IT_TMP/stream4.json")
  expect_jq "$r" '.ok == true and .sent > 1000000' "a stream through the tunnel, full-size segments fragmented, arrived whole"
  echo "    stream: $(printf '%s' "$r" | jq -c .), tunnel end: $(cat "$IT_TMP/decap.stats") (packets bytes)"
}

# The east host as an IPv6 ipip backend: the VIP fd00:104::1 on lo, IPv6-in-IPv6 taken
# off in user space (ipip_decap.py 6: this kernel has no ip6_tunnel either), its two
# backend addresses fd00:2::11 and ::12 (lb_main adds them), and its answers from the VIP back to the clients
# over the direct link (lb_ipip_backend made it) by a policy route.
lb_ipip6_backend() {
  local t=${IT_NS}t1
  nse ip -6 addr add fd00:104::1/128 dev lo
  ip netns exec "${IT_NS}e" "$SLUICE_PY" "$LB_DIR/ipip_decap.py" "$t" "$IT_TMP/decap6.stats" 6 >"$IT_TMP/decap6.log" 2>&1 &
  LB_BACKEND_PID[decap6]=$!
  wait_ready "$IT_TMP/decap6.log" "the IPv6 tunnel end"
  nse ip link set "$t" up
  nse ip -6 addr add fd00:9::1/64 dev "${IT_NS}rd" nodad
  nsw ip -6 addr add fd00:9::2/64 dev "${IT_NS}rw" nodad
  nse ip -6 rule add from fd00:104::1 table 106
  nse ip -6 route add fd00:1::/64 via fd00:9::2 table 106
  lb_server_start dsr6 dsr6 fd00:104::1
}

lb_check_ipip6() {
  step "(m) ipip with IPv6: IPv6-in-IPv6 to the backend, which answers the client directly; full-size segments get Packet Too Big"
  lb_ipip6_backend
  local n
  for n in 1 2; do lb_wait_state dsr6 "v$n" up 5000 >/dev/null; done
  local r s east_rx_before east_rx_after direct_before direct stream too_big_before too_big
  east_rx_before=$(fw_stat '.ports[] | select(.name == "east") | .rx_packets')
  direct_before=$(nse cat "/sys/class/net/${IT_NS}rd/statistics/tx_packets")
  r=$(lb_spread fd00:104::1 8000 300)
  expect_jq "$r" '.errors == 0' "every connection answered"
  expect_jq "$r" '.sources == {"fd00:1::2": 300}' "the backend saw the client fd00:1::2 (delivered as sent)"
  east_rx_after=$(fw_stat '.ports[] | select(.name == "east") | .rx_packets')
  direct=$(( $(nse cat "/sys/class/net/${IT_NS}rd/statistics/tx_packets") - direct_before ))
  expect_num "$direct" -ge 900 "the answers left by the direct link"
  expect_num $((east_rx_after - east_rx_before)) -lt 100 "Sluice's east port saw none of them"
  s=$(lb_services)
  expect_jq "$s" '[.services[] | select(.name == "dsr6") | .backends[] | .connections] | (add == 300 and all(. > 50))' \
    "both IPv6 backend addresses took tunnelled connections"
  echo "    connections: $(printf '%s' "$s" | jq -c '[.services[] | select(.name == "dsr6") | .backends[] | {(.id): .connections}] | add')," \
    "answers on the direct link: $direct, east rx during the spread: $((east_rx_after - east_rx_before))"
  # 1500-byte segments are 1540 in the tunnel: IPv6 is not fragmented on the way, the
  # client is told (Packet Too Big, MTU 1460) and sends smaller ones.
  too_big_before=$(fw_stat '[.stages[]? | select(.stage == "route") | .counters.icmp_too_big // 0] | add // 0')
  nsw "$SLUICE_PY" "$LB_DIR/client.py" stream fd00:104::1 9000 3 none >"$IT_TMP/stream6.json" 2>"$IT_TMP/stream6.err" &
  stream=$!
  wait "$stream" || fail "stream client failed: $(cat "$IT_TMP/stream6.err")"
  r=$(cat "$IT_TMP/stream6.json")
  expect_jq "$r" '.ok == true and .sent > 1000000' "a stream through the IPv6 tunnel arrived whole"
  too_big=$(fw_stat '[.stages[]? | select(.stage == "route") | .counters.icmp_too_big // 0] | add // 0')
  expect_num $((too_big - too_big_before)) -ge 1 "Sluice told the client its packets were too big for the tunnel"
  nsw ip -6 route get fd00:104::1 >"$IT_TMP/pmtu6" 2>&1 || true
  expect_contains "$(cat "$IT_TMP/pmtu6")" "mtu 1460" "the client's path MTU to the VIP is 1460"
  echo "    stream: $(printf '%s' "$r" | jq -c .), Packet Too Big sent: $((too_big - too_big_before)), tunnel end: $(cat "$IT_TMP/decap6.stats") (packets bytes)"
  # An IPv6 backend whose echo goes unanswered leaves the table, and comes back.
  local budget=$((LB_FALL * LB_INTERVAL + LB_TIMEOUT + 400)) took v2_before v2_after
  nse ip -6 addr del fd00:2::12/64 dev "${IT_NS}e0"
  took=$(lb_wait_state dsr6 v2 down "$budget")
  v2_before=$(lb_services | jq '.services[] | select(.name == "dsr6") | .backends[] | select(.id == "v2") | .connections')
  r=$(lb_spread fd00:104::1 8000 100)
  v2_after=$(lb_services | jq '.services[] | select(.name == "dsr6") | .backends[] | select(.id == "v2") | .connections')
  expect_jq "$r" '.errors == 0' "100 connections answered with v2 down"
  expect_num $((v2_after - v2_before)) -eq 0 "none went to the IPv6 backend marked down (after ${took} ms)"
  nse ip -6 addr add fd00:2::12/64 dev "${IT_NS}e0" nodad
  took=$(lb_wait_state dsr6 v2 up $((LB_RISE * LB_INTERVAL + LB_INTERVAL + 400)))
  echo "    v2 down and back up (up after ${took} ms)"
}

lb_check_drops() {
  step "(i) no unexplained drops"
  local d
  d=$(jq -c --argjson before "$LB_DROPS_BEFORE" \
    'with_entries(.value -= ($before[.key] // 0)) | with_entries(select(.value > 0))' <<<"$(fw_stat '.drops')")
  # not_routable: the hosts' IPv6 multicast (MLD, solicitations); no_route: the hosts' resolver queries
  # (ping's reverse lookups) to an address nothing routes; tx_queue_full, a few at most: the
  # kernel side of a port not drained for a moment while the streams share the 2 CPUs with
  # Sluice's busy worker (counted with its reason; more is a bug); too_big: (m)'s full-size
  # IPv6 segments refused to the client with Packet Too Big, as intended.
  expect_jq "$d" 'del(.not_routable, .no_route, .tx_queue_full, .too_big) == {} and (.tx_queue_full // 0) <= 10' \
    "only drops a killed backend explains: $d"
}

lb_main() { # driver
  fw_init "$1"
  require_cmd ss
  local cfg=$IT_TMP/sluice.json n
  # Four backend addresses on the east host; each backend is its own process. Two IPv6
  # ones for dsr6 (ICMPv6 echo health checks from the start).
  lb_backend_addresses() {
    for n in 1 2 3 4; do ip -n "${IT_NS}e" addr add "10.2.0.1$n/24" dev "${IT_NS}e0" 2>/dev/null || true; done
    for n in 1 2; do ip -n "${IT_NS}e" -6 addr add "fd00:2::1$n/64" dev "${IT_NS}e0" nodad 2>/dev/null || true; done
  }
  lb_backend_addresses
  it_on_exit 'for p in "${LB_BACKEND_PID[@]}"; do [[ -n $p ]] && kill "$p" 2>/dev/null; done; true'
  step "start Sluice on net_$FW_DRIVER with five services"
  lb_write_config "$cfg"
  lb_start "$cfg" "$IT_TMP/sluice.log"
  # tap: the east host's interface is new after each start.
  lb_backend_addresses
  for n in 1 2 3 4; do lb_backend_start "$n"; done
  local t
  for t in 1 2 3; do lb_wait_state full "b$t" up 5000 >/dev/null; done
  for t in 1 2; do lb_wait_state dsr6 "v$t" up 5000 >/dev/null; done
  # Drops until here belong to the set-up (net_tap: probes sent while the test still
  # moves the interfaces into their namespaces find no neighbour): (i) counts from now.
  LB_DROPS_BEFORE=$(fw_stat '.drops')
  lb_check_spread
  lb_check_health
  lb_check_reload "$cfg"
  lb_check_pickup
  lb_check_ipip
  lb_check_ipip6
  lb_check_drops
  step "(j) SIGTERM: exit 0, every mbuf returned"
  stop_sluice TERM
}
