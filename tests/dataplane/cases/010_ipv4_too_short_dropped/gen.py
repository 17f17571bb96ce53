#!/usr/bin/python3
"""IPv4 frames with less than a 20-byte header after Ethernet are dropped as ipv4_too_short."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    full = bytes(c.echo_request())
    return {"in.pcap": [full[:14], full[:14 + 1], full[:14 + 19]], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

