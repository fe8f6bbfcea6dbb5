#!/bin/bash
# A real Prometheus (Debian's) scraping Sluice: a tracked cross-connect (af_packet,
# pipeline [parse, conntrack, xconnect]) carries a ping stream; Prometheus scrapes
# /metrics every second with docs/monitoring/sluice-alerts.yml loaded. Checks: the
# target is up, the rules load and evaluate without error, rate() of the rx packet
# counter agrees with the packets per second Sluice's own /stats counted, every metric
# the rules and the dashboard name is exported, every dashboard query evaluates, and an
# alert goes pending when its condition is provoked for real (SYN+FIN packets the
# conntrack stage drops as tcp_bad_flags: SluiceDropsRising).
# Then Prometheus and Sluice stop cleanly.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init prm 9241
require_cmd ping hping3 prometheus promtool awk
PROM=127.0.0.1:9242
MON=$SLUICE_ROOT/docs/monitoring
RULES=$MON/sluice-alerts.yml
DASH=$MON/sluice-grafana.json
[[ -f $RULES && -f $DASH ]] || fail "missing $RULES or $DASH"
if ss -Hltn "sport = :9242" | grep -q .; then fail "Prometheus port 9242 is already in use: $(ss -Hltnp "sport = :9242")"; fi

# ---------------------------------------------------------------- Prometheus helpers

PROM_PID=""
prom_kill() { [[ -n $PROM_PID ]] && kill -KILL "$PROM_PID" 2>/dev/null; }
it_on_exit prom_kill

prom_get() { # path [curl args...]: the JSON answer (errors answer JSON too)
  local path=$1
  shift
  curl -sS -m 10 -G "http://$PROM$path" "$@"
}

# Instant query: prints the API's JSON; fails unless its status is "success".
prom_query() { # promql [unix-time]
  local args=(--data-urlencode "query=$1") out
  [[ -n ${2:-} ]] && args+=(--data-urlencode "time=$2")
  out=$(prom_get /api/v1/query "${args[@]}") || fail "query '$1': Prometheus did not answer"
  [[ $(jget "$out" .status) == success ]] || fail "query '$1': $(jget "$out" '.errorType + ": " + .error')"
  printf '%s' "$out"
}

float_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# ---------------------------------------------------------------- Sluice

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json
# A firewall that accepts every connection, so that conntrack drops invalid packets.
write_xconnect_config "$cfg" af_packet '.ports[].pipeline |= [.[0], "conntrack", .[1]]' \
  '.conntrack = {capacity: 4096, capacity_ipv6: 1024}' '.firewall = {default_policy: "accept"}'
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up
wait_ping 10.99.0.2

# ---------------------------------------------------------------- Prometheus

cat >"$IT_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: ["$IT_HTTP"]
EOF
promtool check config "$IT_TMP/prometheus.yml" >"$IT_TMP/promtool-config.out" 2>&1 ||
  fail "promtool check config: $(cat "$IT_TMP/promtool-config.out")"
it_log "starting prometheus on $PROM (tsdb $IT_TMP/tsdb)"
prometheus --config.file="$IT_TMP/prometheus.yml" --storage.tsdb.path="$IT_TMP/tsdb" \
  --web.listen-address="$PROM" --storage.tsdb.retention.time=1h >"$IT_TMP/prometheus.log" 2>&1 &
PROM_PID=$!
deadline=$((SECONDS + 30))
until curl -fsS -m 1 "http://$PROM/-/ready" >/dev/null 2>&1; do
  kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited during start-up: $(tail -20 "$IT_TMP/prometheus.log")"
  ((SECONDS < deadline)) || fail "prometheus not ready on $PROM after 30 s: $(tail -20 "$IT_TMP/prometheus.log")"
  sleep 0.3
done
it_log "ok: prometheus ready (pid $PROM_PID)"

