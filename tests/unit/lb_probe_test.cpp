// Health probes' packets (lib/lb/probe.h) on real mbufs: the SYN, RST and echo request
// as sent (fields and checksums, IPv4 and IPv6), and the answers crafted here by hand
// (SYN-ACK, RST, echo reply, unreachable) as parse_probe_reply() reads them, cut at
// every length in heap blocks of exactly that size, so ASan sees any read past the end.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include "l3_support.h"
#include "lb/probe.h"

namespace sluice::lb {
namespace {

using Kind = ProbeReply::Kind;
using net::IpAddr;
using test::get16;
using test::ip_of;
using test::put16;

constexpr ProbeMatch kMatch{.port_first = 40000, .port_last = 40999, .echo_ident = 0x5a17};
constexpr uint16_t kLocalPort = 40123, kBackendPort = 8080;
constexpr uint32_t kProbeSeq = 0x89abcdefu;
constexpr uint32_t kBackendSeq = 0x01020304u;
constexpr uint8_t kSynAck = 0x12, kRstAck = 0x14, kSyn = 0x02, kRst = 0x04, kAck = 0x10;

// Ours, the backend's, and a router's on the way, which may send the unreachable.
struct Addresses {
  IpAddr local, backend, router;
};
Addresses addresses(bool v6) {
  if (!v6) return {IpAddr::v4(0x0a020001), IpAddr::v4(0x0a020014), IpAddr::v4(0x0a0200fe)};
  return {IpAddr::v6(test::addr6("fd00:2::1").data()), IpAddr::v6(test::addr6("fd00:2::20").data()),
          IpAddr::v6(test::addr6("fd00:2::fe").data())};
}

using Bytes = std::vector<uint8_t>;

// A probe as built; freed however the test ends (an ASSERT too).
struct MbufFree {
  void operator()(rte_mbuf* m) const { rte_pktmbuf_free(m); }
};
using Mbuf = std::unique_ptr<rte_mbuf, MbufFree>;

// An Ethernet frame (zero MACs) carrying an IP packet; IPv4 with a valid header checksum.
// Upper-layer checksums are left zero: parse_probe_reply() does not read them.
Bytes ip_frame(const IpAddr& src, const IpAddr& dst, uint8_t proto, const Bytes& l4, uint16_t fragment = 0) {
  const bool v6 = src.family == 6;
  const size_t ip = test::kL3, l4_at = ip + (v6 ? 40 : 20);
  Bytes b(l4_at + l4.size(), 0);  // sized once: GCC 12 warns falsely about growing it
  put16(b, 12, v6 ? net::kEtherTypeIpv6 : net::kEtherTypeIpv4);
  std::copy(l4.begin(), l4.end(), b.begin() + long(l4_at));
  if (v6) {
    b[ip] = 0x60;
    put16(b, ip + 4, uint16_t(l4.size()));
    b[ip + 6] = proto;
    b[ip + 7] = 64;
    std::memcpy(&b[ip + 8], src.bytes.data(), 16);
    std::memcpy(&b[ip + 24], dst.bytes.data(), 16);
  } else {
    b[ip] = 0x45;
    put16(b, ip + 2, uint16_t(20 + l4.size()));
    put16(b, ip + 6, fragment);
    b[ip + 8] = 64;
    b[ip + 9] = proto;
    std::memcpy(&b[ip + 12], src.bytes.data(), 4);
    std::memcpy(&b[ip + 16], dst.bytes.data(), 4);
    put16(b, ip + 10, uint16_t(~test::sum16(&b[ip], 20)));
  }
  return b;
}

Bytes tcp_segment(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, size_t option_bytes = 0) {
  Bytes t(20 + option_bytes, 0);
  put16(t, 0, sport);
  put16(t, 2, dport);
  put16(t, 4, uint16_t(seq >> 16));
  put16(t, 6, uint16_t(seq));
  put16(t, 8, uint16_t(ack >> 16));
  put16(t, 10, uint16_t(ack));
  t[12] = uint8_t((t.size() / 4) << 4);
  t[13] = flags;
  put16(t, 14, 65535);
  for (size_t i = 20; i < t.size(); ++i) t[i] = 1;  // NOP options
  return t;
}

Bytes icmp_message(uint8_t type, uint32_t rest, const Bytes& body) {
  Bytes m(8 + body.size(), 0);
  m[0] = type;
  put16(m, 4, uint16_t(rest >> 16));
  put16(m, 6, uint16_t(rest));
  std::copy(body.begin(), body.end(), m.begin() + 8);
  return m;
}

uint8_t icmp_proto(bool v6) { return v6 ? net::kIpProtoIcmpv6 : net::kIpProtoIcmp; }
uint8_t echo_reply_type(bool v6) { return v6 ? 129 : 0; }
uint8_t unreachable_type(bool v6) { return v6 ? 1 : 3; }
uint32_t echo_token(uint16_t ident, uint16_t seq) { return uint32_t(ident) << 16 | seq; }

// The backend's SYN-ACK to our SYN (seq kProbeSeq).
Bytes syn_ack(bool v6, uint16_t to_port = kLocalPort, uint8_t flags = kSynAck, size_t option_bytes = 0) {
  const Addresses a = addresses(v6);
  return ip_frame(a.backend, a.local, net::kIpProtoTcp,
                  tcp_segment(kBackendPort, to_port, kBackendSeq, kProbeSeq + 1, flags, option_bytes));
}
Bytes echo_reply(bool v6, uint16_t ident = kMatch.echo_ident) {
  const Addresses a = addresses(v6);
  const Bytes message = icmp_message(echo_reply_type(v6), echo_token(ident, 7), Bytes(8, 0xee));
  return ip_frame(a.backend, a.local, icmp_proto(v6), message);
}
// A router's unreachable quoting the first `quoted` bytes of `probe`'s IP packet.
Bytes unreachable(bool v6, const rte_mbuf* probe, size_t quoted) {
  const Addresses a = addresses(v6);
  const uint8_t* ip = ip_of(probe);
  const Bytes quote(ip, ip + std::min<size_t>(quoted, probe->data_len - test::kL3));
  return ip_frame(a.router, a.local, icmp_proto(v6), icmp_message(unreachable_type(v6), 0, quote));
}

// The frame in a heap block of exactly its size, attached to an mbuf (as the fuzz
// targets' segments): a read one byte past the data is an ASan report.
class HeapFrame {
 public:
  HeapFrame(rte_mempool* pool, const Bytes& bytes, size_t length) : block_(new uint8_t[length]) {
    std::memcpy(block_.get(), bytes.data(), length);
    m_ = rte_pktmbuf_alloc(pool);
    EXPECT_NE(m_, nullptr);
    if (m_ == nullptr) return;
    shinfo_.free_cb = [](void*, void*) {};  // the block is ours, freed with this object
    rte_mbuf_ext_refcnt_set(&shinfo_, 1);
    rte_pktmbuf_attach_extbuf(m_, block_.get(), reinterpret_cast<rte_iova_t>(block_.get()), uint16_t(length), &shinfo_);
    m_->data_len = uint16_t(length);
    m_->pkt_len = uint32_t(length);
  }
  ~HeapFrame() { rte_pktmbuf_free(m_); }
  HeapFrame(const HeapFrame&) = delete;
  HeapFrame& operator=(const HeapFrame&) = delete;
  const rte_mbuf* mbuf() const { return m_; }

