#!/bin/bash
# Route reload under traffic (net_af_packet, router_lib.sh's topology). Sluice starts
# with 10.8.0.0/16 and fd00:8::/48 via the east host; a reload adds 10.9.0.0/16 via a
# gateway no route used before (10.2.0.3, a second address of the east host) and
# fd00:9::/48 via fd00:2::2, a SIGHUP takes them away again, then more add/remove rounds.
# Pings to 10.8.0.1 and fd00:8::1 run across every reload and must lose nothing. A config
# that changes a port (east's mtu) is refused with 409 and a message, and none of it is
# applied, not even its routes; an invalid one gets 400. The routes stay in both cases.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/router_lib.sh"
source "$(dirname "$0")/lib.sh" # after router_lib.sh: its fail() shows Sluice's log

it_init trl 9199
require_cmd ping jq
P=$IT_NS HTTP=$IT_PORT
W=(ip netns exec "${P}w") E=(ip netns exec "${P}e")

router_topo_veth "$P"
# The east host owns what the routes point at: 10.8.0.1, 10.9.0.1, fd00:8::1, fd00:9::1,
# and answers ARP for 10.2.0.3, the gateway the reload adds.
ip -n "${P}e" addr add 10.2.0.3/24 dev "${P}e0"
ip -n "${P}e" addr add 10.8.0.1/32 dev lo
ip -n "${P}e" addr add 10.9.0.1/32 dev lo
ip -n "${P}e" addr add fd00:8::1/128 dev lo
ip -n "${P}e" addr add fd00:9::1/128 dev lo

cfg=$IT_TMP/sluice.json
BASE_ROUTES='[{"prefix": "10.8.0.0/16", "via": "10.2.0.2"}, {"prefix": "fd00:8::/48", "via": "fd00:2::2"}]'
ADDED_ROUTES='[{"prefix": "10.9.0.0/16", "via": "10.2.0.3"}, {"prefix": "fd00:9::/48", "via": "fd00:2::2"}]'
# Writes the config file with the base routes plus ADDED (a JSON array), then jq filters.
write_config() { # added-routes-json [jq-filter...]
  local added=$1 f
  shift
  router_config "$IT_FP" "$HTTP" net_af_packet0 "iface=${P}w1" net_af_packet1 "iface=${P}e1" |
    jq --argjson base "$BASE_ROUTES" --argjson added "$added" '.routes = $base + $added' >"$cfg.new" ||
    fail "cannot write $cfg"
  for f in "$@"; do jq "$f" "$cfg.new" >"$cfg.tmp" && mv "$cfg.tmp" "$cfg.new" || fail "jq '$f' failed"; done
  mv "$cfg.new" "$cfg"
}

# POST /reload: sets RELOAD_STATUS and RELOAD_BODY.
reload_post() {
  RELOAD_BODY=$(curl -sS -m 30 -X POST -o - -w '\n%{http_code}' "http://$IT_HTTP/reload") || fail "POST /reload failed"
  RELOAD_STATUS=${RELOAD_BODY##*$'\n'}
  RELOAD_BODY=${RELOAD_BODY%$'\n'*}
}

route_prefixes() { stats_get /routes | jq -r '[.routes[].prefix] | sort | join(" ")'; }

# The installed routes (static ones: connected, local and broadcast ones are always there).
assert_routes() { # "added"|"base" what
  local all
  all=$(route_prefixes)
  case $1 in
    added) [[ " $all " == *" 10.9.0.0/16 "* && " $all " == *" fd00:9::/48 "* ]] || fail "$2: /routes lacks the added routes: $all" ;;
    base) [[ " $all " != *" 10.9.0.0/16 "* && " $all " != *" fd00:9::/48 "* ]] || fail "$2: /routes still has the added routes: $all" ;;
  esac
  [[ " $all " == *" 10.8.0.0/16 "* && " $all " == *" fd00:8::/48 "* ]] || fail "$2: /routes lost the base routes: $all"
  it_log "ok: $2: /routes: $all"
}

