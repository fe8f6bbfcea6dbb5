# Shared by tests/integration/test_*.sh. Source tools/lib/common.sh first, then this,
# then call it_init. Every wait here is bounded; every failure exits non-zero with a
# message saying what was expected and what was seen.
#
#   it_init PREFIX HTTP_PORT   netns prefix (<= 4 chars), unique HTTP port (9190+)
#
# After it_init:
#   IT_NS      netns/interface prefix: netns ${IT_NS}w/${IT_NS}e, veths ${IT_NS}w1/${IT_NS}e1
#   IT_PORT    HTTP port; IT_HTTP=127.0.0.1:$IT_PORT
#   IT_FP      EAL file prefix (sl-it-PREFIX)
#   IT_TMP     per-run temp dir (removed on exit unless IT_KEEP=1)
#   SLUICE_PID the running Sluice, set by start_sluice
#
# A test may add its own cleanup with it_on_exit 'command'.

IT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SLUICE_PID=""
SLUICE_LOG=""
IT_EXIT_HOOKS=()

# ---------------------------------------------------------------- reporting

it_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

fail() {
  printf '\nFAIL: %s\n' "$*" >&2
  if [[ -n ${SLUICE_LOG:-} && -f $SLUICE_LOG ]]; then
    printf -- '--- last 30 lines of %s ---\n' "$SLUICE_LOG" >&2
    tail -n 30 "$SLUICE_LOG" >&2 || true
    printf -- '---\n' >&2
  fi
  exit 1
}

assert_eq() { # actual expected what
  [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"
  it_log "ok: $3 = $1"
}

assert_ne() { # actual unexpected what
  [[ "$1" != "$2" ]] || fail "$3: expected anything but '$2'"
}

assert_ge() { # actual minimum what
  [[ "$1" =~ ^-?[0-9]+$ && "$2" =~ ^-?[0-9]+$ ]] || fail "$3: not integers: '$1' >= '$2'"
  (($1 >= $2)) || fail "$3: expected >= $2, got $1"
  it_log "ok: $3 = $1 (>= $2)"
}

assert_gt() { # actual minimum what
  [[ "$1" =~ ^-?[0-9]+$ && "$2" =~ ^-?[0-9]+$ ]] || fail "$3: not integers: '$1' > '$2'"
  (($1 > $2)) || fail "$3: expected > $2, got $1"
  it_log "ok: $3 = $1 (> $2)"
}

assert_contains() { # haystack needle what
  [[ "$1" == *"$2"* ]] || fail "$3: expected to contain '$2', got: $(printf '%s' "$1" | head -c 2000)"
  it_log "ok: $3 contains '$2'"
}

# Runs "$@" and asserts its exit status; stdout/stderr land in $IT_TMP/out, $IT_TMP/err.
assert_exit() { # expected_status what -- command...
  local want=$1 what=$2 rc=0
  shift 2
  [[ ${1:-} == -- ]] && shift
  timeout 60 "$@" >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
  ((rc == want)) || fail "$what: expected exit $want, got $rc (command: $*)
stdout: $(head -c 1500 "$IT_TMP/out")
stderr: $(head -c 1500 "$IT_TMP/err")"
  it_log "ok: $what exits $rc"
}

require_cmd() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || fail "required command '$c' is not installed"; done
}

# ---------------------------------------------------------------- setup / teardown

it_on_exit() { IT_EXIT_HOOKS+=("$1"); }

it_cleanup() {
  local rc=$? hook
  trap - EXIT INT TERM
  set +e
  for hook in "${IT_EXIT_HOOKS[@]}"; do eval "$hook" >/dev/null 2>&1; done
  if [[ -n $SLUICE_PID ]] && kill -0 "$SLUICE_PID" 2>/dev/null; then
    kill -TERM "$SLUICE_PID" 2>/dev/null
    timeout 20 tail --pid="$SLUICE_PID" -f /dev/null 2>/dev/null || kill -KILL "$SLUICE_PID" 2>/dev/null
    wait "$SLUICE_PID" 2>/dev/null
  fi
  it_kill_ns_procs
  topo_destroy "$IT_NS"
  [[ -n ${IT_FP:-} ]] && rm -rf "/var/run/dpdk/$IT_FP" "/dev/hugepages/${IT_FP}map_"* 2>/dev/null
  if [[ ${IT_KEEP:-0} != 1 && -n ${IT_TMP:-} ]]; then rm -rf "$IT_TMP"; fi
  exit "$rc"
}

