#!/usr/bin/env python3
"""The backend's end of an IP-in-IP tunnel, in user space (for kernels without the ipip
module, such as this test's): every IPv4 packet of protocol 4 addressed to this host is
read from a raw socket (after the kernel reassembled it), its outer header taken off,
and the inner packet written to a TUN device, where the kernel receives it as if it had
come out of a tunnel interface (tunl0). With "6", the same for IPv6-in-IPv6 (next header
41, as ip6tnl0 would: the kernel lacks ip6_tunnel too); a raw IPv6 socket hands over the
payload only, which is the inner packet. Prints READY once the device exists; counts
packets in STATS_FILE (one line "packets bytes") every 100 packets and on SIGTERM.

  ipip_decap.py TUN_NAME STATS_FILE [6]
"""
import fcntl
import os
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41


def main():
    name, stats_file = sys.argv[1], sys.argv[2]
    v6 = len(sys.argv) > 3 and sys.argv[3] == "6"
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    if v6:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
    else:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    packets = octets = 0

    def save(*_):
        with open(stats_file + ".new", "w") as f:
            f.write(f"{packets} {octets}\n")
        os.replace(stats_file + ".new", stats_file)

    def stop(*_):
        save()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    save()
    print("READY", flush=True)
    while True:
        outer = raw.recv(65535)
        if v6:
            inner = outer  # the outer header is not part of what a raw IPv6 socket reads
            if len(inner) < 40 or inner[0] >> 4 != 6:
                continue
        else:
            if len(outer) < 20:
                continue
            ihl = (outer[0] & 0x0F) * 4
            inner = outer[ihl:]
            if len(inner) < 20 or inner[0] >> 4 != 4:
                continue
        os.write(tun, inner)
        packets += 1
        octets += len(inner)
        if packets % 100 == 0:
            save()


if __name__ == "__main__":
    main()
