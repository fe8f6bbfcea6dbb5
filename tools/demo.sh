#!/usr/bin/env bash
# Sluice demo: two network namespaces that can only reach each other through Sluice.
#
#   netns demow: demow0 10.99.0.1 ──veth── demow1 ┐
#                                                 ├─ Sluice (parse -> xconnect) on lcore 1
#   netns demoe: demoe0 10.99.0.2 ──veth── demoe1 ┘
#
# Installs what is missing, prepares hugepages, builds, starts Sluice on net_af_packet
# (or net_tap with --tap), runs ping and iperf3 across it, prints what Sluice counted
# (HTTP /stats, /metrics, DPDK telemetry), then stops it with SIGTERM and shows the
# clean shutdown. Everything it creates is removed on exit, also on Ctrl-C.
#
# Uses only its own names: netns/interfaces demo*, EAL file prefix "demo", HTTP port
# 9181 (tests use 9180 and 9190+), state in /run/sluice-demo.

set -euo pipefail

# shellcheck source=tools/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly PREFIX=demo
readonly HTTP_ADDR=127.0.0.1
readonly HTTP_PORT=9181
readonly HTTP=$HTTP_ADDR:$HTTP_PORT
readonly STATE=${SLUICE_DEMO_DIR:-/run/sluice-demo}
readonly CONFIG=$STATE/sluice.json
readonly LOG=$STATE/sluice.log
readonly PIDFILE=$STATE/sluice.pid
readonly PING_COUNT=200
readonly IPERF_SECONDS=5

usage() {
  cat <<EOF
Usage: tools/demo.sh [--tap] [--keep] [--no-build]
       tools/demo.sh --stop

Builds Sluice, joins two network namespaces (${PREFIX}w 10.99.0.1, ${PREFIX}e 10.99.0.2)
through it, runs ping ($PING_COUNT packets) and iperf3 TCP (${IPERF_SECONDS} s), prints
Sluice's counters, then stops it with SIGTERM and shows the clean shutdown.

Options:
  --tap       use net_tap ports (Sluice creates the taps) instead of net_af_packet on veths
  --keep      leave Sluice and the namespaces running; prints how to query and stop them
  --no-build  use the existing $SLUICE_BIN instead of running the build
  --stop      stop a demo left running by --keep and remove everything it created
  -h, --help  this text

Needs root. Installs missing Debian packages with apt-get. Re-running is safe: leftovers
of an earlier run are removed first.
EOF
}

use_tap=false
keep=false
build=true
stop_only=false
while (($#)); do
  case $1 in
    --tap) use_tap=true ;;
    --keep) keep=true ;;
    --no-build) build=false ;;
    --stop) stop_only=true ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

# Set once the demo finished and --keep asked to leave it running.
leave_running=false
sluice_pid=""
iperf_pid=""

section() { printf '\n\033[1;36m── %s\033[0m\n' "$*"; }

# Pings from netns ${PREFIX}w and prints ping's two summary lines.
ping_summary() { # label ping-arguments...
  local label=$1 out
  shift
  out=$(ip netns exec "${PREFIX}w" ping -q -i 0.01 -W 1 "$@" 2>&1) || warn "$label ping lost packets"
  tail -n 2 <<<"$out" | sed "s/^/$label  /"
}

# True if $1 is a running sluice started with our config file.
is_our_sluice() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--config $CONFIG"
}

# Sends SIGTERM to our Sluice and waits for it; SIGKILL after 15 s.
stop_sluice() {
  local pid=$1 i
  is_our_sluice "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    is_our_sluice "$pid" || return 0
    sleep 0.1
  done
  warn "sluice (pid $pid) ignored SIGTERM for 15 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# Processes still running inside the demo namespaces (an iperf3 server, say) would
# outlive `ip netns del`; they were started by this script, so end them by pid.
kill_netns_processes() {
  local ns pid
  for ns in "${PREFIX}w" "${PREFIX}e"; do
    ip netns list 2>/dev/null | grep -qw "$ns" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill "$pid" 2>/dev/null || true
    done
  done
}

# Removes everything an earlier (aborted or --keep) run left behind.
clean_leftovers() {
  local old_pid=""
  [[ -f $PIDFILE ]] && old_pid=$(cat "$PIDFILE")
  if is_our_sluice "$old_pid"; then
    log "stopping the Sluice an earlier demo left running (pid $old_pid)"
    stop_sluice "$old_pid"
  fi
  kill_netns_processes
  topo_destroy "$PREFIX"
  rm -rf "$STATE"
}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  set +e  # clean up as much as possible, whatever fails
  if $leave_running; then
    exit "$rc"
  fi
  [[ -n $iperf_pid ]] && kill "$iperf_pid" 2>/dev/null
  if [[ -n $sluice_pid ]] && is_our_sluice "$sluice_pid"; then
    log "stopping Sluice (pid $sluice_pid)"
    stop_sluice "$sluice_pid"
  fi
  kill_netns_processes
  topo_destroy "$PREFIX"
  if ((rc != 0)) && [[ -f $LOG ]]; then
    warn "the demo failed (exit $rc); last lines of the Sluice log:"
    tail -n 20 "$LOG" >&2
  fi
  rm -rf "$STATE"
  exit "$rc"
}

