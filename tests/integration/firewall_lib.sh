# shellcheck shell=bash
# Shared by test_firewall_af_packet.sh, test_firewall_tap.sh and test_firewall_steering.sh:
# the routed two-zone topology, the firewall config, and the checks of connection
# tracking and the stateful firewall. Source tools/lib/common.sh, then lib.sh, then this;
# then it_init PREFIX PORT (prefix "fw...", port 9200-9209) and fw_init DRIVER.
#
#   netns ${p}w (inside):  ${p}w0 10.1.0.2/24 fd00:1::2/64, gw 10.1.0.1 / fd00:1::1  <->  Sluice west (zone inside)
#   netns ${p}e (outside): ${p}e0 10.2.0.2/24 fd00:2::2/64, gw 10.2.0.1 / fd00:2::1  <->  Sluice east (zone outside)
#
# af_packet, af_xdp: veths ${p}w0/${p}w1, ${p}e0/${p}e1, Sluice on the root-side ends ${p}w1/${p}e1.
# tap: Sluice creates taps ${p}w0/${p}e0, which are moved into the namespaces after every
# start (a tap disappears with the process that made it).
#
# The topology is router_lib.sh's (sourced here), with the hosts' ICMP rate limit off.
#
# Quiet on success: one "--- step" line per step (and a few numbers); FW_VERBOSE=1 logs
# every check. On failure: the reason, the relevant /stats slices and the log's tail.

source "$(dirname "${BASH_SOURCE[0]}")/router_lib.sh"

FW_DRIVER=""
FW_CONFIG=""
FW_STEP=""
HTTP_CODE=""
HTTP_BODY=""

# Firewall rule indexes (1-based, as /flows "rule" and /stats firewall.rules[].index).
FW_RULE_TELNET=1
FW_RULE_MDNS=2
FW_RULE_WEB_IN=3

# ---------------------------------------------------------------- reporting

step() {
  FW_STEP=$*
  printf -- '--- [%3ds] %s\n' "$SECONDS" "$*"
}

fw_ok() {
  [[ ${FW_VERBOSE:-0} == 1 ]] && it_log "ok: $*"
  return 0
}

# The parts of /stats that say what the firewall and conntrack did.
fw_stats_slice() {
  local s
  s=$(curl -sS -m 5 "http://$IT_HTTP/stats" 2>/dev/null) || {
    echo "(no /stats: Sluice does not answer on $IT_HTTP)"
    return 0
  }
  printf '%s' "$s" | jq '{
    drops: (.drops | with_entries(select(.value > 0))),
    flows: (.flows | if . == null then null else {active, max, created, expired, evicted, flushed, reopened, steering,
             states: (.states | with_entries(select(.value > 0))),
             lcores: [.lcores[] | {lcore, active, max_ipv4, active_ipv4, created, evicted, expired}],
             handoffs} end),
    firewall: (.firewall | if . == null then null else {generation, rules: [.rules[] | "\(.index) \(.name) \(.action) \(.packets)"]} end),
    stages: [.stages[] | select(.stage == "conntrack" or .stage == "steer" or .drops_total > 0)
             | {port, stage, packets_in, packets_out, drops, counters: (.counters // {} | with_entries(select(.value > 0)))}],
    ports: [.ports[] | {name, link_up, rx_packets, tx_packets, rx_missed, rx_errors, tx_errors, rx_nombuf}],
    lcores: [.lcores[] | {lcore, rx_packets, tx_packets, handoff_received, inject_dropped}],
    mempools}' 2>/dev/null || printf '%s\n' "$s" | head -c 3000
}

# Replaces lib.sh's fail: adds the step, the /stats slices and the log's tail.
fail() {
  trap - ERR
  [[ -n ${IT_TMP:-} && -d $IT_TMP ]] && : >"$IT_TMP/.failed"
  printf '\nFAIL: %s\n' "$*" >&2
  [[ -n $FW_STEP ]] && printf 'during step: %s\n' "$FW_STEP" >&2
  if [[ -n ${SLUICE_PID:-} ]] && kill -0 "$SLUICE_PID" 2>/dev/null; then
    printf -- '--- /stats (firewall, flows, conntrack, drops, ports) ---\n' >&2
    fw_stats_slice >&2
  elif [[ -n ${SLUICE_PID:-} ]]; then
    printf 'Sluice (pid %s) is no longer running\n' "$SLUICE_PID" >&2
  fi
  if [[ -n ${SLUICE_LOG:-} && -f $SLUICE_LOG ]]; then
    printf -- '--- last 40 lines of %s ---\n' "$SLUICE_LOG" >&2
    tail -n 40 "$SLUICE_LOG" >&2 || true
  fi
  printf -- '---\n' >&2
  exit 1
}

# An unexpected non-zero status under set -e says where it happened.
fw_on_err() {
  local rc=$? line=$1 cmd=$2
  trap - ERR
  # A fail() in a command substitution has said everything already.
  [[ -n ${IT_TMP:-} && -f $IT_TMP/.failed ]] && exit 1
  fail "command failed (status $rc) at line $line: $cmd"
}

expect_eq() { # actual expected what
  [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"
  fw_ok "$3 = $1"
}
expect_num() { # actual op(-ge|-gt|-le|-lt|-eq) bound what
  [[ "$1" =~ ^-?[0-9]+$ && "$3" =~ ^-?[0-9]+$ ]] || fail "$4: not integers: '$1' $2 '$3'"
  local holds
  case $2 in
    -ge) holds=$(($1 >= $3)) ;;
    -gt) holds=$(($1 > $3)) ;;
    -le) holds=$(($1 <= $3)) ;;
    -lt) holds=$(($1 < $3)) ;;
    -eq) holds=$(($1 == $3)) ;;
    *) fail "expect_num: unknown operator '$2'" ;;
  esac
  ((holds)) || fail "$4: expected $2 $3, got $1"
  fw_ok "$4 = $1 ($2 $3)"
}
expect_contains() { # haystack needle what
  [[ "$1" == *"$2"* ]] || fail "$3: expected to contain '$2', got: $(printf '%s' "$1" | head -c 1500 || true)"
  fw_ok "$3 contains '$2'"
}
# A jq filter that must print true for the JSON document.
expect_jq() { # json filter what
  local r
  r=$(printf '%s' "$1" | jq -r "$2" 2>&1) || r="jq error: $r"
  # || true: head closing the pipe early must not trip the ERR trap and hide this message.
  [[ $r == true ]] || fail "$3 (jq: $2 -> $r) in: $(printf '%s' "$1" | jq -c . 2>/dev/null | head -c 2500 || true)"
  fw_ok "$3"
}

# ---------------------------------------------------------------- HTTP

