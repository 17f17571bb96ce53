#!/usr/bin/python3
"""UDP to the gateway on a port other than the WireGuard port is dropped as local_port_unreachable; TCP to it as local_unsupported_protocol."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    pkts = [
        c.udp_to(53),
        c.udp_to(51821, dst=c.INTERNET_IP),
        c.udp_to(51819, payload=b""),
        Ether(dst=c.GW_MAC, src=c.PEER_MAC) / IP(src=c.PEER_IP, dst=c.TUNNEL_IP) / TCP(dport=22),
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