# The destinations only the added routes reach: answered, or net unreachable.
assert_added_reachable() { # what
  # -i 0.1: iputils ping waits only max(2 x slowest reply, interval) after its last request
  ping_ok 10.9.0.1 -c 10 -i 0.1
  ping_ok fd00:9::1 -6 -c 10 -i 0.1
  local via
  via=$(stats_get /routes | jq -r '.routes[] | select(.prefix == "10.9.0.0/16") | .nexthops[0].via')
  assert_eq "$via" 10.2.0.3 "$1: 10.9.0.0/16 next hop"
}
assert_added_unreachable() { # what
  local out
  out=$("${W[@]}" ping -n -c 1 -W 2 10.9.0.1 2>&1 || true)
  grep -q "Destination Net Unreachable" <<<"$out" || fail "$1: no ICMP net unreachable for 10.9.0.1: $out"
  out=$("${W[@]}" ping -6 -n -c 1 -W 2 fd00:9::1 2>&1 || true)
  grep -qi "no route" <<<"$out" || fail "$1: no ICMPv6 no-route for fd00:9::1: $out"
  it_log "ok: $1: 10.9.0.1 and fd00:9::1 answered with destination unreachable"
}

write_config '[]'
start_sluice "$cfg" "$IT_TMP/sluice.log" # SLUICE_EAL_HUGE comes first
wait_ping 10.8.0.1 20
wait_ping fd00:8::1 20
assert_routes base "at start"
assert_added_unreachable "at start"

# ---- pings that run across every reload below. Not iputils ping: it stops waiting
# max(2 x its slowest reply, interval) after its last request, so one reply late by a
# scheduling hiccup on this shared machine would count as lost. This one sends one
# request every 10 ms, waits 5 s for every reply, and names what never came back.
PINGS=2000 # 20 s or more: longer than the reloads below take
cat >"$IT_TMP/pinger.py" <<'PINGER'
import os, select, socket, struct, sys, time
family, dest, count, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
v6 = family == "6"
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
request, reply = (128, 129) if v6 else (8, 0)


def checksum(b):
    total = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def packet(seq):
    body = struct.pack("!d", time.time()) + bytes(48)
    if v6:  # the kernel fills in the ICMPv6 checksum
        return struct.pack("!BBHHH", request, 0, 0, ident, seq) + body
    return struct.pack("!BBHHH", request, 0, checksum(struct.pack("!BBHHH", request, 0, 0, ident, seq) + body),
                       ident, seq) + body


got, sent, slowest, deadline = set(), 0, 0.0, None
start = time.monotonic()
while True:
    now = time.monotonic()
    if sent < count and now >= start + sent * interval:
        s.sendto(packet(sent), (dest, 0))
        sent += 1
        continue
    if sent == count and deadline is None:
        deadline = now + 5
    if deadline is not None and (now >= deadline or len(got) == count):
        break
    wake = start + sent * interval if sent < count else deadline
    if not select.select([s], [], [], max(0.0, wake - now))[0]:
        continue
    data = s.recv(2048)
    icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
    typ, _, _, rid, seq = struct.unpack("!BBHHH", icmp[:8])
    if typ == reply and rid == ident and seq < count:
        got.add(seq)
        slowest = max(slowest, time.time() - struct.unpack("!d", icmp[8:16])[0])
missing = sorted(set(range(count)) - got)
print("sent %d received %d lost %d slowest %.0f ms; missing %s" % (sent, len(got), len(missing), slowest * 1000,
                                                                     missing[:20]))
sys.exit(1 if missing else 0)
PINGER
"${W[@]}" "$SLUICE_PY" "$IT_TMP/pinger.py" 4 10.8.0.1 $PINGS 0.01 >"$IT_TMP/ping4.out" 2>&1 &
ping4=$!
"${W[@]}" "$SLUICE_PY" "$IT_TMP/pinger.py" 6 fd00:8::1 $PINGS 0.01 >"$IT_TMP/ping6.out" 2>&1 &
ping6=$!
sleep 1

# ---- POST /reload adds the routes
write_config "$ADDED_ROUTES"
reload_post
assert_eq "$RELOAD_STATUS" 200 "POST /reload adding routes: status"
assert_eq "$(jget "$RELOAD_BODY" .reloaded)" true "POST /reload adding routes: reloaded"
assert_routes added "after POST /reload"
forwarded_before=$(route_counter "$HTTP" west ipv4_forwarded)
assert_added_reachable "after POST /reload"
assert_ge "$(route_counter "$HTTP" west ipv4_forwarded)" $((forwarded_before + 10)) "west route ipv4_forwarded after the pings"
assert_eq "$(stats_get /config | jq -c '[.routes[].prefix]')" '["10.8.0.0/16","fd00:8::/48","10.9.0.0/16","fd00:9::/48"]' \
  "/config routes after POST /reload"
