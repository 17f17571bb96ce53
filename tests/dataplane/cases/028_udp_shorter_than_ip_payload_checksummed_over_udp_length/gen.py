#!/usr/bin/python3
"""A UDP datagram whose UDP length is shorter than the IP payload (RFC 768: the UDP length rules; trailing bytes are ignored, as Linux does) has its checksum verified over the UDP length: a WireGuard initiation so framed is punted, not dropped."""
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
    for i, trailer in enumerate((bytes(4), b"\xde\xad\xbe\xef")):
        p = c.udp_to(51820, payload=b"\x01\x00\x00\x00" + bytes(range(144)), sport=40000 + i)
        b = bytearray(bytes(p))  # UDP checksum now correct over the 156-byte datagram
        b += trailer  # IP payload grows, UDP length stays 156
        b[16:18] = struct.pack("!H", len(b) - 14)
        out.append(c.with_ip_checksum(b))
    return {"in.pcap": out, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

