# Shared by tests/integration/test_faults_*.sh. Source tools/lib/common.sh, lib.sh, then
# this, then call it_init.
#
# Three hosts routed through Sluice over net_af_packet, one veth pair each:
#   netns ${IT_NS}w: ${IT_NS}w0 10.1.0.2/24 gw 10.1.0.1  <->  ${IT_NS}w1  Sluice port west
#   netns ${IT_NS}e: ${IT_NS}e0 10.2.0.2/24 gw 10.2.0.1  <->  ${IT_NS}e1  Sluice port east
#   netns ${IT_NS}n: ${IT_NS}n0 10.3.0.2/24 gw 10.3.0.1  <->  ${IT_NS}n1  Sluice port north
# A fault on one port (east) must leave west <-> north alone.

nsn() { ip netns exec "${IT_NS}n" "$@"; }

faults_topo() {
  local side n=1
  topo_veth_pairs "$IT_NS"
  ip netns del "${IT_NS}n" 2>/dev/null || true
  ip link del "${IT_NS}n1" 2>/dev/null || true
  it_on_exit "ip netns del ${IT_NS}n; ip link del ${IT_NS}n1"
  ip netns add "${IT_NS}n"
  ip link add "${IT_NS}n0" type veth peer name "${IT_NS}n1"
  ip link set "${IT_NS}n0" netns "${IT_NS}n"
  ip link set "${IT_NS}n1" up
  veth_offloads_off "" "${IT_NS}n1"
  sysctl -qw "net.ipv6.conf.${IT_NS}n1.disable_ipv6=1" 2>/dev/null || true
  for side in w e n; do
    faults_host_up "$side" "$n"
    n=$((n + 1))
  done
}

faults_host_up() { # side(w|e|n) subnet
  local ns=${IT_NS}$1 dev=${IT_NS}${1}0
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "10.$2.0.2/24" dev "$dev"
  ip -n "$ns" link set "$dev" up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  veth_offloads_off "$ns" "$dev"
  ip -n "$ns" route replace default via "10.$2.0.1"
}

# Router config on the three ports; extra jq filters follow (e.g. '.mempool.mbufs=2047').
faults_config() { # file [jq-filter...]
  local file=$1 f
  shift
  jq -n --arg fp "$IT_FP" --argjson port "$IT_PORT" --arg ns "$IT_NS" '{
    eal: {lcores: "0-1", memory_mb: 256, file_prefix: $fp},
    ports: [
      {name: "west", device: "net_af_packet0", devargs: ("iface=" + $ns + "w1"), ipv4: ["10.1.0.1/24"],
       pipeline: ["parse", "route"]},
      {name: "east", device: "net_af_packet1", devargs: ("iface=" + $ns + "e1"), ipv4: ["10.2.0.1/24"],
       pipeline: ["parse", "route"]},
      {name: "north", device: "net_af_packet2", devargs: ("iface=" + $ns + "n1"), ipv4: ["10.3.0.1/24"],
       pipeline: ["parse", "route"]}
    ],
    workers: "auto",
    routes: [],
    control: {http: {address: "127.0.0.1", port: $port}},
    logging: {level: "info"}
  }' >"$file" || fail "cannot write $file"
  for f in "$@"; do
    jq "$f" "$file" >"$file.new" && mv "$file.new" "$file" || fail "jq '$f' on $file failed"
  done
}

# A counted UDP stream: the receiver in netns $1 on ADDR:PORT counts distinct sequence
# numbers until it has heard nothing for 3 s (5 s before the first), then writes
# "received N" to FILE.
udp_receiver_start() { # netns addr port file
  ip netns exec "$1" timeout 300 "$SLUICE_PY" - "$2" "$3" >"$4" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
print("READY", flush=True)
seen = set()
s.settimeout(5)
try:
    while True:
        data = s.recv(2048)
        seen.add(int(data.split(b":")[0]))
        s.settimeout(3)
except socket.timeout:
    pass
print("received", len(seen), flush=True)
PY
  UDP_RECEIVER_PID=$!
  wait_ready "$4" "UDP receiver in $1"
}

# Sends COUNT datagrams of SIZE bytes to ADDR:PORT from netns $1 at RATE per second;
# prints "sent N".
udp_send() { # netns addr port count rate size
  ip netns exec "$1" timeout 300 "$SLUICE_PY" - "$2" "$3" "$4" "$5" "$6" <<'PY'
import socket, sys, time
addr, port, count, rate, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((addr, port))
start = time.monotonic()
pad = b"x" * max(0, size - 12)
for i in range(count):
    due = start + i / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    while True:
        try:
            s.send(b"%d:" % i + pad)
            break
        except BlockingIOError:
            time.sleep(0.0005)
print("sent", count, flush=True)
PY
}

# Waits (up to 20 s) for the receiver writing FILE to report, and prints its count. Polls
# the file: called inside $(...), a subshell cannot wait for the receiver.
udp_received() { # file
  local deadline=$((SECONDS + 20))
  until grep -q '^received ' "$1"; do
    ((SECONDS < deadline)) || fail "UDP receiver never reported: $(cat "$1")"
    sleep 0.2
  done
  sed -n 's/^received //p' "$1"
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }

# The drops of one reason on one port's stage (tx: the TX queues), from /stats.
port_stage_drop() { # port stage reason
  stats_get | jq -r --arg p "$1" --arg s "$2" --arg r "$3" \
    '[.stages[]? | select(.port == $p and .stage == $s) | .drops[$r] // 0] | add // 0'
}
