#!/usr/bin/env bash
# Sluice demo: the appliance, not a wire. Two inside hosts behind a switch and one
# outside host, joined only through Sluice as router, stateful firewall and NAT:
#
#   netns demoh1 10.1.0.2 ─┐
#                          ├─ netns demosw (bridge) ─ demolan1 ─┐
#   netns demoh2 10.1.0.3 ─┘                                    ├─ Sluice on lcore 1
#                                                               │  lan 10.1.0.1/24   (inside)
#   netns demoo 203.0.113.2 ──────────────────────── demowan1 ──┘  wan 203.0.113.1/24 (outside)
#
# pipeline [parse, conntrack, nat, route] on both ports; firewall: inside -> outside
# accepted, outside -> inside dropped; NAT: the inside masqueraded behind 203.0.113.1.
#
# Installs what is missing, prepares hugepages, builds, starts Sluice on net_af_packet,
# then shows: routing and NAT (ping, what the outside host sees), the firewall (an inside
# connection answered, an outside one dropped), a packet trace of that dropped packet,
# live stats with sluicectl while iperf3 runs, the flows, and the clean stop. Everything
# it creates is removed on exit, also on Ctrl-C.
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
readonly IPERF_SECONDS=5
readonly NAMESPACES=("${PREFIX}sw" "${PREFIX}h1" "${PREFIX}h2" "${PREFIX}o")
SLUICECTL=${SLUICECTL_BIN:-$SLUICE_BUILD/app/sluicectl}

usage() {
  cat <<EOF
Usage: tools/demo.sh [--keep] [--no-build]
       tools/demo.sh --stop

Builds Sluice and sluicectl, puts two inside hosts (${PREFIX}h1 10.1.0.2, ${PREFIX}h2
10.1.0.3) and an outside host (${PREFIX}o 203.0.113.2) behind it as router, stateful
firewall and NAT, and shows each at work: ping and what the outside sees, an inside
connection answered and an outside one dropped, the trace of that dropped packet,
live stats during iperf3, the flows; then stops it with SIGTERM and shows the clean
shutdown.

Options:
  --keep      leave Sluice and the namespaces running; prints how to look at them
  --no-build  use the existing build instead of running it
  --stop      stop a demo left running by --keep and remove everything it created
  -h, --help  this text

Needs root (not sudo: run it as root). Installs missing Debian packages with apt-get.
Re-running is safe: leftovers of an earlier run are removed first.
EOF
}

keep=false
build=true
stop_only=false
while (($#)); do
  case $1 in
    --keep) keep=true ;;
    --no-build) build=false ;;
    --stop) stop_only=true ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

leave_running=false
sluice_pid=""
bg_pids=()

section() { printf '\n\033[1;36m── %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
in_ns() { local ns=$1; shift; ip netns exec "$PREFIX$ns" "$@"; }
ctl() { printf '\033[2m$ sluicectl %s\033[0m\n' "$*"; "$SLUICECTL" --address "$HTTP" "$@"; }

is_our_sluice() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--config $CONFIG"
}

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

destroy_topology() {
  local ns pid
  for ns in "${NAMESPACES[@]}"; do
    ip netns list 2>/dev/null | grep -qw "$ns" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "${PREFIX}lan1" 2>/dev/null || true
  ip link del "${PREFIX}wan1" 2>/dev/null || true
}

clean_leftovers() {
  local old_pid=""
  [[ -f $PIDFILE ]] && old_pid=$(cat "$PIDFILE")
  if is_our_sluice "$old_pid"; then
    log "stopping the Sluice an earlier demo left running (pid $old_pid)"
    stop_sluice "$old_pid"
  fi
  destroy_topology
  rm -rf "$STATE"
}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  $leave_running && exit "$rc"
  local pid
  for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null; done
  if [[ -n $sluice_pid ]] && is_our_sluice "$sluice_pid"; then
    log "stopping Sluice (pid $sluice_pid)"
    stop_sluice "$sluice_pid"
  fi
  destroy_topology
  if ((rc != 0)) && [[ -f $LOG ]]; then
    warn "the demo failed (exit $rc); last lines of the Sluice log:"
    tail -n 20 "$LOG" >&2
  fi
  rm -rf "$STATE"
  exit "$rc"
}

# A veth from netns $1 (dev $2) to netns $3 (dev $4); "" is the root namespace.
link() { # ns1 dev1 ns2 dev2
  local a=(ip) b=(ip)
  [[ -n $1 ]] && a+=(-n "$PREFIX$1")
  [[ -n $3 ]] && b+=(-n "$PREFIX$3")
  ip link add "${PREFIX}tmpa" type veth peer name "${PREFIX}tmpb"
  [[ -z $1 ]] || ip link set "${PREFIX}tmpa" netns "$PREFIX$1"
  [[ -z $3 ]] || ip link set "${PREFIX}tmpb" netns "$PREFIX$3"
  "${a[@]}" link set "${PREFIX}tmpa" name "$2"
  "${b[@]}" link set "${PREFIX}tmpb" name "$4"
  "${a[@]}" link set "$2" up
  "${b[@]}" link set "$4" up
  veth_offloads_off "${1:+$PREFIX$1}" "$2"
  veth_offloads_off "${3:+$PREFIX$3}" "$4"
}