# Sets HTTP_CODE and HTTP_BODY. fw_http METHOD PATH
fw_http() {
  local out
  out=$(curl -sS -m 15 -X "$1" -w '\n%{http_code}' "http://$IT_HTTP$2" 2>&1) || fail "$1 $2: curl failed: ${out%$'\n'*}"
  HTTP_CODE=${out##*$'\n'}
  HTTP_BODY=${out%$'\n'*}
}

fw_stats() {
  fw_http GET /stats
  [[ $HTTP_CODE == 200 ]] || fail "GET /stats: HTTP $HTTP_CODE: $HTTP_BODY"
  printf '%s' "$HTTP_BODY"
}

# One /stats value (a jq filter), fresh.
fw_stat() { # jq-filter
  local s
  s=$(fw_stats) || exit 1
  printf '%s' "$s" | jq -r "$1"
}

# Sum of one conntrack-stage counter over both ports.
ct_counter() { # name
  fw_stat "[.stages[] | select(.stage == \"conntrack\") | .counters.$1 // 0] | add // 0"
}

fw_drop() { # drop reason
  fw_stat ".drops.$1 // 0"
}

# GET /flows?QUERY, asserting 200.
flows_get() { # query
  fw_http GET "/flows?$1"
  [[ $HTTP_CODE == 200 ]] || fail "GET /flows?$1: HTTP $HTTP_CODE: $HTTP_BODY"
  printf '%s' "$HTTP_BODY"
}

# Polls until a jq filter on GET /flows?QUERY prints true; fails after TIMEOUT s.
wait_flows() { # query filter what [timeout_s]
  local deadline=$((SECONDS + ${4:-10})) f=""
  while ((SECONDS < deadline)); do
    f=$(flows_get "$1") || exit 1
    [[ $(printf '%s' "$f" | jq -r "$2" 2>/dev/null) == true ]] && return 0
    sleep 0.3
  done
  fail "$3: not seen within ${4:-10} s (GET /flows?$1 -> $(printf '%s' "$f" | jq -c . | head -c 2500 || true))"
}

# ---------------------------------------------------------------- helpers run in the namespaces

nsw() { ip netns exec "${IT_NS}w" "$@"; }
nse() { ip netns exec "${IT_NS}e" "$@"; }

fw_write_helpers() {
  mkdir -p "$IT_TMP/py" "$IT_TMP/www"
  # udp_listen.py ADDR PORT SECONDS: counts datagrams for up to SECONDS, until a second
  # after a "control" payload, counted apart (proves the listener works). Prints
  # "got N control M".
  cat >"$IT_TMP/py/udp_listen.py" <<'PY'
import socket, sys, time
addr, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
if ":" in addr:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((addr, port))
print("ready", flush=True)
got = control = 0
end = time.monotonic() + secs
while True:
    left = end - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        break
    if data == b"control":
        control += 1
        # Senders send their control datagram last: a second after it, the listener has
        # seen what it will (SECONDS is only the bound for a loaded host).
        end = min(end, time.monotonic() + 1.0)
    else:
        got += 1
        print("datagram from", peer, flush=True)
print("got", got, "control", control, flush=True)
PY
  # udp_send.py ADDR PORT COUNT [PAYLOAD]
  cat >"$IT_TMP/py/udp_send.py" <<'PY'
import socket, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = (sys.argv[4] if len(sys.argv) > 4 else "probe").encode()
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(payload, (addr, port))
    time.sleep(0.05)
PY
  # udp_reject_probe.py ADDR PORT: one datagram on a connected socket with IP(V6)_RECVERR;
  # prints the ICMP error the kernel queued: "errno E origin O type T code C offender A",
  # or "no error".
  cat >"$IT_TMP/py/udp_reject_probe.py" <<'PY'
import select, socket, struct, sys
addr, port = sys.argv[1], int(sys.argv[2])
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, 25, 1)  # IPV6_RECVERR
else:
    s.setsockopt(socket.IPPROTO_IP, 11, 1)    # IP_RECVERR
s.connect((addr, port))
s.send(b"probe")
p = select.poll()
p.register(s, select.POLLERR | select.POLLIN)
events = p.poll(3000)
if not events:
    print("no error")
    sys.exit(0)
try:
    _, anc, _, _ = s.recvmsg(512, 512, 0x2000)  # MSG_ERRQUEUE
except BlockingIOError:
    print("no error (socket readable: an answer came)")
    sys.exit(0)
for level, typ, data in anc:
    ee_errno, origin, icmp_type, icmp_code = struct.unpack_from("=IBBB", data, 0)
    offender = data[16:]
    fam = struct.unpack_from("=H", offender, 0)[0]
    if fam == socket.AF_INET:
        off = socket.inet_ntop(socket.AF_INET, offender[4:8])
    elif fam == socket.AF_INET6:
        off = socket.inet_ntop(socket.AF_INET6, offender[8:24])
    else:
        off = "unknown"
    print("errno", ee_errno, "origin", origin, "type", icmp_type, "code", icmp_code, "offender", off)
    sys.exit(0)
print("no error (empty error queue)")
PY
  # udp_echo_server.py ADDR PORT N: answers each datagram until N were seen or 20 s idle.
  cat >"$IT_TMP/py/udp_echo_server.py" <<'PY'
import socket, sys
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
print("ready", flush=True)
s.settimeout(20)
seen = 0
try:
    while seen < n:
        data, peer = s.recvfrom(2048)
        seen += 1
        s.sendto(b"echo:" + data, peer)
except socket.timeout:
    pass
print("served", seen, flush=True)
PY
  # udp_echo_client.py ADDR PORT N: sends N datagrams, prints "answers K".
  cat >"$IT_TMP/py/udp_echo_client.py" <<'PY'
import socket, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((addr, port))
answers = set()
for i in range(n):
    s.send(b"%d" % i)
    time.sleep(0.005)
s.settimeout(3)
try:
    while len(answers) < n:
        answers.add(s.recv(2048))
except socket.timeout:
    pass
print("answers", len(answers))
PY
  # trickle_server.py ADDR PORT FILE SECONDS: an HTTP/1.0 server that spreads each
  # answer over SECONDS (a thread per connection), so a connection stays established
  # while a check looks at it, and parallel downloads stay a modest load.
  cat >"$IT_TMP/py/trickle_server.py" <<'PY'
import socket, sys, threading, time
addr, port, path, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
body = open(path, "rb").read()

def serve(c):
    with c:
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = c.recv(4096)
            if not chunk:
                return
            req += chunk
        if not req.startswith(b"GET "):
            return
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        step = 16384
        pause = secs / max(1, len(body) // step)
        for off in range(0, len(body), step):
            c.sendall(body[off:off + step])
            time.sleep(pause)

srv = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(64)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
PY
  head -c 1000000 /dev/urandom >"$IT_TMP/www/blob"
}

# Starts python3 -m http.server in netns NS (w|e) on ADDR:PORT serving $IT_TMP/www and
# waits until it answers from inside its own namespace.
fw_http_server() { # w|e bind_addr port [check_addr]
  local ns=${IT_NS}$1 bind=$2 port=$3 check=${4:-$2} url deadline=$((SECONDS + 15))
  (cd "$IT_TMP/www" && exec ip netns exec "$ns" "$SLUICE_PY" -m http.server "$port" --bind "$bind" \
    >"$IT_TMP/http-$1-$port.log" 2>&1) &
  disown $!  # killed at exit with the namespace's other processes, unreported
  [[ $check == *:* ]] && url="http://[$check]:$port/" || url="http://$check:$port/"
  until ip netns exec "$ns" curl -s -o /dev/null -m 1 "$url"; do
    ((SECONDS < deadline)) || fail "http.server on $ns $bind:$port did not start: $(cat "$IT_TMP/http-$1-$port.log")"
    sleep 0.2
  done
}

# Starts trickle_server.py (1 MB over SECONDS per connection) in netns NS.
fw_trickle_server() { # w|e addr port seconds
  local log=$IT_TMP/trickle-$1-$3.log deadline=$((SECONDS + 10))
  ip netns exec "${IT_NS}$1" "$SLUICE_PY" "$IT_TMP/py/trickle_server.py" "$2" "$3" "$IT_TMP/www/blob" "$4" >"$log" 2>&1 &
  disown $!
  until grep -q ready "$log" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "trickle server $2:$3 did not start: $(cat "$log")"
    sleep 0.1
  done
}

# Starts a one-off iperf3 server in netns NS on PORT and waits until it listens.
fw_iperf_server() { # w|e bind port
  local ns=${IT_NS}$1 deadline=$((SECONDS + 10))
  # A one-off server of an earlier run may still be finishing on that port.
  while ip netns exec "$ns" ss -Hltn "sport = :$3" | grep -q .; do
    ((SECONDS < deadline)) || fail "port $3 in $ns still has a listener: $(ip netns exec "$ns" ss -Hltnp "sport = :$3")"
    sleep 0.2
  done
  deadline=$((SECONDS + 10))
  ip netns exec "$ns" timeout 120 iperf3 -s -1 -B "$2" -p "$3" >"$IT_TMP/iperf3-server-$3.log" 2>&1 &
  disown $!
  until ip netns exec "$ns" ss -Hltn "sport = :$3" | grep -q .; do
    ((SECONDS < deadline)) || fail "iperf3 server on port $3 did not start: $(cat "$IT_TMP/iperf3-server-$3.log")"
    sleep 0.1
  done
}

# Starts udp_listen.py in netns NS and waits for "ready".
fw_udp_listener() { # w|e addr port seconds logname
  local deadline=$((SECONDS + 10))
  ip netns exec "${IT_NS}$1" "$SLUICE_PY" "$IT_TMP/py/udp_listen.py" "$2" "$3" "$4" >"$IT_TMP/$5" 2>&1 &
  FW_BG_PID=$!
  until grep -q ready "$IT_TMP/$5" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "UDP listener $2:$3 did not start: $(cat "$IT_TMP/$5")"
    sleep 0.1
  done
}

# ping from netns NS (w|e): asserts 0% loss; prints nothing on success.
fw_ping() { # w|e dest [ping args...]
  local ns=${IT_NS}$1 dest=$2 out rc=0 count
  shift 2
  out=$(timeout 120 ip netns exec "$ns" ping -n -q -W 2 "$@" "$dest" 2>&1) || rc=$?
  count=$(printf '%s\n' "$out" | sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) (packets )?received.*/\1 \2/p')
  [[ $rc -eq 0 && -n $count && ${count% *} == "${count#* }" ]] ||
    fail "ping $* $dest from $ns: loss or error (exit $rc): $(printf '%s\n' "$out" | tail -3)"
  fw_ok "ping $* $dest from $ns: $count"
}

# Waits until NS can ping DEST once (neighbours resolved, path through Sluice up).
fw_wait_ping() { # w|e dest [timeout_s]
  local deadline=$((SECONDS + ${3:-20}))
  while ((SECONDS < deadline)); do
    ip netns exec "${IT_NS}$1" ping -n -q -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "no ping reply from $2 (from ${IT_NS}$1) within ${3:-20} s"
}

# ---------------------------------------------------------------- topology

# The router tests' hosts (router_lib.sh), which also answer every closed-port probe
# (no per-peer ICMP rate limit of 1/s).
fw_hosts_no_icmp_limit() {
  local side
  for side in w e; do
    ip netns exec "${IT_NS}${side}" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
  done
}

fw_topo_veth() {
  router_topo_veth "$IT_NS"
  fw_hosts_no_icmp_limit
}

# After each start of Sluice on net_tap: its new taps into the namespaces.
fw_topo_tap() {
  router_topo_tap "$IT_NS" || fail "the taps of ${IT_NS}w0 / ${IT_NS}e0 are not in place"
  fw_hosts_no_icmp_limit
}

# ---------------------------------------------------------------- config and process

# The firewall config: west (inside) and east (outside), routed, pipeline
# [parse, conntrack, route]; default drop, inside->outside accepted by policy, TCP 23
# and UDP 5353 rejected in any direction, TCP 8080 and ICMP/ICMPv6 echo accepted from
# outside. Extra jq filters follow (e.g. '.conntrack.capacity = 1024').
fw_write_config() { # file [jq-filter...]
  local file=$1 west east
  shift
  case $FW_DRIVER in
    af_packet) west="iface=${IT_NS}w1" east="iface=${IT_NS}e1" ;;
    af_xdp) west=$(af_xdp_devargs "${IT_NS}w1") east=$(af_xdp_devargs "${IT_NS}e1") ;;
    tap) west="iface=${IT_NS}w0" east="iface=${IT_NS}e0" ;;
    *) fail "fw_write_config: unknown driver '$FW_DRIVER'" ;;
  esac
  jq -n --arg fp "$IT_FP" --argjson port "$IT_PORT" --arg drv "net_$FW_DRIVER" --arg w "$west" --arg e "$east" '{
    eal: {lcores: "0-1", memory_mb: 256, file_prefix: $fp},
    ports: [
      {name: "west", device: ($drv + "0"), devargs: $w, zone: "inside",
       ipv4: ["10.1.0.1/24"], ipv6: ["fd00:1::1/64"], pipeline: ["parse", "conntrack", "route"]},
      {name: "east", device: ($drv + "1"), devargs: $e, zone: "outside",
       ipv4: ["10.2.0.1/24"], ipv6: ["fd00:2::1/64"], pipeline: ["parse", "conntrack", "route"]}
    ],
    conntrack: {capacity: 65536, capacity_ipv6: 16384},
    firewall: {
      default_policy: "drop",
      policies: [{from: "inside", to: "outside", action: "accept"}],
      rules: [
        {name: "telnet-reject", protocol: "tcp", dst_ports: 23, action: "reject"},
        {name: "mdns-reject", protocol: "udp", dst_ports: 5353, action: "reject"},
        {name: "web-in", from: "outside", to: "inside", protocol: "tcp", dst_ports: 8080, action: "accept"},
        {name: "ping-in", from: "outside", to: "inside", protocol: "icmp", action: "accept"},
        {name: "ping6-in", from: "outside", to: "inside", protocol: "icmpv6", action: "accept"}
      ]
    },
    workers: "auto",
    control: {http: {address: "127.0.0.1", port: $port}, telemetry: true},
    logging: {level: "info"}
  }' >"$file" || fail "cannot write $file"
  local f
  for f in "$@"; do
    jq "$f" "$file" >"$file.new" && mv "$file.new" "$file" || fail "jq '$f' on $file failed"
  done
  "$SLUICE_BIN" --config "$file" --check-config >/dev/null 2>"$IT_TMP/check-config.err" ||
    fail "the test's own config $file does not pass --check-config: $(cat "$IT_TMP/check-config.err")"
}

