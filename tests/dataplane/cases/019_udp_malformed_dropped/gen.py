#!/usr/bin/python3
"""UDP to the gateway whose header does not fit the IP payload, or whose length field is below 8 or beyond the IP payload, is dropped as udp_malformed."""
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
        eth / IP(src=c.PEER_IP, dst=c.TUNNEL_IP, proto=17) / Raw(load=b"\x9c\x40\xca\x6c"),
        c.udp_to(51820, payload=b"\x01\x00\x00\x00" + bytes(20)),
        c.udp_to(51820, payload=b"\x01\x00\x00\x00" + bytes(20)),
    ]
    pkts[1][UDP].len = 7
    pkts[2][UDP].len = 8 + 24 + 1
    pkts[1][UDP].chksum = 0
    pkts[2][UDP].chksum = 0
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

