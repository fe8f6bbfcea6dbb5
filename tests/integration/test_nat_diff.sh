#!/bin/bash
# Issue 11: differential test of Sluice's NAT44 against Linux nftables NAT. The same
# scapy-crafted packet sequences (tests/nat/diff_cases.py) go through a Linux netns
# router with `masquerade` and `dnat to` rules and through Sluice with the equivalent
# `nat` section; which packets pass, and how they are translated (ports modulo each
# router's own choice, consistent per flow), must match, but for the intended
# differences in diff_cases.py (INTENDED) and docs/nat-differences.md. Every packet that
# arrives must have checksums that verify (ICMP errors' quoted headers included).
#
#   tests/integration/test_nat_diff.sh [driver options]
#       e.g. --case 'icmp_*' --explain, --router linux, --list (see diff_cases.py --help)
#
# Needs the Debian packages nftables and conntrack (and python3-scapy); fails when they
# are missing. ND_KEEP=1 leaves the topology and Sluice up afterwards (for running
# diff_cases.py by hand) and prints how to tear it down.
#
# Topology (netns prefix nd, HTTP port 9230); both routers use the same addresses:
#   Linux:  ndli [ndli0 10.1.0.2 10.1.0.3] -- [ndlr1 10.1.0.1] ndlr [ndlr2 10.2.0.1] -- [ndlo0 10.2.0.2] ndlo
#   Sluice: ndsi [ndsi0 10.1.0.2 10.1.0.3] -- tap, port lan (zone inside)
#           ndso [ndso0 10.2.0.2]          -- tap, port wan (zone outside)
# Sluice runs on net_tap, not net_af_packet: af_packet's fanout hands Sluice IPv4
# datagrams the kernel has already reassembled (PACKET_FANOUT_FLAG_DEFRAG,
# drivers-config/net_af_packet.md), so the fragment cases would test the kernel's
# reassembly instead of Sluice's (lib/nat/reassembly). Sluice creates the taps; they are
# moved into the host namespaces once it is up. IPv4 only: IPv6 is off on the hosts.
# Every host netns drops all IP input in prerouting, so the hosts' kernels never answer
# the crafted packets; the driver talks over raw sockets.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/diff_lib.sh"

DRIVER=$SLUICE_ROOT/tests/nat/diff_cases.py
ALL_NS=(ndli ndlr ndlo ndsi ndso)

# The driver's --list needs no topology.
for arg in "$@"; do
  [[ $arg == --list || $arg == -h || $arg == --help ]] && exec "$SLUICE_PY" "$DRIVER" "$@"
done

