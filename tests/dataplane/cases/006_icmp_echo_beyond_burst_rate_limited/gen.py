#!/usr/bin/python3
"""Echo requests beyond the per-worker ICMP burst are dropped as icmp_rate_limited; the first burst is answered in order."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


BURST = 4  # --icmp_burst in case.json; --icmp_rate=1 adds no whole token in the test's time


def build():
    reqs = [c.echo_request(seq=s, ip_id=s) for s in range(10)]
    replies = [c.echo_reply_from_gw(seq=s, ip_id=s) for s in range(BURST)]
    return {"in.pcap": reqs, "expected.pcap": replies}


if __name__ == "__main__":
    c.write_case(__file__, build())

