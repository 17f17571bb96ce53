#!/usr/bin/python3
"""Frames with ethertype IPv4 but an IP version other than 4 are dropped as ipv4_bad_version."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    out = []
    for version in (6, 5, 0):
        b = bytearray(bytes(c.echo_request(seq=version)))
        b[14] = (version << 4) | 5
        out.append(c.with_ip_checksum(b))
    return {"in.pcap": out, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

