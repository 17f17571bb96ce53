#!/usr/bin/python3
"""Frames for the gateway with an ethertype other than IPv4 or ARP (IPv6, VLAN tag, LLDP) are dropped as eth_unsupported_type."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    eth = Ether(dst=c.GW_MAC, src=c.PEER_MAC)
    pkts = [
        eth / IPv6(src="fe80::1", dst="fe80::2") / UDP(),
        eth / Dot1Q(vlan=10) / IP(src=c.PEER_IP, dst=c.TUNNEL_IP) / ICMP(),
        Ether(dst=c.GW_MAC, src=c.PEER_MAC, type=0x88CC) / Raw(load=bytes(46)),
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

