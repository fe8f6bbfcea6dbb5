#!/bin/bash
# README's first command, as a user runs it (with the build tools/test.sh just made):
# tools/demo.sh must show the appliance at work and stop cleanly. Checks what the demo
# prints: the inside's pings leave masqueraded (the outside sees 203.0.113.1 only), an
# inside connection answered, the outside one dropped and its trace naming the
# firewall, live stats from sluicectl, the flows, and exit status 0 after SIGTERM.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init idm 9249
require_cmd iperf3 tcpdump curl
out=$IT_TMP/demo.out
rc=0
# No terminal: the demo's colours stay in, stripped below.
timeout 240 "$SLUICE_ROOT/tools/demo.sh" --no-build >"$out" 2>&1 || rc=$?
sed -i 's/\x1b\[[0-9;]*m//g' "$out"
((rc == 0)) || fail "tools/demo.sh exited with $rc:
$(tail -n 40 "$out")"

expect() { # regex what
  grep -Eq -- "$1" "$out" || fail "the demo's output has no $2 (/$1/):
$(tail -n 60 "$out")"
  it_log "ok: $2"
}
expect '^── 8/8 SIGTERM and the shutdown check' "eighth section"
expect 'IP 203\.0\.113\.1 > 203\.0\.113\.2: ICMP echo request' "masqueraded echo request at the outside host"
! grep -A6 "what the outside host saw" "$out" | grep -q "IP 10\.1\.0\." || fail "the outside saw an inside address"
expect '^hello from the outside$' "answer to the inside's connection"
expect 'outside -> inside is dropped' "dropped outside connection"
expect '=> dropped at conntrack: firewall_drop' "trace of the dropped packet"
expect '203\.0\.113\.2:[0-9]+ > 10\.1\.0\.2:8000 tcp \[S\]' "the traced packet's headers"
expect 'sender' "iperf3 through NAT"
expect 'Sluice exited with status 0: every mbuf came back to its pool' "clean stop"
expect 'demo complete' "the end"
! ip netns list | grep -q '^demo' || fail "the demo left namespaces: $(ip netns list | grep demo)"
! pgrep -f -- "--config /run/sluice-demo/" >/dev/null || fail "the demo left Sluice running"
