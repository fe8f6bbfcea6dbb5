#!/bin/bash
# Issue 3: two subnets (IPv4 and IPv6) routed through Sluice over net_af_packet.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/router_lib.sh"
P=tra HTTP=9188
WORK=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  topo_destroy $P
  rm -rf "$WORK"
}
trap cleanup EXIT
router_topo_veth $P
router_config $P $HTTP net_af_packet0 "iface=${P}w1" net_af_packet1 "iface=${P}e1" >"$WORK/sluice.json"
"$SLUICE_BIN" --config "$WORK/sluice.json" -- $SLUICE_EAL_HUGE >"$WORK/sluice.log" 2>&1 &
pid=$!
wait_for_http 127.0.0.1:$HTTP $pid || { cat "$WORK/sluice.log"; fail "Sluice did not start"; }
router_checks $P $HTTP
step "telemetry"
echo /sluice/neighbours | /usr/bin/python3 /usr/bin/dpdk-telemetry.py -f $P 2>/dev/null | grep -q "10.2.0.2" ||
  fail "telemetry /sluice/neighbours has no 10.2.0.2"
step "SIGTERM: clean shutdown"
kill -TERM $pid
rc=0; wait $pid || rc=$?; pid=
[[ $rc == 0 ]] || { tail -20 "$WORK/sluice.log"; fail "Sluice exited $rc"; }
grep -q "all .* mbufs returned" "$WORK/sluice.log" || fail "mbufs not all returned"
echo "PASS"