nat_topo_destroy() {
  local ns
  for ns in "${ALL_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}

it_init nd 9230
if [[ ${ND_KEEP:-0} == 1 ]]; then
  trap - EXIT
else
  it_on_exit nat_topo_destroy
fi

# ---------------------------------------------------------------- what the test needs

# Missing tools fail the test (never a skip): the lead installs them through SLUICE_PACKAGES.
command -v nft >/dev/null 2>&1 || fail "nft is not installed: the Debian package nftables is required (SLUICE_PACKAGES)"
command -v conntrack >/dev/null 2>&1 ||
  fail "conntrack is not installed: the Debian package conntrack is required (SLUICE_PACKAGES)"
"$SLUICE_PY" -c 'import scapy.all' 2>/dev/null || fail "$SLUICE_PY has no scapy (Debian package python3-scapy)"
require_cmd ethtool sysctl

# ---------------------------------------------------------------- Linux

nat_topo_linux() {
  local ns dev
  for ns in ndli ndlr ndlo; do ip netns add "$ns"; done
  ip link add ndli0 netns ndli type veth peer name ndlr1 netns ndlr
  ip link add ndlo0 netns ndlo type veth peer name ndlr2 netns ndlr
  ip -n ndlr link set lo up
  diff_linux_router_sysctls ndlr
  # Routers do not send redirects (a hairpinned packet leaves where it came in), nor rate
  # limit the ICMP errors a case provokes; IPv4 only.
  for dev in ndlr1 ndlr2; do
    ip netns exec ndlr sysctl -qw "net.ipv4.conf.$dev.send_redirects=0" "net.ipv6.conf.$dev.disable_ipv6=1"
  done
  ip netns exec ndlr sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_msgs_per_sec=100000
  ip -n ndlr addr add 10.1.0.1/24 dev ndlr1
  ip -n ndlr addr add 10.2.0.1/24 dev ndlr2
  for dev in ndlr1 ndlr2; do
    ip -n ndlr link set "$dev" up
    veth_offloads_off ndlr "$dev"
  done
  # The rulesets Sluice's nat and firewall sections below mirror, rule for rule: the
  # conntrack differential test's forward filter, what lets the port forwards in (the
  # forward hook sees the translated destination, as Sluice's rules do), and an input
  # filter that drops TCP and UDP to the router itself (Sluice drops them: it has no
  # local TCP/UDP stack; it answers echo requests, as Linux does).
  ip netns exec ndlr nft -f - <<'NFT' || fail "cannot load the nftables ruleset in ndlr"
table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.2.0.1 tcp dport 8080 dnat to 10.1.0.2:80
    iifname "ndlr2" ip daddr 10.2.0.1 udp dport 5353 dnat to 10.1.0.2:53
    iifname "ndlr2" ip daddr 10.2.0.1 tcp dport 9000-9009 dnat to 10.1.0.2 : tcp dport map {
      9000 : 7000, 9001 : 7001, 9002 : 7002, 9003 : 7003, 9004 : 7004,
      9005 : 7005, 9006 : 7006, 9007 : 7007, 9008 : 7008, 9009 : 7009 }
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "ndlr2" masquerade
    oifname "ndlr1" ip saddr 10.1.0.0/24 ct status dnat snat to 10.2.0.1
  }
}
table inet fw {
  chain forward_filter {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ct state invalid drop
    tcp dport 23 drop
    iifname "ndlr1" oifname "ndlr2" accept
    iifname "ndlr2" oifname "ndlr1" tcp dport 8080 accept
    iifname "ndlr2" tcp dport 113 reject with tcp reset
    iifname "ndlr2" udp dport 113 reject
    oifname "ndlr1" ip daddr 10.1.0.2 tcp dport 80 accept
    oifname "ndlr1" ip daddr 10.1.0.2 udp dport 53 accept
    oifname "ndlr1" ip daddr 10.1.0.2 tcp dport 7000-7009 accept
  }
  chain input {
    type filter hook input priority 0; policy accept;
    meta l4proto { tcp, udp } drop
  }
}
NFT
  # nf_conntrack is loaded now; its defaults, set explicitly (as the conntrack test does).
  ip netns exec ndlr sysctl -qw net.netfilter.nf_conntrack_tcp_loose=1 net.netfilter.nf_conntrack_tcp_be_liberal=0 \
    net.netfilter.nf_conntrack_checksum=1 ||
    fail "cannot set the nf_conntrack sysctls in ndlr (is nf_conntrack available?)"
  diff_host_up ndli ndli0 10.1.0.2/24 - 10.1.0.3/24
  diff_host_up ndlo ndlo0 10.2.0.2/24 -
}

# The taps Sluice made, into the host namespaces.
nat_topo_sluice() {
  local ns dev deadline=$((SECONDS + 20))
  for ns in ndsi ndso; do
    dev=${ns}0
    ip netns add "$ns"
    until ip link show "$dev" >/dev/null 2>&1; do
      ((SECONDS < deadline)) || fail "Sluice's tap $dev never appeared"
      sleep 0.2
    done
    ip link set "$dev" netns "$ns"
  done
  diff_host_up ndsi ndsi0 10.1.0.2/24 - 10.1.0.3/24
  diff_host_up ndso ndso0 10.2.0.2/24 -
}

nat_topo_destroy
it_log "topology: Linux router ndlr, Sluice on taps ndsi0/ndso0"
nat_topo_linux

# ---------------------------------------------------------------- Sluice

