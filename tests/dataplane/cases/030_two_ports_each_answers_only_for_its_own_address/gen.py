#!/usr/bin/python3
"""With separate tunnel and internet ports, each answers ARP and echo only for its own address with its own MAC; WireGuard's port is closed on the internet side."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    t_in = [
        c.arp_request(c.TUNNEL_IP),
        c.echo_request(payload=b"tunnel"),
        c.arp_request(c.INTERNET_IP),  # the internet address is not on this port
        c.echo_request(dst=c.INTERNET_IP, seq=2),  # nor routed to from here
        c.echo_request(dmac=c.GW1_MAC, seq=3),  # the other port's MAC
    ]
    t_out = [c.arp_reply_from_gw(c.TUNNEL_IP), c.echo_reply_from_gw(payload=b"tunnel")]
    r = dict(sip=c.ROUTER_IP, smac=c.ROUTER_MAC)
    e = dict(dst=c.INTERNET_IP, src=c.ROUTER_IP, smac=c.ROUTER_MAC, dmac=c.GW1_MAC)
    i_in = [
        c.arp_request(c.INTERNET_IP, **r),
        c.echo_request(payload=b"internet", **e),
        c.arp_request(c.TUNNEL_IP, **r),
        c.udp_to(51820, dst=c.INTERNET_IP, src=c.ROUTER_IP, smac=c.ROUTER_MAC, dmac=c.GW1_MAC,
                 payload=b"\x01\x00\x00\x00" + bytes(144)),
    ]
    i_out = [c.arp_reply_from_gw(c.INTERNET_IP, gw_mac=c.GW1_MAC, **r),
             c.echo_reply_from_gw(payload=b"internet", **e)]
    return {"in_tunnel.pcap": t_in, "expected_tunnel.pcap": t_out,
            "in_internet.pcap": i_in, "expected_internet.pcap": i_out}


if __name__ == "__main__":
    c.write_case(__file__, build())

