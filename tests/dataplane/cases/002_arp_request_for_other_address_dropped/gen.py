#!/usr/bin/python3
"""ARP requests for addresses the gateway does not own are dropped as arp_not_for_us."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    reqs = [
        c.arp_request("10.77.0.9"),
        c.arp_request("192.0.2.2"),
        c.arp_request("8.8.8.8"),
    ]
    return {"in.pcap": reqs, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

