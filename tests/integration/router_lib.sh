# Routed topology and checks shared by test_router_af_packet.sh and test_router_tap.sh.
# Source after tools/lib/common.sh.
#
#   netns ${p}w: ${p}w0 10.1.0.2/24 fd00:1::2/64, gw 10.1.0.1 / fd00:1::1  <->  Sluice west
#   netns ${p}e: ${p}e0 10.2.0.2/24 fd00:2::2/64, gw 10.2.0.1 / fd00:2::1  <->  Sluice east (MTU 1400)
#
# Both hosts keep MTU 1500: only Sluice's east port has 1400, so a host that sends
# full-size packets west -> east depends on Sluice's "fragmentation needed" (PMTUD).

router_host_up() { # netns dev subnet(1|2) mtu
  local ns=$1 dev=$2 n=$3 mtu=$4
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$dev" mtu "$mtu"
  ip -n "$ns" addr add "10.$n.0.2/24" dev "$dev"
  ip -n "$ns" addr add "fd00:$n::2/64" dev "$dev" nodad
  ip -n "$ns" link set "$dev" up
  veth_offloads_off "$ns" "$dev"
  ip -n "$ns" route add default via "10.$n.0.1"
  ip -n "$ns" -6 route add default via "fd00:$n::1"
}

router_topo_veth() { # prefix
  local p=$1
  topo_veth_pairs "$p"
  router_host_up "${p}w" "${p}w0" 1 1500
  router_host_up "${p}e" "${p}e0" 2 1500
}

router_topo_tap() { # prefix: after Sluice created taps ${p}w0 / ${p}e0
  local p=$1 deadline=$((SECONDS + 20)) side
  for side in w e; do
    ip netns add "${p}${side}" 2>/dev/null || true
    until ip link show "${p}${side}0" >/dev/null 2>&1; do
      ((SECONDS < deadline)) || { echo "tap ${p}${side}0 never appeared" >&2; return 1; }
      sleep 0.2
    done
    ip link set "${p}${side}0" netns "${p}${side}"
  done
  # The tap is the host's interface; Sluice's "mtu" is its own egress limit and is not
  # applied to the kernel side (net_tap leaves it at 1500), but set it in any case.
  router_host_up "${p}w" "${p}w0" 1 1500
  router_host_up "${p}e" "${p}e0" 2 1500
}

# Config for Sluice; $2/$3 are the two ports' device and devargs pairs.
router_config() { # file_prefix http_port west_device west_devargs east_device east_devargs
  cat <<JSON
{ "eal": {"lcores": "0-1", "memory_mb": 256, "file_prefix": "$1"},
  "ports": [
    {"name": "west", "device": "$3", "devargs": "$4", "ipv4": ["10.1.0.1/24"], "ipv6": ["fd00:1::1/64"],
     "pipeline": ["parse", "route"]},
    {"name": "east", "device": "$5", "devargs": "$6", "mtu": 1400, "ipv4": ["10.2.0.1/24"], "ipv6": ["fd00:2::1/64"],
     "pipeline": ["parse", "route"]}
  ],
  "routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2"}, {"prefix": "fd00:9::/48", "via": "fd00:2::2"}],
  "control": {"http": {"port": $2}}
}
JSON
}

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
jqs() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# A route stage counter of one port (0 if the port has none), from /stats on port $1.
route_counter() { # http_port port_name counter
  curl -fsS "http://127.0.0.1:$1/stats" |
    jqs "sum(r['counters'].get('$3', 0) for r in d['stages'] if r['stage'] == 'route' and r['port'] == '$2')"
}

# UDP datagrams a namespace dropped for a full socket buffer (IPv4 and IPv6).
router_rcvbuf_errors() { # netns
  ip netns exec "$1" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ {n += $6} $1 == "Udp6RcvbufErrors" {n += $2} END {print n + 0}' \
    /proc/net/snmp /proc/net/snmp6
}

