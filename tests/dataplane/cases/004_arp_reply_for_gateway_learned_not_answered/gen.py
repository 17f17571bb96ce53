#!/usr/bin/python3
"""An ARP reply addressed to the gateway teaches the neighbor and is consumed: no output, no drop."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    reply = Ether(dst=c.GW_MAC, src=c.ROUTER_MAC) / ARP(
        op=2, hwsrc=c.ROUTER_MAC, psrc=c.ROUTER_IP, hwdst=c.GW_MAC, pdst=c.INTERNET_IP)
    return {"in.pcap": [reply], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

