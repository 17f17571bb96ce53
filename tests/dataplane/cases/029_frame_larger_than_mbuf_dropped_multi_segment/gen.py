#!/usr/bin/python3
"""A frame larger than one mbuf (a 4000-byte jumbo echo request) arrives chained and is dropped as multi_segment, not parsed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    return {"in.pcap": [c.echo_request(payload=bytes(4000 - 42))], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

