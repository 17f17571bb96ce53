#!/usr/bin/python3
"""IPv6 transit from the internet is checked as a router checks it (RFC 8200, RFC 4443): hop limit 1 draws time exceeded and a packet larger than the tunnel MTU (1420) Packet Too Big with that MTU, both from the internet port's global address to the source through the IPv6 router (resolved first), quoting the packet as it came, up to 1280 bytes in all; no error about an ICMPv6 error. Link-local sources and destinations never cross the router, and a packet for no peer's allowed IPs is dropped."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6ND_NA, ICMPv6ND_NS,  # noqa: E402
                                ICMPv6NDOptSrcLLAddr, ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPv6)
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

ROUTER_LL6 = "fe80::b"
REMOTE = "2001:db8:5::5"  # an internet host behind the router
PEER_SIDE = "2001:db8:99::1"  # a destination that would be a peer's (none has it here)


def from_router(pkt):
    return Ether(dst=c.GW_MAC, src=c.ROUTER_MAC) / pkt


def to_router(pkt):
    return Ether(dst=c.ROUTER_MAC, src=c.GW_MAC) / pkt


def udp6(hlim=64, size=16, src=REMOTE, dst=PEER_SIDE):
    return IPv6(src=src, dst=dst, hlim=hlim) / UDP(sport=443, dport=40000) / Raw(load=b"x" * size)


def error(kind, orig):
    quote = bytes(orig)[:1280 - 48]
    return to_router(IPv6(src=c.GW_IP6, dst=REMOTE, hlim=64) / kind / Raw(load=quote))


def build():
    sn, sn_mac = c.solicited_node(ROUTER_LL6)
    solicitation = (Ether(dst=sn_mac, src=c.GW_MAC) / IPv6(src=c.GW_LL6, dst=sn, hlim=255) /
                    ICMPv6ND_NS(tgt=ROUTER_LL6) / ICMPv6NDOptSrcLLAddr(lladdr=c.GW_MAC))
    answer = from_router(IPv6(src=ROUTER_LL6, dst=c.GW_LL6, hlim=255) /
                         ICMPv6ND_NA(R=1, S=1, O=1, tgt=ROUTER_LL6))
    expired = udp6(hlim=1)
    too_big = udp6(size=1500 - 48)
    big_error = IPv6(src=REMOTE, dst=PEER_SIDE) / ICMPv6DestUnreach() / Raw(load=bytes(1400))
    inputs = [
        answer,
        from_router(expired),
        from_router(too_big),
        from_router(big_error),  # too big, but no error about an error
        from_router(udp6(src="fe80::5")),
        from_router(udp6(dst="fe80::99")),
        from_router(udp6()),  # fits, but no peer has it
    ]
    expected = [
        solicitation,
        error(ICMPv6TimeExceeded(code=0), expired),
        error(ICMPv6PacketTooBig(mtu=1420), too_big),
    ]
    return {"in.pcap": inputs, "expected.pcap": expected}


if __name__ == "__main__":
    c.write_case(__file__, build())
