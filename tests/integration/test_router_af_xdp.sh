#!/bin/bash
# Issue 3's router checks (IPv4 and IPv6, router_lib.sh) over net_af_xdp on veths: the
# XDP program native on veth, its sockets in copy mode (DPDK 22.11 offers no devarg to
# choose; the mode Sluice found is printed). Then SIGTERM: exit 0, every mbuf back but
# the 2048 a port the PMD's fill ring keeps, counted exactly.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/router_lib.sh"
P=rxd HTTP=9243
WORK=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  topo_destroy $P
  rm -rf "$WORK"
}
trap cleanup EXIT
router_topo_veth $P
router_config $P $HTTP net_af_xdp0 "iface=${P}w1,start_queue=0,queue_count=1" \
  net_af_xdp1 "iface=${P}e1,start_queue=0,queue_count=1" >"$WORK/sluice.json"
"$SLUICE_BIN" --config "$WORK/sluice.json" -- $SLUICE_EAL_HUGE >"$WORK/sluice.log" 2>&1 &
pid=$!
wait_for_http 127.0.0.1:$HTTP $pid || { cat "$WORK/sluice.log"; fail "Sluice did not start"; }
step "net_af_xdp mode, as Sluice logged it"
grep -E "port (west|east): net_af_xdp on ${P}[we]1: XDP program attached in " "$WORK/sluice.log" ||
  fail "no net_af_xdp mode line for the ports"
router_checks $P $HTTP
step "telemetry"
echo /sluice/neighbours | /usr/bin/python3 /usr/bin/dpdk-telemetry.py -f $P 2>/dev/null | grep -q "10.2.0.2" ||
  fail "telemetry /sluice/neighbours has no 10.2.0.2"
step "SIGTERM: clean shutdown, the fill rings' mbufs accounted for exactly"
kill -TERM $pid
rc=0; wait $pid || rc=$?; pid=
[[ $rc == 0 ]] || { tail -20 "$WORK/sluice.log"; fail "Sluice exited $rc"; }
for port in west east; do
  grep -q "port $port: net_af_xdp keeps 2048 mbufs in its fill ring at close (1 rx queue(s) x 2048;" "$WORK/sluice.log" ||
    fail "no fill-ring line for port $port"
done
line=$(grep -Eo "mempool [^ ]+: all [0-9]+ mbufs accounted for: [0-9]+ returned, 4096 kept by net_af_xdp fill rings" "$WORK/sluice.log") ||
  { tail -20 "$WORK/sluice.log"; fail "mbufs not all accounted for"; }
read -r size returned < <(sed -E 's/.*all ([0-9]+) mbufs accounted for: ([0-9]+) returned.*/\1 \2/' <<<"$line")
((size - returned == 4096)) || fail "$line: $((size - returned)) missing, not 4096"
echo "$line"
! grep -q "mbufs not returned" "$WORK/sluice.log" || fail "$(grep "mbufs not returned" "$WORK/sluice.log")"
echo "PASS"
