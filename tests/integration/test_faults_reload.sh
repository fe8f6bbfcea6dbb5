#!/bin/bash
# Faults (issue 14), control plane: a reload that fails halfway, and a SIGHUP storm.
#
# Three-port router over net_af_packet (faults_lib.sh) with conntrack and a firewall.
# 1. Half-way failure: the next config changes the firewall (compiles), the log level and
#    the routes, but carries 33000 routes, more than the route table's 32767 next-hop
#    groups: only building the route table finds that, after the firewall policy was
#    built. POST /reload must answer 400 with the routes' error, and nothing of the new
#    config may be in force: /config byte-for-byte as before, the firewall generation and
#    rules as before, the old rule still dropping (UDP 6000) and the new one not (UDP
#    6001 passes), /routes without the new routes.
# 2. SIGHUP storm: 100 SIGHUPs within about a second, the config file rewritten before
#    each (route 10.50.N.0/24 and firewall rule "storm-N" for N = 1..100), while a ping
#    west -> north (every 10 ms) and a TCP stream west -> east run. Afterwards: Sluice
#    alive, /config holds N = 100 in both places and nothing else, the workers' firewall
#    names "storm-100" only, the ping lost nothing, the TCP stream (a tracked flow across
#    every reload) finished without a reset.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults_lib.sh"

it_init flr 9252
require_cmd ping iperf3 "$SLUICE_PY"

faults_topo
cfg=$IT_TMP/sluice.json
# Every port tracked, one zone each; default accept; one named drop rule ($1 its UDP
# port); extra routes ($2, a JSON array) beside 10.9.0.0/16 via the east host.
write_reload_config() { # rule-name udp-port extra-routes-json [jq-filter...]
  local name=$1 port=$2 routes=$3
  shift 3
  faults_config "$cfg.new" \
    '.ports[].pipeline = ["parse", "conntrack", "route"]' \
    '.ports[] |= (.zone = .name)' \
    ".firewall = {default_policy: \"accept\", rules: [{name: \"$name\", protocol: \"udp\", dst_ports: $port, action: \"drop\"}]}" \
    "$@"
  jq --slurpfile extra "$routes" '.routes = [{prefix: "10.9.0.0/16", via: "10.2.0.2"}] + $extra[0]' "$cfg.new" >"$cfg.tmp" ||
    fail "cannot add the routes"
  mv "$cfg.tmp" "$cfg"  # rename: Sluice never reads a half-written file
}
echo '[]' >"$IT_TMP/no-routes.json"
write_reload_config old-rule 6000 "$IT_TMP/no-routes.json"
"$SLUICE_BIN" --config "$cfg" --check-config >/dev/null || fail "the test's own config does not pass --check-config"
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up
wait_ping 10.2.0.2
wait_ping 10.3.0.2
ip -n "${IT_NS}e" addr add 10.9.0.1/32 dev lo

# UDP datagrams west -> east port $1: how many arrive (of 20).
udp_arrivals() { # port
  local f=$IT_TMP/udp-$1-$RANDOM.txt  # a fresh file: an old READY would start the sender too early
  udp_receiver_start "${IT_NS}e" 10.2.0.2 "$1" "$f"
  udp_send "${IT_NS}w" 10.2.0.2 "$1" 20 200 100 >/dev/null
  udp_received "$f"
}

