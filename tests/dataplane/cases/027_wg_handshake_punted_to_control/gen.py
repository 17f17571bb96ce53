#!/usr/bin/python3
"""WireGuard handshake messages (types 1-3) to the listen port are punted to control; transport with an unknown index, unknown types and short payloads are dropped with their reasons."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def wg(payload, sport=40000):
    return c.udp_to(51820, payload=payload, sport=sport)


def build():
    pkts = [
        wg(b"\x01\x00\x00\x00" + bytes(range(144))),  # initiation, 148 bytes
        wg(b"\x02\x00\x00\x00" + bytes(range(88)), sport=40001),  # response, 92 bytes
        wg(b"\x03\x00\x00\x00" + bytes(range(60)), sport=40002),  # cookie reply, 64 bytes
        wg(b"\x04\x00\x00\x00" + bytes(12) + bytes(16), sport=40003),  # transport, no keypair
        wg(b"\x07\x00\x00\x00" + bytes(32), sport=40004),  # unknown type
        wg(b"\x01\x00\x00", sport=40005),  # 3-byte payload
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())