 private:
  std::unique_ptr<uint8_t[]> block_;
  rte_mbuf_ext_shared_info shinfo_{};
  rte_mbuf* m_ = nullptr;
};

class LbProbeTest : public test::MbufTest {
 protected:
  // parse_probe_reply() on `bytes` (cut to `length`, default all) in its own heap block.
  bool parse(const Bytes& bytes, ProbeReply& out, size_t length = ~size_t{0}, uint16_t l3_offset = test::kL3) {
    HeapFrame frame(pool_, bytes, std::min(length, bytes.size()));
    return frame.mbuf() != nullptr && parse_probe_reply(frame.mbuf(), l3_offset, kMatch, out);
  }
  bool parses(const Bytes& bytes) {
    ProbeReply out;
    return parse(bytes, out);
  }
  // probe_reply_candidate() as the data path calls it on a frame with no extension headers.
  static bool candidate(const Bytes& b) {
    const uint8_t* l3 = &b[test::kL3];
    const bool v6 = (l3[0] >> 4) == 6;
    const size_t l4_offset = test::kL3 + (v6 ? 40 : (l3[0] & 0x0f) * 4u);
    const bool later_fragment = !v6 && (get16(l3 + 6) & 0x1fff);
    return probe_reply_candidate(l3, uint16_t(b.size() - test::kL3), v6, v6 ? l3[6] : l3[9],
                                 later_fragment ? nullptr : &b[l4_offset], uint16_t(b.size() - l4_offset), kMatch);
  }
  Mbuf syn(bool v6, uint16_t sport = kLocalPort) {
    const Addresses a = addresses(v6);
    return Mbuf(build_tcp_syn(pool_, a.local, a.backend, sport, kBackendPort, kProbeSeq));
  }
  Mbuf rst(bool v6, uint32_t seq) {
    const Addresses a = addresses(v6);
    return Mbuf(build_tcp_rst(pool_, a.local, a.backend, kLocalPort, kBackendPort, seq));
  }
  Mbuf echo(bool v6, uint16_t ident = kMatch.echo_ident) {
    const Addresses a = addresses(v6);
    return Mbuf(build_icmp_echo(pool_, a.local, a.backend, ident, 7));
  }
};

// The Ethernet header every probe starts with: zero MACs, the IP ether type.
void expect_ethernet(const rte_mbuf* m, bool v6) {
  const uint8_t* frame = test::data(m);
  EXPECT_EQ(Bytes(frame, frame + 12), Bytes(12, 0));
  EXPECT_EQ(get16(frame + 12), v6 ? net::kEtherTypeIpv6 : net::kEtherTypeIpv4);
}
// The IP header: our addresses, TTL/hop limit 64, IPv4 with DF and a valid checksum.
void expect_ip(const rte_mbuf* m, bool v6, uint8_t proto, size_t l4_len) {
  const uint8_t* ip = ip_of(m);
  const Addresses a = addresses(v6);
  if (v6) {
    const auto* h = reinterpret_cast<const net::Ipv6Header*>(ip);
    EXPECT_EQ(h->version_class_flow.value(), 6u << 28);
    EXPECT_EQ(h->payload_length.value(), l4_len);
    EXPECT_EQ(h->next_header, proto);
    EXPECT_EQ(h->hop_limit, 64);
    EXPECT_EQ(IpAddr::v6(h->src), a.local);
    EXPECT_EQ(IpAddr::v6(h->dst), a.backend);
  } else {
    const auto* h = reinterpret_cast<const net::Ipv4Header*>(ip);
    EXPECT_EQ(h->version_ihl, 0x45);
    EXPECT_EQ(h->total_length.value(), 20 + l4_len);
    EXPECT_EQ(h->fragment.value(), 0x4000) << "DF, no fragment";
    EXPECT_EQ(h->ttl, 64);
    EXPECT_EQ(h->protocol, proto);
    EXPECT_EQ(IpAddr::v4(h->src.value()), a.local);
    EXPECT_EQ(IpAddr::v4(h->dst.value()), a.backend);
    EXPECT_TRUE(test::ipv4_checksum_ok(ip));
  }
  EXPECT_EQ(m->data_len, test::kL3 + (v6 ? 40 : 20) + l4_len);
  EXPECT_EQ(m->pkt_len, m->data_len);
}
// The TCP checksum, summed here (DPDK's *_cksum_verify are still experimental in 22.11).
bool tcp_checksum_ok(const rte_mbuf* m, bool v6) {
  const uint8_t* ip = ip_of(m);
  if (v6) return test::icmp6_checksum_ok(ip);  // any upper layer after a bare IPv6 header
  const uint32_t tcp_len = get16(ip + 2) - 20u;
  const uint32_t pseudo = test::sum16(ip + 12, 8) + net::kIpProtoTcp + tcp_len;
  return test::sum16(ip + 20, tcp_len, pseudo) == 0xffff;
}

TEST_F(LbProbeTest, BuildsSynWithMssOptionAndValidChecksums) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Mbuf m = syn(v6);
    ASSERT_NE(m, nullptr);
    expect_ethernet(m.get(), v6);
    expect_ip(m.get(), v6, net::kIpProtoTcp, 24);
    const uint8_t* l4 = ip_of(m.get()) + (v6 ? 40 : 20);
    const auto* tcp = reinterpret_cast<const net::TcpHeader*>(l4);
    EXPECT_EQ(tcp->src_port.value(), kLocalPort);
    EXPECT_EQ(tcp->dst_port.value(), kBackendPort);
    EXPECT_EQ(tcp->seq.value(), kProbeSeq);
    EXPECT_EQ(tcp->ack.value(), 0u);
    EXPECT_EQ(tcp->header_len(), 24);
    EXPECT_EQ(tcp->flags, kSyn);
    EXPECT_EQ(tcp->window.value(), 64240);
    EXPECT_EQ(tcp->urgent.value(), 0);
    EXPECT_EQ(Bytes(l4 + 20, l4 + 24), (Bytes{2, 4, uint8_t((v6 ? 1440 : 1460) >> 8), uint8_t(v6 ? 1440 : 1460)}));
    EXPECT_TRUE(tcp_checksum_ok(m.get(), v6));
  }
}

