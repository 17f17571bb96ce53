#!/usr/bin/python3
"""Fragments addressed to the gateway (first with MF, later with an offset, ICMP or UDP) are dropped as ipv4_fragment, never answered."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    first = c.echo_request(payload=bytes(64))
    first[IP].flags = "MF"
    later = c.echo_request(payload=bytes(64), seq=2)
    later[IP].frag = 8
    last_icmp_hdr = c.echo_request(payload=bytes(64), seq=3)
    last_icmp_hdr[IP].frag = 185
    udp = c.udp_to(51820, payload=b"\x01\x00\x00\x00" + bytes(144))
    udp[IP].flags = "MF"
    return {"in.pcap": [first, later, last_icmp_hdr, udp], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

