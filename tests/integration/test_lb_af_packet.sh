#!/bin/bash
# The L4 load balancer over net_af_packet: 3000 connections spread over three backends, 1:2
# weights, fullnat (backends see Sluice's local address), dnat (they see the client),
# round-robin; health checks from Sluice's own stack (tcp and icmp) take a killed backend
# out within fall x interval + timeout while a long stream to another backend loses
# nothing, and bring it back; a reload adds a backend under a stream; SIGTERM returns
# every mbuf. The checks are lb_lib.sh's.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lb_lib.sh"

it_init lba 9221
lb_main af_packet
echo PASS