# Starts Sluice (EAL gets $SLUICE_EAL_HUGE and any extra args), waits for /health, puts
# tap interfaces into place, waits for links and for a ping each way of both families.
fw_start() { # config log [eal args...]
  local config=$1 log=$2 rc=0
  shift 2
  local cmd=("$SLUICE_BIN" --config "$config") eal=()
  [[ -n ${SLUICE_EAL_HUGE:-} ]] && eal+=("$SLUICE_EAL_HUGE")
  eal+=("$@")
  ((${#eal[@]} > 0)) && cmd+=(-- "${eal[@]}")
  SLUICE_LOG=$log
  FW_CONFIG=$config
  "${cmd[@]}" >"$log" 2>&1 &
  SLUICE_PID=$!
  if ! wait_for_http "$IT_HTTP" "$SLUICE_PID" 60; then
    kill -0 "$SLUICE_PID" 2>/dev/null && fail "Sluice (pid $SLUICE_PID) does not answer http://$IT_HTTP/health after 60 s"
    wait "$SLUICE_PID" || rc=$?
    SLUICE_PID=""
    fail "Sluice exited with status $rc during start-up (${cmd[*]})"
  fi
  local deadline=$((SECONDS + 20)) s=""
  until [[ $(printf '%s' "$s" | jq -r '[.ports[].link_up] | all' 2>/dev/null) == true ]]; do
    ((SECONDS < deadline)) || fail "ports not all up after 20 s"
    sleep 0.3
    s=$(fw_stats) || exit 1
  done
  # net_tap reports a tap "down" once it is in another namespace (the PMD looks it up by
  # name where Sluice runs; drivers-config/net_tap.md): links are checked before the move.
  [[ $FW_DRIVER == tap ]] && fw_topo_tap
  fw_wait_ping w 10.2.0.2
  fw_wait_ping e 10.1.0.2
  fw_wait_ping w fd00:2::2
  fw_wait_ping e fd00:1::2
}

fw_init() { # driver (af_packet|af_xdp|tap)
  FW_DRIVER=$1
  require_cmd ip curl jq ping iperf3 hping3 ss timeout
  [[ -x $SLUICE_PY ]] || fail "no $SLUICE_PY"
  "$SLUICE_PY" -c 'import http.server' || fail "$SLUICE_PY has no http.server"
  fw_write_helpers
  # The first exit hook: cleanup's own failing commands must not count as failures.
  it_on_exit 'trap - ERR'
  set -E
  trap 'fw_on_err $LINENO "$BASH_COMMAND"' ERR
  case $FW_DRIVER in
    af_packet | af_xdp) fw_topo_veth ;;
    tap) topo_destroy "$IT_NS" ;;
    *) fail "fw_init: unknown driver '$FW_DRIVER'" ;;
  esac
}

