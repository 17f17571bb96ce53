#!/usr/bin/python3
"""ICMP to the gateway that is not an echo request (echo reply, nonzero code, timestamp) or shorter than 8 bytes is dropped with its reason."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    ip = IP(src=c.PEER_IP, dst=c.TUNNEL_IP)
    eth = Ether(dst=c.GW_MAC, src=c.PEER_MAC)
    unsupported = [
        eth / ip / ICMP(type=0, id=1, seq=1),  # echo reply
        eth / ip / ICMP(type=8, code=1, id=1, seq=1),  # echo with code 1
        eth / ip / ICMP(type=13, id=1, seq=1, ts_ori=0, ts_rx=0, ts_tx=0),  # timestamp
    ]
    short = eth / IP(src=c.PEER_IP, dst=c.TUNNEL_IP, proto=1) / Raw(load=b"\x08\x00\xf7\xff")
    return {"in.pcap": unsupported + [short], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

