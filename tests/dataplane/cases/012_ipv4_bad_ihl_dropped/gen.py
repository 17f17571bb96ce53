#!/usr/bin/python3
"""IPv4 headers whose IHL is below 5 words are dropped as ipv4_bad_ihl."""
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
    for ihl in (4, 0):
        b = bytearray(bytes(c.echo_request(seq=ihl)))
        b[14] = 0x40 | ihl
        out.append(bytes(b))
    return {"in.pcap": out, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