# ---------------------------------------------------------------- the checks

# jq: the one flow of a listing with these ports (opener's view), or null.
jq_flow() { # src_port dst_port
  printf '[.flows[] | select(.src_port == %s and .dst_port == %s)] | if length == 1 then .[0] else null end' "$1" "$2"
}

# Flow bookkeeping, per worker: the per-state gauges add up to the active flows, and
# active == created - expired - evicted - flushed - reopened. Retried: the workers
# update the counters while /stats reads them.
fw_check_flow_accounting() { # what
  local s attempt
  for attempt in 1 2 3 4 5 6; do
    s=$(fw_stats)
    [[ $(printf '%s' "$s" | jq '[.flows.lcores[] | ([.states[]] | add // 0) == .active
        and .created - .expired - .evicted - .flushed - .reopened == .active] | all') == true ]] && {
      fw_ok "$1: flow accounting adds up"
      return 0
    }
    sleep 0.5
  done
  fail "$1: flow accounting does not add up: $(printf '%s' "$s" | jq -c '[.flows.lcores[] | {lcore, active,
    states_sum: ([.states[]] | add // 0), created, expired, evicted, flushed, reopened,
    created_minus_removed: (.created - .expired - .evicted - .flushed - .reopened)}]')"
}

# UDP datagrams the kernel of netns NS dropped for a full socket buffer (v4 + v6).
udp_rcvbuf_errors() { # w|e
  ip netns exec "${IT_NS}$1" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ {n += $6} $1 == "Udp6RcvbufErrors" {n += $2} END {print n + 0}' \
    /proc/net/snmp /proc/net/snmp6
}

# An iperf3 UDP result must show no loss, unless the receiving host itself says it
# dropped that many for a full socket buffer (its iperf3 starved of CPU on a busy
# machine): loss in Sluice, or on its ports' rings, stays a failure.
expect_udp_no_loss() { # iperf3-json rcvbuf_errors_before what
  local lost rcvbuf
  lost=$(printf '%s' "$1" | jq -r '.end.sum.lost_packets')
  [[ $lost =~ ^[0-9]+$ ]] || fail "$3: no lost_packets in the iperf3 result: $(printf '%s' "$1" | head -c 500 || true)"
  ((lost == 0)) && return 0
  rcvbuf=$(($(udp_rcvbuf_errors e) - $2))
  ((lost <= rcvbuf)) ||
    fail "$3: $lost of $(printf '%s' "$1" | jq .end.sum.packets) datagrams lost, only $rcvbuf of them in the receiver's socket buffer (RcvbufErrors)"
  printf '    note: %s: %s datagrams lost, all in the receiving host'"'"'s socket buffer (RcvbufErrors +%s), none in Sluice\n' "$3" "$lost" "$rcvbuf"
}

# (a) inside may open connections out; the replies come back.
fw_check_inside_out() {
  step "(a) inside -> outside: ping 200, curl 1 MB, iperf3 TCP 3 s and UDP, UDP request/answer, related ICMP errors"
  fw_ping w 10.2.0.2 -c 200 -i 0.01
  fw_ping w fd00:2::2 -6 -c 50 -i 0.01
  fw_http_server e 10.2.0.2 8000
  nsw curl -sS -m 30 -o "$IT_TMP/got-a" http://10.2.0.2:8000/blob || fail "curl of 1 MB from outside failed"
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-a" || fail "curl: the 1 MB file came back different"
  local out mbit lost
  fw_iperf_server e 10.2.0.2 5201
  out=$(nsw timeout 40 iperf3 -c 10.2.0.2 -p 5201 -t 3 -J) || fail "iperf3 TCP failed: $(printf '%s' "$out" | jq -r .error 2>/dev/null)"
  assert_tcp_floor "$out" "iperf3 TCP inside -> outside, 3 s"
  mbit=$((IPERF_BPS / 1000000))
  fw_iperf_server e 10.2.0.2 5202
  local rcvbuf
  rcvbuf=$(udp_rcvbuf_errors e)
  out=$(nsw timeout 40 iperf3 -c 10.2.0.2 -p 5202 -u -b 10M -w 2M -t 3 -J) || fail "iperf3 UDP failed: $(printf '%s' "$out" | jq -r .error 2>/dev/null)"
  expect_jq "$out" '.end.sum.packets > 0' "iperf3 UDP sent packets"
  lost=$(printf '%s' "$out" | jq -r '.end.sum.lost_packets')
  expect_udp_no_loss "$out" "$rcvbuf" "iperf3 UDP 10 Mbit/s"
  nse "$SLUICE_PY" "$IT_TMP/py/udp_echo_server.py" 10.2.0.2 5300 50 >"$IT_TMP/echo-a.log" 2>&1 &
  local deadline=$((SECONDS + 10))
  until grep -q ready "$IT_TMP/echo-a.log" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "UDP echo server did not start"
    sleep 0.1
  done
  out=$(nsw timeout 30 "$SLUICE_PY" "$IT_TMP/py/udp_echo_client.py" 10.2.0.2 5300 50)
  expect_eq "$out" "answers 50" "UDP: answers from outside to 50 datagrams from inside"
  # ICMP errors about a tracked flow are related and pass back in.
  local related
  related=$(ct_counter related)
  out=$(nsw timeout 10 "$SLUICE_PY" "$IT_TMP/py/udp_reject_probe.py" 10.2.0.2 6999)
  expect_eq "$out" "errno 111 origin 2 type 3 code 3 offender 10.2.0.2" "UDP to a closed port outside: the host's port unreachable comes back"
  out=$(nsw timeout 10 "$SLUICE_PY" "$IT_TMP/py/udp_reject_probe.py" fd00:2::2 6999)
  expect_eq "$out" "errno 111 origin 3 type 1 code 4 offender fd00:2::2" "UDP to a closed port outside (IPv6): the host's port unreachable comes back"
  expect_num "$(ct_counter related)" -ge $((related + 2)) "conntrack related counter (before: $related)"
  printf '    iperf3 TCP %s Mbit/s, UDP 10 Mbit/s lost %s\n' "$mbit" "$lost"
}

