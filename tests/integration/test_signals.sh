#!/bin/bash
# Shutdown on signals: SIGINT and SIGTERM in the middle of an iperf3 run, a double
# SIGTERM, and SIGTERM at several points of start-up (before EAL init, during it, before
# the links are up). Every time: exit 0, every mbuf returned, no leak line.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init itsg 9195
require_cmd iperf3 ping

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json
write_xconnect_config "$cfg" af_packet

# Starts an iperf3 TCP run west -> east of $1 seconds in the background.
iperf_background() {
  nse timeout 60 iperf3 -s -1 -B 10.99.0.2 -p 5201 >"$IT_TMP/iperf3-server.log" 2>&1 &
  local deadline=$((SECONDS + 10))
  until nse ss -Hltn "sport = :5201" | grep -q .; do
    ((SECONDS < deadline)) || fail "iperf3 server did not start"
    sleep 0.1
  done
  nsw timeout 60 iperf3 -c 10.99.0.2 -p 5201 -t "$1" --connect-timeout 3000 >"$IT_TMP/iperf3-client.log" 2>&1 &
}

# Waits until iperf3 has moved data through Sluice, so the signal lands mid-stream.
wait_for_bulk_traffic() {
  local deadline=$((SECONDS + 15)) rx
  while ((SECONDS < deadline)); do
    rx=$(stat_value '[.ports[].rx_packets] | add')
    ((rx > 20000)) && { it_log "traffic flowing: $rx packets received so far"; return 0; }
    sleep 0.3
  done
  fail "iperf3 traffic never reached Sluice (rx_packets $rx): $(cat "$IT_TMP/iperf3-client.log")"
}

stop_iperf() {
  it_kill_ns_procs
  sleep 0.2
}

round=0
for sig in INT TERM; do
  round=$((round + 1))
  start_sluice "$cfg" "$IT_TMP/sluice-$round.log"
  wait_links_up
  wait_ping 10.99.0.2
  iperf_background 20
  wait_for_bulk_traffic
  in_use=$(stat_value '.mempools[0].in_use')
  it_log "SIG$sig with iperf3 running (mempool in use: $in_use)"
  stop_sluice "$sig"
  stop_iperf
done

# Two SIGTERMs back to back under load.
round=$((round + 1))
start_sluice "$cfg" "$IT_TMP/sluice-$round.log"
wait_ping 10.99.0.2
iperf_background 20
wait_for_bulk_traffic
kill -TERM "$SLUICE_PID"
stop_sluice TERM
stop_iperf

# SIGTERM during start-up. Waits for the handler to be installed first (before that, the
# default action would kill the process: that is the kernel, not Sluice).
handler_installed() { # pid
  local mask
  mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $mask ]] && (((16#$mask >> 14) & 1)) # SIGTERM is signal 15: bit 14
}
early_stop() { # what: "handler" | "eal" | "mempool"
  local what=$1 deadline
  round=$((round + 1))
  local eal=()
  [[ -n ${SLUICE_EAL_HUGE:-} ]] && eal+=("$SLUICE_EAL_HUGE")
  start_sluice_nowait "$cfg" "$IT_TMP/sluice-$round.log" "${eal[@]}"
  deadline=$((SECONDS + 20))
  case $what in
    handler) until handler_installed "$SLUICE_PID"; do
        ((SECONDS < deadline)) || fail "Sluice never installed its SIGTERM handler"
        sleep 0.001
      done ;;
    eal) until grep -q "EAL arguments" "$SLUICE_LOG" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "no 'EAL arguments' log line"
        sleep 0.001
      done ;;
    mempool) until grep -q "mempool .*mbufs, data room" "$SLUICE_LOG" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "no mempool log line"
        sleep 0.001
      done ;;
  esac
  it_log "SIGTERM right after start ($what)"
  stop_sluice TERM
  grep -q "signal Terminated received" "$SLUICE_LOG" || fail "log does not mention the signal"
}
early_stop handler
early_stop eal
early_stop mempool
early_stop handler

# After all that, a fresh instance still forwards.
round=$((round + 1))
start_sluice "$cfg" "$IT_TMP/sluice-$round.log"
wait_ping 10.99.0.2
ping_ok 10.99.0.2 -c 100 -i 0.01
stop_sluice TERM
echo "test_signals: all checks passed"
