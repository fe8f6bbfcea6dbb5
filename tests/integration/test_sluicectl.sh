#!/bin/bash
# sluicectl against a running Sluice: firewall_lib.sh's routed two-zone topology over
# net_af_packet (west inside, east outside), its firewall config plus a masquerade rule
# and a load-balanced service, so every command has something to show. Each command in
# table form and with --json (checked with jq); stats --watch shows rates under a ping;
# trace follows echo requests to "=> sent on east" and a denied SYN to "=> dropped at
# conntrack: firewall_drop"; reload (applied and refused), flush; the exit codes 1 (a
# refusal), 2 (bad usage), 3 (nothing listens), 4 (not the API's JSON); capture's
# dpdk-dumpcap command line and errors (Sluice does not initialise pdump yet, so no
# capture runs); bash completion. SIGTERM stops Sluice with exit 0.
#
# SCT_SAVE=DIR keeps every command's output there (docs/operations.md quotes them).
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/firewall_lib.sh"

it_init sct 9245
fw_init af_packet
[[ -x $SLUICECTL_BIN ]] || fail "no sluicectl binary at $SLUICECTL_BIN (ninja -C $SLUICE_BUILD app/sluicectl)"
CTL_OUT=$IT_TMP/ctl
mkdir -p "$CTL_OUT"

# ctl NAME STATUS ARGS...: runs sluicectl against this Sluice (60 s at most), asserts
# its exit status; stdout in $CTL_OUT/NAME.out, stderr in NAME.err; sets OUT and ERR.
ctl() {
  local name=$1 want=$2 rc=0
  shift 2
  timeout 60 "$SLUICECTL_BIN" --address "$IT_HTTP" "$@" >"$CTL_OUT/$name.out" 2>"$CTL_OUT/$name.err" || rc=$?
  OUT=$(cat "$CTL_OUT/$name.out")
  ERR=$(cat "$CTL_OUT/$name.err")
  ((rc == want)) || fail "sluicectl $*: expected exit $want, got $rc
stdout: $(head -c 2000 <<<"$OUT")
stderr: $(head -c 2000 <<<"$ERR")"
  fw_ok "sluicectl $* exits $rc"
}

# A jq filter that must print true for the last command's stdout.
out_jq() { expect_jq "$OUT" "$1" "$2"; }

cfg=$IT_TMP/sluice.json
step "start Sluice: firewall, masquerade inside -> east, a load-balanced service on 10.2.0.100:80"
fw_write_config "$cfg" \
  '.ports[].pipeline = ["parse", "conntrack", "lb", "nat", "route"]' \
  '.nat = {capacity: 4096, snat: [{name: "inside-out", from: "inside", out_port: "east", src: "10.1.0.0/24", masquerade: true}]}' \
  '.services = [{name: "web", vip: "10.2.0.100", protocol: "tcp", port: 80, mode: "dnat",
                 backends: [{name: "web1", address: "10.1.0.2", port: 8080}],
                 health: {type: "icmp", interval_ms: 500, timeout_ms: 400, rise: 1, fall: 2}}]'
fw_start "$cfg" "$IT_TMP/sluice.log"

step "status, ports, stats (tables and --json)"
ctl status 0 status
expect_contains "$OUT" "Sluice at $IT_HTTP: ok, up " "status"
expect_contains "$OUT" "version 0.1.0" "status"
expect_contains "$OUT" "2 (2 up, 0 down): west up, east up" "status"
expect_contains "$OUT" "workers:" "status"
ctl status-json 0 --json status
out_jq '.health.status == "ok" and .health.version == "0.1.0" and (.stats.ports | length) == 2' "status --json"
ctl ports 0 ports
expect_contains "$OUT" "NAME" "ports"
[[ $(awk '$1 == "west" || $1 == "east" {print $1, $4}' <<<"$OUT" | tr '\n' ' ') == "west up east up " ]] ||
  fail "ports: expected west and east with link up, got: $OUT"
ctl ports-names 0 ports --names
expect_eq "$(tr '\n' ' ' <<<"$OUT")" "west east " "ports --names"
ctl ports-json 0 ports --json
out_jq '[.ports[].name] == ["west", "east"]' "ports --json"
ctl stats 0 stats
for word in "ports" "stages" "conntrack" "RX-PACKETS" "DROP REASONS" "workers"; do
  expect_contains "$OUT" "$word" "stats"
done
ctl stats-json 0 stats --json
out_jq '(.stages | length) > 0 and (.drops_total | type) == "number"' "stats --json"

