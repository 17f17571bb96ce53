#!/usr/bin/python3
"""Neighbor discovery the gateway must not believe is dropped, each under its own reason: a hop limit other than 255, a non-zero code, a multicast target, a zero-length or overlong option, duplicate address detection with a source link-layer option, a solicited advertisement to a group, a target that is not ours, a bad checksum, a truncated message. A valid advertisement is learned, not answered."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,  # noqa: E402
                                ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402


def ns(target=c.GW_IP6, src=c.PEER_IP6, dst=c.GW_IP6, dmac=c.GW_MAC, hlim=255, code=0, opts=None):
    p = (Ether(dst=dmac, src=c.PEER_MAC) / IPv6(src=src, dst=dst, hlim=hlim) /
         ICMPv6ND_NS(tgt=target, code=code))
    return p / (opts if opts is not None else ICMPv6NDOptSrcLLAddr(lladdr=c.PEER_MAC))


def build():
    g_sn, g_mac = c.solicited_node(c.GW_IP6)
    bad_sum = ns()
    bad_sum[ICMPv6ND_NS].cksum = 0x1234
    inp = [
        ns(hlim=64),                                       # nd_bad_hop_limit
        ns(code=1),                                        # nd_malformed
        ns(target="ff02::1"),                              # nd_malformed
        ns(opts=Raw(load=bytes([1, 0, 0, 0, 0, 0, 0, 0]))),  # nd_malformed: option length 0
        ns(opts=Raw(load=bytes([1, 2, 0, 0, 0, 0, 0, 0]))),  # nd_malformed: beyond the message
        ns(src="::", dst=g_sn, dmac=g_mac),                # nd_malformed: DAD with an SLLA
        ns(target="2001:db8:77::99"),                      # nd_not_for_us
        bad_sum,                                           # icmp6_bad_checksum
        # A solicitation cut after 16 bytes: nd_malformed.
        Ether(dst=c.GW_MAC, src=c.PEER_MAC) / IPv6(src=c.PEER_IP6, dst=c.GW_IP6, hlim=255, nh=58) /
        Raw(load=bytes(IPv6(src=c.PEER_IP6, dst=c.GW_IP6) / ICMPv6ND_NS(tgt=c.GW_IP6))[40:56]),
        # A solicited advertisement to all nodes: nd_malformed.
        Ether(dst="33:33:00:00:00:01", src=c.PEER_MAC) /
        IPv6(src=c.PEER_IP6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(S=1, tgt=c.PEER_IP6) /
        ICMPv6NDOptDstLLAddr(lladdr=c.PEER_MAC),
        # A router's unsolicited advertisement to all nodes: learned.
        Ether(dst="33:33:00:00:00:01", src=c.ROUTER_MAC) /
        IPv6(src="fe80::b", dst="ff02::1", hlim=255) / ICMPv6ND_NA(S=0, O=1, tgt="fe80::b") /
        ICMPv6NDOptDstLLAddr(lladdr=c.ROUTER_MAC),
    ]
    # The truncated one needs a right checksum to reach the ND checks.
    from scapy.layers.inet6 import in6_chksum
    t = inp[8]
    body = bytearray(bytes(t[Raw].load))
    body[2:4] = b"\0\0"
    s = in6_chksum(58, t[IPv6], bytes(body))
    body[2:4] = s.to_bytes(2, "big")
    t[Raw].load = bytes(body)
    return {"in.pcap": inp, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())
