# Counter checks shared by the cross-connect tests (test_xconnect_af_packet.sh,
# test_xconnect_tap.sh): traffic the test controls counted exactly, and /metrics
# carrying the same numbers as /stats. Source after tools/lib/common.sh and lib.sh, and
# call after it_init (uses stats_get, jget, fail, it_log, assert_*, nsw/nse, ping_ok).
#
# What can be exact: the parse stage's per-protocol counters (no kernel chatter is UDP or
# ICMPv4 on these links: the hosts' own traffic is ARP and ICMPv6). Port counters also
# see that chatter, so they are bounded: at least the test's packets, and every other
# packet a small one (ARP, neighbour discovery, MLD).

STATS_CHATTER_MAX_BYTES=${STATS_CHATTER_MAX_BYTES:-200}  # per packet that is not the test's

# Sum of a parse/route/... stage counter over the rows of one port (0 when absent).
stage_counter() { # stats-json port stage counter
  jget "$1" "[.stages[] | select(.port == \"$2\" and .stage == \"$3\") | .counters.\"$4\" // 0] | add // 0"
}

port_counter() { # stats-json port key
  jget "$1" ".ports[] | select(.name == \"$2\") | .\"$3\""
}

# Waits (up to 5 s) until a stage counter has moved by exactly EXPECTED since BEFORE,
# fails at once if it moved further, then checks that it stays there.
assert_stage_delta() { # before-json port stage counter expected what
  local before=$1 port=$2 stage=$3 counter=$4 want=$5 what=$6 base now delta deadline=$((SECONDS + 5))
  base=$(stage_counter "$before" "$port" "$stage" "$counter")
  while :; do
    now=$(stage_counter "$(stats_get)" "$port" "$stage" "$counter")
    delta=$((now - base))
    ((delta > want)) && fail "$what: $port $stage.$counter moved by $delta, expected exactly $want"
    ((delta == want)) && break
    ((SECONDS < deadline)) || fail "$what: $port $stage.$counter moved by $delta, expected exactly $want"
    sleep 0.1
  done
  sleep 0.3
  now=$(stage_counter "$(stats_get)" "$port" "$stage" "$counter")
  (((now - base) == want)) || fail "$what: $port $stage.$counter moved on to $((now - base)), expected exactly $want"
  it_log "ok: $what: $port $stage.$counter +$want"
}

# A port's packet and byte counters moved by N frames of FRAME_BYTES, plus only small
# packets besides (chatter): packets >= N, bytes in [N*FRAME + k*42, N*FRAME + k*max]
# where k is the number of other packets (an ARP frame, 42 bytes, is the smallest).
assert_port_delta() { # before-json after-json port rx|tx count frame_bytes what
  local before=$1 after=$2 port=$3 dir=$4 n=$5 frame=$6 what=$7 dp db others
  dp=$(($(port_counter "$after" "$port" "${dir}_packets") - $(port_counter "$before" "$port" "${dir}_packets")))
  db=$(($(port_counter "$after" "$port" "${dir}_bytes") - $(port_counter "$before" "$port" "${dir}_bytes")))
  ((dp >= n)) || fail "$what: $port ${dir}_packets moved by $dp, expected at least $n"
  others=$((dp - n))
  ((db >= n * frame + others * 42 && db <= n * frame + others * STATS_CHATTER_MAX_BYTES)) ||
    fail "$what: $port ${dir}_bytes moved by $db for $dp packets; expected $n x $frame = $((n * frame)) bytes plus $others small packet(s) (42..$STATS_CHATTER_MAX_BYTES bytes each)"
  it_log "ok: $what: $port ${dir}_packets +$dp (>= $n), ${dir}_bytes +$db ($n x $frame + $((db - n * frame)) for $others other)"
}

# Pings DEST from west exactly COUNT times (no loss) and checks the counters: parse icmp
# +COUNT on west (requests) and on east (replies), 2 x COUNT in all for a cross-connect,
# and every port moved by COUNT frames of 98 bytes (56 bytes of ping data) each way.
ping_exact_ok() { # dest count [ping args...]
  local dest=$1 n=$2 s0 s1 frame=$((14 + 20 + 8 + 56))
  shift 2
  wait_quiet 5
  s0=$(stats_get) || fail "GET /stats failed"
  ping_ok "$dest" -c "$n" "$@"
  ((PING_SENT == n)) || fail "ping sent $PING_SENT, not $n"
  assert_stage_delta "$s0" west parse icmp "$n" "ping x$n (echo requests)"
  assert_stage_delta "$s0" east parse icmp "$n" "ping x$n (echo replies)"
  s1=$(stats_get)
  assert_eq "$(($(stage_counter "$s1" west parse icmp) + $(stage_counter "$s1" east parse icmp) -
    $(stage_counter "$s0" west parse icmp) - $(stage_counter "$s0" east parse icmp)))" "$((2 * n))" \
    "ping x$n: icmp counted, requests + replies"
  assert_port_delta "$s0" "$s1" west rx "$n" "$frame" "ping x$n"
  assert_port_delta "$s0" "$s1" east tx "$n" "$frame" "ping x$n"
  assert_port_delta "$s0" "$s1" east rx "$n" "$frame" "ping x$n"
  assert_port_delta "$s0" "$s1" west tx "$n" "$frame" "ping x$n"
}