step "stats --watch under a ping: rates per port and per stage"
nsw ping -n -q -i 0.05 -c 200 10.2.0.2 >"$IT_TMP/ping-watch.log" 2>&1 &
ping_pid=$!
sleep 0.5
ctl stats-watch 0 stats --watch --count 2 --interval 0.5
expect_eq "$(grep -c '^sluicectl stats --watch: ' <<<"$OUT")" 2 "stats --watch --count 2: frames"
expect_contains "$OUT" "refresh 2 of 2" "stats --watch"
expect_contains "$OUT" "RX-PPS" "stats --watch"
expect_contains "$OUT" "IN-PPS" "stats --watch"
rate=$(awk '$1 == "west" && NF == 8 {print $2}' <<<"$OUT" | tail -1)
[[ -n $rate && $(awk -v r="$rate" 'BEGIN {print (r + 0 > 0)}') == 1 ]] ||
  fail "stats --watch: west's RX-PPS should be above 0 under the ping, got '$rate' in: $OUT"
rate=$(awk '$1 == "west" && $2 == "route" {print $3}' <<<"$OUT" | tail -1)
[[ -n $rate && $(awk -v r="$rate" 'BEGIN {print (r + 0 > 0)}') == 1 ]] ||
  fail "stats --watch: west's route stage IN-PPS should be above 0, got '$rate' in: $OUT"
ctl stats-watch-json 0 --json stats --watch --count 2 --interval 0.5
expect_eq "$(wc -l <<<"$OUT")" 2 "stats --watch --json: lines"
expect_eq "$(jq -s '[.[] | .ports[] | select(.name == "west") | .rx_pps > 0] | all' <<<"$OUT")" true \
  "stats --watch --json: west's rx_pps above 0 on every line"

step "trace: echo requests from west follow parse, conntrack, lb, nat, route to => sent on east"
ctl trace-icmp 0 trace --port west --count 3 --filter "proto icmp dst 10.2.0.2" --wait 15
expect_eq "$(grep -c '^=> sent on east$' <<<"$OUT")" 3 "trace: packets sent on east"
expect_eq "$(grep -Ec '^#[0-9]+ lcore [0-9]+ port west: 10\.1\.0\.2 > 10\.2\.0\.2 icmp' <<<"$OUT")" 3 "trace: header lines"
expect_eq "$(grep -Ec '^  route +passed ' <<<"$OUT")" 3 "trace: route stage lines"
expect_contains "$OUT" "3 of 3 packets caught" "trace summary"
ctl trace-icmp-json 0 --json trace --port west --count 2 --filter "icmp" --wait 15
out_jq '.captured == 2 and ([.packets[] | .outcome == "sent" and .egress == "east" and
  ([.steps[].stage] | index("route") != null)] | all)' "trace --json"
wait "$ping_pid" || fail "the ping under --watch and trace lost packets: $(tail -2 "$IT_TMP/ping-watch.log")"

step "trace --drops: a SYN from outside to inside port 22 ends at conntrack: firewall_drop"
"$SLUICECTL_BIN" --address "$IT_HTTP" trace --port east --drops --count 1 --filter "proto tcp dport 22" --wait 20 \
  >"$CTL_OUT/trace-drop.out" 2>"$CTL_OUT/trace-drop.err" &
trace_pid=$!
deadline=$((SECONDS + 10))
until [[ $(curl -sS -m 5 "http://$IT_HTTP/trace" | jq -r '.armed and (.filter | contains("dport 22"))') == true ]]; do
  ((SECONDS < deadline)) || fail "trace --drops did not arm within 10 s: $(cat "$CTL_OUT/trace-drop.err")"
  sleep 0.1
done
nse timeout 10 hping3 -q -S -p 22 -c 3 -i u300000 10.1.0.2 >"$IT_TMP/hping-22.log" 2>&1 || true
rc=0
timeout 30 tail --pid="$trace_pid" -f /dev/null || fail "trace --drops did not end within 30 s"
wait "$trace_pid" || rc=$?
OUT=$(cat "$CTL_OUT/trace-drop.out")
expect_eq "$rc" 0 "trace --drops exit status (stderr: $(cat "$CTL_OUT/trace-drop.err"))"
expect_contains "$OUT" "=> dropped at conntrack: firewall_drop (a firewall rule or zone policy said drop)" "trace --drops"
expect_contains "$OUT" "port east: 10.2.0.2:" "trace --drops"
expect_contains "$OUT" "> 10.1.0.2:22 tcp [S]" "trace --drops"

