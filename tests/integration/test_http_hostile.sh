#!/bin/bash
# The control endpoint under abuse: slowloris, garbage, oversized headers and bodies,
# odd framing and 200 parallel clients. Meanwhile pings cross Sluice without loss (the
# data plane never waits on HTTP); afterwards /health still answers, every mbuf comes
# home, and the socket is bound to 127.0.0.1 only.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init ithh 9194
require_cmd ping ss

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json
write_xconnect_config "$cfg" af_packet
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up
wait_ping 10.99.0.2

# ---- bound to loopback only
listeners=$(ss -Hltnp "sport = :$IT_PORT")
it_log "listeners on :$IT_PORT: $listeners"
[[ -n $listeners ]] || fail "nothing listens on port $IT_PORT"
while read -r _ _ _ local _ proc; do
  [[ $local == "127.0.0.1:$IT_PORT" ]] || fail "HTTP listens on $local, expected 127.0.0.1:$IT_PORT only"
  [[ $proc == *"pid=$SLUICE_PID,"* ]] || fail "port $IT_PORT is held by $proc, not Sluice (pid $SLUICE_PID)"
done <<<"$listeners"
it_log "ok: HTTP bound to 127.0.0.1:$IT_PORT only"

# ---- pings through Sluice for as long as the abuse lasts: ping -c 500 -i 0.005, repeated
ping_loop() {
  local i=0
  while [[ ! -e $IT_TMP/stop-ping ]]; do
    i=$((i + 1))
    ip netns exec "${IT_NS}w" timeout 30 ping -n -q -W 2 -c 500 -i 0.005 10.99.0.2 >"$IT_TMP/ping.$i" 2>&1 || true
  done
}
ping_loop &
ping_pid=$!
it_on_exit "kill $ping_pid"

alive() { kill -0 "$SLUICE_PID" 2>/dev/null || fail "Sluice died during: $1"; }

# ---- slowloris: 150 connections trickling header lines, 50 idle, for 12 s (background)
"$SLUICE_PY" - "$IT_PORT" >"$IT_TMP/slowloris.log" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks = []
for i in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        if i < 150:
            s.send(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(s)
    except OSError as e:
        print("connect", i, e)
print("open", len(socks), flush=True)
end = time.time() + 12
while time.time() < end:
    for i, s in enumerate(socks[:150]):
        try:
            s.send(b"X-Slow-%d: %d\r\n" % (i, int(time.time())))
        except OSError:
            pass
    time.sleep(1)
for s in socks:
    s.close()
print("done", flush=True)
PY
slowloris_pid=$!
it_on_exit "kill $slowloris_pid"
sleep 2
alive slowloris

# ---- garbage and oversized requests, each on its own connection (answers: a 4xx or a close)
timeout 120 "$SLUICE_PY" - "$IT_PORT" >"$IT_TMP/garbage.log" 2>&1 <<'PY' || fail "garbage client failed: $(cat "$IT_TMP/garbage.log")"
import os, random, socket, sys, time
port = int(sys.argv[1])
H = b"Host: 127.0.0.1\r\n"
big = b"a" * (100 * 1024)
random.seed(7)
cases = {
  "binary noise": os.urandom(4096),
  "NUL and 0xff": b"\x00\xff" * 500 + b"\r\n\r\n",
  "bare GET": b"GET\r\n\r\n",
  "HTTP/9.9": b"GET /health HTTP/9.9\r\n" + H + b"\r\n",
  "no version": b"GET /health\r\n\r\n",
  "lower-case method": b"get /health HTTP/1.1\r\n" + H + b"\r\n",
  "unknown method": b"BREW /stats HTTP/1.1\r\n" + H + b"\r\n",
  "NUL in path": b"GET /sta\x00ts HTTP/1.1\r\n" + H + b"\r\n",
  "percent garbage": b"GET /%zz%00%ff/../../etc/passwd HTTP/1.1\r\n" + H + b"\r\n",
  "100 KiB URI": b"GET /" + big + b" HTTP/1.1\r\n" + H + b"\r\n",
  "100 KiB header": b"GET /stats HTTP/1.1\r\n" + H + b"X-Big: " + big + b"\r\n\r\n",
  "2000 headers": b"GET /stats HTTP/1.1\r\n" + H + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(2000)) + b"\r\n",
  "1 MiB POST body": b"POST /stats HTTP/1.1\r\n" + H + b"Content-Length: 1048576\r\n\r\n" + b"p" * 1048576,
  "200 KiB GET body": b"GET /stats HTTP/1.1\r\n" + H + b"Content-Length: 204800\r\n\r\n" + b"g" * 204800,
  "huge Content-Length": b"GET /stats HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\nxx",
  "negative Content-Length": b"GET /stats HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n",
  "bad Content-Length": b"GET /stats HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n",
  "bad chunk size": b"GET /stats HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
  "huge chunk size": b"GET /stats HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nxx\r\n",
  "chunked 1 MiB": b"POST /config HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(b"10000\r\n" + b"c" * 65536 + b"\r\n" for _ in range(16)) + b"0\r\n\r\n",
  "many ranges": b"GET /stats HTTP/1.1\r\n" + H + b"Range: bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(3000)) + b"\r\n\r\n",
  "range past end": b"GET /metrics HTTP/1.1\r\n" + H + b"Range: bytes=99999999-\r\n\r\n",
  "inverted range": b"GET /config HTTP/1.1\r\n" + H + b"Range: bytes=50-10\r\n\r\n",
  "header without colon": b"GET /stats HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n",
  "LF only": b"GET /health HTTP/1.1\nHost: x\n\n",
  "unfinished request": b"GET /health HTTP/1.1\r\n",
  "pipelined 150": (b"GET /health HTTP/1.1\r\n" + H + b"\r\n") * 150,
}
for i in range(30):
  n = random.randint(1, 3000)
  cases["random %d" % i] = bytes(random.getrandbits(8) for _ in range(n))