# The demo's configuration: the defaults of docs/configuration.md, except for the
# names that keep it apart from the tests (file prefix, HTTP port).
write_config() { # device0 iface0 device1 iface1 hugepages(true|false)
  cat >"$CONFIG" <<EOF
{
  "eal": { "lcores": "0-1", "main_lcore": 0, "memory_mb": 256, "hugepages": $5,
           "file_prefix": "demo" },
  "ports": [
    { "name": "west", "device": "$1", "devargs": "iface=$2",
      "pipeline": ["parse", { "stage": "xconnect", "peer": "east" }] },
    { "name": "east", "device": "$3", "devargs": "iface=$4",
      "pipeline": ["parse", { "stage": "xconnect", "peer": "west" }] }
  ],
  "workers": "auto",
  "burst_size": 32,
  "control": { "http": { "enabled": true, "address": "$HTTP_ADDR", "port": $HTTP_PORT },
               "telemetry": true },
  "logging": { "level": "info" }
}
EOF
}

start_sluice() {
  # setsid: Ctrl-C in the terminal reaches this script, whose trap stops Sluice with
  # SIGTERM, and a --keep'd Sluice outlives the terminal.
  setsid "$SLUICE_BIN" --config "$CONFIG" >"$LOG" 2>&1 </dev/null &
  sluice_pid=$!
  echo "$sluice_pid" >"$PIDFILE"
}

# ---------------------------------------------------------------------------------------

require_root
if $stop_only; then
  clean_leftovers
  log "demo stopped and cleaned up"
  exit 0
fi

section "1/7 packages, hugepages, build"
ensure_packages jq
ensure_hugepages 512
if $build || [[ ! -x $SLUICE_BIN ]]; then
  # shellcheck disable=SC2119 # no extra meson options
  build_sluice
else
  log "using the existing $SLUICE_BIN (--no-build)"
fi
"$SLUICE_BIN" --version

if curl -fsS -m 1 "http://$HTTP/health" >/dev/null 2>&1 && ! is_our_sluice "$(cat "$PIDFILE" 2>/dev/null)"; then
  die "something else already answers on http://$HTTP; stop it first"
fi
clean_leftovers
mkdir -p "$STATE"
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

hugepages=true
[[ $SLUICE_EAL_HUGE == --no-huge ]] && hugepages=false

section "2/7 topology and Sluice"
if $use_tap; then
  write_config net_tap0 "${PREFIX}w0" net_tap1 "${PREFIX}e0" "$hugepages"
  log "starting Sluice on net_tap; it creates taps ${PREFIX}w0/${PREFIX}e0, which move into netns ${PREFIX}w/${PREFIX}e"
  start_sluice
  topo_tap_attach "$PREFIX" 30 || die "the taps never appeared (see $LOG)"
  log "note: net_tap asks the root namespace for its link, so it reports \"down\" once the"
  log "tap moves into a netns; forwarding does not depend on it (drivers-config/net_tap.md)"
else
  topo_veth_create "$PREFIX"
  write_config net_af_packet0 "${PREFIX}w1" net_af_packet1 "${PREFIX}e1" "$hugepages"
  log "netns ${PREFIX}w (10.99.0.1) -- ${PREFIX}w1 =[Sluice]= ${PREFIX}e1 -- netns ${PREFIX}e (10.99.0.2)"
  log "starting Sluice on net_af_packet"
  start_sluice
fi
wait_for_http "$HTTP" "$sluice_pid" 30 || die "Sluice did not answer http://$HTTP/health within 30 s"
log "Sluice is up (pid $sluice_pid); config $CONFIG, log $LOG"
grep -E 'EAL arguments|mempool|port |worker|running' "$LOG" | sed 's/^/    /'

section "3/7 ping: $PING_COUNT packets 10.99.0.1 -> 10.99.0.2, then IPv6"
ping_summary IPv4 -c "$PING_COUNT" 10.99.0.2
ping_summary IPv6 -6 -c 20 fd00:99::2

section "4/7 iperf3: TCP for $IPERF_SECONDS s, ${PREFIX}w -> ${PREFIX}e"
ip netns exec "${PREFIX}e" iperf3 -s -1 -B 10.99.0.2 >/dev/null 2>&1 &
iperf_pid=$!
for _ in $(seq 50); do
  ip netns exec "${PREFIX}e" ss -Hltn 'sport = :5201' | grep -q . && break
  sleep 0.1
done
ip netns exec "${PREFIX}w" iperf3 -c 10.99.0.2 -t "$IPERF_SECONDS" -f m >"$STATE/iperf3.txt" 2>&1 ||
  warn "iperf3 failed"
grep -E 'sender|receiver|error' "$STATE/iperf3.txt" || cat "$STATE/iperf3.txt"
wait "$iperf_pid" 2>/dev/null || true
iperf_pid=""
sleep 0.5  # let the last ACKs through before reading counters

