#!/bin/bash
# Issue 3: two subnets (IPv4 and IPv6) routed through Sluice over net_tap.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/router_lib.sh"
P=trt HTTP=9197
WORK=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  topo_destroy $P
  rm -rf "$WORK"
}
trap cleanup EXIT
topo_destroy $P
router_config $P $HTTP net_tap0 "iface=${P}w0" net_tap1 "iface=${P}e0" >"$WORK/sluice.json"
"$SLUICE_BIN" --config "$WORK/sluice.json" -- $SLUICE_EAL_HUGE >"$WORK/sluice.log" 2>&1 &
pid=$!
wait_for_http 127.0.0.1:$HTTP $pid || { cat "$WORK/sluice.log"; fail "Sluice did not start"; }
router_topo_tap $P
router_checks $P $HTTP
step "SIGTERM: clean shutdown"
kill -TERM $pid
rc=0; wait $pid || rc=$?; pid=
[[ $rc == 0 ]] || { tail -20 "$WORK/sluice.log"; fail "Sluice exited $rc"; }
grep -q "all .* mbufs returned" "$WORK/sluice.log" || fail "mbufs not all returned"
echo "PASS"