# Sends exactly COUNT UDP datagrams of PAYLOAD bytes west -> east (10.99.0.2:5400, a
# receiver that answers nothing) and checks: the receiver got all of them, parse udp
# +COUNT on west and +0 on east, parse ipv4 +COUNT on west, and west rx / east tx moved
# by COUNT frames of 42 + PAYLOAD bytes.
udp_exact_ok() { # count payload_bytes
  local n=$1 size=$2 s0 s1 frame=$((14 + 20 + 8 + $2))
  wait_quiet 5
  s0=$(stats_get) || fail "GET /stats failed"
  nse timeout 60 "$SLUICE_PY" - "$n" "$size" >"$IT_TMP/udp-exact.log" 2>&1 <<'PY' &
import socket, sys
n, size = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("10.99.0.2", 5400))
print("ready", flush=True)
s.settimeout(10)
good = other = 0
try:
    while good < n:
        data = s.recv(65536)
        if len(data) == size:
            good += 1
        else:
            other += 1
except socket.timeout:
    pass
print("received", good, "other", other, flush=True)
sys.exit(0 if good == n and other == 0 else 1)
PY
  local server=$! deadline=$((SECONDS + 10))
  until grep -q ready "$IT_TMP/udp-exact.log" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "UDP receiver did not start: $(cat "$IT_TMP/udp-exact.log")"
    sleep 0.1
  done
  nsw timeout 60 "$SLUICE_PY" - "$n" "$size" <<'PY' || fail "UDP sender failed"
import socket, sys, time
n, size = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.99.0.2", 5400))
payload = bytes(range(256)) * (size // 256 + 1)
for i in range(n):
    s.send(payload[:size])
    if i % 16 == 15:
        time.sleep(0.002)
PY
  local rc=0
  wait "$server" || rc=$?
  ((rc == 0)) || fail "UDP: the receiver did not get exactly $n datagrams of $size bytes: $(cat "$IT_TMP/udp-exact.log")"
  it_log "ok: UDP: $n datagrams of $size bytes west->east, $(tail -1 "$IT_TMP/udp-exact.log")"
  assert_stage_delta "$s0" west parse udp "$n" "UDP x$n"
  assert_stage_delta "$s0" west parse ipv4 "$n" "UDP x$n"
  assert_stage_delta "$s0" east parse udp 0 "UDP x$n (nothing comes back)"
  s1=$(stats_get)
  assert_port_delta "$s0" "$s1" west rx "$n" "$frame" "UDP x$n"
  assert_port_delta "$s0" "$s1" east tx "$n" "$frame" "UDP x$n"
}

# /metrics carries the same numbers as /stats: the ports' packet and byte counters,
# every drop reason, and every stage counter. Retried while kernel chatter moves the
# counters between the reads. Leaves the /metrics text in METRICS_TEXT.
assert_metrics_match_stats() {
  local s m s2 attempt ok=0 mismatch="counters kept moving" port key want got
  for attempt in 1 2 3 4 5; do
    s=$(stats_get)
    m=$(stats_get /metrics)
    s2=$(stats_get)
    [[ $(jget "$s" '[.ports[] | .rx_packets, .tx_packets]') == "$(jget "$s2" '[.ports[] | .rx_packets, .tx_packets]')" ]] ||
      { sleep 1; continue; }
    mismatch=""
    for port in $(jget "$s" '.ports[].name'); do
      for key in rx_packets tx_packets rx_bytes tx_bytes; do
        want=$(port_counter "$s" "$port" "$key")
        got=$(printf '%s\n' "$m" | awk -v want="sluice_port_${key}_total{port=\"$port\"}" '$1 == want {print $2}')
        [[ $got == "$want" ]] || mismatch+=" $port.$key: metrics '$got' vs stats '$want';"
      done
    done
    want=$(jget "$s" '.drops_total')
    got=$(printf '%s\n' "$m" | awk '$1 ~ /^sluice_drops_total\{/ {sum += $2} END {print sum + 0}')
    [[ $got == "$want" ]] || mismatch+=" drops: metrics '$got' vs stats '$want';"
    # Per reason, and per stage counter: "name{labels} value" lines vs the same from /stats.
    want=$(jget "$s" '[(.drops | to_entries[] | "sluice_drops_total{reason=\"\(.key)\"} \(.value)"),
      (.stages[] | . as $st | (.counters // {}) | to_entries[] |
        "sluice_stage_events_total{port=\"\($st.port)\",stage=\"\($st.stage)\",counter=\"\(.key)\"} \(.value)")] | sort | .[]')
    got=$(printf '%s\n' "$m" | grep -E '^(sluice_drops_total|sluice_stage_events_total)\{' | sort)
    [[ $want == *'sluice_stage_events_total{port="west",stage="parse",counter="udp"} '* ]] ||
      fail "assert_metrics_match_stats: no parse stage counters in /stats to compare"
    [[ $got == "$want" ]] || mismatch+=" drop reasons or stage counters: $(diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | head -6 | tr '\n' ' ');"
    [[ -z $mismatch ]] && { ok=1; break; }
    sleep 1
  done
  ((ok)) || fail "/metrics differs from /stats:$mismatch"
  METRICS_TEXT=$m
  it_log "ok: /metrics port packet/byte counters, drops (total and by reason) and stage counters equal /stats"
}
