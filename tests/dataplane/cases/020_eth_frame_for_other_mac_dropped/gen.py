#!/usr/bin/python3
"""Frames for another unicast MAC or a multicast MAC are dropped as eth_not_for_us, even when the IP or ARP inside is for the gateway."""
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
        c.echo_request(dmac=c.OTHER_MAC),
        c.echo_request(dmac="01:00:5e:00:00:01", seq=2),
        c.arp_request(c.TUNNEL_IP, dst=c.OTHER_MAC),
        c.echo_request(dmac="02:70:63:61:70:01", seq=3),  # net_pcap1's MAC, not this port's
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

