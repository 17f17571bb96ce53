#!/usr/bin/python3
"""Martian sources (0/8, 127/8, multicast, limited broadcast, the gateway's own address, source equal to destination) are dropped as ipv4_bad_source."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    srcs = ["0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.1", "239.255.255.250",
            "255.255.255.255", c.TUNNEL_IP, c.INTERNET_IP]
    pkts = [c.echo_request(src=s, seq=i) for i, s in enumerate(srcs)]
    pkts.append(c.echo_request(src="8.8.8.8", dst="8.8.8.8", seq=99))  # land-style transit
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

