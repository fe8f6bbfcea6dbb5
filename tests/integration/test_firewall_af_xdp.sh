#!/bin/bash
# The firewall checks of test_firewall_af_packet.sh (firewall_lib.sh: inside out,
# outside in, reject, /flows, a full table, reloads under traffic) over net_af_xdp on
# veths (the XDP program native on veth, sockets in copy mode, as logged). Each
# SIGTERM: exit 0, every mbuf back but the 2048 a port the PMD's fill ring keeps.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/firewall_lib.sh"

it_init fwx 9244
fw_init af_xdp
fw_main
af_xdp_modes "$IT_TMP/sluice.log"
echo PASS
