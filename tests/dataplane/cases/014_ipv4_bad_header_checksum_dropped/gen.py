#!/usr/bin/python3
"""IPv4 headers with a wrong checksum are dropped as ipv4_bad_checksum before any other use."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    p = c.echo_request()
    p[IP].chksum = 0xDEAD
    q = bytearray(bytes(c.echo_request(seq=2)))
    q[22] = 63  # TTL changed after the checksum was computed
    r = c.udp_to(51820, payload=b"\x01\x00\x00\x00" + bytes(144))
    r[IP].chksum = 0
    return {"in.pcap": [p, bytes(q), r], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

