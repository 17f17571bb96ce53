#!/usr/bin/python3
"""ICMPv6 echo requests to the gateway's IPv6 addresses (configured, link-local, all-nodes) get exact replies: addresses swapped (from the link-local address for all-nodes), hop limit 64, id/seq/data echoed, checksum recomputed over the IPv6 pseudo-header, and a request's extension headers left out of the reply."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402


def request(dst, src=c.PEER_IP6, dmac=c.GW_MAC, ext=None, hlim=64, **kw):
    p = Ether(dst=dmac, src=c.PEER_MAC) / IPv6(src=src, dst=dst, hlim=hlim)
    if ext is not None:
        p = p / ext
    return p / ICMPv6EchoRequest(**kw)


def reply(src, dst=c.PEER_IP6, **kw):
    return (Ether(dst=c.PEER_MAC, src=c.GW_MAC) / IPv6(src=src, dst=dst, hlim=64) /
            ICMPv6EchoReply(**kw))


def build():
    inp = [
        request(c.GW_IP6, id=1, seq=1, data=b"hello"),
        request(c.GW_IP6, id=0xFFFF, seq=2, data=bytes(range(56)), hlim=1),
        request(c.GW_LL6, src=c.PEER_LL6, id=3, seq=3, data=b"odd-length!"),
        request("ff02::1", src=c.PEER_LL6, dmac="33:33:00:00:00:01", id=4, seq=4, data=b"all"),
        request(c.GW_IP6, ext=IPv6ExtHdrDestOpt(), id=5, seq=5, data=b"x" * 1200),
    ]
    out = [
        reply(c.GW_IP6, id=1, seq=1, data=b"hello"),
        reply(c.GW_IP6, id=0xFFFF, seq=2, data=bytes(range(56))),
        reply(c.GW_LL6, dst=c.PEER_LL6, id=3, seq=3, data=b"odd-length!"),
        reply(c.GW_LL6, dst=c.PEER_LL6, id=4, seq=4, data=b"all"),
        reply(c.GW_IP6, id=5, seq=5, data=b"x" * 1200),
    ]
    return {"in.pcap": inp, "expected.pcap": out}


if __name__ == "__main__":
    c.write_case(__file__, build())