section "5/7 what Sluice counted (GET http://$HTTP/stats)"
curl -fsS "http://$HTTP/stats" >"$STATE/stats.json"
jq -r '
  def pad($n): tostring | if length >= $n then . else . + (" " * ($n - length)) end;
  def lpad($n): tostring | if length >= $n then . else (" " * ($n - length)) + . end;
  "Ports",
  "  " + ("name" | pad(6)) + ("device" | pad(16)) + ("link" | pad(6)) + ("rx pkts" | lpad(12)) + ("rx bytes" | lpad(15))
    + ("tx pkts" | lpad(12)) + ("tx bytes" | lpad(15)) + ("missed" | lpad(8)) + ("errors" | lpad(8)),
  (.ports[] | "  " + (.name | pad(6)) + (.device | pad(16)) + ((if .link_up then "up" else "down" end) | pad(6))
    + (.rx_packets | lpad(12)) + (.rx_bytes | lpad(15)) + (.tx_packets | lpad(12)) + (.tx_bytes | lpad(15))
    + (.rx_missed | lpad(8)) + ((.rx_errors + .tx_errors) | lpad(8))),
  "",
  "Worker lcores",
  "  " + ("lcore" | pad(7)) + ("polls" | lpad(14)) + ("busy polls" | lpad(12)) + ("rx pkts" | lpad(12))
    + ("tx pkts" | lpad(12)) + ("pkts/busy poll" | lpad(16)) + ("cycles/pkt" | lpad(12)),
  (.lcores[] | "  " + (.lcore | pad(7)) + (.polls | lpad(14)) + (.busy_polls | lpad(12)) + (.rx_packets | lpad(12))
    + (.tx_packets | lpad(12))
    + ((if .busy_polls > 0 then (.rx_packets * 10 / .busy_polls | floor) / 10 else 0 end) | lpad(16))
    + (.cycles_per_packet | floor | lpad(12))),
  "",
  "Pipeline stages, summed over workers (a tx row counts what left through that port)",
  "  " + ("port" | pad(6)) + ("stage" | pad(10)) + ("in" | lpad(12)) + ("out" | lpad(12)) + ("drops" | lpad(8)) + "  reasons",
  (.stages[] | "  " + (.port | pad(6)) + (.stage | pad(10)) + (.packets_in | lpad(12)) + (.packets_out | lpad(12))
    + (.drops_total | lpad(8)) + "  " + ([.drops | to_entries[] | "\(.key)=\(.value)"] | join(" "))),
  "",
  "Parsed (parse stage counters)",
  (.stages[] | select(.counters) | "  " + (.port | pad(6))
    + ([.counters | to_entries[] | select(.value > 0) | "\(.key)=\(.value)"] | join(" "))),
  "",
  "Mempools",
  (.mempools[] | "  \(.name): \(.size) mbufs, \(.in_use) in use, \(.free) free (socket \(.socket))"),
  "",
  "Conservation: rx \([.ports[].rx_packets] | add) = tx \([.ports[].tx_packets] | add) + drops \(.drops_total)"
    + (if ([.ports[].rx_packets] | add) == ([.ports[].tx_packets] | add) + .drops_total then "  ✓" else "  (in flight?)" end)
' "$STATE/stats.json"

section "6/7 DPDK telemetry and Prometheus"
log "echo /sluice/stats | dpdk-telemetry.py -f demo"
echo /sluice/stats | dpdk-telemetry.py -f demo |
  jq -c '."/sluice/stats" | with_entries(select((.key | startswith("drop_") | not) or .value > 0))' ||
  warn "telemetry query failed"
log "curl -s http://$HTTP/metrics (a few of its lines)"
curl -fsS "http://$HTTP/metrics" |
  grep -E '^sluice_(port_(rx|tx)_packets_total|lcore_rx_packets_total|stage_packets_out_total\{port="west"|drops_total\{reason="tx_queue_full"|mempool_in_use)' || true

if $keep; then
  leave_running=true
  section "7/7 left running (--keep)"
  cat <<EOF
Sluice (pid $sluice_pid) is still forwarding between netns ${PREFIX}w and ${PREFIX}e.

  curl -s http://$HTTP/stats | jq .             # counters as JSON
  curl -s http://$HTTP/metrics                  # Prometheus
  echo /sluice/ports | dpdk-telemetry.py -f demo  # DPDK telemetry (also /sluice/stats, /sluice/lcores)
  ip netns exec ${PREFIX}w ping 10.99.0.2               # more traffic
  tail -f $LOG

Stop it and remove everything: tools/demo.sh --stop
EOF
  exit 0
fi

section "7/7 SIGTERM and the shutdown check"
log "kill -TERM $sluice_pid"
kill -TERM "$sluice_pid"
set +e
wait "$sluice_pid"
status=$?
set -e
sluice_pid=""
grep -E 'signal|mempool .*(returned|not returned)|shutdown' "$LOG" | sed 's/^/    /'
if ((status == 0)); then
  log "Sluice exited with status 0: every mbuf came back to its pool"
else
  die "Sluice exited with status $status (see $LOG)"
fi
log "demo complete; removing the namespaces"