TEST_F(LbProbeTest, BuildsBareRstCarryingTheSequenceItIsGiven) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Mbuf m = rst(v6, kProbeSeq + 1);
    ASSERT_NE(m, nullptr);
    expect_ethernet(m.get(), v6);
    expect_ip(m.get(), v6, net::kIpProtoTcp, 20);
    const auto* tcp = reinterpret_cast<const net::TcpHeader*>(ip_of(m.get()) + (v6 ? 40 : 20));
    EXPECT_EQ(tcp->src_port.value(), kLocalPort);
    EXPECT_EQ(tcp->dst_port.value(), kBackendPort);
    EXPECT_EQ(tcp->seq.value(), kProbeSeq + 1);
    EXPECT_EQ(tcp->ack.value(), 0u);
    EXPECT_EQ(tcp->header_len(), 20);
    EXPECT_EQ(tcp->flags, kRst) << "no ACK";
    EXPECT_TRUE(tcp_checksum_ok(m.get(), v6));
  }
}

TEST_F(LbProbeTest, BuildsEchoRequestWithPayloadAndValidChecksum) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Mbuf m = echo(v6);
    ASSERT_NE(m, nullptr);
    expect_ethernet(m.get(), v6);
    expect_ip(m.get(), v6, icmp_proto(v6), 16);
    const uint8_t* icmp = ip_of(m.get()) + (v6 ? 40 : 20);
    EXPECT_EQ(icmp[0], v6 ? 128 : 8);
    EXPECT_EQ(icmp[1], 0);
    EXPECT_EQ(get16(icmp + 4), kMatch.echo_ident);
    EXPECT_EQ(get16(icmp + 6), 7);
    if (v6) EXPECT_TRUE(test::icmp6_checksum_ok(ip_of(m.get()))) << "over the pseudo-header";
    else EXPECT_EQ(test::sum16(icmp, 16), 0xffffu);
  }
}