reload_post() {
  RELOAD_BODY=$(curl -sS -m 60 -X POST -o - -w '\n%{http_code}' "http://$IT_HTTP/reload") || fail "POST /reload failed"
  RELOAD_STATUS=${RELOAD_BODY##*$'\n'}
  RELOAD_BODY=${RELOAD_BODY%$'\n'*}
}

it_log "--- 1. a reload that fails half-way (firewall compiles, routes do not)"
config_before=$(stats_get /config | jq -S .)
generation_before=$(stat_value .firewall.generation)
rules_before=$(stats_get | jq -c '[.firewall.rules[].name]')
assert_eq "$(udp_arrivals 6000)" 0 "UDP to port 6000 (old-rule drops it) before the reload"
assert_eq "$(udp_arrivals 6001)" 20 "UDP to port 6001 before the reload"
"$SLUICE_PY" -c '
import json
print(json.dumps([{"prefix": "%d.%d.%d.0/24" % (100 + i // 65536, i // 256 % 256, i % 256), "via": "10.2.0.2"} for i in range(33000)]))
' >"$IT_TMP/too-many-routes.json"
write_reload_config new-rule 6001 "$IT_TMP/too-many-routes.json" '.logging.level = "debug"'
"$SLUICE_BIN" --config "$cfg" --check-config >/dev/null ||
  fail "the half-way config must pass --check-config (only the running route table refuses it)"
reload_post
assert_eq "$RELOAD_STATUS" 400 "POST /reload of a config whose routes cannot be built"
assert_contains "$RELOAD_BODY" "next-hop groups" "the refusal names the routes' limit"
assert_contains "$RELOAD_BODY" "stay" "the refusal says the running config stays"
assert_eq "$(stats_get /config | jq -S .)" "$config_before" "/config after the refused reload (unchanged)"
assert_eq "$(stat_value .firewall.generation)" "$generation_before" "firewall generation after the refused reload"
assert_eq "$(stats_get | jq -c '[.firewall.rules[].name]')" "$rules_before" "firewall rules in force after the refused reload"
assert_eq "$(stats_get /routes | jq '[.routes[] | select(.prefix | startswith("100."))] | length')" 0 "new routes in /routes"
assert_eq "$(udp_arrivals 6000)" 0 "UDP to port 6000 after the refused reload (old-rule still drops)"
assert_eq "$(udp_arrivals 6001)" 20 "UDP to port 6001 after the refused reload (new-rule not in force)"
ping_ok 10.9.0.1 -c 5 -i 0.05

it_log "--- 2. SIGHUP storm: 100 signals in about a second, the config rewritten before each"
# The 100 configs are written first, so the storm itself is a rename and a signal each.
for n in $(seq 1 100); do
  printf '[{"prefix": "10.50.%d.0/24", "via": "10.2.0.2"}]\n' "$n" >"$IT_TMP/storm-route.json"
  write_reload_config "storm-$n" 6000 "$IT_TMP/storm-route.json"
  mv "$cfg" "$IT_TMP/storm-$n.json"
done
nse timeout 60 iperf3 -s -1 -B 10.2.0.2 -p 5201 >"$IT_TMP/iperf3-server.log" 2>&1 &
deadline=$((SECONDS + 10))
until nse ss -Hltn "sport = :5201" | grep -q .; do
  ((SECONDS < deadline)) || fail "iperf3 server did not start"
  sleep 0.1
done
nsw timeout 60 iperf3 -c 10.2.0.2 -p 5201 -t 6 -b 20M -J >"$IT_TMP/iperf3.json" 2>&1 &
iperf=$!
nsw ping -n -q -i 0.01 -w 6 10.3.0.2 >"$IT_TMP/ping.txt" 2>&1 &
pinger=$!
sleep 1
applied_before=$(grep -c "reload of .*: applied" "$SLUICE_LOG" || true)
storm_start=$(now_ms)
# One process renames and signals (a shell's cp/mv per signal takes longer than 10 ms
# on a busy host): storm-N.json over the config, SIGHUP, every 10 ms.
"$SLUICE_PY" - "$IT_TMP" "$cfg" "$SLUICE_PID" <<'PY'
import os, signal, sys, time
tmp, cfg, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
for n in range(1, 101):
    os.rename(f"{tmp}/storm-{n}.json", cfg)
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.01)
PY
storm_ms=$(($(now_ms) - storm_start))
it_log "100 SIGHUPs sent in ${storm_ms} ms"
((storm_ms < 2000)) || fail "the storm took ${storm_ms} ms, meant to be about 1 s"
kill -0 "$SLUICE_PID" || fail "Sluice died in the SIGHUP storm"
# Settle: the last SIGHUP's reload reads the last file.
deadline=$((SECONDS + 20))
until [[ $(stats_get /config | jq -r '[.routes[].prefix] | map(select(startswith("10.50."))) | join(",")') == 10.50.100.0/24 ]]; do
  ((SECONDS < deadline)) || fail "/config never settled on the last file: $(stats_get /config | jq -c '[.routes[].prefix]')"
  sleep 0.2
done
sleep 1
applied=$(($(grep -c "reload of .*: applied" "$SLUICE_LOG") - applied_before))
it_log "reloads applied during the storm: $applied (SIGHUPs that came during a reload fold into one)"
assert_ge "$applied" 1 "reloads applied"
assert_eq "$(stats_get /config | jq -c '[.firewall.rules[].name]')" '["storm-100"]' "/config firewall rules after the storm"
assert_eq "$(stats_get | jq -c '[.firewall.rules[].name]')" '["storm-100"]' "firewall rules in force after the storm"
assert_eq "$(stats_get /routes | jq -r '[.routes[].prefix | select(startswith("10.50."))] | join(",")')" 10.50.100.0/24 "storm routes in /routes"
wait "$pinger" || true
loss=$(sed -nE 's/.* ([0-9.]+)% packet loss.*/\1/p' "$IT_TMP/ping.txt")
sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' "$IT_TMP/ping.txt")
assert_eq "$loss" 0 "ping west -> north loss (%) across the storm ($sent sent)"
wait "$iperf" || fail "iperf3 across the storm failed: $(jq -r '.error // empty' "$IT_TMP/iperf3.json")"
bps=$(jq -r '.end.sum_received.bits_per_second | floor' "$IT_TMP/iperf3.json")
retr=$(jq -r '.end.sum_sent.retransmits // 0' "$IT_TMP/iperf3.json")
assert_gt "$bps" 18000000 "TCP west -> east across the storm (bit/s, sent at 20 Mbit/s)"
it_log "TCP stream across the storm: $bps bit/s, $retr retransmits"
stop_sluice
it_log "result: half-way reload refused with 400, nothing applied; storm of 100 SIGHUPs in ${storm_ms} ms: $applied reloads applied, ended on storm-100, ping $sent sent 0% loss, TCP $bps bit/s"
echo PASS
