#!/bin/bash
# Faults (issue 14): link down/up on one port of a three-port router over net_af_packet.
#
# 1. The kernel interface behind port east (flke1, what Sluice's af_packet socket is
#    bound to) is set down while a counted UDP stream runs west -> north and a ping runs
#    west -> east: /stats says east link_up false, /health "degraded" with ports_down
#    ["east"] (HTTP 200), /metrics sluice_port_link_up{port="east"} 0, the packets
#    routed to east are counted as link_down on east's TX, and west -> north loses
#    nothing. After `ip link set flke1 up`, a ping west -> east is answered within 1 s.
# 2. The same with the far end: the east host's own interface (flke0, the veth peer)
#    set down and up (the cable pulled at the other end). The kernel drops the host's
#    routes and ARP entries with its link: the test puts them back after up.
# Sluice must log each change and give every mbuf back at the end.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults_lib.sh"

it_init flk 9251
require_cmd ping "$SLUICE_PY"

faults_topo
cfg=$IT_TMP/sluice.json
faults_config "$cfg"
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up
assert_eq "$(stats_get /health | jq -r .status)" ok "/health status with every link up"
wait_ping 10.2.0.2
wait_ping 10.3.0.2

# Waits until /stats says port $1's link_up is $2; prints how long it took (ms).
wait_link_state() { # port true|false [timeout_s]
  local start deadline=$((SECONDS + ${3:-5})) v
  start=$(now_ms)
  while ((SECONDS < deadline)); do
    v=$(stats_get | jq -r --arg p "$1" '.ports[] | select(.name == $p) | .link_up')
    [[ $v == "$2" ]] && { echo $(($(now_ms) - start)); return 0; }
    sleep 0.05
  done
  fail "port $1: link_up still $v after ${3:-5} s (expected $2)"
}

# Pings west -> east once every 50 ms until one answer; prints ms since $1.
ms_until_east_answers() { # start_ms
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    nsw ping -n -q -c 1 -W 0.05 10.2.0.2 >/dev/null 2>&1 && { echo $(($(now_ms) - $1)); return 0; }
  done
  fail "west -> east: no ping answer within 10 s of the link coming back"
}

# One flap: $1 sets the link down, $2 brings it up (and repairs the far host if needed).
flap() { # label down-command up-command
  local label=$1 down=$2 up=$3 rx_file=$IT_TMP/udp-$RANDOM.txt sender dropped_before dropped_after
  local detect_ms health up_at resume_ms received
  it_log "--- flap: $label"
  udp_receiver_start "${IT_NS}n" 10.3.0.2 5400 "$rx_file"
  # 2000 datagrams at 400/s west -> north: 5 s, spanning the whole flap.
  udp_send "${IT_NS}w" 10.3.0.2 5400 2000 400 200 >"$IT_TMP/sender.txt" 2>&1 &
  sender=$!
  # Traffic that the route stage sends to east during the outage.
  nsw ping -n -q -i 0.01 -w 4 10.2.0.2 >/dev/null 2>&1 &
  local pinger=$!
  sleep 0.5
  dropped_before=$(port_stage_drop east tx link_down)
  eval "$down"
  detect_ms=$(wait_link_state east false 3)
  it_log "ok: east link_up false ${detect_ms} ms after $label down"
  health=$(stats_get /health)
  assert_eq "$(jget "$health" .status)" degraded "/health status with east down"
  assert_eq "$(jget "$health" '.ports_down | join(",")')" east "/health ports_down"
  assert_eq "$(http_status GET /health)" 200 "/health HTTP status while degraded"
  assert_contains "$(stats_get /metrics)" 'sluice_port_link_up{port="east"} 0' "/metrics while east is down"
  assert_eq "$(stats_get | jq -r '[.ports[] | select(.name != "east") | .link_up] | all')" true "the other ports' link_up"
  sleep 1.5
  eval "$up"
  up_at=$(now_ms)
  resume_ms=$(ms_until_east_answers "$up_at")
  it_log "ok: west -> east answered ${resume_ms} ms after $label up"
  ((resume_ms < 1000)) || fail "forwarding to east resumed only ${resume_ms} ms after link up (must be < 1000)"
  wait_link_state east true 2 >/dev/null
  assert_eq "$(stats_get /health | jq -r .status)" ok "/health status after east came back"
  wait "$pinger" 2>/dev/null || true
  wait "$sender" || fail "UDP sender failed: $(cat "$IT_TMP/sender.txt")"
  received=$(udp_received "$rx_file")
  assert_eq "$received" 2000 "datagrams west -> north during the flap of east (none lost)"
  dropped_after=$(port_stage_drop east tx link_down)
  assert_gt "$((dropped_after - dropped_before))" 0 "packets to east counted as link_down while it was down"
  FLAP_REPORT+=("$label: detected in ${detect_ms} ms, forwarding back ${resume_ms} ms after up, $((dropped_after - dropped_before)) link_down drops, west->north 2000/2000")
}

FLAP_REPORT=()
flap "kernel interface flke1 (Sluice's side)" "ip link set ${IT_NS}e1 down" "ip link set ${IT_NS}e1 up"
# The east host forgets its gateway's MAC with its link; its ARP request may reach
# Sluice in the up to 100 ms before Sluice reads the link back, and Linux retries only
# after 1 s: the host gets the MAC back as a permanent entry, so what is measured is
# Sluice's side.
gw_mac=$(ip -n "${IT_NS}e" neigh show 10.2.0.1 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}')
[[ -n $gw_mac ]] || fail "the east host has no ARP entry for 10.2.0.1"
flap "veth peer flke0 (far end)" "ip -n ${IT_NS}e link set ${IT_NS}e0 down" \
  "ip -n ${IT_NS}e link set ${IT_NS}e0 up; ip -n ${IT_NS}e route replace default via 10.2.0.1; ip -n ${IT_NS}e neigh replace 10.2.0.1 lladdr $gw_mac dev ${IT_NS}e0 nud permanent"

grep -q "port east: link down (kernel interface ${IT_NS}e1: operstate" "$SLUICE_LOG" || fail "no 'port east: link down' line in the log"
grep -q "port east: link up" "$SLUICE_LOG" || fail "no 'port east: link up' line in the log"
assert_eq "$(grep -c "port east: link down" "$SLUICE_LOG")" 2 "link down lines logged (one per flap)"
stop_sluice
for line in "${FLAP_REPORT[@]}"; do it_log "result: $line"; done
echo PASS