TEST_F(LbProbeTest, BuildsNothingFromAnEmptyPoolOrMixedFamilies) {
  const Addresses a4 = addresses(false), a6 = addresses(true);
  EXPECT_EQ(build_tcp_syn(pool_, a4.local, a6.backend, 1, 2, 3), nullptr);
  EXPECT_EQ(build_icmp_echo(pool_, IpAddr{}, IpAddr{}, 1, 2), nullptr);
  EXPECT_EQ(in_use(), 0u);

  std::vector<rte_mbuf*> all;
  while (rte_mbuf* m = rte_pktmbuf_alloc(pool_)) all.push_back(m);
  EXPECT_EQ(build_tcp_syn(pool_, a4.local, a4.backend, 1, 2, 3), nullptr);
  EXPECT_EQ(build_tcp_rst(pool_, a6.local, a6.backend, 1, 2, 3), nullptr);
  EXPECT_EQ(build_icmp_echo(pool_, a6.local, a6.backend, 1, 2), nullptr);
  test::free_all(all);
}

TEST_F(LbProbeTest, ReadsSynAckAndTheRstThatAnswersIt) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Addresses a = addresses(v6);
    ProbeReply r;
    ASSERT_TRUE(parse(syn_ack(v6, kLocalPort, kSynAck, 12), r));
    EXPECT_EQ(r.kind, Kind::SynAck);
    EXPECT_EQ(r.peer, a.backend);
    EXPECT_EQ(r.local, a.local);
    EXPECT_EQ(r.peer_port, kBackendPort);
    EXPECT_EQ(r.local_port, kLocalPort);
    EXPECT_EQ(r.token, kProbeSeq) << "the SYN's sequence number";
    EXPECT_EQ(r.ack_for_rst, kProbeSeq + 1);

    const Mbuf answer(build_tcp_rst(pool_, r.local, r.peer, r.local_port, r.peer_port, r.ack_for_rst));
    ASSERT_NE(answer, nullptr);
    const auto* answer_tcp = reinterpret_cast<const net::TcpHeader*>(ip_of(answer.get()) + (v6 ? 40 : 20));
    EXPECT_EQ(answer_tcp->seq.value(), kProbeSeq + 1) << "the SYN-ACK's ack number";

    // Behind a VLAN tag: the caller's l3_offset.
    Bytes tagged = syn_ack(v6);
    tagged.insert(tagged.begin() + 12, {0x81, 0x00, 0x00, 0x07});
    ProbeReply t;
    ASSERT_TRUE(parse(tagged, t, tagged.size(), test::kL3 + 4));
    EXPECT_EQ(t.token, kProbeSeq);
    EXPECT_EQ(t.peer, a.backend);
  }
}

