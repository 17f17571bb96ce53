#!/usr/bin/python3
"""IPv6 the gateway cannot take is dropped under its own reason: a frame too short for the header, a wrong version, a payload length beyond the frame, a group, own or unspecified source, a chain of nine extension headers, hop-by-hop not first, an extension header running past the payload, a routing header with segments left, a first fragment without its upper-layer header, a fragment to the gateway itself, TCP to the gateway (UDP: case 057), transit for no peer, a group that is not ours, an ICMPv6 type it does not serve. Groups of other hosts never pass the Ethernet filter."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import TCP  # noqa: E402
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6,  # noqa: E402
                                IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

ETH = Ether(dst=c.GW_MAC, src=c.PEER_MAC)


def ip6(src=c.PEER_IP6, dst=c.GW_IP6, **kw):
    return IPv6(src=src, dst=dst, **kw)


def echo():
    return ICMPv6EchoRequest(id=7, seq=1, data=b"probe")


def cases():
    """(frame, the drop reason it must get)."""
    long_chain = ip6()
    for _ in range(9):
        long_chain = long_chain / IPv6ExtHdrDestOpt()
    bad_len = ETH / ip6(nh=60) / Raw(load=bytes([58, 5, 1, 4, 0, 0, 0, 0]) + bytes(echo()))
    pkts = [
        (Ether(dst=c.GW_MAC, src=c.PEER_MAC, type=0x86DD) / Raw(load=bytes(ip6() / echo())[:30]),
         "ipv6_too_short"),
        (Ether(dst=c.GW_MAC, src=c.PEER_MAC, type=0x86DD) / Raw(load=b"\x45" + bytes(ip6() / echo())[1:]),
         "ipv6_bad_version"),
        (ETH / ip6(plen=200) / echo(), "ipv6_bad_payload_length"),
        (ETH / ip6(src="ff02::1") / echo(), "ipv6_bad_source"),
        (ETH / ip6(src=c.GW_IP6) / echo(), "ipv6_bad_source"),
        (ETH / ip6(src="::") / echo(), "ipv6_bad_source"),
        (ETH / long_chain / echo(), "ipv6_ext_chain_too_long"),
        (ETH / ip6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / echo(), "ipv6_ext_malformed"),
        (bad_len, "ipv6_ext_malformed"),
        (ETH / ip6() / IPv6ExtHdrRouting(type=4, segleft=1, addresses=["2001:db8::9"]) / echo(),
         "ipv6_routing_header"),
        (ETH / ip6() / IPv6ExtHdrFragment(offset=0, m=1, id=9, nh=17) / Raw(load=b"\x00\x35\x00"),
         "ipv6_fragment_no_upper"),
        (ETH / ip6() / IPv6ExtHdrFragment(offset=0, m=1, id=10) / echo(), "ipv6_fragment"),
        (ETH / ip6() / TCP(sport=5000, dport=51820), "local_unsupported_protocol"),
        (ETH / ip6(dst="2001:db8:99::1") / echo(), "wg_no_peer_for_destination"),
        (Ether(dst="33:33:ff:00:00:01", src=c.PEER_MAC) / ip6(dst="ff02::1:ff00:99") / echo(),
         "ipv6_not_for_us"),
        (ETH / ip6() / ICMPv6DestUnreach() / Raw(load=bytes(48)), "icmp6_unsupported_type"),
        (Ether(dst="33:33:00:00:00:02", src=c.PEER_MAC) / ip6(dst="ff02::2") / echo(),
         "eth_not_for_us"),
    ]
    return pkts


def build():
    return {"in.pcap": [p for p, _ in cases()], "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())
    counts = {}
    for _, r in cases():
        counts[r] = counts.get(r, 0) + 1
    print("drops:", counts)