# (b) outside may not open connections in, except TCP 8080 and echo.
fw_check_outside_in() {
  step "(b) outside -> inside: TCP 8001 and UDP dropped (firewall_drop), TCP 8080 and echo pass"
  local before after rc out
  fw_http_server w :: 8001 10.1.0.2
  fw_http_server w :: 8080 10.1.0.2
  before=$(fw_drop firewall_drop)
  rc=0
  nse curl -sS -m 3 -o /dev/null http://10.1.0.2:8001/ 2>/dev/null || rc=$?
  expect_eq "$rc" 28 "curl from outside to inside 10.1.0.2:8001 (exit 28: timed out)"
  rc=0
  nse curl -sS -m 3 -o /dev/null "http://[fd00:1::2]:8001/" 2>/dev/null || rc=$?
  expect_eq "$rc" 28 "curl -6 from outside to inside [fd00:1::2]:8001 (exit 28: timed out)"
  after=$(fw_drop firewall_drop)
  expect_num "$after" -ge $((before + 2)) "drops.firewall_drop after two refused connections (before: $before)"
  out=$(flows_get "port=8001")
  expect_jq "$out" '.count == 0' "no flow for the dropped connections to port 8001"

  # UDP from outside never arrives.
  before=$(fw_drop firewall_drop)
  fw_udp_listener w :: 5400 20 udp-in.log
  local listener=$FW_BG_PID
  nse "$SLUICE_PY" "$IT_TMP/py/udp_send.py" 10.1.0.2 5400 5
  nse "$SLUICE_PY" "$IT_TMP/py/udp_send.py" fd00:1::2 5400 5
  nsw "$SLUICE_PY" "$IT_TMP/py/udp_send.py" 10.1.0.2 5400 1 control
  wait "$listener" || fail "UDP listener failed: $(cat "$IT_TMP/udp-in.log")"
  expect_eq "$(tail -1 "$IT_TMP/udp-in.log")" "got 0 control 1" "UDP listener inside: datagrams from outside / local control"
  after=$(fw_drop firewall_drop)
  expect_num "$after" -ge $((before + 10)) "drops.firewall_drop after 10 UDP datagrams from outside (before: $before)"

  # TCP 8080 is open from outside, both families.
  nse curl -sS -m 20 -o "$IT_TMP/got-8080" http://10.1.0.2:8080/blob || fail "curl from outside to 10.1.0.2:8080 failed"
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-8080" || fail "curl 8080: the file came back different"
  nse curl -sS -m 20 -o "$IT_TMP/got-8080-6" "http://[fd00:1::2]:8080/blob" || fail "curl -6 from outside to [fd00:1::2]:8080 failed"
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-8080-6" || fail "curl -6 8080: the file came back different"
  out=$(flows_get "port=8080&address=10.2.0.2")
  expect_jq "$out" "[.flows[] | select(.dst_port == 8080 and .src == \"10.2.0.2\" and .dst == \"10.1.0.2\" and .protocol == \"tcp\" and .rule == $FW_RULE_WEB_IN)] | length >= 1" \
    "/flows: the 8080 connection opened from outside, accepted by rule web-in ($FW_RULE_WEB_IN)"
  out=$(flows_get "port=8080&address=fd00:2::2")
  expect_jq "$out" '[.flows[] | select(.family == 6 and .dst_port == 8080 and .src == "fd00:2::2")] | length >= 1' "/flows: the IPv6 8080 connection"

  # Echo: both directions, both families (outside -> inside by the ping rules).
  fw_ping e 10.1.0.2 -c 20 -i 0.01
  fw_ping e fd00:1::2 -6 -c 20 -i 0.01
  fw_ping w fd00:2::2 -6 -c 20 -i 0.01
  out=$(flows_get "protocol=icmp&address=10.2.0.2")
  expect_jq "$out" '[.flows[] | select(.src == "10.2.0.2" and .dst == "10.1.0.2")] | length >= 1' "/flows: an ICMP echo flow opened from outside"
}

# (c) reject: RST for TCP 23, ICMP port unreachable for UDP 5353, from Sluice.
fw_check_reject() {
  step "(c) reject: TCP 23 gets a RST (curl exit 7 < 2 s) both ways, UDP 5353 gets ICMP port unreachable"
  local resets unreach rc t0 ms out dir
  fw_http_server e 10.2.0.2 23
  fw_http_server w 10.1.0.2 23
  resets=$(ct_counter resets_sent)
  for dir in "w 10.2.0.2" "e 10.1.0.2"; do
    set -- $dir
    rc=0
    t0=$(date +%s%N)
    ip netns exec "${IT_NS}$1" curl -sS -m 5 -o /dev/null "http://$2:23/" 2>/dev/null || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    expect_eq "$rc" 7 "curl from ${IT_NS}$1 to $2:23 (a listener is there): exit 7, connection refused"
    expect_num "$ms" -lt 2000 "curl to $2:23 refused within (ms)"
  done
  expect_num "$(ct_counter resets_sent)" -ge $((resets + 2)) "conntrack resets_sent after two rejected connections (before: $resets)"
  out=$(fw_stats)
  expect_jq "$out" "[.firewall.rules[] | select(.index == $FW_RULE_TELNET and .name == \"telnet-reject\" and .packets >= 2)] | length == 1" \
    "firewall rule telnet-reject counted the rejected SYNs"

  unreach=$(ct_counter unreachables_sent)
  fw_udp_listener e :: 5353 20 udp-5353.log
  local listener=$FW_BG_PID
  out=$(nsw timeout 10 "$SLUICE_PY" "$IT_TMP/py/udp_reject_probe.py" 10.2.0.2 5353)
  expect_eq "$out" "errno 111 origin 2 type 3 code 3 offender 10.1.0.1" "UDP to 10.2.0.2:5353: ICMP port unreachable from Sluice's 10.1.0.1"
  out=$(nsw timeout 10 "$SLUICE_PY" "$IT_TMP/py/udp_reject_probe.py" fd00:2::2 5353)
  expect_eq "$out" "errno 111 origin 3 type 1 code 4 offender fd00:1::1" "UDP to [fd00:2::2]:5353: ICMPv6 port unreachable from Sluice's fd00:1::1"
  nse "$SLUICE_PY" "$IT_TMP/py/udp_send.py" 10.2.0.2 5353 1 control
  wait "$listener" || fail "UDP listener failed: $(cat "$IT_TMP/udp-5353.log")"
  expect_eq "$(tail -1 "$IT_TMP/udp-5353.log")" "got 0 control 1" "UDP 5353 listener outside: rejected datagrams / local control"
  expect_num "$(ct_counter unreachables_sent)" -ge $((unreach + 2)) "conntrack unreachables_sent (before: $unreach)"
  expect_jq "$(fw_stats)" "[.firewall.rules[] | select(.index == $FW_RULE_MDNS and .name == \"mdns-reject\" and .packets >= 2)] | length == 1" \
    "firewall rule mdns-reject counted the rejected datagrams"
}

# Sorted one-line keys of every flow in a listing, for set comparisons.
flow_keys() { # json
  printf '%s' "$1" | jq -r '.flows[] | "\(.lcore) \(.family) \(.protocol) \(.zone) \(.src) \(.src_port // .icmp_id // "-") \(.dst) \(.dst_port // "-")"' | sort
}

# Walks GET /flows?limit=1 by next_cursor; prints the keys; fails on a page of more than one.
flows_walk() { # [extra query]
  local cursor="" page n=0 extra=${1:+&$1}
  while :; do
    page=$(flows_get "limit=1${cursor:+&cursor=$cursor}$extra") || exit 1
    [[ $(printf '%s' "$page" | jq '.count <= 1 and (.flows | length) == .count') == true ]] ||
      fail "/flows?limit=1 returned a page of $(printf '%s' "$page" | jq -c .)"
    flow_keys "$page"
    cursor=$(printf '%s' "$page" | jq -r '.next_cursor // empty')
    [[ -z $cursor ]] && break
    n=$((n + 1))
    ((n < 5000)) || fail "/flows paging: still a next_cursor after 5000 pages"
  done
}

# Walks /flows with limit=1 and checks it against one big page read before and one
# after: every flow present in both must be walked, nothing walked may be in neither,
# nothing twice (flows that expire or appear during the walk may go either way).
fw_check_paging() { # what [extra query]
  local before after walk missing extra dups
  before=$(flow_keys "$(flows_get "limit=10000${2:+&$2}")") || exit 1
  walk=$(flows_walk "${2:-}") || exit 1
  after=$(flow_keys "$(flows_get "limit=10000${2:+&$2}")") || exit 1
  dups=$(printf '%s\n' "$walk" | sort | uniq -d)
  walk=$(printf '%s\n' "$walk" | sort -u)
  missing=$(comm -23 <(comm -12 <(printf '%s\n' "$before") <(printf '%s\n' "$after")) <(printf '%s\n' "$walk"))
  extra=$(comm -13 <(printf '%s\n' "$before" "$after" | sort -u) <(printf '%s\n' "$walk"))
  [[ -z $dups && -z $missing && -z $extra ]] ||
    fail "$1: walking /flows?limit=1 by next_cursor does not match one page:
walked twice: ${dups:-none}
missed (listed before and after the walk): ${missing:-none}
walked but listed neither before nor after: ${extra:-none}
one page before the walk:
$before"
  FW_PAGED=$(printf '%s\n' "$walk" | grep -c .)
  fw_ok "$1: $FW_PAGED flows walked one page at a time"
}

