#!/bin/bash
# The CLI and config validation, no data plane: every shipped conf/*.json passes
# --check-config; bad configs exit 1 with the exact "JSON.PATH: message" line; malformed
# JSON gives FILE:LINE:COL; usage errors exit 2; --version/--help exit 0; EAL args
# after "--" are accepted.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init itcc 9192

# ---- every shipped example validates and prints the effective config as JSON
shopt -s nullglob
confs=("$SLUICE_ROOT"/conf/*.json)
((${#confs[@]} > 0)) || fail "no conf/*.json examples found"
for conf in "${confs[@]}"; do
  assert_exit 0 "--check-config $(basename "$conf")" -- "$SLUICE_BIN" --config "$conf" --check-config
  jq -e '.eal.lcores and (.ports | length > 0) and (.workers | type == "array" and length > 0)' "$IT_TMP/out" \
    >/dev/null || fail "--check-config $(basename "$conf"): stdout is not the effective config: $(head -c 500 "$IT_TMP/out")"
  [[ ! -s $IT_TMP/err ]] || fail "--check-config $(basename "$conf"): unexpected stderr: $(cat "$IT_TMP/err")"
  # The printed config is itself a valid config that prints the same.
  cp "$IT_TMP/out" "$IT_TMP/effective.json"
  assert_exit 0 "--check-config of the effective config of $(basename "$conf")" -- \
    "$SLUICE_BIN" --config "$IT_TMP/effective.json" --check-config
  cmp -s "$IT_TMP/out" "$IT_TMP/effective.json" ||
    fail "$(basename "$conf"): the effective config does not round-trip: $(diff "$IT_TMP/effective.json" "$IT_TMP/out" | head -20)"
done

# ---- defaults filled in, "auto" workers resolved
base=$IT_TMP/base.json
cat >"$base" <<'JSON'
{
  "eal": { "lcores": "0-1" },
  "ports": [
    { "name": "west", "device": "net_af_packet0", "devargs": "iface=itccw1",
      "pipeline": ["parse", { "stage": "xconnect", "peer": "east" }] },
    { "name": "east", "device": "net_af_packet1", "devargs": "iface=itcce1",
      "pipeline": ["parse", { "stage": "xconnect", "peer": "west" }] }
  ]
}
JSON
assert_exit 0 "--check-config minimal config" -- "$SLUICE_BIN" --config "$base" --check-config
eff=$(cat "$IT_TMP/out")
assert_eq "$(jget "$eff" '.workers | tojson')" '[{"lcore":1,"rx":[{"port":"west","queue":0},{"port":"east","queue":0}]}]' \
  "auto workers"
assert_eq "$(jget "$eff" '.eal.main_lcore')" 0 "default main_lcore"
assert_eq "$(jget "$eff" '.burst_size')" 32 "default burst_size"
assert_eq "$(jget "$eff" '.control.http | tojson')" '{"address":"127.0.0.1","enabled":true,"port":9180}' "default http"
assert_eq "$(jget "$eff" '[.ports[] | .rx_queues, .tx_queues, .rx_descriptors, .mtu, .promiscuous, .rss] | tojson')" \
  '[1,1,1024,1500,true,"symmetric",1,1,1024,1500,true,"symmetric"]' "port defaults"

# ---- bad configs: exit 1, the exact error line(s) on stderr, nothing on stdout
n_bad=0
bad() { # jq-filter-on-base expected-line...
  local filter=$1 file
  shift
  n_bad=$((n_bad + 1))
  file=$IT_TMP/bad$n_bad.json
  jq "$filter" "$base" >"$file" || fail "bad config #$n_bad: jq filter failed: $filter"
  assert_exit 1 "bad config #$n_bad ($filter)" -- "$SLUICE_BIN" --config "$file" --check-config
  local line
  for line in "$@"; do
    grep -Fxq -- "$line" "$IT_TMP/err" ||
      fail "bad config #$n_bad ($filter): expected the line
  $line
on stderr, got:
$(cat "$IT_TMP/err")"
  done
  # The summary counts the lines; one mistake may have consequences reported with it.
  local count
  count=$(sed -nE "s|^sluice: $file: ([0-9]+) error\(s\); nothing was started$|\1|p" "$IT_TMP/err")
  [[ -n $count ]] && (($# <= count && count == $(wc -l <"$IT_TMP/err") - 1)) ||
    fail "bad config #$n_bad: expected the summary line 'sluice: $file: N error(s); nothing was started' counting the
error lines (at least $#), got:
$(cat "$IT_TMP/err")"
  [[ ! -s $IT_TMP/out ]] || fail "bad config #$n_bad: printed a config on stdout although invalid"
}
bad 'del(.eal.lcores)' "eal: missing required key 'lcores'"
bad 'del(.ports)' "config: missing required key 'ports'"
bad '.bogus = 1' "bogus: unknown key (expected one of: eal, ports, workers, burst_size, mempool, control, logging, routes, neighbours, icmp, neighbour, conntrack, firewall, nat, polling, services)"
bad '.burst_size = 0' "burst_size: must be 1..64, got 0"
bad '.burst_size = "32"' "burst_size: must be an integer, got string"
bad '.ports[0].mtu = 50' "ports[0].mtu: must be 68..9600, got 50"
bad '.ports[1].rx_queues = 65' "ports[1].rx_queues: must be 1..64, got 65"
bad '.ports[0].pipeline[1].peer = "nowhere"' "ports[0].pipeline[1].peer: unknown port 'nowhere'"
bad '.ports[0].pipeline[1].peer = "west"' "ports[0].pipeline[1].peer: must name another port, got its own name"
bad '.ports[0].pipeline[0] = "frobnicate"' "ports[0].pipeline[0]: unknown stage 'frobnicate' (known: parse, conntrack, lb, nat, xconnect, route)"
bad '.ports[0].pipeline = ["parse"]' "ports[0].pipeline: must end with an output stage (xconnect or route), got 'parse'"
bad '.ports[1].name = "west"' "ports[1].name: duplicate port name 'west' (also ports[0])"
bad '.ports[1].device = "net_af_packet0"' "ports[1].device: device 'net_af_packet0' is already used by ports[0]"
bad '.ports[0].device = "eth0"' \
  "ports[0].device: must be a vdev name like net_af_packet0 or a PCI address like 0000:01:00.0, got 'eth0'"
bad '.ports[0].mac = "zz:00:00:00:00:01"' "ports[0].mac: must look like 02:00:00:00:00:01, got 'zz:00:00:00:00:01'"
bad '.ports[0].mac = "01:00:00:00:00:01"' "ports[0].mac: must be a unicast address, got '01:00:00:00:00:01'"
bad '.ports[0].rss = "on"' "ports[0].rss: must be one of symmetric, off, got 'on'"
bad '.eal.main_lcore = 5' "eal.main_lcore: 5 is not in eal.lcores '0-1'"
bad '.eal.lcores = "0"' \
  "eal.lcores: need at least two lcores (the main lcore runs the control thread), got '0'"
bad '.eal.lcores = "1-0"' "eal.lcores: malformed lcore list '1-0' (expected like \"0-3,6\")"
bad '.eal.file_prefix = "a/b"' "eal.file_prefix: must be 1..64 characters of A-Z a-z 0-9 _ . -, got 'a/b'"
bad '.workers = [{"lcore": 0, "rx": [{"port": "west", "queue": 0}, {"port": "east", "queue": 0}]}]' \
  "workers[0].lcore: 0 is the main lcore, which runs the control thread"
bad '.workers = [{"lcore": 1, "rx": [{"port": "west", "queue": 0}]}]' \
  "ports[1].rx_queues: queue 0 is polled by no worker"
bad '.control = {"http": {"address": "localhost"}}' \
  "control.http.address: must be an IPv4 or IPv6 address, got 'localhost'"
bad '.control.http = {"port": 70000}' "control.http.port: must be 1..65535, got 70000"
bad '.logging = {"level": "loud"}' \
  "logging.level: must be one of trace, debug, info, warn, error, critical, off, got 'loud'"
bad '.mempool = {"mbufs": 10}' "mempool.mbufs: must be 0 (sized automatically) or 1024..16777216, got 10"
# Several problems at once: every one reported, one line each.
bad '.burst_size = 99 | .ports[0].mtu = 1 | .eal.hugepages = "yes"' \
  "eal.hugepages: must be true or false, got string" "ports[0].mtu: must be 68..9600, got 1" \
  "burst_size: must be 1..64, got 99"
it_log "ok: $n_bad bad configs rejected with the exact messages"

# ---- not an object, malformed JSON (FILE:LINE:COL), unreadable file
echo '[1, 2]' >"$IT_TMP/array.json"
assert_exit 1 "a JSON array as config" -- "$SLUICE_BIN" --config "$IT_TMP/array.json" --check-config
grep -Fxq "config: must be a JSON object, got array" "$IT_TMP/err" || fail "array config: got $(cat "$IT_TMP/err")"

printf '{\n  "eal": { "lcores": "0-1" },\n  "ports": [,\n}\n' >"$IT_TMP/malformed.json"
assert_exit 1 "malformed JSON" -- "$SLUICE_BIN" --config "$IT_TMP/malformed.json" --check-config
grep -Eq "^$IT_TMP/malformed.json:3:13: malformed JSON: .*unexpected ','" "$IT_TMP/err" ||
  fail "malformed JSON: expected '$IT_TMP/malformed.json:3:13: malformed JSON: ...unexpected ','...', got: $(cat "$IT_TMP/err")"
it_log "ok: malformed JSON reported as $(head -1 "$IT_TMP/err" | cut -d' ' -f1)"

printf '{"eal": {"lcores": "0-1"},\n "ports": [\n' >"$IT_TMP/truncated.json"
assert_exit 1 "truncated JSON" -- "$SLUICE_BIN" --config "$IT_TMP/truncated.json" --check-config
grep -Eq "^$IT_TMP/truncated.json:[23]:[0-9]+: malformed JSON: " "$IT_TMP/err" ||
  fail "truncated JSON: expected FILE:LINE:COL, got: $(cat "$IT_TMP/err")"

assert_exit 1 "missing config file" -- "$SLUICE_BIN" --config "$IT_TMP/nope.json" --check-config
grep -Fxq "$IT_TMP/nope.json: cannot read the config file" "$IT_TMP/err" || fail "missing file: got $(cat "$IT_TMP/err")"

# ---- usage errors exit 2, --version / --help exit 0
assert_exit 2 "no arguments" -- "$SLUICE_BIN"
assert_contains "$(cat "$IT_TMP/err")" "--config FILE is required" "no-arguments message"
assert_exit 2 "--check-config without --config" -- "$SLUICE_BIN" --check-config
assert_exit 2 "unknown option" -- "$SLUICE_BIN" --config "$base" --bogus
assert_contains "$(cat "$IT_TMP/err")" "--bogus" "unknown-option message"
assert_exit 2 "--config without a value" -- "$SLUICE_BIN" --config
assert_exit 2 "unknown --log-level" -- "$SLUICE_BIN" --config "$base" --log-level loud --check-config
assert_exit 0 "--version" -- "$SLUICE_BIN" --version
grep -Eq '^sluice [0-9]+\.[0-9]+\.[0-9]+ \(DPDK 22\.11' "$IT_TMP/out" || fail "--version printed: $(cat "$IT_TMP/out")"
assert_exit 0 "--help" -- "$SLUICE_BIN" --help
assert_contains "$(cat "$IT_TMP/out")" "Usage: sluice --config FILE" "--help text"
assert_contains "$(cat "$IT_TMP/out")" "--check-config" "--help lists --check-config"
assert_exit 0 "-h" -- "$SLUICE_BIN" -h

# ---- EAL arguments after "--" are accepted (and ignored by --check-config)
assert_exit 0 "--check-config with EAL args" -- "$SLUICE_BIN" --config "$base" --check-config -- -l 0-1 --no-huge \
  --file-prefix itcc-x
jq -e . "$IT_TMP/out" >/dev/null || fail "--check-config with EAL args: stdout is not JSON"
assert_exit 0 "--log-level debug with --check-config" -- "$SLUICE_BIN" --config "$base" --log-level debug --check-config

echo "test_check_config: all checks passed"