gw=$(stats_get /neighbours | jq -c '[.neighbours[] | select(.address == "10.2.0.3")][0] | {state, gateway}')
assert_eq "$gw" '{"state":"reachable","gateway":true}' "the new gateway 10.2.0.3 in /neighbours"

# ---- SIGHUP takes them away
write_config '[]'
kill -HUP "$SLUICE_PID"
deadline=$((SECONDS + 10))
until [[ " $(route_prefixes) " != *" 10.9.0.0/16 "* ]]; do
  ((SECONDS < deadline)) || fail "SIGHUP: 10.9.0.0/16 still in /routes after 10 s"
  sleep 0.2
done
assert_routes base "after SIGHUP"
assert_added_unreachable "after SIGHUP"
assert_eq "$(stats_get /neighbours | jq -c '[.neighbours[] | select(.address == "10.2.0.3")][0].gateway')" false \
  "10.2.0.3 no longer a gateway"
grep -q "SIGHUP: reloading" "$SLUICE_LOG" || fail "the log does not show the SIGHUP reload"

# ---- a port change is refused with 409: nothing applied, not even the routes in the same file
write_config "$ADDED_ROUTES" '.ports[1].mtu = 1300'
reload_post
assert_eq "$RELOAD_STATUS" 409 "POST /reload changing east's mtu: status"
assert_eq "$(jget "$RELOAD_BODY" .reloaded)" false "POST /reload changing east's mtu: reloaded"
assert_contains "$(jget "$RELOAD_BODY" '.errors | join(" ")')" "ports changed, which needs a restart" \
  "POST /reload changing east's mtu: message"
assert_routes base "after the refused reload (409)"
assert_eq "$(stats_get /config | jq -c '[([.routes[].prefix]), .ports[1].mtu]')" '[["10.8.0.0/16","fd00:8::/48"],1400]' \
  "/config after the refused reload (409)"
assert_added_unreachable "after the refused reload (409)"

# ---- an invalid config is refused with 400, the routes stay
write_config '[{"prefix": "10.9.0.0/16", "via": "10.5.0.1"}]'
reload_post
assert_eq "$RELOAD_STATUS" 400 "POST /reload with a gateway in no subnet: status"
assert_contains "$(jget "$RELOAD_BODY" '.errors | join(" ")')" "10.5.0.1" "POST /reload with a gateway in no subnet: message"
assert_routes base "after the refused reload (400)"

# ---- more rounds, back to back, traffic to the added routes in between
for round in 1 2 3 4 5; do
  write_config "$ADDED_ROUTES"
  reload_post
  assert_eq "$RELOAD_STATUS" 200 "round $round: add"
  assert_routes added "round $round: added"
  ping_ok 10.9.0.1 -c 5 -i 0.1
  write_config '[]'
  reload_post
  assert_eq "$RELOAD_STATUS" 200 "round $round: remove"
  assert_routes base "round $round: removed"
done
assert_added_unreachable "after the rounds"

# ---- the pings that ran across all of it
kill -0 "$ping4" 2>/dev/null && kill -0 "$ping6" 2>/dev/null ||
  fail "the background pings ended before the last reload: make PINGS larger ($(tail -2 "$IT_TMP/ping4.out"))"
rc4=0 rc6=0
wait "$ping4" || rc4=$?
wait "$ping6" || rc6=$?
for f in ping4 ping6; do
  it_log "$f across the reloads: $(cat "$IT_TMP/$f.out")"
  grep -q "^sent $PINGS received $PINGS lost 0 " "$IT_TMP/$f.out" ||
    fail "$f across the reloads lost packets: $(cat "$IT_TMP/$f.out")"
done
((rc4 == 0 && rc6 == 0)) || fail "background ping exit status $rc4 / $rc6"

# ---- no drop but the ones provoked (no route) and the hosts' multicast (not routable)
s=$(stats_get)
unexpected=$(jget "$s" '.drops | with_entries(select(.value > 0 and .key != "no_route" and .key != "not_routable"))')
[[ $unexpected == "{}" ]] ||
  it_log "drops by port and stage: $(jget "$s" '[.stages[] | select(.drops_total > 0) | {port, stage, drops}]' | tr -d ' \n')"
assert_eq "$unexpected" "{}" "drops other than no_route / not_routable"
it_log "drops: $(jget "$s" '.drops | with_entries(select(.value > 0))' | tr -d ' \n')"
grep -q "router: reloaded" "$SLUICE_LOG" || fail "the log has no 'router: reloaded' line"

stop_sluice TERM
echo "test_router_reload: all checks passed"
