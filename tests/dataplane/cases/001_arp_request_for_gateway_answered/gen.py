#!/usr/bin/python3
"""ARP requests for the gateway's own addresses are answered with exact RFC 826 replies."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    reqs = [
        c.arp_request(c.TUNNEL_IP),
        # padded to the 60-byte Ethernet minimum, as on a wire: the padding is echoed back
        c.arp_request(c.INTERNET_IP, sip="192.0.2.7", smac="02:00:00:00:00:07", pad=18),
        # unicast to our MAC (a refresh) rather than broadcast
        c.arp_request(c.TUNNEL_IP, sip="10.77.0.3", smac="02:00:00:00:00:03", dst=c.GW_MAC),
    ]
    replies = [
        c.arp_reply_from_gw(c.TUNNEL_IP),
        c.arp_reply_from_gw(c.INTERNET_IP, sip="192.0.2.7", smac="02:00:00:00:00:07", pad=18),
        c.arp_reply_from_gw(c.TUNNEL_IP, sip="10.77.0.3", smac="02:00:00:00:00:03"),
    ]
    return {"in.pcap": reqs, "expected.pcap": replies}


if __name__ == "__main__":
    c.write_case(__file__, build())

