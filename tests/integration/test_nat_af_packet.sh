#!/bin/bash
# NAT over net_af_packet on veths: two inside hosts behind a bridge share 10.2.0.1
# (masquerade) for ping, curl, iperf3 and UDP, and the server beyond a router sees only
# that address; a port forward and hairpin; traceroute and path-MTU discovery through NAT;
# a 3-fragment UDP datagram (joined by the kernel's fanout DEFRAG, whole in 8192-byte
# ring frames) both ways; a pool of one address and 100 ports under 150 flows (100 pass,
# 50 nat_no_port, ports back after expiry); ARP and echo for a pool address; /nat, /flows
# and the event log; endpoint-independent filtering; NPTv6; a rule reload under a TCP
# stream; exact drops; SIGTERM returns every mbuf. The checks are nat_lib.sh's.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nat_lib.sh"

it_init nta 9211
nat_main af_packet
echo PASS
