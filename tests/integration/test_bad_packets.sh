#!/bin/bash
# Malformed frames, crafted with scapy and sent from inside the west namespace, are
# dropped by the parse stage under the right reason: each reason's counter rises by
# exactly the number sent, nothing else is dropped, Sluice keeps forwarding, and it
# shuts down cleanly.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init itbp 9193
require_cmd ping
"$SLUICE_PY" -c 'import scapy.all' 2>/dev/null || fail "$SLUICE_PY has no scapy (package python3-scapy)"
N=40

topo_veth_create "$IT_NS"
cfg=$IT_TMP/sluice.json
write_xconnect_config "$cfg" af_packet
start_sluice "$cfg" "$IT_TMP/sluice.log"
wait_links_up
wait_ping 10.99.0.2
wait_quiet 5
before=$(stats_get)

# One frame per case; the expected drop reason is the case's name ("ok_*": forwarded).
nsw timeout 120 "$SLUICE_PY" - "${IT_NS}w0" "$N" "$IT_TMP/cases.txt" >"$IT_TMP/scapy.log" 2>&1 <<'PY' ||
import sys, time
from scapy.all import Ether, Dot1Q, IP, IPv6, TCP, UDP, ICMP, ARP, Raw, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, sendp, conf
conf.verb = 0
iface, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
src, dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
e = lambda t: Ether(src=src, dst=dst, type=t)
ip = dict(src="10.99.0.1", dst="10.99.0.2")
ip6 = dict(src="fd00:99::1", dst="fd00:99::2")
cases = {
  # (truncated_vlan cannot be tested here: the receiving kernel drops a cut-off 802.1Q
  # tag in skb_vlan_untag before af_packet sees the frame.)
  "vlan_too_deep":           e(0x8100) / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(**ip) / UDP() / Raw(b"x" * 8),
  "truncated_arp":           e(0x0806) / Raw(b"\x00\x01\x08\x00\x06\x04\x00\x01\x02\x00"),
  "bad_arp":                 e(0x0806) / Raw(b"\x00\x06\x08\x00\x06\x04\x00\x01" + bytes(20)),  # hardware type 6
  "truncated_ipv4":          e(0x0800) / Raw(b"\x45\x00\x00\x1c\x00\x00\x00\x00\x40\x11"),
  "bad_ipv4_version":        e(0x0800) / Raw(bytes(IP(**ip) / UDP())[:0] + b"\x65" + bytes(IP(**ip) / UDP())[1:]),
  "bad_ipv4_ihl":            e(0x0800) / IP(ihl=4, **ip) / UDP() / Raw(b"x" * 8),
  "bad_ipv4_total_length":   e(0x0800) / IP(len=1000, **ip) / UDP() / Raw(b"x" * 8),
  "truncated_ipv6":          e(0x86dd) / Raw(bytes(IPv6(**ip6))[:20]),
  "bad_ipv6_version":        e(0x86dd) / Raw(b"\x40" + bytes(IPv6(**ip6) / UDP())[1:]),
  "bad_ipv6_payload_length": e(0x86dd) / IPv6(plen=900, **ip6) / UDP() / Raw(b"x" * 8),
  # Hop-by-hop options claiming 48 octets where 8 remain; and hop-by-hop not first.
  "bad_ipv6_ext_header":     e(0x86dd) / IPv6(nh=0, plen=8, **ip6) / Raw(bytes([17, 5, 0, 0, 0, 0, 0, 0])),
  "bad_ipv6_ext_header#2":   e(0x86dd) / IPv6(**ip6) / IPv6ExtHdrDestOpt(nh=0) / IPv6ExtHdrHopByHop(nh=17) / UDP(),
  "truncated_tcp":           e(0x0800) / IP(proto=6, **ip) / Raw(b"\x00\x50\x00\x50" + b"\x00" * 6),
  "bad_tcp_data_offset":     e(0x0800) / IP(**ip) / TCP(dataofs=3, flags="S"),
  "bad_tcp_data_offset#2":   e(0x0800) / IP(**ip) / TCP(dataofs=15, flags="S"),
  "truncated_udp":           e(0x0800) / IP(proto=17, **ip) / Raw(b"\x00\x35\x00"),
  "bad_udp_length":          e(0x0800) / IP(**ip) / UDP(len=500) / Raw(b"x" * 8),
  "bad_udp_length#2":        e(0x86dd) / IPv6(**ip6) / UDP(len=4) / Raw(b"x" * 8),
  "truncated_icmp":          e(0x0800) / IP(proto=1, **ip) / Raw(b"\x08\x00"),
  "truncated_icmp#2":        e(0x86dd) / IPv6(nh=58, **ip6) / Raw(b"\x80\x00"),
  # Well-formed oddities that must pass: two VLAN tags, an unknown ethertype.
  "ok_vlan2":                e(0x88a8) / Dot1Q(vlan=10) / Dot1Q(vlan=20) / IP(**ip) / UDP(sport=9, dport=9) / Raw(b"x" * 8),
  "ok_other_l3":             e(0x88b5) / Raw(b"local experimental ethertype"),
}
with open(out, "w") as f:
  for name in cases:
    f.write(name.split("#")[0] + "\n")
