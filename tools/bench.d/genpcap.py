#!/usr/bin/python3
"""Writes the benchmark's traffic: N UDP/IPv4 flows, one frame each, as a pcap.

    genpcap.py OUT.pcap FLOWS FRAME_BYTES DST_MAC [DST_ADDR]

FRAME_BYTES counts the 4-byte FCS, as RFC 2544 frame sizes do, so a 64 B frame is
60 bytes in the pcap. Flow i: source 10.0.0.0 + i, source port 1024 + i % 64512,
destination 198.18.1.(1 + i % 254) port 9 (l3fwd's default LPM table sends
198.18.1.0/24 to port 1). TTL 64, valid IPv4 header checksum, UDP checksum 0.
Every frame has its own source address, so N frames are N distinct 5-tuples: N
conntrack flows (the conntrack suite relies on it; up to 2^24 flows stay in 10.0.0.0/8).
With DST_ADDR (the load-balancer suite's VIP) every flow goes to that one address,
port 9: the flows differ by source address and port only, as clients of one service do.
Written with struct, not scapy: a million frames take seconds, not an hour.
"""
import socket
import struct
import sys

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET
SRC_MAC = bytes.fromhex("020000000002")
FCS = 4
ETH, IP4, UDP = 14, 20, 8


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def main():
    out, flows, frame_bytes, dst_mac = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    vip = sys.argv[5] if len(sys.argv) > 5 else None
    caplen = frame_bytes - FCS
    if caplen < ETH + IP4 + UDP or flows < 1 or flows > (1 << 24):
        sys.exit(f"genpcap: bad flows {flows} or frame size {frame_bytes}")
    ip_len = caplen - ETH
    frame = bytearray(caplen)
    frame[0:6] = bytes.fromhex(dst_mac.replace(":", ""))
    frame[6:12] = SRC_MAC
    frame[12:14] = b"\x08\x00"
    # version/IHL, DSCP, total length, id, flags+fragment, TTL, protocol; checksum and addresses per flow.
    struct.pack_into("!BBHHHBB", frame, ETH, 0x45, 0, ip_len, 0, 0, 64, 17)
    struct.pack_into("!HHHH", frame, ETH + IP4, 0, 9, ip_len - IP4, 0)
    fixed = sum(struct.unpack_from("!5H", frame, ETH))  # the header words before the checksum
    record = struct.pack("<IIII", 0, 0, caplen, caplen)
    src_base, dst_base = 0x0A000000, 0xC6120100  # 10.0.0.0, 198.18.1.0
    vip_addr = struct.unpack("!I", socket.inet_aton(vip))[0] if vip else None
    with open(out, "wb", buffering=1 << 22) as f:
        f.write(PCAP_HEADER)
        for i in range(flows):
            src, dst = src_base + i, vip_addr if vip else dst_base + 1 + i % 254
            checksum = ~fold(fixed + (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)) & 0xFFFF
            struct.pack_into("!HII", frame, ETH + 10, checksum, src, dst)
            struct.pack_into("!H", frame, ETH + IP4, 1024 + i % 64512)
            f.write(record)
            f.write(frame)


if __name__ == "__main__":
    main()