TEST_F(LbProbeTest, ReadsRstWithAckAsRefused) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Addresses a = addresses(v6);
    ProbeReply r;
    ASSERT_TRUE(parse(syn_ack(v6, kLocalPort, kRstAck), r));
    EXPECT_EQ(r.kind, Kind::Rst);
    EXPECT_EQ(r.peer, a.backend);
    EXPECT_EQ(r.local, a.local);
    EXPECT_EQ(r.peer_port, kBackendPort);
    EXPECT_EQ(r.local_port, kLocalPort);
    EXPECT_EQ(r.token, kProbeSeq);
  }
}

TEST_F(LbProbeTest, ReadsAnyOtherAckToAProbePortAsStrayWithItsRstSequence) {
  // A backend's half-open connection meeting the port's next SYN answers with a bare
  // ACK: ours to reset (RST at SEG.ACK), not the data path's to drop.
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    for (uint8_t flags : {kAck, uint8_t(kAck | 0x01), uint8_t(kAck | 0x08)}) {
      ProbeReply r;
      ASSERT_TRUE(parse(syn_ack(v6, kLocalPort, flags), r)) << int(flags);
      EXPECT_EQ(r.kind, Kind::Stray);
      EXPECT_EQ(r.ack_for_rst, kProbeSeq + 1);
      EXPECT_EQ(r.local_port, kLocalPort);
      EXPECT_TRUE(candidate(syn_ack(v6, kLocalPort, flags)));
    }
    EXPECT_FALSE(parses(syn_ack(v6, kMatch.port_last + 1, kAck))) << "not a probe port";
  }
}

