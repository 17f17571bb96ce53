#!/usr/bin/python3
"""Seeds for nat_ipv6_packet_fuzz: byte 0 = mode (0 out, 1 in, 2 in aimed at the primed
mapping), then an IPv6 packet scapy builds: UDP, TCP and echo from the primed subscriber,
replies, ICMPv6 errors quoting a packet, Fragment headers (first and later) and an
extension-header chain.

Run: /usr/bin/python3 tests/fuzz/corpus/gen_nat_ipv6_seeds.py (rewrites the files it owns only).
"""
import os

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6PacketTooBig, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop)
from scapy.packet import Raw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nat_ipv6_packet_fuzz")
SUB, REMOTE, POOL = "fd7a:115c:a1e0::10", "2001:db8:5::10", "2001:db8:100::"

udp_out = IPv6(src=SUB, dst=REMOTE) / UDP(sport=5000, dport=80) / Raw(b"u" * 24)
SEEDS = {
    "udp_out": (0, udp_out),
    "tcp_syn_out": (0, IPv6(src=SUB, dst=REMOTE) / TCP(sport=5000, dport=80, flags="S")),
    "echo_out": (0, IPv6(src=SUB, dst=REMOTE) / ICMPv6EchoRequest(id=5000, data=b"p")),
    "udp_reply_in": (2, IPv6(src=REMOTE, dst=POOL) / UDP(sport=80, dport=1) / Raw(b"r")),
    "echo_reply_in": (2, IPv6(src=REMOTE, dst=POOL) / ICMPv6EchoReply(id=1, data=b"p")),
    "too_big_in": (2, IPv6(src=REMOTE, dst=POOL) / ICMPv6PacketTooBig(mtu=1280) /
                   Raw(bytes(IPv6(src=POOL, dst=REMOTE) / UDP(sport=1, dport=80) / Raw(b"q")))),
    "unreach_out": (0, IPv6(src=SUB, dst=REMOTE) / ICMPv6DestUnreach(code=4) /
                    Raw(bytes(IPv6(src=REMOTE, dst=SUB) / UDP(sport=80, dport=5000)))),
    "first_frag_out": (0, IPv6(src=SUB, dst=REMOTE) / IPv6ExtHdrFragment(id=7, m=1, offset=0) /
                       Raw(bytes(UDP(sport=5000, dport=80, len=48))[:8] + b"f" * 16)),
    "later_frag_out": (0, IPv6(src=SUB, dst=REMOTE) / IPv6ExtHdrFragment(id=7, nh=17, offset=3) /
                       Raw(b"g" * 24)),
    "ext_chain_out": (0, IPv6(src=SUB, dst=REMOTE) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() /
                      UDP(sport=5000, dport=80) / Raw(b"e")),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, (mode, pkt) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([mode]) + bytes(pkt))