# The target: up, and up{job="sluice"} == 1.
deadline=$((SECONDS + 20))
while :; do
  t=$(prom_get /api/v1/targets --data-urlencode state=active)
  health=$(jget "$t" '[.data.activeTargets[] | select(.labels.job == "sluice")] | .[0].health // "none"')
  [[ $health == up ]] && break
  ((SECONDS < deadline)) || fail "target job=sluice health '$health' after 20 s: $(jget "$t" '.data.activeTargets')"
  sleep 0.5
done
assert_eq "$(jget "$t" '[.data.activeTargets[] | select(.labels.job == "sluice")] | length')" 1 "sluice targets"
assert_eq "$(jget "$t" '.data.activeTargets[] | select(.labels.job == "sluice") | .scrapeUrl')" \
  "http://$IT_HTTP/metrics" "target scrape URL"
assert_eq "$(jget "$t" '.data.activeTargets[] | select(.labels.job == "sluice") | .lastError')" "" "target lastError"
assert_eq "$(jget "$(prom_query 'up{job="sluice"}')" '.data.result[0].value[1]')" 1 'up{job="sluice"}'

# The rules: every alert of the file loaded, each evaluated without error.
want_rules=$(grep -c '^ *- alert:' "$RULES")
deadline=$((SECONDS + 20))
while :; do
  r=$(prom_get /api/v1/rules)
  n=$(jget "$r" '[.data.groups[].rules[]] | length')
  unevaluated=$(jget "$r" '[.data.groups[].rules[] | select(.health != "ok") | .name] | join(",")')
  ((n == want_rules)) && [[ -z $unevaluated ]] && break
  ((SECONDS < deadline)) || fail "rules: $n of $want_rules loaded, not healthy: $unevaluated: $(jget "$r" '[.data.groups[].rules[] | {name, health, lastError}]')"
  sleep 0.5
done
assert_eq "$(jget "$r" '[.data.groups[].rules[] | .lastError // "" | select(. != "")] | length')" 0 "rule evaluation errors"
assert_eq "$(jget "$r" '[.data.groups[].rules[].name] | sort | join(",")')" \
  "$(grep -o 'alert: [A-Za-z]*' "$RULES" | cut -d' ' -f2 | sort | paste -sd,)" "alerts loaded"
it_log "ok: $want_rules rules loaded from $(jget "$r" '.data.groups[0].file'), all health ok"

# Every metric the rules and the dashboard name is in the scrape (NAT and the load
# balancer are not configured here: test_monitoring_rules.sh checks those in metrics.cpp).
metrics=$(stats_get /metrics) || fail "GET /metrics failed"
printf '%s\n' "$metrics" >"$IT_TMP/metrics.txt"
for n in $( (grep -ho 'sluice_[a-z0-9_]*' "$RULES"; jq -r '[.. | objects | .expr? // empty] | .[]' "$DASH" |
  grep -o 'sluice_[a-z0-9_]*') | sort -u); do
  grep -q "^# TYPE $n " "$IT_TMP/metrics.txt" && continue
  [[ $n == sluice_nat_* || $n == sluice_lb_* ]] || fail "$n (named in the rules or the dashboard) is not in /metrics"
done
it_log "ok: every metric the rules and the dashboard name is in /metrics (or is NAT/LB's)"

# ---------------------------------------------------------------- packet rate