# (d) /flows: contents, filters, paging, flush, errors.
fw_check_flows() {
  step "(d) /flows: iperf3 and curl flows established while they run, time_wait after; filters; paging; flush; 400s"
  local out f
  fw_iperf_server e 10.2.0.2 5201
  # Both transfers last 12 s, so that every check below sees them established: on a
  # loaded 2-CPU host the listings and filters took over 6 s (the first version's length).
  nsw timeout 50 iperf3 -c 10.2.0.2 -p 5201 -t 12 -b 20M --cport 40001 -J >"$IT_TMP/iperf-d.json" 2>&1 &
  local iperf=$!
  # The server spreads the 1 MB over 12 s: the connection is established all along.
  fw_trickle_server e 10.2.0.2 8100 12
  nsw curl -sS -m 40 --local-port 40100 -o "$IT_TMP/got-d" http://10.2.0.2:8100/blob &
  local curlpid=$!
  wait_flows "port=40001" "$(jq_flow 40001 5201) | . != null and .state == \"established\"" "the iperf3 data flow (40001 -> 5201) established" 10
  wait_flows "port=40100" "$(jq_flow 40100 8100) | . != null and .state == \"established\"" "the curl flow (40100 -> 8100) established" 10
  # Everything about the three connections, from one listing.
  out=$(flows_get "limit=10000")
  expect_jq "$out" "$(jq_flow 40001 5201) | .family == 4 and .protocol == \"tcp\" and .src == \"10.1.0.2\" and .dst == \"10.2.0.2\" and .state == \"established\" and .seen_reply and .assured and .zone == 0 and .expires_in_s > 60" \
    "/flows: iperf3 data connection 10.1.0.2:40001 -> 10.2.0.2:5201 tcp established assured"
  expect_jq "$out" '[.flows[] | select(.protocol == "tcp" and .dst_port == 5201 and .src_port != 40001 and .src == "10.1.0.2" and .dst == "10.2.0.2" and .state == "established")] | length == 1' \
    "/flows: iperf3 control connection -> 10.2.0.2:5201 established"
  expect_jq "$out" "$(jq_flow 40100 8100) | .protocol == \"tcp\" and .src == \"10.1.0.2\" and .dst == \"10.2.0.2\" and .state == \"established\"" \
    "/flows: curl 10.1.0.2:40100 -> 10.2.0.2:8100 tcp established"
  expect_jq "$out" '.active >= .count and .next_cursor == null' "/flows: one page has everything, active >= count"

  # Filters, while the transfers run.
  f=$(flows_get "protocol=tcp")
  expect_jq "$f" '(.flows | all(.protocol == "tcp")) and ([.flows[] | select(.src_port == 40001 or .src_port == 40100)] | length == 2)' "filter protocol=tcp"
  f=$(flows_get "port=5201")
  expect_jq "$f" '(.flows | all(.src_port == 5201 or .dst_port == 5201)) and .count >= 2 and ([.flows[] | select(.src_port == 40100)] | length == 0)' "filter port=5201"
  f=$(flows_get "address=10.1.0.2&limit=10000")
  expect_jq "$f" '(.flows | all(.src == "10.1.0.2" or .dst == "10.1.0.2")) and ([.flows[] | select(.src_port == 40001 or .src_port == 40100)] | length == 2) and (.flows | all(.family == 4))' "filter address=10.1.0.2"
  f=$(flows_get "address=fd00:2::/64&limit=10000")
  expect_jq "$f" '(.flows | all(.family == 6)) and .count >= 1' "filter address=fd00:2::/64 (IPv6 flows only)"
  f=$(flows_get "state=established&limit=10000")
  expect_jq "$f" '(.flows | all(.state == "established")) and ([.flows[] | select(.src_port == 40001 or .src_port == 40100)] | length == 2)' "filter state=established"
  f=$(flows_get "protocol=tcp&port=40100&address=10.2.0.2&state=established&zone=0")
  expect_jq "$f" ".count == 1 and (.flows[0].src_port == 40100)" "filters combined"
  f=$(flows_get "zone=7")
  expect_jq "$f" '.count == 0' "filter zone=7 (no such conntrack zone)"
  kill -0 "$iperf" 2>/dev/null && kill -0 "$curlpid" 2>/dev/null ||
    fail "the transfers ended before the filter checks did: they no longer show what an established flow looks like"

  wait "$curlpid" || fail "curl of the trickled 1 MB failed"
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-d" || fail "curl (trickled): the file came back different"
  wait "$iperf" || fail "iperf3 -t 6 failed: $(jq -r .error "$IT_TMP/iperf-d.json" 2>/dev/null)"
  wait_flows "port=40100" "$(jq_flow 40100 8100) | . != null and .state == \"time_wait\"" "the curl flow in time_wait after the transfer" 10
  # iperf3 ends its data connection with a FIN, or, when the server still had unread
  # data as the test ended (a loaded host), with a RST (iperf3's own doing: it closes
  # the socket unread): conntrack must follow either end, to time_wait or to close.
  wait_flows "port=40001" "$(jq_flow 40001 5201) | . != null and (.state == \"time_wait\" or .state == \"close\")" \
    "the iperf3 data flow ended (time_wait, or close after iperf3's RST) after the run" 10
  local iperf_end
  iperf_end=$(flows_get "port=40001" | jq -r "$(jq_flow 40001 5201) | .state")
  it_log "iperf3 data flow after the run: $iperf_end"
  # The curl flow is in time_wait, and the iperf3 one as well when it ended with a FIN.
  f=$(flows_get "state=time_wait&limit=10000")
  expect_jq "$f" "(.flows | all(.state == \"time_wait\")) and ([.flows[] | select(.src_port == 40100)] | length == 1) and ([.flows[] | select(.src_port == 40001)] | length == $([[ $iperf_end == time_wait ]] && echo 1 || echo 0))" "filter state=time_wait"

  # Some UDP flows (v4 and v6) to flush.
  nsw "$SLUICE_PY" - <<'PY'
import socket
for fam, addr in ((socket.AF_INET, "10.2.0.2"), (socket.AF_INET6, "fd00:2::2")):
    for port in range(6000, 6004):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.sendto(b"x", (addr, port))
        s.close()
PY
  wait_flows "protocol=udp&limit=10000" '[.flows[] | select(.dst_port >= 6000 and .dst_port < 6004)] | length == 8' "the 8 UDP flows to ports 6000-6003" 10

  # Paging: limit=1 and next_cursor visit every flow once.
  fw_check_paging "paging"
  expect_num "$FW_PAGED" -ge 10 "flows walked with limit=1"

  # Flush UDP only.
  local udp_before tcp_before tcp_after flushed_before flushed
  udp_before=$(flows_get "protocol=udp&limit=10000" | jq .count)
  tcp_before=$(flow_keys "$(flows_get "protocol=tcp&limit=10000")")
  flushed_before=$(fw_stat .flows.flushed)
  fw_http POST "/flows/flush?protocol=udp"
  expect_eq "$HTTP_CODE" 200 "POST /flows/flush?protocol=udp status"
  flushed=$(printf '%s' "$HTTP_BODY" | jq -r .flushed)
  expect_num "$flushed" -ge 8 "flows flushed (UDP flows listed just before: $udp_before)"
  expect_num "$flushed" -le "$udp_before" "flows flushed, at most the UDP flows listed before"
  expect_jq "$(flows_get "protocol=udp")" '.count == 0' "no UDP flow after the flush"
  tcp_after=$(flow_keys "$(flows_get "protocol=tcp&limit=10000")")
  [[ $tcp_after == "$tcp_before" ]] || fail "the UDP flush changed the TCP flows: before: $tcp_before
after: $tcp_after"
  expect_num "$(fw_stat .flows.flushed)" -eq $((flushed_before + flushed)) "/stats flows.flushed"
  fw_check_flow_accounting "after the flush"

  # Bad queries: 400 with a message naming the parameter.
  local q
  for q in "GET /flows?protocol=sctp protocol" "GET /flows?port=70000 port" "GET /flows?address=10.1.0.300 address" \
    "GET /flows?state=bogus state" "GET /flows?limit=abc limit" "GET /flows?limit=10001 limit" "GET /flows?cursor=xyz cursor" \
    "GET /flows?zone=-1 zone" "GET /flows?colour=red colour" "POST /flows/flush?limit=5 limit" \
    "POST /flows/flush?port=x port"; do
    set -- $q
    fw_http "$1" "$2"
    expect_eq "$HTTP_CODE" 400 "$1 $2 status"
    expect_jq "$HTTP_BODY" "(.error | type == \"string\") and (.error | contains(\"$3\"))" "$1 $2: an error message naming '$3'"
  done
}