TEST_F(LbProbeTest, ReadsEchoReplyWithOurIdent) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Addresses a = addresses(v6);
    ProbeReply r;
    ASSERT_TRUE(parse(echo_reply(v6), r));
    EXPECT_EQ(r.kind, Kind::EchoReply);
    EXPECT_EQ(r.peer, a.backend);
    EXPECT_EQ(r.local, a.local);
    EXPECT_EQ(r.peer_port, 0);
    EXPECT_EQ(r.local_port, 0);
    EXPECT_EQ(r.token, echo_token(kMatch.echo_ident, 7));
  }
}

TEST_F(LbProbeTest, ReadsUnreachableQuotingOurSynOrEchoAsAboutTheBackend) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Addresses a = addresses(v6);
    const Mbuf probe = syn(v6);
    const Mbuf ping = echo(v6);
    ASSERT_TRUE(probe && ping);
    const size_t ip_header = v6 ? 40 : 20;
    for (size_t quoted : {ip_header + 8, size_t{1000}}) {  // the minimum, and all of it
      SCOPED_TRACE(quoted);
      ProbeReply r;
      ASSERT_TRUE(parse(unreachable(v6, probe.get(), quoted), r));
      EXPECT_EQ(r.kind, Kind::Unreachable);
      EXPECT_EQ(r.peer, a.backend) << "the quoted destination, not the router";
      EXPECT_EQ(r.local, a.local);
      EXPECT_EQ(r.peer_port, kBackendPort);
      EXPECT_EQ(r.local_port, kLocalPort);
      EXPECT_EQ(r.token, kProbeSeq);

      ProbeReply e;
      ASSERT_TRUE(parse(unreachable(v6, ping.get(), quoted), e));
      EXPECT_EQ(e.kind, Kind::Unreachable);
      EXPECT_EQ(e.peer, a.backend);
      EXPECT_EQ(e.local, a.local);
      EXPECT_EQ(e.peer_port, 0);
      EXPECT_EQ(e.token, echo_token(kMatch.echo_ident, 7));
    }
    EXPECT_FALSE(parses(unreachable(v6, probe.get(), ip_header + 7))) << "a quote without the sequence number";
  }
}

TEST_F(LbProbeTest, IgnoresWhatIsNotAnAnswerToOurProbes) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Addresses a = addresses(v6);
    EXPECT_FALSE(parses(syn_ack(v6, kMatch.port_first - 1)));
    EXPECT_FALSE(parses(syn_ack(v6, kMatch.port_last + 1)));
    EXPECT_TRUE(parses(syn_ack(v6, kMatch.port_first)));
    EXPECT_TRUE(parses(syn_ack(v6, kMatch.port_last)));
    EXPECT_FALSE(parses(syn_ack(v6, kLocalPort, kSyn))) << "a SYN without ACK";
    EXPECT_FALSE(parses(syn_ack(v6, kLocalPort, kRst))) << "a RST without ACK carries no token";
    EXPECT_FALSE(parses(echo_reply(v6, kMatch.echo_ident + 1)));
    EXPECT_FALSE(parses(ip_frame(a.backend, a.local, icmp_proto(v6),
                                 icmp_message(v6 ? 128 : 8, echo_token(kMatch.echo_ident, 7), {}))))
        << "an echo request";
    EXPECT_FALSE(parses(ip_frame(a.backend, a.local, net::kIpProtoUdp, Bytes(8, 0))));

    // Unreachables about someone else's packets, or with another error type.
    const Mbuf other_port = syn(v6, kMatch.port_last + 1);
    const Mbuf other_ident = echo(v6, kMatch.echo_ident + 1);
    const Mbuf reset = rst(v6, kProbeSeq);
    const Mbuf probe = syn(v6);
    ASSERT_TRUE(other_port && other_ident && reset && probe);
    EXPECT_FALSE(parses(unreachable(v6, other_port.get(), 1000)));
    EXPECT_FALSE(parses(unreachable(v6, other_ident.get(), 1000)));
    EXPECT_TRUE(parses(unreachable(v6, reset.get(), 1000))) << "our port range: the token decides";
    Bytes time_exceeded = unreachable(v6, probe.get(), 1000);
    time_exceeded[test::kL3 + (v6 ? 40 : 20)] = v6 ? 3 : 11;
    EXPECT_FALSE(parses(time_exceeded));
  }
}

