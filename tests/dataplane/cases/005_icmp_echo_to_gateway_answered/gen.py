#!/usr/bin/python3
"""ICMP echo requests to the gateway's addresses get exact replies: addresses swapped, TTL 64, id/seq/data echoed, checksums recomputed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    args = [
        dict(),
        dict(seq=2, payload=bytes(range(56)), ip_id=0xBEEF, tos=0x10),
        dict(seq=3, payload=b"odd-length!", ident=0xFFFF),  # odd ICMP length
        dict(dst=c.INTERNET_IP, src=c.ROUTER_IP, smac=c.ROUTER_MAC, seq=4, payload=b"x" * 1400),
    ]
    reqs = [c.echo_request(**a) for a in args]
    reqs[1][IP].ttl = 3  # any incoming TTL gives a reply with TTL 64
    return {"in.pcap": reqs, "expected.pcap": [c.echo_reply_from_gw(**a) for a in args]}


if __name__ == "__main__":
    c.write_case(__file__, build())