build_topology() {
  local ns
  for ns in "${NAMESPACES[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  # The inside switch: a bridge (no STP delay) joining h1, h2 and Sluice's lan port.
  ip -n "${PREFIX}sw" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "${PREFIX}sw" link set br0 up
  link h1 eth0 sw p1
  link h2 eth0 sw p2
  link sw l0 "" "${PREFIX}lan1"
  for ns in p1 p2 l0; do ip -n "${PREFIX}sw" link set "$ns" master br0; done
  link o eth0 "" "${PREFIX}wan1"
  # The root-side ends are Sluice's: no IPv6 of their own, no forwarding.
  for ns in lan1 wan1; do sysctl -qw "net.ipv6.conf.$PREFIX$ns.disable_ipv6=1"; done
  ip -n "${PREFIX}h1" addr add 10.1.0.2/24 dev eth0
  ip -n "${PREFIX}h2" addr add 10.1.0.3/24 dev eth0
  ip -n "${PREFIX}h1" route add default via 10.1.0.1
  ip -n "${PREFIX}h2" route add default via 10.1.0.1
  ip -n "${PREFIX}o" addr add 203.0.113.2/24 dev eth0
  # The outside knows the inside prefix is behind Sluice, and tries to reach it.
  ip -n "${PREFIX}o" route add 10.1.0.0/24 via 203.0.113.1
}

write_config() { # hugepages(true|false)
  cat >"$CONFIG" <<EOF
{
  "eal": { "lcores": "0-1", "main_lcore": 0, "memory_mb": 256, "hugepages": $1, "file_prefix": "demo" },
  "ports": [
    { "name": "lan", "device": "net_af_packet0", "devargs": "iface=${PREFIX}lan1", "zone": "inside",
      "ipv4": ["10.1.0.1/24"], "pipeline": ["parse", "conntrack", "nat", "route"] },
    { "name": "wan", "device": "net_af_packet1", "devargs": "iface=${PREFIX}wan1", "zone": "outside",
      "ipv4": ["203.0.113.1/24"], "pipeline": ["parse", "conntrack", "nat", "route"] }
  ],
  "conntrack": { "capacity": 16384, "capacity_ipv6": 1024 },
  "firewall": {
    "default_policy": "drop",
    "policies": [
      { "from": "inside", "to": "outside", "action": "accept" },
      { "from": "outside", "to": "inside", "action": "drop" }
    ],
    "rules": []
  },
  "nat": {
    "capacity": 16384,
    "snat": [ { "name": "lan-out", "from": "inside", "out_port": "wan", "src": "10.1.0.0/24", "masquerade": true } ]
  },
  "workers": "auto",
  "control": { "http": { "address": "$HTTP_ADDR", "port": $HTTP_PORT }, "telemetry": true },
  "logging": { "level": "info" }
}
EOF
}

wait_listening() { # ns port
  local i
  for ((i = 0; i < 50; i++)); do
    in_ns "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.1
  done
  die "nothing listens on port $2 in netns $PREFIX$1"
}

# ---------------------------------------------------------------------------------------

require_root
if $stop_only; then
  clean_leftovers
  log "demo stopped and cleaned up"
  exit 0
fi

section "1/8 packages, hugepages, build"
ensure_packages jq
ensure_hugepages 512
if $build || [[ ! -x $SLUICE_BIN || ! -x $SLUICECTL ]]; then
  # shellcheck disable=SC2119 # no extra meson options
  build_sluice
else
  log "using the existing build in $SLUICE_BUILD (--no-build)"
fi
[[ -x $SLUICECTL ]] || die "no sluicectl at $SLUICECTL after the build"
"$SLUICE_BIN" --version

if curl -fsS -m 1 "http://$HTTP/health" >/dev/null 2>&1 && ! is_our_sluice "$(cat "$PIDFILE" 2>/dev/null)"; then
  die "something else already answers on http://$HTTP; stop it first"
fi
clean_leftovers
mkdir -p "$STATE"
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "2/8 topology and Sluice (router, stateful firewall, NAT)"
build_topology
hugepages=true
[[ $SLUICE_EAL_HUGE == --no-huge ]] && hugepages=false
write_config "$hugepages"
log "inside: ${PREFIX}h1 10.1.0.2, ${PREFIX}h2 10.1.0.3 (switch ${PREFIX}sw) -- lan =[Sluice]= wan -- ${PREFIX}o 203.0.113.2"
setsid "$SLUICE_BIN" --config "$CONFIG" >"$LOG" 2>&1 </dev/null &
sluice_pid=$!
echo "$sluice_pid" >"$PIDFILE"
wait_for_http "$HTTP" "$sluice_pid" 30 || die "Sluice did not answer http://$HTTP/health within 30 s"
grep -E 'port (lan|wan) \(|router:|conntrack:|nat:|running' "$LOG" | sed 's/^[^ ]* [^ ]* /    /'
ctl status

