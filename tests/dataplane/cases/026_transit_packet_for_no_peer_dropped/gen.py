#!/usr/bin/python3
"""Transit IPv4 packets on the one-armed port for destinations that are no peer's allowed IP: wg_no_peer_for_destination."""
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
        c.echo_request(dst="8.8.8.8"),
        c.udp_to(53, dst="1.1.1.1"),
        c.echo_request(dst="10.77.0.255", seq=2),  # subnet broadcast is not ours either
        c.echo_request(dst=c.ROUTER_IP, seq=3),
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