# 8 s of pings every 2 ms (about 500/s, fewer on a loaded machine); the last one may
# go unanswered at the deadline.
s0=$(stats_get)
t0=$(date +%s.%N)
out=$(nsw timeout 30 ping -n -q -i 0.002 -w 8 10.99.0.2 2>&1) || true
t1=$(date +%s.%N)
s1=$(stats_get)
read -r sent received < <(printf '%s\n' "$out" | sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) (packets )?received.*/\1 \2/p') || true
[[ -n ${received:-} ]] || fail "ping -i 0.002 -w 8: no summary: $out"
((received > 0 && received * 10 >= sent * 9)) || fail "ping -i 0.002 -w 8: $received of $sent answered: $out"
it_log "ok: ping -i 0.002 -w 8 10.99.0.2: $sent sent, $received received"
west_rx=$(($(jget "$s1" '.ports[] | select(.name == "west") | .rx_packets') - $(jget "$s0" '.ports[] | select(.name == "west") | .rx_packets')))
all_rx=$(($(jget "$s1" '[.ports[].rx_packets] | add') - $(jget "$s0" '[.ports[].rx_packets] | add')))
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
float_ge "$secs" 6 || fail "the ping stream lasted only $secs s; the rate window needs 6"
west_pps=$(awk -v n="$west_rx" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
all_pps=$(awk -v n="$all_rx" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
it_log "Sluice /stats: west rx +$west_rx, all ports rx +$all_rx in $secs s: $west_pps pps west, $all_pps pps in all"

# Wait for a scrape after the stream, then ask for the rate over 4 s ending 1 s before
# its end (inside it).
deadline=$((SECONDS + 15))
until float_ge "$(jget "$(prom_query 'max(timestamp(sluice_uptime_seconds{job="sluice"}))')" '.data.result[0].value[1] // 0')" "$t1"; do
  ((SECONDS < deadline)) || fail "no scrape after the ping stream within 15 s"
  sleep 0.5
done
at=$(awk -v b="$t1" 'BEGIN { printf "%.3f", b - 1 }')
q='rate(sluice_port_rx_packets_total{job="sluice",port="west"}[4s])'
out=$(prom_query "$q" "$at")
it_log "query $q at $at: $(printf '%s' "$out" | jq -c .)"
rate_west=$(jget "$out" '.data.result[0].value[1] // "none"')
[[ $rate_west != none ]] || fail "$q returned no series: $out"
float_ge "$rate_west" 1 || fail "$q = $rate_west, expected > 0 (Sluice counted $west_pps pps)"
float_ge "$rate_west" "$(awk -v p="$west_pps" 'BEGIN { print p / 2 }')" &&
  float_ge "$(awk -v p="$west_pps" 'BEGIN { print p * 2 }')" "$rate_west" ||
  fail "$q = $rate_west pps, not within a factor 2 of the $west_pps pps Sluice's /stats counted"
it_log "ok: Prometheus rate(west rx) = $rate_west pps, /stats: $west_pps pps"
q='sum(rate(sluice_port_rx_packets_total{job="sluice"}[4s]))'
rate_all=$(jget "$(prom_query "$q" "$at")" '.data.result[0].value[1] // "none"')
[[ $rate_all != none ]] && float_ge "$rate_all" "$(awk -v p="$all_pps" 'BEGIN { print p / 2 }')" &&
  float_ge "$(awk -v p="$all_pps" 'BEGIN { print p * 2 }')" "$rate_all" ||
  fail "$q = $rate_all pps, not within a factor 2 of the $all_pps pps Sluice's /stats counted"
it_log "ok: Prometheus sum(rate(rx)) = $rate_all pps, /stats: $all_pps pps"

# ---------------------------------------------------------------- dashboard queries

# Each query as Grafana sends it ($__rate_interval 5s, variables "All") must evaluate;
# the panels for what this Sluice has must show data.
mapfile -t titles < <(jq -r '.panels[] | select(.type != "row") | .title as $t | .targets[] | $t' "$DASH")
mapfile -t exprs < <(jq -r '.panels[] | select(.type != "row") | .targets[].expr' "$DASH" |
  sed -e 's/\$__rate_interval/5s/g; s/\$__interval/5s/g; s/\$__range/5m/g' -e 's/\${\?[A-Za-z_][A-Za-z0-9_]*}\?/.*/g')
((${#exprs[@]} == ${#titles[@]} && ${#exprs[@]} >= 10)) || fail "dashboard: ${#exprs[@]} queries, ${#titles[@]} titles"
empty=()
for i in "${!exprs[@]}"; do
  out=$(prom_query "${exprs[i]}" "$at")
  (($(jget "$out" '.data.result | length') > 0)) || empty+=("${titles[i]}")
done
it_log "ok: all ${#exprs[@]} dashboard queries evaluate; without data here: $(printf '%s; ' "${empty[@]}")"
for title in "Link state" "Scrape up" "Uptime" "Packets per second by port" "Bits per second by port" \
  "Per-stage packets" "Worker busy share" "Flow table fill" "Flows" "Mempool use"; do
  for e in "${empty[@]}"; do [[ $e != "$title" ]] || fail "dashboard panel '$title' has no data from this Sluice"; done
done
it_log "ok: the traffic, stage, worker, flow table, mempool and link panels have data"

# ---------------------------------------------------------------- alerts, provoked

# Waits until ALERT with LABEL=VALUE is pending or firing.
wait_alert() { # alert label value [timeout_s]
  local deadline=$((SECONDS + ${4:-20})) a state
  while :; do
    a=$(prom_get /api/v1/alerts)
    state=$(jget "$a" "[.data.alerts[] | select(.labels.alertname == \"$1\" and .labels.$2 == \"$3\") | .state] | .[0] // \"inactive\"")
    [[ $state == pending || $state == firing ]] && break
    ((SECONDS < deadline)) || fail "alert $1{$2=\"$3\"} still $state after ${4:-20} s: $(jget "$a" '.data.alerts')"
    sleep 0.5
  done
  it_log "ok: alert $1{$2=\"$3\"} is $state"
}

alerts_now() { jget "$(prom_get /api/v1/alerts)" '[.data.alerts[] | .labels.alertname] | unique | join(",")'; }
assert_eq "$(alerts_now)" "" "alerts while healthy"

# 5000 SYN+FIN segments: the conntrack stage drops them as tcp_bad_flags; over a
# 5-minute window that is 16.7/s, above SluiceDropsRising's 10/s.
d0=$(stat_value '.drops.tcp_bad_flags')
nsw timeout 60 hping3 -q -S -F -p 80 -i u1000 -c 5000 10.99.0.2 >"$IT_TMP/hping3.log" 2>&1 || true
deadline=$((SECONDS + 5))
until (($(stat_value '.drops.tcp_bad_flags') - d0 >= 4750)); do
  ((SECONDS < deadline)) || fail "drops tcp_bad_flags moved by $(($(stat_value '.drops.tcp_bad_flags') - d0)), expected >= 4750 of 5000 SYN+FIN sent: $(tail -3 "$IT_TMP/hping3.log")"
  sleep 0.3
done
it_log "ok: drops tcp_bad_flags +$(($(stat_value '.drops.tcp_bad_flags') - d0))"
wait_alert SluiceDropsRising reason tcp_bad_flags

# SluicePortLinkDown is proven by the promtool unit tests only: net_af_packet (DPDK
# 22.11) keeps reporting link up when the veth goes down, so it cannot be provoked here.
assert_eq "$(jget "$(prom_get /api/v1/rules)" '[.data.groups[].rules[] | select(.health != "ok")] | length')" 0 \
  "rules not healthy at the end"

# ---------------------------------------------------------------- stop

stats_get /metrics >"$IT_TMP/metrics-end.txt" || fail "GET /metrics failed"  # kept with IT_KEEP=1

kill -TERM "$PROM_PID"
timeout 30 tail --pid="$PROM_PID" -f /dev/null || fail "prometheus did not exit within 30 s of SIGTERM"
rc=0
wait "$PROM_PID" || rc=$?
PROM_PID=""
((rc == 0)) || fail "prometheus exited with status $rc after SIGTERM: $(tail -5 "$IT_TMP/prometheus.log")"
it_log "ok: prometheus stopped by SIGTERM: exit 0"
stop_sluice TERM
echo "test_prometheus: all checks passed"
