#!/usr/bin/python3
"""Three workers on two shared CPUs, input spread over three RX queues: every one of 300 echo requests and 150 ARP requests is answered, nothing lost."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def peer(i):
    # 150 hosts on each of the two subnets the single port owns
    if i % 2:
        return f"10.77.0.{10 + i // 2}", f"02:00:00:00:01:{i:02x}", c.TUNNEL_IP
    return f"192.0.2.{10 + i // 2}", f"02:00:00:00:02:{i:02x}", c.INTERNET_IP


def build():
    reqs, replies = [], []
    for i in range(300):
        ip, mac, gw = peer(i % 150)
        a = dict(dst=gw, src=ip, smac=mac, ident=i // 150, seq=i, ip_id=i,
                 payload=i.to_bytes(2, "big") * (i % 40))
        reqs.append(c.echo_request(**a))
        replies.append(c.echo_reply_from_gw(**a))
        if i % 2 == 0:
            ip, mac, gw = peer(i // 2)
            reqs.append(c.arp_request(gw, sip=ip, smac=mac))
            replies.append(c.arp_reply_from_gw(gw, sip=ip, smac=mac))
    return {"in.pcap": reqs, "expected.pcap": replies}


if __name__ == "__main__":
    c.write_case(__file__, build())

