#!/usr/bin/python3
"""--wg_udp_checksum=aead: a transport message with a wrong outer UDP checksum is not dropped for it (its AEAD tag decides: here it has no keypair, wg_unknown_index); a handshake initiation with a wrong checksum still is (udp_bad_checksum), and so is any other UDP."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402,F401
from scapy.layers.inet6 import IPv6  # noqa: E402,F401
from scapy.layers.l2 import ARP, Dot1Q, Ether  # noqa: E402,F401
from scapy.packet import Raw  # noqa: E402,F401


def build():
    # type 4, receiver index 0x01020304 (unknown), counter 0, 16-byte empty payload + tag
    transport = b"\x04\x00\x00\x00" + bytes.fromhex("04030201") + bytes(8) + bytes(32)
    t_bad = c.udp_to(51820, payload=transport, chksum=0x1111)
    t_zero = c.udp_to(51820, payload=transport, chksum=0)
    init_bad = c.udp_to(51820, payload=b"\x01\x00\x00\x00" + bytes(144), chksum=0x1111)
    other_bad = c.udp_to(53, chksum=0x2222)
    return {"in.pcap": [t_bad, t_zero, init_bad, other_bad], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())
