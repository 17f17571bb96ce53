#!/usr/bin/python3
"""IPv4 packets with header options (valid checksum) are dropped as ipv4_options."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401

from scapy.layers.inet import IPOption_NOP, IPOption_Router_Alert  # noqa: E402


def build():
    eth = Ether(dst=c.GW_MAC, src=c.PEER_MAC)
    pkts = [
        eth / IP(src=c.PEER_IP, dst=c.TUNNEL_IP, options=[IPOption_Router_Alert()]) / ICMP(),
        eth / IP(src=c.PEER_IP, dst=c.TUNNEL_IP, options=[IPOption_NOP()] * 4) / ICMP(seq=2),
        eth / IP(src=c.PEER_IP, dst="8.8.8.8", options=[IPOption_NOP()] * 8) / UDP(),
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