step "routes, neighbours, flows, nat, services (tables and --json)"
ctl routes 0 routes
expect_contains "$OUT" "10.1.0.0/24" "routes"
[[ $(awk '$1 == "10.2.0.0/24" {print $2, $4}' <<<"$OUT") == "connected east" ]] || fail "routes: no connected 10.2.0.0/24 on east: $OUT"
ctl routes-json 0 --json routes
out_jq '[.routes[].prefix] | index("10.1.0.0/24") != null' "routes --json"
ctl neighbours 0 neighbours
[[ $(awk '$1 == "10.1.0.2" {print $2}' <<<"$OUT") == west ]] || fail "neighbours: no 10.1.0.2 on west: $OUT"
ctl neighbours-json 0 neighbours --json
out_jq '[.neighbours[] | select(.address == "10.2.0.2") | .port] == ["east"]' "neighbours --json"
nsw ping -n -q -c 2 -i 0.2 -W 2 10.2.0.2 >/dev/null || fail "ping 10.2.0.2 for a fresh flow failed"
ctl flows 0 flows --protocol icmp --prefix 10.2.0.2
expect_contains "$OUT" "10.1.0.2 id " "flows (the opener)"
expect_contains "$OUT" "snat" "flows (masqueraded)"
ctl flows-json 0 --json flows --protocol icmp --limit 5
out_jq '.count >= 1 and ([.flows[].protocol] | all(. == "icmp"))' "flows --json"
ctl flows-bad-state 1 flows --state bogus
expect_contains "$ERR" "state: unknown state 'bogus'" "flows --state bogus"
ctl nat 0 nat
expect_contains "$OUT" "inside-out" "nat"
expect_contains "$OUT" "masquerade" "nat"
ctl nat-json 0 nat --json
out_jq '.rules[0].name == "inside-out" and (.active | type) == "number"' "nat --json"
deadline=$((SECONDS + 15))
until [[ $(curl -sS -m 5 "http://$IT_HTTP/services" | jq -r '.services[0].backends[0].state') == up ]]; do
  ((SECONDS < deadline)) || fail "the service's backend 10.1.0.2 did not come up (icmp health) within 15 s"
  sleep 0.2
done
ctl services 0 services
expect_contains "$OUT" "web: tcp 10.2.0.100:80, dnat" "services"
[[ $(awk '$2 == "10.1.0.2" {print $3, $5}' <<<"$OUT") == "8080 up" ]] || fail "services: backend 10.1.0.2:8080 not up: $OUT"
ctl services-json 0 --json services
out_jq '.services[0].name == "web" and .services[0].backends[0].state == "up"' "services --json"

step "reload (applied, then refused), flush"
ctl reload 0 reload
expect_contains "$OUT" "reloaded: policy generation " "reload"
ctl reload-json 0 --json reload
out_jq '.reloaded == true' "reload --json"
cp "$cfg" "$IT_TMP/sluice.json.good"
jq '.colour = "red"' "$IT_TMP/sluice.json.good" >"$cfg"
ctl reload-refused 1 reload
expect_contains "$ERR" "reload refused" "refused reload"
expect_contains "$ERR" "colour" "refused reload"
cp "$IT_TMP/sluice.json.good" "$cfg"
ctl flush-usage 2 flush
expect_contains "$ERR" "give a filter, or --all" "flush without a filter"
ctl flush 0 flush --protocol icmp
[[ $OUT =~ ^flushed\ [1-9][0-9]*\ flow\(s\)$ ]] || fail "flush --protocol icmp: expected 'flushed N flow(s)' with N > 0, got '$OUT'"
ctl flush-json 0 --json flush --all
out_jq '.flushed | type == "number"' "flush --all --json"

step "exit codes: 1 refused, 2 usage, 3 unreachable, 4 malformed"
ctl trace-nosuch 1 trace --port nosuchport
expect_contains "$ERR" "no port named 'nosuchport' (ports: " "trace --port nosuchport"
ctl bad-option 2 stats --bogus
expect_contains "$ERR" "unrecognised option '--bogus'" "stats --bogus"
ctl bad-command 2 frobnicate
expect_contains "$ERR" "unknown command 'frobnicate'" "unknown command"
ctl no-command 2
ctl help 0 --help
for code in "  0  ok" "  1  Sluice refused" "  2  bad usage" "  3  Sluice is not reachable" "  4  the answer"; do
  expect_contains "$OUT" "$code" "--help exit codes"
done
ctl version 0 --version
expect_eq "$OUT" "sluicectl 0.1.0" "--version"
rc=0
"$SLUICECTL_BIN" --address 127.0.0.1:1 status >/dev/null 2>"$CTL_OUT/unreachable.err" || rc=$?
expect_eq "$rc" 3 "status against 127.0.0.1:1: exit status"
expect_eq "$(cat "$CTL_OUT/unreachable.err")" \
  "sluicectl: cannot reach Sluice at 127.0.0.1:1 (connection refused): is it running? (see --address)" "unreachable message"
