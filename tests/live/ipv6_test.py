#!/usr/bin/python3
"""The IPv6 exit on the real gateway: a Python WireGuard peer with a tailnet IPv6 address
(fd7a:115c:a1e0::/48, an IPv6 allowed IP in the peers file) sends inner IPv6; it leaves the
internet port translated by NPTv6 (RFC 6296) to --nat_pool6, through the IPv6 router the gateway
resolved by neighbor discovery, and replies come back to the peer with its own address. Every
forwarded packet is compared with exact expected bytes built here (the translation computed by
this file's own RFC 6296 arithmetic, not the gateway's).

  /usr/bin/python3 tests/live/ipv6_test.py --exitgw build/control/exitgw [-k NAME]
"""
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6
from scapy.packet import Raw

import harness
import ipv6_lab
import nptv6_ref  # noqa: E402 (tests/support, on the path harness sets)
from ipv6_lab import INSIDE, INTERNET6, canonical

POOL6 = "2001:db8:100::"  # --nat_pool6=2001:db8:100::/48
REMOTE6 = "2a00:1450:4001::5"  # an ordinary global unicast destination
TUNNEL_MTU = 1420


def nptv6(addr):
    """The address the gateway's NPTv6 must give addr (tests/support/nptv6_ref.py)."""
    return nptv6_ref.nptv6(addr, INSIDE, POOL6)


class Ipv6Case(ipv6_lab.Ipv6LabCase):
    flags = ipv6_lab.FLAGS + ("--nat_pool6=%s/48" % POOL6,)

    def test_udp_leaves_translated_through_the_router_and_the_reply_returns(self):
        p = self.lab.peers[0]
        inner = IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=64) / UDP(sport=40000, dport=443) / Raw(
            b"six" * 20)
        p.send_inner(canonical(inner))
        got = self.outer_ipv6()
        self.assertIsNotNone(got, "nothing left: %s" % self.lab.metrics().drops())
        outside = nptv6(p.inner_ip6)
        want = IPv6(src=outside, dst=REMOTE6, hlim=63) / UDP(sport=40000, dport=443) / Raw(
            b"six" * 20)
        # The same UDP checksum as the peer's: NPTv6 is checksum-neutral, and scapy's own
        # checksum over the translated header must agree.
        self.assertEqual(got, canonical(want))
        self.assertEqual(bytes(IPv6(got)[UDP])[6:8], bytes(IPv6(canonical(inner))[UDP])[6:8])
        reply = IPv6(src=REMOTE6, dst=outside, hlim=55) / UDP(sport=443, dport=40000) / Raw(
            b"back")
        self.lab.send_internet(canonical(reply))
        back = p.recv_inner()
        self.assertIsNotNone(back, "no reply: %s" % self.lab.metrics().drops())
        self.assertEqual(back, canonical(IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=54) /
                                         UDP(sport=443, dport=40000) / Raw(b"back")))

    def test_ping6_through_the_exit(self):
        p = self.lab.peers[1]
        outside = nptv6(p.inner_ip6)
        p.send_inner(canonical(IPv6(src=p.inner_ip6, dst=REMOTE6) /
                               ICMPv6EchoRequest(id=0x66, seq=1, data=b"ping6")))
        got = self.outer_ipv6()
        self.assertIsNotNone(got, "nothing left: %s" % self.lab.metrics().drops())
        self.assertEqual(got, canonical(IPv6(src=outside, dst=REMOTE6, hlim=63) /
                                        ICMPv6EchoRequest(id=0x66, seq=1, data=b"ping6")))
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=outside) /
                                         ICMPv6EchoReply(id=0x66, seq=1, data=b"ping6")))
        back = p.recv_inner()
        self.assertEqual(back, canonical(IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=63) /
                                         ICMPv6EchoReply(id=0x66, seq=1, data=b"ping6")))

    def test_too_big_for_the_tunnel_answered_packet_too_big_with_the_tunnel_mtu(self):
        p = self.lab.peers[0]
        big = canonical(IPv6(src=REMOTE6, dst=nptv6(p.inner_ip6)) / UDP(sport=443, dport=40000) /
                        Raw(b"B" * (1500 - 48)))
        before = self.lab.metrics()
        self.lab.send_internet(big)
        got = self.outer_ipv6()
        self.assertIsNotNone(got, "no Packet Too Big: %s" % self.lab.metrics().drops())
        want = IPv6(src=INTERNET6, dst=REMOTE6, hlim=64) / ICMPv6PacketTooBig(mtu=TUNNEL_MTU) / Raw(
            big[:1280 - 48])
        self.assertEqual(got, canonical(want))
        self.assertIsNone(p.recv_inner(0.3), "a packet too big for the tunnel reached the peer")
        m = self.lab.wait_metric(
            lambda m: m.drop("wg_too_large") >= before.drop("wg_too_large") + 1, 3)
        self.assertEqual(m.drop("wg_too_large") - before.drop("wg_too_large"), 1)

    def test_hop_limit_one_answered_time_exceeded_through_the_tunnel(self):
        p = self.lab.peers[0]
        inner = canonical(IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=1) /
                          UDP(sport=40001, dport=33434) / Raw(b"trace"))
        p.send_inner(inner)
        back = p.recv_inner()
        self.assertIsNotNone(back, "no time exceeded: %s" % self.lab.metrics().drops())
        pkt = IPv6(back)
        self.assertEqual(pkt.src, INTERNET6)
        self.assertEqual(pkt.dst, p.inner_ip6)
        self.assertEqual(bytes(pkt.payload)[:2], b"\x03\x00")  # time exceeded in transit
        self.assertEqual(bytes(pkt.payload)[8:], inner)
        self.assertIsNone(self.outer_ipv6(0.2), "an expired packet left")

    def test_source_not_the_peers_dropped_wg_bad_source(self):
        p = self.lab.peers[0]
        before = self.lab.metrics()
        p.send_inner(canonical(IPv6(src=self.lab.peers[1].inner_ip6, dst=REMOTE6) /
                               UDP(sport=1, dport=2)))
        m = self.lab.wait_metric(
            lambda m: m.drop("wg_bad_source") >= before.drop("wg_bad_source") + 1, 3)
        self.assertEqual(m.drop("wg_bad_source") - before.drop("wg_bad_source"), 1)
        self.assertIsNone(self.outer_ipv6(0.3))

    def test_special_destinations_denied_by_the_builtin_safety_ranges(self):
        # ULA, the tailnet's own prefix, documentation space and the NAT64 prefix: the default
        # policy (members may use autogroup:internet) reaches none of them.
        p = self.lab.peers[0]
        dsts = ("fd00::1", "fd7a:115c:a1e0::99", "2001:db8:5::10", "64:ff9b::c000:201")
        before = self.lab.metrics()
        for d in dsts:
            p.send_inner(canonical(IPv6(src=p.inner_ip6, dst=d) / UDP(sport=5, dport=53)))
        m = self.lab.wait_metric(
            lambda m: m.drop("policy_denied") >= before.drop("policy_denied") + len(dsts), 3)
        self.assertEqual(m.drop("policy_denied") - before.drop("policy_denied"), len(dsts))
        self.assertIsNone(self.outer_ipv6(0.3), "a special destination was reached")


if __name__ == "__main__":
    harness.main()
