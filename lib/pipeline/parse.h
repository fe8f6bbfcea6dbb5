// parse: validates Ethernet, 802.1Q/802.1ad, ARP, IPv4, IPv6 (with extension headers),
// TCP, UDP, ICMP and ICMPv6 headers and records offsets in PacketMeta. A malformed
// packet is dropped with the reason it failed; anything it does not know (another
// ethertype or IP protocol) passes untouched, so an L2 cross-connect stays a wire.
// Checksums are not verified here: that is the router's job, not a wire's.
#pragma once

#include <optional>

#include "pipeline/packet_meta.h"
#include "pipeline/stage.h"

namespace sluice::pipeline {

// What one burst saw, kept in locals and committed to the counters once per burst.
struct ParseCounts {
  uint32_t ipv4 = 0, ipv6 = 0, arp = 0, vlan = 0, tcp = 0, udp = 0, icmp = 0, icmpv6 = 0, other_l3 = 0,
           fragments = 0;
};

class ParseStage final : public Stage {
 public:
  ParseStage() : Stage("parse") {}
  void process(Burst& burst) override;
  void read_counters(NamedCounters& out) const override;

  // Parses one packet into its meta; returns the drop reason if it is malformed.
  static std::optional<Drop> parse_packet(rte_mbuf* m, ParseCounts& counts);

 private:
  Counter ipv4_, ipv6_, arp_, vlan_, tcp_, udp_, icmp_, icmpv6_, other_l3_, fragments_;
};

}  // namespace sluice::pipeline