# (e) a full table (capacity 1024) while a TCP and a UDP stream run.
fw_check_table_full() {
  step "(e) capacity 1024: new-flow flood from inside while an iperf3 TCP and a UDP stream (5 Mbit/s, 200 B) run"
  local s max fwdrop_before evicted_before full_before tcp_flow out udp_json tcp_json i peak=0 sent
  s=$(fw_stats)
  local stats_before=$s
  expect_jq "$s" '.flows.lcores | all(.max_ipv4 == 1024)' "flows.lcores[].max_ipv4 is the configured 1024"
  fwdrop_before=$(printf '%s' "$s" | jq .drops.firewall_drop)
  evicted_before=$(printf '%s' "$s" | jq .flows.evicted)
  full_before=$(printf '%s' "$s" | jq .drops.flow_table_full)
  fw_iperf_server e 10.2.0.2 5201
  fw_iperf_server e 10.2.0.2 5202
  # The streams outlast the flood (at most 6 s) by far, even on a busy machine.
  local rcvbuf
  rcvbuf=$(udp_rcvbuf_errors e)
  nsw timeout 60 iperf3 -c 10.2.0.2 -p 5202 -u -b 5M -l 200 -w 2M -t 15 --cport 40003 -J >"$IT_TMP/iperf-e-udp.json" 2>&1 &
  local udp=$!
  nsw timeout 60 iperf3 -c 10.2.0.2 -p 5201 -b 20M -t 15 --cport 40002 -J >"$IT_TMP/iperf-e-tcp.json" 2>&1 &
  local tcp=$!
  wait_flows "port=40002" "$(jq_flow 40002 5201) | . != null and .state == \"established\" and .assured" "the iperf3 TCP stream's flow established" 10
  wait_flows "port=40003" "$(jq_flow 40003 5202) | . != null and .seen_reply" "the iperf3 UDP stream's flow replied" 10
  tcp_flow=$(flows_get "port=40002" | jq -c "$(jq_flow 40002 5201) | {src, src_port, dst, dst_port, protocol, lcore}")

  # The flood: SYNs to ever new ports (10000 up), at most 5000/s, for 6 s.
  nsw timeout -s INT 6 hping3 -q -S -p ++10000 -i u200 -c 30000 10.2.0.2 >"$IT_TMP/hping3.log" 2>&1 &
  local flood=$!
  for i in $(seq 1 30); do
    kill -0 "$flood" 2>/dev/null || break
    sleep 0.4
    s=$(fw_stats)
    expect_jq "$s" '.flows.lcores | all(.active_ipv4 <= .max_ipv4 and .active <= .max)' "flows active <= max during the flood"
    peak=$(printf '%s' "$s" | jq --argjson p "$peak" '[.flows.lcores[].active_ipv4] | max | if . > $p then . else $p end')
    out=$(flows_get "port=40002")
    expect_jq "$out" "$(jq_flow 40002 5201) | . != null and .state == \"established\"" "the TCP stream's flow during the flood"
  done
  wait "$flood" || true
  sent=$(grep -Eo '^[0-9]+ packets transmitted' "$IT_TMP/hping3.log" | grep -Eo '^[0-9]+' || echo "?")
  s=$(fw_stats)
  local evicted full
  evicted=$(($(printf '%s' "$s" | jq .flows.evicted) - evicted_before))
  full=$(($(printf '%s' "$s" | jq .drops.flow_table_full) - full_before))
  expect_num $((evicted + full)) -gt 0 "flows evicted ($evicted) + flow_table_full drops ($full) during the flood"
  expect_num "$peak" -le 1024 "peak flows.lcores[].active_ipv4"
  kill -0 "$tcp" 2>/dev/null || fail "the TCP stream ended before the flood did (the machine is too slow for this check)"
  out=$(flows_get "port=40002")
  expect_jq "$out" "$(jq_flow 40002 5201) | . != null and .state == \"established\" and .assured and ({src, src_port, dst, dst_port, protocol, lcore} == $tcp_flow)" \
    "the TCP stream's flow, unchanged and established, after the flood"

  wait "$udp" || fail "iperf3 UDP stream failed: $(jq -r .error "$IT_TMP/iperf-e-udp.json" 2>/dev/null)"
  wait "$tcp" || fail "iperf3 TCP stream failed: $(jq -r .error "$IT_TMP/iperf-e-tcp.json" 2>/dev/null)"
  # Its end: a FIN (time_wait), or iperf3's RST when its server closes with data unread
  # (a loaded host; see (d)): conntrack follows either, and the stream itself succeeded.
  wait_flows "port=40002" "$(jq_flow 40002 5201) | . != null and (.state == \"time_wait\" or .state == \"close\")" \
    "the TCP stream's flow ended (time_wait, or close after iperf3's RST)" 10
  it_log "the TCP stream's flow after the run: $(flows_get "port=40002" | jq -r "$(jq_flow 40002 5201) | .state")"
  udp_json=$(cat "$IT_TMP/iperf-e-udp.json")
  tcp_json=$(cat "$IT_TMP/iperf-e-tcp.json")
  expect_jq "$udp_json" '.end.sum.packets > 10000' "the UDP stream sent its packets"
  expect_udp_no_loss "$udp_json" "$rcvbuf" "UDP stream (5 Mbit/s, 200 B, 15 s)"
  # The stream is paced at 20 Mbit/s for 15 s; through the flood it kept 19 of them on
  # a busy host. A quarter is the floor: a stream the flood broke or starved (its flow
  # evicted, its packets dropped as new) moves a small part of that or nothing.
  assert_tcp_floor "$tcp_json" "the paced TCP stream (20 Mbit/s, 15 s) through the flood" 5
  expect_num "$(fw_drop firewall_drop)" -eq "$fwdrop_before" \
    "drops.firewall_drop during the flood (a stream packet from outside without its flow would be one)"
  printf '    flood: %s SYNs sent in 6 s, %s flows evicted, %s flow_table_full drops, peak active %s of 1024; TCP %s Mbit/s, %s retransmits; UDP %s packets, %s lost\n' \
    "$sent" "$evicted" "$full" "$peak" "$(printf '%s' "$tcp_json" | jq '.end.sum_received.bits_per_second / 1e6 | floor')" \
    "$(printf '%s' "$tcp_json" | jq '.end.sum_sent.retransmits')" "$(printf '%s' "$udp_json" | jq .end.sum.packets)" \
    "$(printf '%s' "$udp_json" | jq .end.sum.lost_packets)"
  printf '    drops and port losses during the flood: %s\n' "$(fw_stats | jq -c --argjson b "$stats_before" '
    [(.drops | to_entries[] | select(.value > ($b.drops[.key] // 0)) | "\(.key) +\(.value - ($b.drops[.key] // 0))"),
     (.ports[] as $p | ($b.ports[] | select(.name == $p.name)) as $q | ("rx_missed", "tx_errors", "rx_nombuf") as $k
      | select($p[$k] > $q[$k]) | "\($p.name).\($k) +\($p[$k] - $q[$k])")]')"
  fw_check_flow_accounting "after the flood"
  # Still taking new connections afterwards.
  nsw curl -sS -m 20 -o "$IT_TMP/got-e" http://10.2.0.2:8000/blob || fail "curl after the flood failed"
  cmp -s "$IT_TMP/www/blob" "$IT_TMP/got-e" || fail "curl after the flood: the file came back different"
}

# Toggles a rule that matches nothing the test sends (TCP 9999 drop).
fw_toggle_probe_rule() { # file
  local file=$1
  if jq -e '.firewall.rules | any(.name == "reload-probe")' "$file" >/dev/null; then
    jq '.firewall.rules |= map(select(.name != "reload-probe"))' "$file" >"$file.new"
  else
    jq '.firewall.rules += [{name: "reload-probe", protocol: "tcp", dst_ports: 9999, action: "drop"}]' "$file" >"$file.new"
  fi
  mv "$file.new" "$file"
}

wait_generation() { # generation what [timeout_s]
  local deadline=$((SECONDS + ${3:-10})) g=""
  while ((SECONDS < deadline)); do
    g=$(fw_stat .firewall.generation)
    [[ $g == "$1" ]] && return 0
    sleep 0.2
  done
  fail "$2: firewall generation $g, expected $1 within ${3:-10} s"
}

# (f) reloads under traffic; refused reloads keep the old rules.
fw_check_reload() {
  step "(f) 10 reloads (POST /reload and SIGHUP, a rule added/removed) under ping -i 0.01 -c 2000: no loss"
  local cfg=$FW_CONFIG gen0 gen i ping_out rules_before names out rc refused_before
  cp "$cfg" "$IT_TMP/config-before-reload.json"
  gen0=$(fw_stat .firewall.generation)
  expect_num "$gen0" -ge 1 "firewall generation at start"
  local ports_before
  ports_before=$(fw_stats | jq -c '[.ports[] | {name, rx_packets, tx_packets}]')
  nsw ping -n -q -i 0.01 -c 2000 -W 2 10.2.0.2 >"$IT_TMP/ping-reload.log" 2>&1 &
  local ping=$!
  sleep 0.3
  for i in $(seq 1 10); do
    fw_toggle_probe_rule "$cfg"
    if ((i % 2 == 1)); then
      fw_http POST /reload
      expect_eq "$HTTP_CODE" 200 "POST /reload #$i status (body: $HTTP_BODY)"
      expect_jq "$HTTP_BODY" ".reloaded == true and .generation == $((gen0 + i))" "POST /reload #$i answer"
    else
      kill -HUP "$SLUICE_PID"
    fi
    wait_generation $((gen0 + i)) "reload #$i ($( ((i % 2)) && echo POST || echo SIGHUP))"
    names=$(fw_stat '[.firewall.rules[].name] | join(",")')
    if ((i % 2 == 1)); then
      expect_contains "$names" "reload-probe" "rules after reload #$i"
    else
      [[ $names != *reload-probe* ]] || fail "rules after reload #$i still have reload-probe: $names"
    fi
    sleep 0.3
  done
  kill -0 "$ping" 2>/dev/null || fail "the ping finished before the 10th reload: the reloads were not all under traffic"
  wait "$ping" || true
  ping_out=$(tail -3 "$IT_TMP/ping-reload.log")
  [[ $ping_out == *"2000 packets transmitted, 2000 received"* ]] ||
    fail "ping during the reloads lost packets: $ping_out
port counters during the ping (requests: west rx -> east tx; replies: east rx -> west tx): $(fw_stats | jq -c --argjson b "$ports_before" \
      '[.ports[] as $p | ($b[] | select(.name == $p.name)) as $q | {name: $p.name, rx: ($p.rx_packets - $q.rx_packets), tx: ($p.tx_packets - $q.tx_packets)}]')"
  expect_eq "$(fw_stat .firewall.generation)" $((gen0 + 10)) "firewall generation after 10 reloads"
  expect_num "$(grep -c 'SIGHUP: reloading' "$SLUICE_LOG")" -ge 5 "log lines 'SIGHUP: reloading'"
  expect_num "$(grep -c "reload of $cfg: applied" "$SLUICE_LOG")" -ge 10 "log lines 'reload of ...: applied'"
  printf '    ping: %s\n' "$(grep -E 'packets transmitted' "$IT_TMP/ping-reload.log")"

  step "(f) refused reloads: unknown key (400), burst_size (409), by POST and SIGHUP; the old rules stay"
  gen=$(fw_stat .firewall.generation)
  rules_before=$(fw_stat '[.firewall.rules[].name] | join(",")')
  refused_before=$(grep -c "refused" "$SLUICE_LOG" || true)
  jq '.colour = "red"' "$IT_TMP/config-before-reload.json" >"$cfg"
  fw_http POST /reload
  expect_eq "$HTTP_CODE" 400 "POST /reload with an unknown key: status"
  expect_jq "$HTTP_BODY" '.reloaded == false and (.errors | length >= 1) and (.errors | any(contains("colour") and contains("unknown key")))' "POST /reload with an unknown key: message"
  expect_jq "$HTTP_BODY" ".generation == $gen" "POST /reload with an unknown key: generation unchanged in the answer"
  kill -HUP "$SLUICE_PID"
  local deadline=$((SECONDS + 10))
  until (($(grep -c "refused" "$SLUICE_LOG" || true) >= refused_before + 2)); do
    ((SECONDS < deadline)) || fail "SIGHUP with an invalid config: the log does not say the reload was refused"
    sleep 0.2
  done
  jq '.burst_size = 16' "$IT_TMP/config-before-reload.json" >"$cfg"
  fw_http POST /reload
  expect_eq "$HTTP_CODE" 409 "POST /reload changing burst_size: status"
  expect_jq "$HTTP_BODY" '.reloaded == false and (.errors | any(contains("burst_size") and contains("restart")))' "POST /reload changing burst_size: message"
  expect_eq "$(fw_stat .firewall.generation)" "$gen" "firewall generation after the refused reloads"
  expect_eq "$(fw_stat '[.firewall.rules[].name] | join(",")')" "$rules_before" "firewall rules after the refused reloads"
  grep -q "unknown key" "$SLUICE_LOG" || fail "the log does not name the unknown key"
  grep -Eq "reload of .* refused" "$SLUICE_LOG" || fail "the log has no 'reload of ... refused' line"
  grep -q "burst_size changed, which needs a restart" "$SLUICE_LOG" || fail "the log does not say burst_size needs a restart"
  # The old rules still act: traffic flows, telnet is still refused.
  fw_ping w 10.2.0.2 -c 20 -i 0.01
  rc=0
  nsw curl -sS -m 5 -o /dev/null http://10.2.0.2:23/ 2>/dev/null || rc=$?
  expect_eq "$rc" 7 "curl to 10.2.0.2:23 after the refused reloads (still rejected)"
  cp "$IT_TMP/config-before-reload.json" "$cfg"
}

# The whole sequence for one driver.
fw_main() {
  local cfg=$IT_TMP/sluice.json
  step "start Sluice on net_$FW_DRIVER (firewall: default drop, inside->outside accept)"
  fw_write_config "$cfg"
  fw_start "$cfg" "$IT_TMP/sluice.log"
  fw_check_inside_out
  fw_check_outside_in
  fw_check_reject
  fw_check_flows
  step "(g) SIGTERM: exit 0, every mbuf returned"
  stop_sluice TERM
  [[ $FW_DRIVER == af_xdp ]] && assert_af_xdp_accounted "$IT_TMP/sluice.log" west east
  it_kill_ns_procs

  step "restart with conntrack.capacity 1024"
  fw_write_config "$cfg" '.conntrack.capacity = 1024 | .conntrack.capacity_ipv6 = 1024'
  fw_start "$cfg" "$IT_TMP/sluice-small.log"
  fw_http_server e 10.2.0.2 8000
  fw_check_table_full
  fw_check_reload
  step "(g) SIGTERM: exit 0, every mbuf returned"
  stop_sluice TERM
  [[ $FW_DRIVER == af_xdp ]] && assert_af_xdp_accounted "$IT_TMP/sluice-small.log" west east
  return 0
}
