#!/usr/bin/python3
"""UDP to the gateway with a wrong checksum is dropped as udp_bad_checksum; checksum 0 (none) is accepted and reaches port dispatch."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    bad = c.udp_to(51820, payload=b"\x01\x00\x00\x00" + bytes(144), chksum=0x1111)
    bad2 = c.udp_to(53, chksum=0xFFFF)
    none = c.udp_to(53, chksum=0)  # no checksum: accepted, then port 53 is closed
    return {"in.pcap": [bad, bad2, none], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