TEST_F(LbProbeTest, MatchesOnlyFirstFragmentsWithWholeHeaders) {
  const Addresses a = addresses(false);
  const Bytes segment = tcp_segment(kBackendPort, kLocalPort, kBackendSeq, kProbeSeq + 1, kSynAck);
  EXPECT_TRUE(parses(ip_frame(a.backend, a.local, net::kIpProtoTcp, segment, 0x2000))) << "MF, offset 0";
  EXPECT_FALSE(parses(ip_frame(a.backend, a.local, net::kIpProtoTcp, segment, 0x0001)));
  EXPECT_FALSE(parses(ip_frame(a.backend, a.local, net::kIpProtoTcp, segment, 0x2003)));
  const Bytes half(segment.begin(), segment.begin() + 16);
  EXPECT_FALSE(parses(ip_frame(a.backend, a.local, net::kIpProtoTcp, half, 0x2000))) << "TCP header cut by MF";
  EXPECT_FALSE(candidate(ip_frame(a.backend, a.local, net::kIpProtoTcp, segment, 0x0001)));

  // An unreachable quoting a later fragment of a packet from our port range.
  Bytes quoted_later = ip_frame(a.local, a.backend, net::kIpProtoTcp,
                                tcp_segment(kLocalPort, kBackendPort, kProbeSeq, 0, kSyn), 0x0004);
  Bytes quote(quoted_later.begin() + test::kL3, quoted_later.end());
  EXPECT_FALSE(parses(ip_frame(a.router, a.local, net::kIpProtoIcmp, icmp_message(3, 0, quote))));
}

TEST_F(LbProbeTest, RejectsMalformedHeaders) {
  const Bytes good4 = syn_ack(false), good6 = syn_ack(true);
  const size_t ip = test::kL3;
  ASSERT_TRUE(parses(good4));
  Bytes b = good4;
  b[ip] = 0x44;  // IHL 4
  EXPECT_FALSE(parses(b));
  b = good4;
  b[ip] = 0x46;  // IHL 6: the TCP header starts 4 bytes later and is cut short
  EXPECT_FALSE(parses(b));
  b = good4;
  put16(b, ip + 2, 19);  // total length inside the header
  EXPECT_FALSE(parses(b));
  b = good4;
  put16(b, ip + 2, 39);  // one byte of TCP missing
  EXPECT_FALSE(parses(b));
  b = good4;
  b[ip] = 0x55;  // version 5
  EXPECT_FALSE(parses(b));
  b = good4;
  b[ip + 20 + 12] = 0x40;  // TCP data offset 4
  EXPECT_FALSE(parses(b));
  b = good4;
  b[ip + 20 + 12] = 0x60;  // options promised, not there
  EXPECT_FALSE(parses(b));

  ASSERT_TRUE(parses(good6));
  b = good6;
  put16(b, ip + 4, 19);  // payload length cuts the TCP header
  EXPECT_FALSE(parses(b));
  // A hop-by-hop header before the TCP header: replies carry none.
  b = good6;
  b[ip + 6] = net::kIpProtoHopByHop;
  const Bytes hop_by_hop = {net::kIpProtoTcp, 0, 1, 4, 0, 0, 0, 0};
  b.insert(b.begin() + long(ip + 40), hop_by_hop.begin(), hop_by_hop.end());
  put16(b, ip + 4, uint16_t(b.size() - ip - 40));
  EXPECT_FALSE(parses(b));

  // An IPv4 unreachable quoting an IPv6 probe.
  const Mbuf probe6 = syn(true);
  ASSERT_NE(probe6, nullptr);
  const Addresses a = addresses(false);
  const Bytes quote6(ip_of(probe6.get()), ip_of(probe6.get()) + 60);
  EXPECT_FALSE(parses(ip_frame(a.router, a.local, net::kIpProtoIcmp, icmp_message(3, 0, quote6))));
}

