#!/usr/bin/python3
"""IPv4 packets arriving with TTL 0 (local or transit) are dropped as ipv4_ttl_expired; TTL 1 to the gateway is answered."""
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
        c.echo_request(ttl=0),
        c.echo_request(dst="8.8.8.8", ttl=0, seq=2),
        c.echo_request(ttl=1, seq=3),
    ]
    return {"in.pcap": pkts, "expected.pcap": [c.echo_reply_from_gw(seq=3)]}


if __name__ == "__main__":
    c.write_case(__file__, build())