ok = 0
for name, payload in cases.items():
  try:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    try:
      s.sendall(payload)
    except OSError as e:
      pass  # the server may close on us mid-send: fine
    data = b""
    try:
      while len(data) < 1 << 20:
        chunk = s.recv(65536)
        if not chunk:
          break
        data += chunk
        # Once an answer has started, stop at the first half second of silence instead
        # of waiting out the 5 s keep-alive (a half-close would make httplib drop replies).
        s.settimeout(0.5)
    except OSError:
      pass
    s.close()
    status = data.split(b"\r\n", 1)[0][:40].decode("latin-1") if data else "(closed)"
    print("%-24s -> %s (%d bytes)" % (name, status, len(data)), flush=True)
    ok += 1
  except OSError as e:
    print("%-24s -> connect error %s" % (name, e), flush=True)
    sys.exit(1)
print("cases", ok)
PY
alive "garbage requests"
it_log "garbage and oversized requests answered or closed:"
sed 's/^/    /' "$IT_TMP/garbage.log" >&2
grep -Eq '^1 MiB POST body +-> HTTP/1.1 4(05|13)' "$IT_TMP/garbage.log" || fail "1 MiB POST was not refused with 405/413"
grep -Eq '^100 KiB header +-> (HTTP/1.1 4[0-9][0-9]|\(closed\))' "$IT_TMP/garbage.log" || fail "100 KiB header was not refused"
grep -Eq '^100 KiB URI +-> (HTTP/1.1 4[0-9][0-9]|\(closed\))' "$IT_TMP/garbage.log" || fail "100 KiB URI was not refused"
grep -Eq '^percent garbage +-> HTTP/1.1 404' "$IT_TMP/garbage.log" || fail "GET /%zz%00%ff/... was not answered 404"
grep -Eq '^unknown method +-> HTTP/1.1 (405|400)' "$IT_TMP/garbage.log" || fail "BREW /stats was not refused"

# ---- once the slow clients give up, 200 parallel curls all get their stats
timeout 40 tail --pid="$slowloris_pid" -f /dev/null || fail "slowloris client did not finish"
grep -q '^done' "$IT_TMP/slowloris.log" || fail "slowloris client: $(cat "$IT_TMP/slowloris.log")"
alive slowloris
for i in $(seq 200); do
  curl -s -m 60 -o /dev/null -w '%{http_code}\n' "http://$IT_HTTP/stats" >"$IT_TMP/curl.$i" 2>&1 &
done
wait_deadline=$((SECONDS + 90))
while (($(cat "$IT_TMP"/curl.* 2>/dev/null | grep -c .) < 200)) && ((SECONDS < wait_deadline)); do sleep 0.5; done
codes=$(cat "$IT_TMP"/curl.* | sort | uniq -c | tr -s ' ' | tr '\n' ';')
assert_eq "$(cat "$IT_TMP"/curl.* | grep -c '^200$')" 200 "parallel curls answered 200 ($codes)"
alive "parallel curls"

# ---- stop the pings: every round lost nothing
touch "$IT_TMP/stop-ping"
timeout 40 tail --pid="$ping_pid" -f /dev/null || fail "ping loop did not stop"
rounds=0
for f in "$IT_TMP"/ping.*; do
  summary=$(grep -E 'packets transmitted' "$f" || true)
  [[ $summary =~ ^([0-9]+)\ packets\ transmitted,\ ([0-9]+)\ received ]] || fail "ping round $f: $(cat "$f")"
  [[ ${BASH_REMATCH[1]} == 500 && ${BASH_REMATCH[2]} == 500 ]] || fail "ping loss during the HTTP abuse: $summary"
  rounds=$((rounds + 1))
done
assert_ge "$rounds" 2 "ping rounds (500 each, 0% loss) during the abuse"

# ---- the endpoint still answers, the data plane still forwards, the stop is clean
assert_eq "$(http_status GET /health)" 200 "GET /health after the abuse"
assert_eq "$(stats_get /health | jq -r .status)" ok "/health status"
assert_eq "$(http_status GET /stats)" 200 "GET /stats after the abuse"
assert_conservation
[[ $(ss -Hltn "sport = :$IT_PORT" | awk '{print $4}' | sort -u) == "127.0.0.1:$IT_PORT" ]] ||
  fail "listener changed: $(ss -Hltn "sport = :$IT_PORT")"
stop_sluice TERM
echo "test_http_hostile: all checks passed"