# Kills whatever still runs inside this test's namespaces (iperf3 servers, receivers).
it_kill_ns_procs() {
  local side pid
  for side in w e; do
    ip netns list 2>/dev/null | grep -qw "${IT_NS}${side}" || continue
    for pid in $(ip netns pids "${IT_NS}${side}" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
}

it_init() { # prefix http_port
  IT_NS=$1
  IT_PORT=$2
  ((${#IT_NS} <= 4)) || fail "netns prefix '$IT_NS' longer than 4 characters"
  IT_HTTP=127.0.0.1:$IT_PORT
  IT_FP=sl-it-$IT_NS
  require_root
  [[ -x $SLUICE_BIN ]] || fail "no Sluice binary at $SLUICE_BIN (run tools/test.sh, or build_sluice)"
  require_cmd ip curl jq timeout
  ip netns list >/dev/null 2>&1 || fail "network namespaces are not available (ip netns list failed)"
  # tools/test.sh exports SLUICE_EAL_HUGE after ensure_hugepages; run standalone, do it here.
  if [[ -z ${SLUICE_HUGE_CHECKED:-} ]]; then
    ensure_hugepages
    export SLUICE_HUGE_CHECKED=1
  fi
  # Two runs of one test (two checkouts on one host) would share namespaces, HTTP port and
  # file prefix, and the leftover sweep below would kill the other's processes: the
  # second waits for the first. The lock goes with the last process holding the fd.
  exec {IT_LOCK_FD}>"/run/lock/sluice-it-$IT_NS.lock"
  if ! flock -n "$IT_LOCK_FD"; then
    it_log "another run of netns prefix $IT_NS holds /run/lock/sluice-it-$IT_NS.lock: waiting (up to 600 s)"
    flock -w 600 "$IT_LOCK_FD" || it_log "still held after 600 s: going on, its leftovers are swept below"
  fi
  IT_TMP=$(mktemp -d "/tmp/sluice-it-$IT_NS.XXXXXX")
  trap it_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Leftovers of an earlier, killed run of the same test.
  local pid
  for pid in $(pgrep -f -- "--file-prefix $IT_FP( |$)" 2>/dev/null) $(pgrep -f -- "sluice-it-$IT_NS\." 2>/dev/null); do
    [[ $pid == "$$" ]] || kill -KILL "$pid" 2>/dev/null || true
  done
  if ss -Hltn "sport = :$IT_PORT" 2>/dev/null | grep -q .; then
    fail "HTTP port $IT_PORT is already in use: $(ss -Hltnp "sport = :$IT_PORT")"
  fi
  it_kill_ns_procs
  topo_destroy "$IT_NS"
  it_log "test $(basename "$0"): netns prefix $IT_NS, http $IT_HTTP, file prefix $IT_FP, tmp $IT_TMP${SLUICE_EAL_HUGE:+, EAL $SLUICE_EAL_HUGE}"
}

# ---------------------------------------------------------------- config

# Writes a two-port cross-connect config: west <-> east. DRIVER is af_packet or af_xdp
# (ports on the root-side veth ends ${IT_NS}w1/${IT_NS}e1) or tap (Sluice creates taps
# ${IT_NS}w0/${IT_NS}e0 for topo_tap_attach). Extra jq assignments may follow
# (e.g. '.logging.level="debug"').
write_xconnect_config() { # file driver [jq-filter...]
  local file=$1 driver=$2 west east
  shift 2
  case $driver in
    af_packet) west="iface=${IT_NS}w1"; east="iface=${IT_NS}e1" ;;
    af_xdp) west=$(af_xdp_devargs "${IT_NS}w1"); east=$(af_xdp_devargs "${IT_NS}e1") ;;
    tap) west="iface=${IT_NS}w0"; east="iface=${IT_NS}e0" ;;
    *) fail "write_xconnect_config: unknown driver $driver" ;;
  esac
  jq -n --arg fp "$IT_FP" --argjson port "$IT_PORT" --arg drv "net_$driver" --arg w "$west" --arg e "$east" '{
    eal: {lcores: "0-1", memory_mb: 256, file_prefix: $fp},
    ports: [
      {name: "west", device: ($drv + "0"), devargs: $w,
       pipeline: ["parse", {stage: "xconnect", peer: "east"}]},
      {name: "east", device: ($drv + "1"), devargs: $e,
       pipeline: ["parse", {stage: "xconnect", peer: "west"}]}
    ],
    workers: "auto",
    control: {http: {address: "127.0.0.1", port: $port}, telemetry: true},
    logging: {level: "info"}
  }' >"$file" || fail "cannot write $file"
  local f
  for f in "$@"; do
    jq "$f" "$file" >"$file.new" && mv "$file.new" "$file" || fail "jq '$f' on $file failed"
  done
}

