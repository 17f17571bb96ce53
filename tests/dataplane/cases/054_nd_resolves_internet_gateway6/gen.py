#!/usr/bin/python3
"""With --internet_gateway6 the gateway resolves its IPv6 router at start: one exact neighbor solicitation from its link-local address to the router's solicited-node group, with its MAC as source link-layer option. The router's solicited advertisement without a target link-layer option (as Linux answers) resolves it from the frame's source; no solicitation follows."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

ROUTER_LL6 = "fe80::b"


def build():
    sn, sn_mac = c.solicited_node(ROUTER_LL6)
    solicitation = (Ether(dst=sn_mac, src=c.GW_MAC) / IPv6(src=c.GW_LL6, dst=sn, hlim=255) /
                    ICMPv6ND_NS(tgt=ROUTER_LL6) / ICMPv6NDOptSrcLLAddr(lladdr=c.GW_MAC))
    answer = (Ether(dst=c.GW_MAC, src=c.ROUTER_MAC) / IPv6(src=ROUTER_LL6, dst=c.GW_LL6, hlim=255) /
              ICMPv6ND_NA(R=1, S=1, O=1, tgt=ROUTER_LL6))
    return {"in.pcap": [answer], "expected.pcap": [solicitation]}


if __name__ == "__main__":
    c.write_case(__file__, build())