# Every client check of issue #3 through a running Sluice on port $2.
router_checks() { # prefix http_port
  local p=$1 port=$2 out
  local W=(ip netns exec "${p}w") E=(ip netns exec "${p}e")
  step "ping both ways, IPv4 and IPv6"
  "${W[@]}" ping -q -c 200 -i 0.005 -W 2 10.2.0.2 | tee /dev/stderr | grep -q " 0% packet loss" || fail "ping west->east lost packets"
  "${E[@]}" ping -q -c 200 -i 0.005 -W 2 10.1.0.2 | grep -q " 0% packet loss" || fail "ping east->west lost packets"
  "${W[@]}" ping -6 -q -c 100 -i 0.005 -W 2 fd00:2::2 | grep -q " 0% packet loss" || fail "ping -6 west->east lost packets"
  "${E[@]}" ping -6 -q -c 100 -i 0.005 -W 2 fd00:1::2 | grep -q " 0% packet loss" || fail "ping -6 east->west lost packets"
  step "ping Sluice's own addresses"
  for a in 10.1.0.1 10.2.0.1; do "${W[@]}" ping -q -c 3 -i 0.1 -W 2 $a | grep -q " 0% packet loss" || fail "no echo reply from $a"; done
  for a in fd00:1::1 fd00:2::1; do "${W[@]}" ping -6 -q -c 3 -i 0.1 -W 2 $a | grep -q " 0% packet loss" || fail "no echo reply from $a"; done
  step "traceroute shows Sluice's hop"
  out=$("${W[@]}" traceroute -n -q 1 -w 2 -m 5 10.2.0.2); echo "$out"
  grep -Eq "^ 1  10\.1\.0\.1 " <<<"$out" || fail "traceroute: hop 1 is not 10.1.0.1"
  grep -Eq "^ 2  10\.2\.0\.2 " <<<"$out" || fail "traceroute: hop 2 is not 10.2.0.2"
  out=$("${W[@]}" traceroute -6 -n -q 1 -w 2 -m 5 fd00:2::2); echo "$out"
  grep -Eq "^ 1  fd00:1::1 " <<<"$out" || fail "traceroute -6: hop 1 is not fd00:1::1"
  grep -Eq "^ 2  fd00:2::2 " <<<"$out" || fail "traceroute -6: hop 2 is not fd00:2::2"
  step "no route: ICMP net unreachable"
  out=$("${W[@]}" ping -c 1 -W 2 10.77.0.1 || true); echo "$out"
  grep -q "Destination Net Unreachable" <<<"$out" || fail "no ICMP unreachable for 10.77.0.1"
  out=$("${W[@]}" ping -6 -c 1 -W 2 fd00:77::1 || true)
  grep -qi "no route" <<<"$out" || fail "no ICMPv6 unreachable for fd00:77::1: $out"
  step "DF over the 1400-byte link: fragmentation needed"
  out=$("${W[@]}" ping -c 1 -W 2 -M do -s 1472 10.2.0.2 || true); echo "$out"
  grep -q "mtu = 1400" <<<"$out" || fail "no ICMP fragmentation-needed with mtu 1400"
  step "iperf3 TCP and UDP"
  "${E[@]}" iperf3 -s -D -1 -p 5201 --logfile /dev/null; sleep 0.5
  out=$("${W[@]}" iperf3 -c 10.2.0.2 -p 5201 -t 3 -J) || fail "iperf3 TCP failed"
  local mbit
  mbit=$(echo "$out" | jqs "int(d['end']['sum_received']['bits_per_second'] / 1e6)")
  echo "TCP $mbit Mbit/s, $(echo "$out" | jqs "d['end']['sum_sent'].get('retransmits', '?')") retransmits"
  # The floor and its reason: lib.sh's IT_TCP_FLOOR_MBIT (these tests do not source lib.sh).
  ((mbit >= ${IT_TCP_FLOOR_MBIT:-20})) ||
    fail "iperf3 TCP through the router: $mbit Mbit/s received, expected at least ${IT_TCP_FLOOR_MBIT:-20}"
  "${E[@]}" iperf3 -s -D -1 -p 5202 --logfile /dev/null; sleep 0.5
  local rcvbuf_before rcvbuf lost
  rcvbuf_before=$(router_rcvbuf_errors "${p}e")
  out=$("${W[@]}" iperf3 -c 10.2.0.2 -p 5202 -u -b 10M -t 3 -J) || fail "iperf3 UDP failed"
  echo "$out" | jqs "'UDP lost %.2f%%' % d['end']['sum']['lost_percent']"
  if [[ $(echo "$out" | jqs "int(d['end']['sum']['lost_percent'] < 1.0)") != 1 ]]; then
    # As firewall_lib's expect_udp_no_loss: datagrams the receiving host dropped for a
    # full socket buffer (its iperf3 starved of CPU on a busy machine) are not Sluice's.
    lost=$(echo "$out" | jqs "d['end']['sum']['lost_packets']")
    rcvbuf=$(($(router_rcvbuf_errors "${p}e") - rcvbuf_before))
    ((lost <= rcvbuf)) || fail "iperf3 UDP lost more than 1%: $lost datagrams, only $rcvbuf of them in the receiver's socket buffer (RcvbufErrors)"
    echo "note: UDP: $lost datagrams lost, all in the receiving host's socket buffer (RcvbufErrors +$rcvbuf), none in Sluice"
  fi
  step "curl 1 MB through path-MTU discovery"
  head -c 1000000 /dev/urandom >"$WORK/blob"
  (cd "$WORK" && exec "${W[@]}" /usr/bin/python3 -m http.server 8000 --bind 10.1.0.2 >/dev/null 2>&1) &
  local http_pid=$!
  for _ in $(seq 50); do "${E[@]}" curl -s -o /dev/null -m 1 http://10.1.0.2:8000/ && break; sleep 0.1; done
  # The east host (MTU 1500) offers MSS 1460, so the west server sends 1500-byte DF
  # segments that only fit once it has learnt 1400 from Sluice. Forget what the ping -M do
  # and iperf3 above taught it, and make sure it is forgotten.
  ip -n "${p}w" route flush cache
  out=$("${W[@]}" ip route get 10.2.0.2)
  ! grep -q "mtu" <<<"$out" || fail "west host still has a path MTU after 'route flush cache': $out"
  local too_big_before too_big_after
  too_big_before=$(route_counter "$port" west icmp_too_big)
  "${E[@]}" curl -s -m 20 -o "$WORK/got" http://10.1.0.2:8000/blob || fail "curl of 1 MB failed"
  kill $http_pid 2>/dev/null || true
  cmp -s "$WORK/blob" "$WORK/got" || fail "curl: the 1 MB file came back different"
  too_big_after=$(route_counter "$port" west icmp_too_big)
  echo "route stage west icmp_too_big: $too_big_before before the curl, $too_big_after after"
  ((too_big_after > too_big_before)) || fail "Sluice sent no fragmentation needed during the curl (icmp_too_big stayed $too_big_before)"
  out=$("${W[@]}" ip route get 10.2.0.2); echo "$out"
  grep -q "mtu 1400" <<<"$out" || fail "west host learnt no path MTU of 1400 from the curl: $out"
  step "neighbours, routes, stats"
  out=$(curl -fsS "http://127.0.0.1:$port/neighbours")
  for a in 10.1.0.2 10.2.0.2 fd00:1::2 fd00:2::2; do
    echo "$out" | jqs "[n['state'] for n in d['neighbours'] if n['address']=='$a'][0]" | grep -Eq "reachable|stale|probe" ||
      fail "/neighbours has no usable entry for $a"
  done
  curl -fsS "http://127.0.0.1:$port/routes" | jqs "[r['prefix'] for r in d['routes']]" | grep -q "10.9.0.0/16" || fail "/routes misses 10.9.0.0/16"
  out=$(curl -fsS "http://127.0.0.1:$port/stats")
  echo "$out" | jqs "{k: v for k, v in d['drops'].items() if v}"
  # Drops a routed link legitimately sees: hosts' multicast (MLD, router solicitations),
  # and the errors provoked above. Anything else is a bug.
  [[ $(echo "$out" | jqs "sum(v for k, v in d['drops'].items() if k not in ('not_routable', 'no_route', 'ttl_exceeded', 'too_big', 'local_unhandled'))") == 0 ]] ||
    fail "unexpected drops"
  [[ $(echo "$out" | jqs "sum(r['counters'].get('icmp_time_exceeded', 0) for r in d['stages'] if r['stage']=='route')") -ge 2 ]] ||
    fail "route stage counted no ICMP time exceeded"
}