# ---------------------------------------------------------------- Sluice process

# Starts Sluice in the background (EAL gets $SLUICE_EAL_HUGE, then any extra EAL args)
# and waits for /health. Sets SLUICE_PID and SLUICE_LOG.
start_sluice() { # config log [eal args...]
  local config=$1 log=$2
  shift 2
  local eal=()
  [[ -n ${SLUICE_EAL_HUGE:-} ]] && eal+=("$SLUICE_EAL_HUGE")
  eal+=("$@")
  start_sluice_nowait "$config" "$log" "${eal[@]}"
  wait_for_http "$IT_HTTP" "$SLUICE_PID" 40 || {
    kill -0 "$SLUICE_PID" 2>/dev/null && fail "Sluice (pid $SLUICE_PID) does not answer http://$IT_HTTP/health after 40 s"
    local rc=0
    wait "$SLUICE_PID" || rc=$?
    SLUICE_PID=""
    fail "Sluice exited with status $rc during start-up"
  }
  it_log "Sluice up: pid $SLUICE_PID, http://$IT_HTTP"
}

# As start_sluice, without the hugepage argument and without waiting.
start_sluice_nowait() { # config log [eal args...]
  local config=$1 log=$2
  shift 2
  SLUICE_LOG=$log
  local cmd=("$SLUICE_BIN" --config "$config")
  (($# > 0)) && cmd+=(-- "$@")
  it_log "starting: ${cmd[*]}"
  "${cmd[@]}" >"$log" 2>&1 &
  SLUICE_PID=$!
}

# net_af_xdp's devargs for one veth end: one queue (a veth offers no more to the 22.11
# PMD, which reads only ethtool's combined channels; drivers-config/net_af_xdp.md).
af_xdp_devargs() { # iface
  printf 'iface=%s,start_queue=0,queue_count=1' "$1"
}

# Sends SIGNAL (default TERM), waits up to 30 s, asserts exit 0 and that the log
# reports every mbuf returned (or, with net_af_xdp ports, accounted for: exactly the
# fill rings' mbufs kept, see assert_af_xdp_accounted) and none leaked.
stop_sluice() { # [signal]
  local sig=${1:-TERM} rc=0
  [[ -n $SLUICE_PID ]] || fail "stop_sluice: Sluice is not running"
  kill -0 "$SLUICE_PID" 2>/dev/null || {
    wait "$SLUICE_PID" || rc=$?
    SLUICE_PID=""
    fail "Sluice died before it was stopped (exit status $rc)"
  }
  kill "-$sig" "$SLUICE_PID"
  if ! timeout 30 tail --pid="$SLUICE_PID" -f /dev/null; then
    kill -KILL "$SLUICE_PID" 2>/dev/null || true
    wait "$SLUICE_PID" 2>/dev/null || true
    SLUICE_PID=""
    fail "Sluice did not exit within 30 s of SIG$sig"
  fi
  wait "$SLUICE_PID" || rc=$?
  SLUICE_PID=""
  ((rc == 0)) || fail "Sluice exited with status $rc after SIG$sig (expected 0)"
  ! grep -q "mbufs not returned" "$SLUICE_LOG" || fail "mbuf leak: $(grep "mbufs not returned" "$SLUICE_LOG")"
  grep -Eq "mempool [^ ]+: all [0-9]+ mbufs (returned|accounted for: [0-9]+ returned, [0-9]+ kept by net_af_xdp fill rings)" "$SLUICE_LOG" ||
    fail "the log has no 'mempool NAME: all N mbufs returned' (or '... accounted for') line after SIG$sig"
  grep -q "shutdown complete" "$SLUICE_LOG" || fail "the log has no 'shutdown complete' line"
  it_log "ok: Sluice stopped by SIG$sig: exit 0, $(grep -Eo "mempool [^ ]+: all [0-9]+ mbufs (returned|accounted for.*)" "$SLUICE_LOG" | tail -1)"
}

# After a stop of Sluice with net_af_xdp ports PORT...: each port's line about the
# mbufs its fill ring keeps (2048 a queue, one queue a port here) and the pool's line
# that every other mbuf came back: size - returned == 2048 x ports, exactly.
assert_af_xdp_accounted() { # log port...
  local log=$1 port line size returned kept
  shift
  for port in "$@"; do
    grep -q "port $port: net_af_xdp keeps 2048 mbufs in its fill ring at close (1 rx queue(s) x 2048;" "$log" ||
      fail "no 'port $port: net_af_xdp keeps 2048 mbufs in its fill ring at close' line in $log"
  done
  line=$(grep -Eo "mempool [^ ]+: all [0-9]+ mbufs accounted for: [0-9]+ returned, [0-9]+ kept by net_af_xdp fill rings" "$log" | tail -1)
  [[ -n $line ]] || fail "no 'mempool NAME: all N mbufs accounted for' line in $log"
  read -r size returned kept < <(sed -E 's/.*: all ([0-9]+) mbufs accounted for: ([0-9]+) returned, ([0-9]+) kept.*/\1 \2 \3/' <<<"$line")
  assert_eq "$kept" "$((2048 * $#))" "mbufs kept by the net_af_xdp fill rings ($# port(s) x 2048)"
  assert_eq "$((size - returned))" "$kept" "mbufs not returned == mbufs the fill rings keep"
}

# The XDP mode Sluice found on each net_af_xdp port (the PMD of 22.11 has no devarg to
# choose it, libxdp takes native where the driver has it); written to the test's log.
af_xdp_modes() { # log
  local lines
  lines=$(grep -Eo "port [a-z]+: net_af_xdp on [^:]+: XDP program attached in .*" "$1") ||
    fail "the log has no 'port NAME: net_af_xdp on IFACE: XDP program attached in ...' line"
  it_log "net_af_xdp mode, as Sluice logged it:"
  printf '    %s\n' "$lines" >&2
}

# ---------------------------------------------------------------- HTTP / JSON

stats_get() { # [path] (default /stats)
  curl -sS -m 5 "http://$IT_HTTP${1:-/stats}"
}

# HTTP status code of a request: http_status METHOD PATH [curl args...]
http_status() {
  local method=$1 path=$2
  shift 2
  curl -s -o /dev/null -w '%{http_code}' -m 5 -X "$method" "$@" "http://$IT_HTTP$path"
}

jget() { # json jq-filter
  printf '%s' "$1" | jq -r "$2"
}

# Numeric value of one /stats field (a jq filter), fresh each call.
stat_value() { # jq-filter
  local v
  v=$(stats_get | jq -r "$1") || fail "cannot read /stats field $1"
  printf '%s' "$v"
}

# Waits until every port reports link up.
# Waits until a helper process (a stream client, a tunnel end) prints READY into FILE.
wait_ready() { # file what [timeout_s]
  local deadline=$((SECONDS + ${3:-10}))
  until grep -q READY "$1"; do
    ((SECONDS < deadline)) || fail "$2 never started: $(cat "$1")"
    sleep 0.1
  done
}

wait_links_up() { # [timeout_s]
  local deadline=$((SECONDS + ${1:-15})) s
  while ((SECONDS < deadline)); do
    s=$(stats_get 2>/dev/null) && [[ $(jget "$s" '[.ports[].link_up] | all') == true ]] && return 0
    sleep 0.3
  done
  fail "ports not all up after ${1:-15} s: $(jget "${s:-{\}}" '[.ports[] | {name, link_up}]' 2>/dev/null)"
}

# Waits until the port packet counters stop moving (two reads 1 s apart agree). Counters
# still moving TIMEOUT seconds after the test's traffic ended mean a forwarding loop or a
# sender that never stopped, which a user would notice: a failure, not a warning (the
# hosts' own chatter, IPv6 ND and MLD, leaves many quiet seconds in any 5).
wait_quiet() { # [timeout_s]
  local deadline=$((SECONDS + ${1:-15})) a b
  a=$(stats_get | jq -c '[.ports[] | .rx_packets, .tx_packets]')
  while ((SECONDS < deadline)); do
    sleep 1
    b=$(stats_get | jq -c '[.ports[] | .rx_packets, .tx_packets]')
    [[ $a == "$b" ]] && return 0
    a=$b
  done
  fail "traffic did not settle within ${1:-15} s after the test's traffic ended (ports rx/tx: $b): a loop or a stuck sender"
}

# Conservation for a pure xconnect pipeline: sum rx == sum tx + drops_total. Packets the
# kernel sends on its own (IPv6 ND/MLD) may land between the reads; retry a few times.
assert_conservation() {
  local s rx tx drops i
  wait_quiet 10
  for i in 1 2 3 4 5 6 7 8 9 10; do
    s=$(stats_get) || fail "GET /stats failed"
    rx=$(jget "$s" '[.ports[].rx_packets] | add')
    tx=$(jget "$s" '[.ports[].tx_packets] | add')
    drops=$(jget "$s" '.drops_total')
    ((rx == tx + drops)) && {
      it_log "ok: conservation: rx $rx == tx $tx + drops $drops"
      return 0
    }
    sleep 1
  done
  fail "conservation: sum rx_packets $rx != sum tx_packets $tx + drops_total $drops
ports: $(jget "$s" '[.ports[] | {name, rx_packets, tx_packets, rx_missed, rx_errors, tx_errors, rx_nombuf}]')
drops: $(jget "$s" '.drops | with_entries(select(.value > 0))')"
}

# ---------------------------------------------------------------- traffic

nsw() { ip netns exec "${IT_NS}w" "$@"; }
nse() { ip netns exec "${IT_NS}e" "$@"; }

# ping from west to DEST: asserts 0% loss. Extra args go to ping (e.g. -c 1000 -i 0.002).
ping_ok() { # dest [ping args...]
  local dest=$1 out rc=0 count
  shift
  out=$(timeout 120 ip netns exec "${IT_NS}w" ping -n -q -W 2 "$@" "$dest" 2>&1) || rc=$?
  count=$(printf '%s\n' "$out" | sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) (packets )?received.*/\1 \2/p')
  [[ $rc -eq 0 && -n $count && ${count% *} == "${count#* }" ]] ||
    fail "ping $* $dest: loss or error (exit $rc): $(printf '%s\n' "$out" | tail -3)"
  it_log "ok: ping $* $dest: ${count% *} sent, ${count#* } received, 0% loss"
  PING_SENT=${count% *}
}

# Waits until west can ping east once (ARP/ND resolved, path through Sluice working).
wait_ping() { # dest [timeout_s]
  local deadline=$((SECONDS + ${2:-15}))
  while ((SECONDS < deadline)); do
    ip netns exec "${IT_NS}w" ping -n -q -c 1 -W 1 "$1" >/dev/null 2>&1 && return 0
  done
  fail "no ping reply from $1 through Sluice within ${2:-15} s"
}

# The least TCP throughput (Mbit/s) a 3 s iperf3 stream must reach through Sluice on a
# veth or tap path (iperf_tcp_ok, the firewall and router tests). Measured on this 2-core
# host with other builds running (load average ~20): 300..3000 Mbit/s; a defect that
# leaves 1% of that (a retransmission storm, a stalled stream) falls below it.
IT_TCP_FLOOR_MBIT=${IT_TCP_FLOOR_MBIT:-20}

# Asserts an iperf3 TCP result (-J) received at least MIN_MBIT Mbit/s (default
# IT_TCP_FLOOR_MBIT); sets IPERF_BPS.
assert_tcp_floor() { # iperf3-json what [min_mbit]
  local min=${3:-$IT_TCP_FLOOR_MBIT} bps retrans
  bps=$(printf '%s' "$1" | jq -r '.end.sum_received.bits_per_second // 0 | floor' 2>/dev/null) ||
    fail "$2: no iperf3 result: $(printf '%s' "$1" | head -c 300)"
  retrans=$(printf '%s' "$1" | jq -r '.end.sum_sent.retransmits // "?"' 2>/dev/null)
  ((bps >= min * 1000000)) ||
    fail "$2: $((bps / 1000000)) Mbit/s received ($retrans retransmits), expected at least $min Mbit/s"
  it_log "ok: $2: $((bps / 1000000)) Mbit/s (>= $min), $retrans retransmits"
  IPERF_BPS=$bps
}

# iperf3 TCP west -> east for SECONDS; asserts at least MIN_MBIT (default
# IT_TCP_FLOOR_MBIT) received.
iperf_tcp_ok() { # [seconds] [min_mbit]
  local t=${1:-3} json bps
  require_cmd iperf3
  nse timeout $((t + 30)) iperf3 -s -1 -B 10.99.0.2 -p 5201 >"$IT_TMP/iperf3-server.log" 2>&1 &
  local server=$!
  local deadline=$((SECONDS + 10))
  until nse ss -Hltn "sport = :5201" | grep -q .; do
    ((SECONDS < deadline)) || fail "iperf3 server did not start: $(cat "$IT_TMP/iperf3-server.log")"
    sleep 0.1
  done
  json=$(nsw timeout $((t + 25)) iperf3 -c 10.99.0.2 -p 5201 -t "$t" -J 2>&1) ||
    fail "iperf3 client failed: $(printf '%s' "$json" | jq -r '.error // empty' 2>/dev/null || printf '%s' "$json" | tail -5)"
  wait "$server" 2>/dev/null || true
  assert_tcp_floor "$json" "iperf3 TCP west -> east, ${t} s" "${2:-}"
}

# N UDP datagrams west -> east (and the east side answers each): all must arrive.
udp_exchange_ok() { # [count]
  local n=${1:-500}
  nse timeout 60 "$SLUICE_PY" - "$n" >"$IT_TMP/udp-server.log" 2>&1 <<'PY' &
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("10.99.0.2", 5300))
print("ready", flush=True)
s.settimeout(20)
got = set()
try:
    while len(got) < n:
        data, peer = s.recvfrom(2048)
        seq = int(data.split(b":")[0])
        got.add(seq)
        s.sendto(b"ack:" + data[:16], peer)
except socket.timeout:
    pass
print("received", len(got), flush=True)
sys.exit(0 if len(got) == n else 1)
PY
  local server=$! deadline=$((SECONDS + 10))
  until grep -q ready "$IT_TMP/udp-server.log" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "UDP receiver did not start: $(cat "$IT_TMP/udp-server.log")"
    sleep 0.1
  done
  local out rc=0
  out=$(nsw timeout 60 "$SLUICE_PY" - "$n" 2>&1 <<'PY'
import socket, sys, time
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.connect(("10.99.0.2", 5300))
for i in range(n):
    s.send(b"%d:" % i + b"x" * (64 + i % 1200))
    if i % 16 == 15:
        time.sleep(0.002)
s.settimeout(5)
acks = 0
try:
    while acks < n:
        s.recv(2048)
        acks += 1
except socket.timeout:
    pass
print("acks", acks)
PY
  ) || rc=$?
  local srv=0
  wait "$server" || srv=$?
  ((srv == 0)) || fail "UDP: receiver got fewer than $n datagrams: $(cat "$IT_TMP/udp-server.log")"
  local acks
  acks=$(printf '%s' "$out" | awk '/^acks/ {print $2}')
  assert_eq "${acks:-0}" "$n" "UDP: acknowledgements back from east"
  it_log "ok: UDP: $n datagrams west->east received, $n answers back"
}

# Each command of dpdk-telemetry.py (Debian's, run by the python that has readline)
# must return a JSON object (or array) keyed by the command name (without ",params"). Non-interactive,
# the script prints one JSON line per command, in order: TELEMETRY_REPLIES[i] is command i's.
telemetry_ok() { # prefix cmd...
  local prefix=$1 out cmd line key i=0
  shift
  [[ -x /usr/bin/dpdk-telemetry.py ]] || fail "dpdk-telemetry.py (package dpdk) is not installed"
  out=$(printf '%s\n' "$@" | timeout 20 "$SLUICE_PY" /usr/bin/dpdk-telemetry.py -f "$prefix" 2>&1) ||
    fail "dpdk-telemetry.py -f $prefix failed: $out"
  mapfile -t TELEMETRY_REPLIES < <(printf '%s\n' "$out" | grep '^{')
  ((${#TELEMETRY_REPLIES[@]} == $#)) ||
    fail "telemetry: expected $# JSON replies to $*, got: $(printf '%s' "$out" | head -c 1500)"
  for cmd in "$@"; do
    line=${TELEMETRY_REPLIES[i]}
    key=${cmd%%,*}
    printf '%s' "$line" | jq -e --arg c "$key" '.[$c] | (type == "object" or type == "array") and length > 0' >/dev/null ||
      fail "telemetry $cmd: expected a non-empty JSON object or array under \"$key\", got: $(printf '%s' "$line" | head -c 500)"
    it_log "ok: telemetry $cmd: $(printf '%s' "$line" | head -c 120)"
    i=$((i + 1))
  done
}