CONFIG=$IT_TMP/sluice.json
jq -n --arg fp "$IT_FP" --argjson port "$IT_PORT" '{
  eal: {lcores: "0-1", memory_mb: 256, file_prefix: $fp},
  ports: [
    {name: "lan", device: "net_tap0", devargs: "iface=ndsi0", zone: "inside",
     ipv4: ["10.1.0.1/24"], pipeline: ["parse", "conntrack", "nat", "route"]},
    {name: "wan", device: "net_tap1", devargs: "iface=ndso0", zone: "outside",
     ipv4: ["10.2.0.1/24"], pipeline: ["parse", "conntrack", "nat", "route"]}
  ],
  conntrack: {capacity: 16384, tcp_liberal: false, tcp_loose: true},
  firewall: {
    default_policy: "drop",
    policies: [{from: "inside", to: "outside", action: "accept"}],
    rules: [
      {name: "telnet-drop", protocol: "tcp", dst_ports: 23, action: "drop"},
      {name: "web-in", from: "outside", to: "inside", protocol: "tcp", dst_ports: 8080, action: "accept"},
      {name: "ident-reject", from: "outside", protocol: "tcp", dst_ports: 113, action: "reject"},
      {name: "ident-udp-reject", from: "outside", protocol: "udp", dst_ports: 113, action: "reject"},
      {name: "fwd-web", to: "inside", protocol: "tcp", dst: "10.1.0.2", dst_ports: 80, action: "accept"},
      {name: "fwd-dns", to: "inside", protocol: "udp", dst: "10.1.0.2", dst_ports: 53, action: "accept"},
      {name: "fwd-range", to: "inside", protocol: "tcp", dst: "10.1.0.2", dst_ports: "7000-7009", action: "accept"}
    ]
  },
  nat: {
    snat: [{name: "masq", out_port: "wan", masquerade: true}],
    dnat: [
      {name: "web", dst: "10.2.0.1", protocol: "tcp", port: 8080, to_address: "10.1.0.2", to_port: 80, hairpin: true},
      {name: "dns", in_port: "wan", dst: "10.2.0.1", protocol: "udp", port: 5353, to_address: "10.1.0.2", to_port: 53},
      {name: "range", in_port: "wan", dst: "10.2.0.1", protocol: "tcp", port: "9000-9009", to_address: "10.1.0.2",
       to_port: 7000}
    ]
  },
  workers: "auto",
  control: {http: {address: "127.0.0.1", port: $port}},
  logging: {level: "info"}
}' >"$CONFIG" || fail "cannot write $CONFIG"
"$SLUICE_BIN" --check-config --config "$CONFIG" >"$IT_TMP/check-config.out" 2>&1 ||
  fail "the test's own config does not pass --check-config: $(cat "$IT_TMP/check-config.out")"
start_sluice "$CONFIG" "$IT_TMP/sluice.log"
# net_tap reports a tap down once it is in another namespace (drivers-config/net_tap.md):
# links are checked before the move.
wait_links_up 15
nat_topo_sluice

# ---------------------------------------------------------------- the comparison

rc=0
"$SLUICE_PY" "$DRIVER" --http "$IT_PORT" "$@" || rc=$?
((rc <= 1)) || fail "the driver could not run (exit status $rc)"

it_log "Sluice drops: $(stats_get | jq -c '.drops | with_entries(select(.value > 0))')"
if (($# == 0)); then
  # Every case ran: Sluice itself joined the fragment cases' datagrams (net_tap handed it
  # the fragments), translated ICMP errors and hairpinned.
  nat=$(curl -fsS -m 5 "http://$IT_HTTP/nat") || fail "GET /nat failed"
  assert_ge "$(jget "$nat" '.reassembly.reassembled')" 2 "datagrams Sluice reassembled"
  assert_ge "$(jget "$nat" '.reassembly.fragments')" 6 "fragments Sluice took in"
  assert_ge "$(jget "$nat" '.icmp_errors_translated')" 7 "ICMP errors Sluice translated"
  assert_ge "$(jget "$nat" '.hairpinned')" 1 "flows Sluice hairpinned"
fi
if [[ ${ND_KEEP:-0} == 1 ]]; then
  it_log "ND_KEEP=1: topology and Sluice (pid $SLUICE_PID, http $IT_HTTP, log $IT_TMP/sluice.log) left up;"
  it_log "  run: $SLUICE_PY $DRIVER --http $IT_PORT [--case NAME] [--router linux|sluice] [--explain]"
  it_log "  tear down: kill $SLUICE_PID; for n in ${ALL_NS[*]}; do ip netns del \$n; done"
  exit "$rc"
fi
stop_sluice TERM
((rc == 0)) || fail "Sluice's NAT differs from Linux nftables NAT (table above)"
it_log "PASS"
