#!/usr/bin/python3
"""A short IP packet in a frame padded to 60 bytes is handled by its IP total length: the echo reply carries no padding and its checksum covers only the ICMP message."""
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
        c.pad60(c.echo_request(payload=b"ping")),  # 14 + 20 + 8 + 4 = 46 -> padded to 60
        c.pad60(c.echo_request(seq=2)),  # 42 -> 60
    ]
    # non-zero padding: must not leak into the checksum or the reply either
    b = bytes(c.echo_request(seq=3, payload=b"ab"))
    reqs.append(b + bytes(range(0xA0, 0xA0 + 60 - len(b))))
    replies = [
        c.echo_reply_from_gw(payload=b"ping"),
        c.echo_reply_from_gw(seq=2),
        c.echo_reply_from_gw(seq=3, payload=b"ab"),
    ]
    return {"in.pcap": reqs, "expected.pcap": replies}


if __name__ == "__main__":
    c.write_case(__file__, build())

