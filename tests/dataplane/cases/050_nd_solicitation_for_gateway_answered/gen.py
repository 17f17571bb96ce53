#!/usr/bin/python3
"""Neighbor solicitations for the gateway's IPv6 addresses (configured and link-local; by multicast, unicast, and for duplicate address detection) get exact advertisements: Solicited and Override flags, our MAC as target link-layer address, hop limit 255; solicitors' MACs are learned."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,  # noqa: E402
                                ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import Ether  # noqa: E402


def ns(src, dst, target, dmac, slla=c.PEER_MAC, smac=c.PEER_MAC):
    p = Ether(dst=dmac, src=smac) / IPv6(src=src, dst=dst, hlim=255) / ICMPv6ND_NS(tgt=target)
    if slla:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    return p


def na(dst, target, dmac, solicited=1):
    return (Ether(dst=dmac, src=c.GW_MAC) / IPv6(src=target, dst=dst, hlim=255) /
            ICMPv6ND_NA(R=0, S=solicited, O=1, tgt=target) / ICMPv6NDOptDstLLAddr(lladdr=c.GW_MAC))


def build():
    g_sn, g_mac = c.solicited_node(c.GW_IP6)
    l_sn, l_mac = c.solicited_node(c.GW_LL6)
    other_mac = "02:00:00:00:00:0c"
    inp = [
        # Address resolution by multicast, for the configured and the link-local address.
        ns(c.PEER_IP6, g_sn, c.GW_IP6, g_mac),
        ns(c.PEER_LL6, l_sn, c.GW_LL6, l_mac),
        # Duplicate address detection: from ::, no option; answered to all nodes, not solicited.
        ns("::", g_sn, c.GW_IP6, g_mac, slla=None),
        # A unicast refresh with the option, and one without: then the frame's source.
        ns(c.PEER_IP6, c.GW_IP6, c.GW_IP6, c.GW_MAC),
        ns("2001:db8:77::3", c.GW_IP6, c.GW_IP6, c.GW_MAC, slla=None, smac=other_mac),
    ]
    out = [
        na(c.PEER_IP6, c.GW_IP6, c.PEER_MAC),
        na(c.PEER_LL6, c.GW_LL6, c.PEER_MAC),
        na("ff02::1", c.GW_IP6, "33:33:00:00:00:01", solicited=0),
        na(c.PEER_IP6, c.GW_IP6, c.PEER_MAC),
        na("2001:db8:77::3", c.GW_IP6, other_mac),
    ]
    return {"in.pcap": inp, "expected.pcap": out}


if __name__ == "__main__":
    c.write_case(__file__, build())
