#!/usr/bin/python3
"""IPv4 total length larger than the frame, or smaller than the header, is dropped as ipv4_bad_total_length."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401

import struct  # noqa: E402


def build():
    out = []
    for seq, delta in ((1, +1), (2, +1000)):
        b = bytearray(bytes(c.echo_request(seq=seq, payload=b"12345678")))
        total = struct.unpack("!H", b[16:18])[0] + delta
        b[16:18] = struct.pack("!H", total)
        out.append(c.with_ip_checksum(b))
    b = bytearray(bytes(c.echo_request(seq=3)))
    b[16:18] = struct.pack("!H", 19)  # shorter than its own header
    out.append(c.with_ip_checksum(b))
    # padded frame whose total length still exceeds frame length
    b = bytearray(c.pad60(c.echo_request(seq=4)))
    b[16:18] = struct.pack("!H", 47)
    out.append(c.with_ip_checksum(b))
    return {"in.pcap": out, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

