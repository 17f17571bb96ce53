#!/usr/bin/python3
"""Malformed ARP (truncated, wrong hardware/protocol type or lengths, multicast sender, unknown opcode) is dropped as arp_malformed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    good = bytes(c.arp_request(c.TUNNEL_IP))

    def edit(off, val):
        b = bytearray(good)
        b[off:off + len(val)] = val
        return bytes(b)

    bad = [
        good[:14 + 20],  # ARP body cut short (28 bytes needed)
        edit(14, b"\x00\x06"),  # hardware type IEEE 802 instead of Ethernet
        edit(16, b"\x86\xdd"),  # protocol type IPv6
        edit(18, b"\x08"),  # hardware address length 8
        edit(19, b"\x10"),  # protocol address length 16
        edit(22, bytes.fromhex("010203040506")),  # multicast sender hardware address
        edit(20, b"\x00\x03"),  # opcode 3 (RARP request)
    ]
    return {"in.pcap": bad, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

