#!/bin/bash
# The shipped monitoring files, without Sluice: docs/monitoring/sluice-alerts.yml passes
# `promtool check rules` and its unit tests (sluice-alerts.test.yml: each alert fires on
# a bad series and stays quiet on a good one); docs/monitoring/sluice-grafana.json is
# JSON, takes its datasource from ${DS_PROMETHEUS}, and every panel query parses as
# PromQL (promtool checks them as recording rules); every metric the rules and the
# dashboard name is one lib/control/metrics.cpp exports. test_prometheus.sh then runs
# them all against a real Prometheus scraping Sluice.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

require_cmd promtool jq
MON=$SLUICE_ROOT/docs/monitoring
RULES=$MON/sluice-alerts.yml
DASH=$MON/sluice-grafana.json
METRICS_SRC=$SLUICE_ROOT/lib/control/metrics.cpp
for f in "$RULES" "$MON/sluice-alerts.test.yml" "$DASH" "$METRICS_SRC"; do
  [[ -f $f ]] || fail "missing $f"
done
TMP=$(mktemp -d /tmp/sluice-monrules.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# ---- alerting rules
promtool check rules "$RULES" >"$TMP/check.out" 2>&1 || fail "promtool check rules $RULES: $(cat "$TMP/check.out")"
it_log "ok: promtool check rules: $(grep -o 'SUCCESS.*' "$TMP/check.out")"
for alert in SluiceDown SluicePortLinkDown SluiceDropsRising SluiceFlowTableNearlyFull SluiceMempoolNearlyExhausted; do
  grep -q "alert: $alert\$" "$RULES" || fail "$RULES has no alert $alert"
  grep -q "alertname: $alert\$" "$MON/sluice-alerts.test.yml" || fail "sluice-alerts.test.yml does not test $alert"
done
(cd "$MON" && promtool test rules sluice-alerts.test.yml) >"$TMP/test.out" 2>&1 ||
  fail "promtool test rules sluice-alerts.test.yml: $(cat "$TMP/test.out")"
grep -q SUCCESS "$TMP/test.out" || fail "promtool test rules did not report SUCCESS: $(cat "$TMP/test.out")"
it_log "ok: promtool test rules sluice-alerts.test.yml: SUCCESS"

# ---- Grafana dashboard
jq -e . "$DASH" >/dev/null || fail "$DASH is not JSON"
assert_eq "$(jq -r '.templating.list[] | select(.name == "DS_PROMETHEUS") | .type + "/" + .query' "$DASH")" \
  datasource/prometheus "dashboard datasource variable"
assert_eq "$(jq '[.. | objects | .datasource? // empty | select(type == "object") | .uid] | unique' -c "$DASH")" \
  '["${DS_PROMETHEUS}"]' "every datasource in the dashboard"
assert_eq "$(jq '[.panels[] | select(.type != "row") | select((.targets // []) | length == 0)] | length' "$DASH")" 0 \
  "panels without a query"
assert_eq "$(jq '[.panels[].id] | length == (unique | length)' "$DASH")" true "panel ids unique"
# Each query as Grafana would send it ($__rate_interval 5s, variables "All"), written as
# a recording rule so that promtool parses it.
dashboard_exprs() { # dashboard.json
  jq -r '[.. | objects | .expr? // empty] | .[]' "$1" |
    sed -e 's/\$__rate_interval/5s/g; s/\$__interval/5s/g; s/\$__range/5m/g' -e 's/\${\?[A-Za-z_][A-Za-z0-9_]*}\?/.*/g'
}
mapfile -t exprs < <(dashboard_exprs "$DASH")
((${#exprs[@]} >= 10)) || fail "only ${#exprs[@]} queries in $DASH"
{
  echo "groups:"
  echo "  - name: dashboard"
  echo "    rules:"
  for i in "${!exprs[@]}"; do
    printf '      - record: dashboard:query_%d\n        expr: %s\n' "$i" "$(jq -Rn --arg e "${exprs[i]}" '$e')"
  done
} >"$TMP/dashboard-rules.yml"
promtool check rules "$TMP/dashboard-rules.yml" >"$TMP/dash.out" 2>&1 ||
  fail "a dashboard query does not parse: $(cat "$TMP/dash.out")"
it_log "ok: all ${#exprs[@]} dashboard queries parse as PromQL"

# ---- every metric named is one Sluice exports
# metrics.cpp spells a family either whole ("sluice_mempool_size") or as a prefix, a
# table key and "_total" ("sluice_lcore_" + "polls" + "_total").
exported() { # name
  local n=$1 key
  grep -q "\"$n\"" "$METRICS_SRC" && return 0
  for prefix in sluice_lcore_ sluice_flows_ sluice_nat_; do
    [[ $n == "$prefix"*_total ]] || continue
    key=${n#"$prefix"}
    key=${key%_total}
    grep -q "{\"$key\"," "$METRICS_SRC" && grep -q "\"$prefix\"" "$METRICS_SRC" && return 0
  done
  return 1
}
names=$( (grep -ho 'sluice_[a-z0-9_]*' "$RULES"; jq -r '[.. | objects | .expr? // empty] | .[]' "$DASH" | grep -o 'sluice_[a-z0-9_]*') |
  sort -u)
count=0
for n in $names; do
  exported "$n" || fail "$n (named in the rules or the dashboard) is not exported by $METRICS_SRC"
  count=$((count + 1))
done
it_log "ok: the $count metric names the rules and dashboard use are all in $METRICS_SRC"
echo "test_monitoring_rules: all checks passed"
