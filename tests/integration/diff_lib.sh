# Shared by the differential tests against Linux (test_conntrack_diff.sh,
# test_nat_diff.sh): host namespaces whose kernels never answer the crafted packets,
# and a Linux netns router's base settings. Source tools/lib/common.sh and lib.sh first.

# A host: one interface, addresses, and an nftables table that keeps its kernel out of it
# (every IP packet dropped in prerouting, neighbour discovery excepted; ARP is answered).
# IPV6 "-": none, and IPv6 off on the interface (no router solicitations, DAD, MLD).
diff_host_up() { # netns dev ipv4/len ipv6/len|- [more ipv4/len]
  local ns=$1 dev=$2
  ip -n "$ns" link set lo up
  if [[ $4 == - ]]; then
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
  else
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
      "net.ipv6.conf.$dev.accept_ra=0" "net.ipv6.conf.$dev.router_solicitations=0"
  fi
  ip -n "$ns" addr add "$3" dev "$dev"
  [[ $4 == - ]] || ip -n "$ns" addr add "$4" dev "$dev" nodad
  [[ -z ${5:-} ]] || ip -n "$ns" addr add "$5" dev "$dev"
  ip -n "$ns" link set "$dev" up
  veth_offloads_off "$ns" "$dev"
  ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the host filter in $ns"
table inet host {
  chain pre {
    type filter hook prerouting priority -300; policy drop;
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
  }
}
NFT
}

# A Linux router in netns NS: forwarding on, no reverse-path filter, no redirects, no
# router advertisements taken (the interfaces are configured by the caller).
diff_linux_router_sysctls() { # netns
  ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
    net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
}
