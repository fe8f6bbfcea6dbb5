#!/bin/bash
# Issue 4: differential test of Sluice's connection tracking and stateful firewall
# against Linux nf_conntrack with nftables. The same scapy-crafted packet sequences
# (tests/conntrack/diff_cases.py) go through a Linux netns router and through Sluice;
# their accept/drop decisions must match, but for the intended differences listed in
# diff_cases.py (INTENDED) and docs/conntrack-differences.md.
#
#   tests/integration/test_conntrack_diff.sh [driver options]
#       e.g. --case 'tcp_rst_*' --explain, --router linux, --list (see diff_cases.py --help)
#
# Needs the Debian packages nftables and conntrack (and python3-scapy); fails when they
# are missing. CD_KEEP=1 leaves the topology and Sluice up afterwards (for running
# diff_cases.py by hand) and prints how to tear it down.
#
# Topology (netns prefix cd, HTTP port 9210); both routers use the same addresses:
#   Linux:  cdli [cdli0 10.1.0.2] -- [cdlr1 10.1.0.1] cdlr [cdlr2 10.2.0.1] -- [cdlo0 10.2.0.2] cdlo
#           (nftables forward chain, nf_conntrack sysctls at their defaults, set explicitly)
#   Sluice: cdsi [cdsi0 10.1.0.2] -- cdsi1 (root ns, port lan, zone inside)
#           cdso [cdso0 10.2.0.2] -- cdso1 (root ns, port wan, zone outside)
# The inside hosts also have 10.1.0.3 (a second inside host, for ICMP errors sent to it).
# Every host netns drops all IP input in prerouting (neighbour discovery excepted), so the
# hosts' kernels never answer the crafted packets; the driver talks over raw sockets.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/diff_lib.sh"

DRIVER=$SLUICE_ROOT/tests/conntrack/diff_cases.py
HOST_NS=(cdli cdlo cdsi cdso)
SHORT_TIMEOUT=3 # seconds, UDP unreplied and ICMP flows on both routers (diff_cases.py SHORT_TIMEOUT)
ALL_NS=(cdli cdlr cdlo cdsi cdso)

# The driver's --list needs no topology.
for arg in "$@"; do
  [[ $arg == --list || $arg == -h || $arg == --help ]] && exec "$SLUICE_PY" "$DRIVER" "$@"
done

diff_topo_destroy() {
  local ns
  for ns in "${ALL_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del cdsi1 2>/dev/null || true
  ip link del cdso1 2>/dev/null || true
}

it_init cd 9210
if [[ ${CD_KEEP:-0} == 1 ]]; then
  trap - EXIT
else
  it_on_exit diff_topo_destroy
fi

# ---------------------------------------------------------------- what the test needs

# Missing tools fail the test (never a skip): the lead installs them through SLUICE_PACKAGES.
command -v nft >/dev/null 2>&1 || fail "nft is not installed: the Debian package nftables is required (SLUICE_PACKAGES)"
command -v conntrack >/dev/null 2>&1 ||
  fail "conntrack is not installed: the Debian package conntrack is required (SLUICE_PACKAGES)"
"$SLUICE_PY" -c 'import scapy.all' 2>/dev/null || fail "$SLUICE_PY has no scapy (Debian package python3-scapy)"
require_cmd ethtool sysctl

# ---------------------------------------------------------------- topology