TEST_F(LbProbeTest, CandidateCheckPassesEveryAnswerAndStopsMostOthers) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const Addresses a = addresses(v6);
    const Mbuf probe = syn(v6);
    ASSERT_NE(probe, nullptr);
    EXPECT_TRUE(candidate(syn_ack(v6)));
    EXPECT_TRUE(candidate(syn_ack(v6, kLocalPort, kRstAck)));
    EXPECT_TRUE(candidate(echo_reply(v6)));
    EXPECT_TRUE(candidate(unreachable(v6, probe.get(), 1000)));
    EXPECT_FALSE(candidate(syn_ack(v6, kMatch.port_last + 1)));
    EXPECT_FALSE(candidate(syn_ack(v6, kLocalPort, kSyn)));
    EXPECT_FALSE(candidate(echo_reply(v6, kMatch.echo_ident + 1)));
    EXPECT_FALSE(candidate(ip_frame(a.backend, a.local, net::kIpProtoUdp, Bytes(8, 0))));
  }
}

// Every answer cut at every length, and with every IP length: a match only once its
// headers are all there, then always the same fields; ASan sees any read past the end.
TEST_F(LbProbeTest, TruncatedAnswersNeverMatchWronglyOrReadPastTheirEnd) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const size_t ip_header = v6 ? 40 : 20;
    const Mbuf probe = syn(v6);
    const Mbuf ping = echo(v6);
    ASSERT_TRUE(probe && ping);
    struct Case {
      std::string name;
      Bytes frame;
      size_t needed;  // the shortest frame that holds every header read
    };
    const size_t unreachable_needed = test::kL3 + ip_header + 8 + ip_header + 8;
    const std::vector<Case> cases = {
        {"syn-ack", syn_ack(v6), test::kL3 + ip_header + 20},
        {"syn-ack with options", syn_ack(v6, kLocalPort, kSynAck, 12), test::kL3 + ip_header + 32},
        {"rst", syn_ack(v6, kLocalPort, kRstAck), test::kL3 + ip_header + 20},
        {"echo reply", echo_reply(v6), test::kL3 + ip_header + 8},
        {"unreachable about a SYN", unreachable(v6, probe.get(), 1000), unreachable_needed},
        {"unreachable about an echo", unreachable(v6, ping.get(), 1000), unreachable_needed},
    };
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      ProbeReply whole;
      ASSERT_TRUE(parse(c.frame, whole));
      for (size_t length = 0; length <= c.frame.size(); ++length) {
        ProbeReply cut;
        const bool matched = parse(c.frame, cut, length);
        ASSERT_EQ(matched, length >= c.needed) << "cut to " << length;
        if (matched) {
          EXPECT_EQ(cut.kind, whole.kind);
          EXPECT_EQ(cut.token, whole.token);
          EXPECT_EQ(cut.peer, whole.peer);
        }
      }
      // The whole frame in hand, the IP length saying less (the outer one: the quote
      // inside an unreachable keeps its own).
      const size_t length_field = test::kL3 + (v6 ? 4 : 2);
      const size_t length_base = v6 ? ip_header : 0;
      for (size_t ip_length = length_base; ip_length <= c.frame.size() - test::kL3; ++ip_length) {
        Bytes lying = c.frame;
        put16(lying, length_field, uint16_t(ip_length - length_base));
        ASSERT_EQ(parses(lying), test::kL3 + ip_length >= c.needed) << "IP length " << ip_length;
      }
    }
  }
}

}  // namespace
}  // namespace sluice::lb