frames = [bytes(p) for p in cases.values()]
for i in range(n):
  sendp([Ether(f) for f in frames], iface=iface)
  time.sleep(0.01)
print("sent", n, "x", len(frames), "frames")
PY
  fail "scapy failed: $(cat "$IT_TMP/scapy.log")"
it_log "$(cat "$IT_TMP/scapy.log")"
wait_quiet 10
after=$(stats_get)

# Expected increase per reason: N per case line naming it.
declare -A want=()
while read -r reason; do want[$reason]=$((${want[$reason]:-0} + N)); done <"$IT_TMP/cases.txt"
expected_total=0
mismatches=""
for reason in $(printf '%s\n' "${!want[@]}" | sort); do
  [[ $reason == ok_* ]] && continue
  expected_total=$((expected_total + want[$reason]))
  b=$(jget "$before" ".drops.\"$reason\"")
  a=$(jget "$after" ".drops.\"$reason\"")
  [[ $a != null ]] || fail "/stats drops has no reason '$reason'"
  # The same count on the west parse stage row.
  sa=$(jget "$after" ".stages[] | select(.port == \"west\" and .stage == \"parse\") | .drops.\"$reason\" // 0")
  if ((a - b == want[$reason] && sa == want[$reason])); then
    it_log "ok: drops.$reason +$((a - b)) (west parse stage: $sa)"
  else
    mismatches+=$'\n'"  $reason: expected +${want[$reason]}, got +$((a - b)) (west parse stage row: $sa)"
  fi
done
[[ -z $mismatches ]] || fail "drop counters did not rise by exactly $N per malformed frame kind:$mismatches
all drops now: $(jget "$after" '.drops | with_entries(select(.value > 0)) | tojson')"
assert_eq "$(($(jget "$after" .drops_total) - $(jget "$before" .drops_total)))" "$expected_total" \
  "drops_total increase (no other reason moved)"
assert_eq "$(jget "$after" '[.ports[].rx_missed] | add')" 0 "rx_missed (every frame reached the pipeline)"
vlan_delta=$(($(jget "$after" '.stages[] | select(.port == "west" and .stage == "parse") | .counters.vlan') -
  $(jget "$before" '.stages[] | select(.port == "west" and .stage == "parse") | .counters.vlan')))
assert_ge "$vlan_delta" "$N" "west parse vlan counter increase (double-tagged frames forwarded)"
other_delta=$(($(jget "$after" '.stages[] | select(.port == "west" and .stage == "parse") | .counters.other_l3') -
  $(jget "$before" '.stages[] | select(.port == "west" and .stage == "parse") | .counters.other_l3')))
assert_ge "$other_delta" "$N" "west parse other_l3 counter increase"

# Prometheus shows the same per-reason totals.
m=$(stats_get /metrics)
for reason in "${!want[@]}"; do
  [[ $reason == ok_* ]] && continue
  got=$(printf '%s\n' "$m" | awk -v k="sluice_drops_total{reason=\"$reason\"}" '$1 == k {print $2}')
  assert_eq "$got" "$(jget "$after" ".drops.\"$reason\"")" "metrics sluice_drops_total{reason=\"$reason\"}"
done

# Still alive, still forwarding, and conservation holds with the drops included.
kill -0 "$SLUICE_PID" 2>/dev/null || fail "Sluice died"
ping_ok 10.99.0.2 -c 200 -i 0.005
ping_ok fd00:99::2 -6 -c 5 -i 0.05
assert_conservation
stop_sluice TERM
echo "test_bad_packets: all checks passed"