diff_topo_linux() {
  local ns
  for ns in cdli cdlr cdlo; do ip netns add "$ns"; done
  ip link add cdli0 netns cdli type veth peer name cdlr1 netns cdlr
  ip link add cdlo0 netns cdlo type veth peer name cdlr2 netns cdlr
  ip -n cdlr link set lo up
  diff_linux_router_sysctls cdlr
  ip -n cdlr addr add 10.1.0.1/24 dev cdlr1
  ip -n cdlr addr add fd00:1::1/64 dev cdlr1 nodad
  ip -n cdlr addr add 10.2.0.1/24 dev cdlr2
  ip -n cdlr addr add fd00:2::1/64 dev cdlr2 nodad
  for ns in cdlr1 cdlr2; do
    ip -n cdlr link set "$ns" up
    veth_offloads_off cdlr "$ns"
  done
  # The ruleset Sluice's firewall section below mirrors, rule for rule.
  ip netns exec cdlr nft -f - <<'NFT' || fail "cannot load the nftables ruleset in cdlr"
table inet fw {
  chain forward_filter {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ct state invalid drop
    tcp dport 23 drop
    iifname "cdlr1" oifname "cdlr2" accept
    iifname "cdlr2" oifname "cdlr1" tcp dport 8080 accept
    iifname "cdlr2" tcp dport 113 reject with tcp reset
    iifname "cdlr2" udp dport 113 reject
  }
}
NFT
  # nf_conntrack is loaded now (the ruleset uses ct); its defaults, set explicitly.
  ip netns exec cdlr sysctl -qw net.netfilter.nf_conntrack_tcp_loose=1 net.netfilter.nf_conntrack_tcp_be_liberal=0 \
    net.netfilter.nf_conntrack_checksum=1 ||
    fail "cannot set the nf_conntrack sysctls in cdlr (is nf_conntrack available?)"
  # Shortened on both routers (Sluice: conntrack.timeouts) so that a case can wait for a
  # flow to expire: diff_cases.py SHORT_TIMEOUT.
  ip netns exec cdlr sysctl -qw "net.netfilter.nf_conntrack_udp_timeout=$SHORT_TIMEOUT" \
    "net.netfilter.nf_conntrack_icmp_timeout=$SHORT_TIMEOUT" \
    "net.netfilter.nf_conntrack_icmpv6_timeout=$SHORT_TIMEOUT" ||
    fail "cannot set the nf_conntrack timeouts in cdlr"
  ip netns exec cdlr sysctl -qw net.netfilter.nf_conntrack_tcp_ignore_invalid_rst=0 2>/dev/null || true
  diff_host_up cdli cdli0 10.1.0.2/24 fd00:1::2/64 10.1.0.3/24
  diff_host_up cdlo cdlo0 10.2.0.2/24 fd00:2::2/64
}

diff_topo_sluice() {
  local side
  for side in i o; do
    ip netns add "cds$side"
    ip link add "cds${side}0" netns "cds$side" type veth peer name "cds${side}1"
    ip link set "cds${side}1" up
    veth_offloads_off "" "cds${side}1"
    # The root side carries no address and must neither route nor autoconfigure.
    sysctl -qw "net.ipv6.conf.cds${side}1.disable_ipv6=1" "net.ipv4.conf.cds${side}1.forwarding=0" 2>/dev/null || true
  done
  diff_host_up cdsi cdsi0 10.1.0.2/24 fd00:1::2/64 10.1.0.3/24
  diff_host_up cdso cdso0 10.2.0.2/24 fd00:2::2/64
}

diff_topo_destroy
it_log "topology: Linux router cdlr, Sluice ports cdsi1/cdso1, hosts ${HOST_NS[*]}"
diff_topo_linux
diff_topo_sluice

# ---------------------------------------------------------------- Sluice

CONFIG=$IT_TMP/sluice.json
jq -n --arg fp "$IT_FP" --argjson port "$IT_PORT" --argjson short "$SHORT_TIMEOUT" '{
  eal: {lcores: "0-1", memory_mb: 256, file_prefix: $fp},
  ports: [
    {name: "lan", device: "net_af_packet0", devargs: "iface=cdsi1", zone: "inside",
     ipv4: ["10.1.0.1/24"], ipv6: ["fd00:1::1/64"], pipeline: ["parse", "conntrack", "route"]},
    {name: "wan", device: "net_af_packet1", devargs: "iface=cdso1", zone: "outside",
     ipv4: ["10.2.0.1/24"], ipv6: ["fd00:2::1/64"], pipeline: ["parse", "conntrack", "route"]}
  ],
  conntrack: {capacity: 16384, capacity_ipv6: 4096, tcp_liberal: false, tcp_loose: true,
              timeouts: {udp: $short, icmp: $short}},
  firewall: {
    default_policy: "drop",
    policies: [{from: "inside", to: "outside", action: "accept"}],
    rules: [
      {name: "telnet-drop", protocol: "tcp", dst_ports: 23, action: "drop"},
      {name: "web-in", from: "outside", to: "inside", protocol: "tcp", dst_ports: 8080, action: "accept"},
      {name: "ident-reject", from: "outside", protocol: "tcp", dst_ports: 113, action: "reject"},
      {name: "ident-udp-reject", from: "outside", protocol: "udp", dst_ports: 113, action: "reject"}
    ]
  },
  workers: "auto",
  control: {http: {address: "127.0.0.1", port: $port}},
  logging: {level: "info"}
}' >"$CONFIG" || fail "cannot write $CONFIG"
start_sluice "$CONFIG" "$IT_TMP/sluice.log"
wait_links_up 15

