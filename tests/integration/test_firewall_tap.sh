#!/bin/bash
# Connection tracking and the stateful firewall over net_tap (Sluice's taps moved into
# the namespaces after each start): inside (west) routed to outside (east) through
# [parse, conntrack, route] on both ports.
# (a) inside opens connections out, (b) outside cannot open any in but TCP 8080 and
# echo, (c) reject answers with RST / ICMP port unreachable, (d) /flows contents,
# filters, paging, flush and errors, (e) a full table (capacity 1024) under a new-flow
# flood spares the established streams, (f) reloads under traffic lose nothing and
# refused reloads keep the old rules, (g) SIGTERM returns every mbuf.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/firewall_lib.sh"

it_init fwt 9201
fw_init tap
fw_main
echo PASS