section "3/8 routing and NAT: the inside pings the outside, which sees only 203.0.113.1"
in_ns o timeout 10 tcpdump -l -n -c 4 -i eth0 icmp >"$STATE/outside.txt" 2>/dev/null &
tcpdump_pid=$!
bg_pids+=("$tcpdump_pid")
sleep 1
run ip netns exec "${PREFIX}h1" ping -c 2 -i 0.2 203.0.113.2 | tail -n 2
run ip netns exec "${PREFIX}h2" ping -c 2 -i 0.2 203.0.113.2 | tail -n 2
wait "$tcpdump_pid" 2>/dev/null || true
log "what the outside host saw (tcpdump on ${PREFIX}o):"
sed 's/^/    /' "$STATE/outside.txt"

section "4/8 stateful firewall: an inside connection is answered, an outside one is dropped"
mkdir -p "$STATE/www" && echo "hello from the outside" >"$STATE/www/index.html"
in_ns o "$SLUICE_PY" -m http.server 80 --bind 203.0.113.2 --directory "$STATE/www" >/dev/null 2>&1 &
bg_pids+=($!)
in_ns h1 "$SLUICE_PY" -m http.server 8000 --bind 10.1.0.2 --directory "$STATE/www" >/dev/null 2>&1 &
bg_pids+=($!)
wait_listening o 80
wait_listening h1 8000
run ip netns exec "${PREFIX}h1" curl -sS -m 5 http://203.0.113.2/
printf '\033[2m$ ip netns exec %so curl -m 2 http://10.1.0.2:8000/\033[0m\n' "$PREFIX"
if ip netns exec "${PREFIX}o" curl -sS -m 2 -o /dev/null http://10.1.0.2:8000/ 2>"$STATE/curl.err"; then
  die "the outside reached an inside server: the firewall should have dropped it"
fi
log "no answer ($(tr -d '\n' <"$STATE/curl.err")): outside -> inside is dropped"

section "5/8 why was that packet dropped? sluicectl trace --drops"
"$SLUICECTL" --address "$HTTP" trace --port wan --drops --count 1 --wait 10 >"$STATE/trace.txt" 2>&1 &
trace_pid=$!
sleep 0.5
ip netns exec "${PREFIX}o" curl -sS -m 2 http://10.1.0.2:8000/ >/dev/null 2>&1 || true
wait "$trace_pid" || die "sluicectl trace failed: $(cat "$STATE/trace.txt")"
printf '\033[2m$ sluicectl trace --port wan --drops --count 1\033[0m\n'
cat "$STATE/trace.txt"

section "6/8 live stats while iperf3 runs inside -> outside through NAT"
in_ns o iperf3 -s -1 -B 203.0.113.2 >/dev/null 2>&1 &
bg_pids+=($!)
wait_listening o 5201
in_ns h1 iperf3 -c 203.0.113.2 -t "$IPERF_SECONDS" -f m >"$STATE/iperf3.txt" 2>&1 &
iperf_client=$!
sleep 1
ctl stats --watch --count 3 --interval 1
wait "$iperf_client" || warn "iperf3 failed: $(tail -n 3 "$STATE/iperf3.txt")"
grep -E 'sender|receiver' "$STATE/iperf3.txt" | sed 's/^/    /'

section "7/8 the flows, the NAT and the ports"
ctl flows --limit 8
ctl nat
ctl ports

if $keep; then
  leave_running=true
  section "8/8 left running (--keep)"
  cat <<EOF
Sluice (pid $sluice_pid) is still routing between the inside and ${PREFIX}o.

  $SLUICECTL --address $HTTP stats --watch          # live rates (Ctrl-C to quit)
  $SLUICECTL --address $HTTP trace --port lan --count 5
  ip netns exec ${PREFIX}h1 ping 203.0.113.2           # more traffic
  curl -s http://$HTTP/metrics                      # Prometheus
  tail -f $LOG

Stop it and remove everything: tools/demo.sh --stop
EOF
  exit 0
fi

section "8/8 SIGTERM and the shutdown check"
log "kill -TERM $sluice_pid"
kill -TERM "$sluice_pid"
set +e
wait "$sluice_pid"
status=$?
set -e
sluice_pid=""
grep -E 'signal|mempool .*(returned|not returned)|shutdown' "$LOG" | sed 's/^[^ ]* [^ ]* /    /'
((status == 0)) || die "Sluice exited with status $status (see $LOG)"
log "Sluice exited with status 0: every mbuf came back to its pool"
log "demo complete; removing the namespaces"