# ---------------------------------------------------------------- the comparison

rc=0
"$SLUICE_PY" "$DRIVER" --http "$IT_PORT" "$@" || rc=$?
((rc <= 1)) || fail "the driver could not run (exit status $rc)"

it_log "Sluice drops: $(stats_get | jq -c '.drops | with_entries(select(.value > 0))')"
if [[ ${CD_KEEP:-0} == 1 ]]; then
  it_log "CD_KEEP=1: topology and Sluice (pid $SLUICE_PID, http $IT_HTTP, log $IT_TMP/sluice.log) left up;"
  it_log "  run: $SLUICE_PY $DRIVER --http $IT_PORT [--case NAME] [--router linux|sluice] [--explain]"
  it_log "  tear down: kill $SLUICE_PID; for n in ${ALL_NS[*]}; do ip netns del \$n; done; ip link del cdsi1; ip link del cdso1"
  exit "$rc"
fi
stop_sluice TERM
((rc == 0)) || fail "Sluice's decisions differ from Linux nf_conntrack's (table above)"

# ---------------------------------------------------------------- fragments over net_tap

# net_af_packet hands Sluice IPv4 datagrams the kernel has reassembled (its fanout's
# PACKET_FANOUT_FLAG_DEFRAG), so above Sluice never saw an IPv4 fragment. The fragment
# cases again, with Sluice on net_tap (the taps moved into fresh host namespaces): Sluice
# gets every fragment as sent, decides per fragment, and the driver checks that its parse
# and conntrack stages counted each one (--sluice-driver tap; INTENDED_BY_DRIVER). This
# part runs whatever options the first was given (about 20 s).
{
  it_log "fragment cases again, Sluice on net_tap"
  ip netns del cdsi
  ip netns del cdso
  jq '.ports[0].device = "net_tap0" | .ports[0].devargs = "iface=cdsi0" |
      .ports[1].device = "net_tap1" | .ports[1].devargs = "iface=cdso0"' "$CONFIG" >"$IT_TMP/sluice-tap.json" ||
    fail "cannot write $IT_TMP/sluice-tap.json"
  start_sluice "$IT_TMP/sluice-tap.json" "$IT_TMP/sluice-tap.log"
  # net_tap reports a tap down once it is in another namespace: links are checked first.
  wait_links_up 15
  deadline=$((SECONDS + 20))
  for side in i o; do
    until ip link show "cds${side}0" >/dev/null 2>&1; do
      ((SECONDS < deadline)) || fail "Sluice's tap cds${side}0 never appeared"
      sleep 0.2
    done
    ip netns add "cds$side"
    ip link set "cds${side}0" netns "cds$side"
  done
  diff_host_up cdsi cdsi0 10.1.0.2/24 fd00:1::2/64 10.1.0.3/24
  diff_host_up cdso cdso0 10.2.0.2/24 fd00:2::2/64
  rc=0
  "$SLUICE_PY" "$DRIVER" --http "$IT_PORT" --sluice-driver tap --case 'frag*' || rc=$?
  ((rc <= 1)) || fail "the driver could not run over net_tap (exit status $rc)"
  it_log "Sluice drops (net_tap): $(stats_get | jq -c '.drops | with_entries(select(.value > 0))')"
  stop_sluice TERM
  ((rc == 0)) || fail "over net_tap, Sluice's fragment decisions or counts differ from what is expected (table above)"
}
it_log "PASS"