rc=0
SLUICECTL_ADDRESS=127.0.0.1:1 "$SLUICECTL_BIN" ports >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 3 "SLUICECTL_ADDRESS=127.0.0.1:1 ports: exit status"
# Not the API: an HTTP server whose /health is a text file.
mkdir -p "$IT_TMP/notapi" && echo "not json" >"$IT_TMP/notapi/health"
# On a port the kernel picks (a fixed one may still be held by an earlier test's socket).
"$SLUICE_PY" -c 'import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.HTTPServer(("127.0.0.1", 0), handler)
print(server.server_port, flush=True)
server.serve_forever()' "$IT_TMP/notapi" >"$IT_TMP/notapi.port" 2>"$IT_TMP/notapi.log" &
notapi_pid=$!
it_on_exit "kill $notapi_pid"
deadline=$((SECONDS + 10))
notapi_port=""
until [[ -n $notapi_port ]] && curl -s -o /dev/null -m 1 "http://127.0.0.1:$notapi_port/health"; do
  ((SECONDS < deadline)) || fail "the non-API HTTP server did not start: $(cat "$IT_TMP/notapi.log")"
  sleep 0.1
  notapi_port=$(head -1 "$IT_TMP/notapi.port" 2>/dev/null || true)
done
rc=0
"$SLUICECTL_BIN" --address "127.0.0.1:$notapi_port" status >/dev/null 2>"$CTL_OUT/malformed.err" || rc=$?
expect_eq "$rc" 4 "status against a server that is not Sluice: exit status"
expect_contains "$(cat "$CTL_OUT/malformed.err")" "malformed answer to GET /health" "malformed message"
kill "$notapi_pid" 2>/dev/null || true

step "capture: the dpdk-dumpcap command line and its errors (a real capture: test_capture)"
ctl capture-dry 0 capture --port east -w "$IT_TMP/east.pcapng" -c 5 --duration 3 --dumpcap /usr/bin/dpdk-dumpcap --dry-run
expect_eq "$OUT" "/usr/bin/dpdk-dumpcap --file-prefix=$IT_FP -i 1 -w $IT_TMP/east.pcapng -c 5 -a duration:3" "capture --dry-run"
ctl capture-dry-json 0 --json capture --port west -w /tmp/x.pcapng --dry-run
out_jq '.argv[1:] == ["--file-prefix='"$IT_FP"'", "-i", "0", "-w", "/tmp/x.pcapng"]' "capture --dry-run --json"
ctl capture-nosuch 1 capture --port nosuch -w /tmp/x.pcapng
expect_eq "$ERR" "sluicectl: capture: no port named 'nosuch' (ports: west, east)" "capture of an unknown port"
ctl capture-nodumpcap 1 capture --port east -w /tmp/x.pcapng --dumpcap /nonexistent/dpdk-dumpcap
expect_contains "$ERR" "/nonexistent/dpdk-dumpcap not found" "capture without dpdk-dumpcap"
ctl capture-usage 2 capture --port east

step "bash completion: commands, options, port names from the running Sluice"
completion=$(PATH="$(dirname "$SLUICECTL_BIN"):$PATH" bash -c '
  source "$1"
  complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _sluicectl; echo "${COMPREPLY[*]}"; }
  complete_words sluicectl st
  complete_words sluicectl trace --d
  complete_words sluicectl --address "$2" trace --port ""
  complete_words sluicectl flows --protocol ic
  complete -p sluicectl' _ "$SLUICE_ROOT/tools/completion/sluicectl.bash" "$IT_HTTP") ||
  fail "sourcing the completion failed: $completion"
expect_eq "$(sed -n 1p <<<"$completion")" "status stats" "completion of 'st'"
expect_eq "$(sed -n 2p <<<"$completion")" "--drops" "completion of 'trace --d'"
expect_eq "$(sed -n 3p <<<"$completion")" "west east" "completion of 'trace --port '"
expect_eq "$(sed -n 4p <<<"$completion")" "icmp icmpv6" "completion of 'flows --protocol ic'"
expect_eq "$(sed -n 5p <<<"$completion")" "complete -F _sluicectl sluicectl" "complete -p sluicectl"

step "SIGTERM: Sluice exits 0; then sluicectl says it is not running"
stop_sluice TERM
ctl after-stop 3 status
expect_contains "$ERR" "cannot reach Sluice at $IT_HTTP (connection refused)" "status after the stop"
if [[ -n ${SCT_SAVE:-} ]]; then
  mkdir -p "$SCT_SAVE" && cp "$CTL_OUT"/* "$SCT_SAVE"/ && it_log "outputs saved in $SCT_SAVE"
fi
echo PASS
