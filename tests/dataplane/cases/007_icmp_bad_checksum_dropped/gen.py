#!/usr/bin/python3
"""An echo request with a wrong ICMP checksum is dropped as icmp_bad_checksum and not answered."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    p = c.echo_request(payload=b"abcdefgh")
    p[ICMP].chksum = 0x1234
    q = c.echo_request(seq=2, payload=b"abcdefgh")
    b = bytearray(bytes(q))
    b[-1] ^= 0x01  # data corrupted after the checksum was computed
    return {"in.pcap": [p, bytes(b)], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

