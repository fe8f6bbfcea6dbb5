#!/bin/bash
# EAL arguments after "--" replace the config's values for the same option: file prefix
# (telemetry socket directory moves), lcores, --no-huge. Bad EAL arguments end the
# process with exit 1 and a clear error, promptly; so does a file prefix another
# Sluice holds, naming it and its holder, while that one runs on.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init itel 9196
require_cmd ping

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json
write_xconnect_config "$cfg" af_packet
override=${IT_FP}-x
it_on_exit "rm -rf /var/run/dpdk/$override /dev/hugepages/${override}map_*"
rm -rf "/var/run/dpdk/$IT_FP" "/var/run/dpdk/$override"

# ---- --file-prefix and -l from the command line win over the config
start_sluice "$cfg" "$IT_TMP/sluice-prefix.log" --file-prefix "$override" -l 0-1
eal_line=$(grep -m1 "EAL arguments:" "$SLUICE_LOG") || fail "no 'EAL arguments' line in the log"
it_log "$eal_line"
[[ $eal_line == *"--file-prefix $override"* ]] || fail "EAL did not get --file-prefix $override: $eal_line"
[[ $eal_line != *"--file-prefix $IT_FP "* ]] || fail "the config's file prefix was passed as well: $eal_line"
assert_eq "$(grep -o -- ' -l ' <<<"$eal_line" | wc -l)" 1 "number of -l options given to EAL"
[[ -S /var/run/dpdk/$override/dpdk_telemetry.v2 ]] ||
  fail "no telemetry socket in /var/run/dpdk/$override: $(ls -la "/var/run/dpdk/$override" 2>&1)"
[[ ! -e /var/run/dpdk/$IT_FP ]] || fail "/var/run/dpdk/$IT_FP exists although the prefix was overridden"
it_log "ok: runtime directory /var/run/dpdk/$override, none for the config's prefix"
telemetry_ok "$override" /sluice/stats /eal/params
assert_contains "${TELEMETRY_REPLIES[1]}" "$override" "telemetry /eal/params"
wait_ping 10.99.0.2
ping_ok 10.99.0.2 -c 50 -i 0.01
stop_sluice TERM

# ---- --no-huge from the command line (config says hugepages: true)
start_sluice "$cfg" "$IT_TMP/sluice-nohuge.log" --no-huge
grep -m1 "EAL arguments:" "$SLUICE_LOG" | grep -q -- "--no-huge" || fail "--no-huge not passed to EAL"
wait_ping 10.99.0.2
ping_ok 10.99.0.2 -c 50 -i 0.01
stop_sluice TERM

# ---- bad EAL arguments: exit 1, a clear message, no hang
bad_eal() { # expected-log-text what -- eal args...
  local want=$1 what=$2 rc=0 log
  shift 2
  [[ ${1:-} == -- ]] && shift
  log=$IT_TMP/bad-eal-$(tr -c 'a-z0-9' '_' <<<"$what").log
  timeout 60 "$SLUICE_BIN" --config "$cfg" -- ${SLUICE_EAL_HUGE:+"$SLUICE_EAL_HUGE"} "$@" >"$log" 2>&1 || rc=$?
  ((rc != 124)) || fail "$what: Sluice hung (killed after 60 s): $(tail -5 "$log")"
  ((rc == 1)) || fail "$what: expected exit 1, got $rc: $(tail -10 "$log")"
  grep -q -- "$want" "$log" || fail "$what: expected '$want' in the output, got: $(tail -10 "$log")"
  ! grep -q "http: serving" "$log" || fail "$what: the control plane started anyway"
  it_log "ok: $what: exit 1, '$(grep -m1 -- "$want" "$log" | cut -c1-160)'"
}
bad_eal "EAL initialisation failed" "unknown EAL option" -- --no-such-eal-option
bad_eal "CPU(s) [0-9]*-200 are not usable here: this host lets Sluice run on" "lcores the machine lacks" -- -l 0-200
bad_eal "EAL initialisation failed" "malformed lcore list" -- -l 1-0
bad_eal "workers: lcore 1 is not enabled in EAL" "worker lcore left out by -l 0" -- -l 0
bad_eal "workers: lcore 1 is EAL's main lcore" "--main-lcore 1" -- --main-lcore 1
bad_eal "Unable to parse device .net_bogus0." "an unknown vdev driver" -- --vdev net_bogus0

# The bad runs left nothing behind: a normal start still works.
start_sluice "$cfg" "$IT_TMP/sluice-after.log"
wait_ping 10.99.0.2

# ---- a second Sluice with the same file prefix: the cause and the fix, not "Success"
bad_eal "EAL file prefix '$IT_FP' is in use: process $SLUICE_PID holds /var/run/dpdk/$IT_FP/config" \
  "second instance, same prefix"
second_log=$IT_TMP/bad-eal-$(tr -c 'a-z0-9' '_' <<<"second instance, same prefix").log
! grep -q "Success" "$second_log" || fail "the second instance's error says 'Success': $(grep Success "$second_log")"
grep -q "another eal.file_prefix" "$second_log" || fail "the error does not say how to fix it: $(tail -3 "$second_log")"
# The first one never noticed.
kill -0 "$SLUICE_PID" 2>/dev/null || fail "the first Sluice stopped"
ping_ok 10.99.0.2 -c 50 -i 0.01
stop_sluice TERM
echo "test_eal_override: all checks passed"
