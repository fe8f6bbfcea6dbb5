#!/bin/bash
# test-timeout: 420
# A 3-minute soak: tools/soak --minutes 3 (Sluice routing with conntrack, the firewall
# and NAT over net_af_packet under long TCP streams, UDP flow churn, a SYN flood,
# malformed frames, reloads every 10 s, a flow flush every minute and a link flap every
# 30 s; docs/reliability.md#soak). The report goes to build/test-logs/soak-report.json.
# Set-up + 3 minutes + the checks take about 4 minutes: the "test-timeout" line above
# gives tools/test.sh this test's own limit.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
mkdir -p "$SLUICE_BUILD/test-logs"
exec "$SLUICE_ROOT/tools/soak" --minutes "${SOAK_MINUTES:-3}" --prefix sk1 --http-port 9258 \
  --json "$SLUICE_BUILD/test-logs/soak-report.json"
