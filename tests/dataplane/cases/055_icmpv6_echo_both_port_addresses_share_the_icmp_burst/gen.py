#!/usr/bin/python3
"""One port with both --tunnel_addr6 and --internet_addr6 answers echo requests to either address; ICMPv6 echo and ICMP echo draw on the worker's one ICMP bucket, so past the burst (4) requests of either family are dropped as icmp_rate_limited (within a burst the IPv4 chain runs before the IPv6 one)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

SECOND_IP6 = "2001:db8:78::1"  # --internet_addr6 on the same port
SECOND_PEER6 = "2001:db8:78::2"
BURST = 4  # --icmp_burst; --icmp_rate=1 adds no whole token in the test's time


def request6(dst, src, seq):
    return (Ether(dst=c.GW_MAC, src=c.PEER_MAC) / IPv6(src=src, dst=dst) /
            ICMPv6EchoRequest(id=6, seq=seq, data=b"six"))


def reply6(src, dst, seq):
    return (Ether(dst=c.PEER_MAC, src=c.GW_MAC) / IPv6(src=src, dst=dst, hlim=64) /
            ICMPv6EchoReply(id=6, seq=seq, data=b"six"))


def build():
    # Two IPv4 requests, then IPv6 to each address twice, in one burst: the IPv4 chain runs
    # first and takes two tokens, the first two IPv6 requests the other two.
    inp = [c.echo_request(seq=0, ip_id=1), c.echo_request(seq=1, ip_id=2)]
    for seq in range(2):
        inp += [request6(c.GW_IP6, c.PEER_IP6, seq), request6(SECOND_IP6, SECOND_PEER6, seq)]
    out = [c.echo_reply_from_gw(seq=0, ip_id=1), c.echo_reply_from_gw(seq=1, ip_id=2),
           reply6(c.GW_IP6, c.PEER_IP6, 0), reply6(SECOND_IP6, SECOND_PEER6, 0)]
    assert len(out) == BURST
    return {"in.pcap": inp, "expected.pcap": out}


if __name__ == "__main__":
    c.write_case(__file__, build())
