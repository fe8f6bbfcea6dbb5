#!/bin/bash
# NAT over net_tap (Sluice's taps moved into the inside switch and the outside router
# after the start): the checks of test_nat_af_packet.sh, except that Sluice sees the
# 3 fragments of the large UDP datagram and reassembles them itself (the reassemble
# stage on each port, /nat reassembly). The checks are nat_lib.sh's.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nat_lib.sh"

it_init ntt 9212
nat_main tap
echo PASS
