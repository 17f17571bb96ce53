#!/usr/bin/python3
"""NPTv6 beside stateful NAT66 on the real gateway (--nat6_mode=stateful with --nptv6_map):
a Python WireGuard peer with a tailnet address (fd7a:115c:a1e0::10) shares the stateful pool,
another, a site with a routed ULA /48, leaves through its own NPTv6 mapping. Both at once, over
real handshakes; every packet compared with exact bytes scapy builds here, the NAT66 port by
RFC 7422 arithmetic (nat66_test.det_port) and the NPTv6 address by this repository's
independent RFC 6296 arithmetic (tests/support/nptv6_ref.py), not the gateway's. Also: the
nptv6 mode with --nat_pool6's mapping and one of --nptv6_map, the map alone (in NAT mode and in
routed mode, where what no mapping holds is routed untranslated), and the refusals
at start (an outside on the pool or on the gateway's address, a peer endpoint in an outside).

  /usr/bin/python3 tests/live/nptmix_test.py --exitgw build/control/exitgw [-k NAME]
"""
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6
from scapy.packet import Raw

import harness
import ipv6_lab
import nat66_test
import nptv6_ref  # noqa: E402 (tests/support, on the path harness sets)
from ipv6_lab import INSIDE, canonical
from nat66_test import POOL6, REMOTE6, ROUTER6, det_port

SITE_INSIDE = "fd00:5173:1::"  # the site peer's routed /48
SITE_OUTSIDE = "2001:db8:300::"  # its public /48 (--nptv6_map)
SITE_HOST = "fd00:5173:1:7::20"


class SitePeer:
    """Mixed into a lab case: its second peer is the site, with a host of its routed /48."""

    @classmethod
    def configure(cls, lab):
        super().configure(lab)
        lab.peers[1].inner_ip6 = SITE_HOST


def round_trip(case, peer, public, sport, payload):
    """`peer` sends UDP from its inner address to REMOTE6: it leaves from `public` (byte-exact,
    hop limit one less), and the internet's reply to `public` reaches the peer at its inner
    address, byte-exact."""
    peer.send_inner(canonical(IPv6(src=peer.inner_ip6, dst=REMOTE6, hlim=64) /
                              UDP(sport=sport, dport=443) / Raw(payload)))
    got = case.outer_ipv6()
    case.assertIsNotNone(got, "nothing left: %s" % case.lab.metrics().drops())
    case.assertEqual(got.hex(), canonical(IPv6(src=public, dst=REMOTE6, hlim=63) /
                                          UDP(sport=sport, dport=443) / Raw(payload)).hex())
    case.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=public, hlim=55) /
                                     UDP(sport=443, dport=sport) / Raw(b"back")))
    back = peer.recv_inner()
    case.assertIsNotNone(back, "no reply: %s" % case.lab.metrics().drops())
    case.assertEqual(back.hex(), canonical(IPv6(src=REMOTE6, dst=peer.inner_ip6, hlim=54) /
                                           UDP(sport=443, dport=sport) / Raw(b"back")).hex())


class NptMixCase(SitePeer, nat66_test.Nat66Lab):
    flags = nat66_test.Nat66Lab.flags + (
        "--nptv6_map=%s/48=%s/48" % (SITE_INSIDE, SITE_OUTSIDE),)

    def outer_two(self):
        got = [self.outer_ipv6(), self.outer_ipv6()]
        self.assertNotIn(None, got, "not both left: %s" % self.lab.metrics().drops())
        return {IPv6(g).src: g for g in got}

    def test_both_translations_at_once_byte_exact_and_both_replies_return(self):
        client, site = self.lab.peers
        outside = nptv6_ref.nptv6(SITE_HOST, SITE_INSIDE, SITE_OUTSIDE)
        pub = det_port(client.inner_ip6, 40100)
        site_inner = canonical(IPv6(src=SITE_HOST, dst=REMOTE6, hlim=64) /
                               UDP(sport=41000, dport=443) / Raw(b"site" * 10))
        site.send_inner(site_inner)
        client.send_inner(canonical(IPv6(src=client.inner_ip6, dst=REMOTE6, hlim=64) /
                                    UDP(sport=40100, dport=443) / Raw(b"client" * 5)))
        out = self.outer_two()
        self.assertEqual(sorted(out), sorted([outside, POOL6]))
        self.assertEqual(out[outside].hex(), canonical(
            IPv6(src=outside, dst=REMOTE6, hlim=63) / UDP(sport=41000, dport=443) /
            Raw(b"site" * 10)).hex())
        # RFC 6296 is checksum-neutral: the site's UDP checksum leaves as the site wrote it.
        self.assertEqual(bytes(IPv6(out[outside])[UDP])[6:8], bytes(IPv6(site_inner)[UDP])[6:8])
        self.assertEqual(out[POOL6].hex(), canonical(
            IPv6(src=POOL6, dst=REMOTE6, hlim=63) / UDP(sport=pub, dport=443) /
            Raw(b"client" * 5)).hex())
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=outside, hlim=55) /
                                         UDP(sport=443, dport=41000) / Raw(b"to site")))
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=POOL6, hlim=55) /
                                         UDP(sport=443, dport=pub) / Raw(b"to client")))
        self.expect_in(site, IPv6(src=REMOTE6, dst=SITE_HOST, hlim=54) /
                       UDP(sport=443, dport=41000) / Raw(b"to site"))
        self.expect_in(client, IPv6(src=REMOTE6, dst=client.inner_ip6, hlim=54) /
                       UDP(sport=443, dport=40100) / Raw(b"to client"))

    def test_site_ping6_keeps_its_identifier_and_the_clients_is_mapped(self):
        client, site = self.lab.peers
        outside = nptv6_ref.nptv6(SITE_HOST, SITE_INSIDE, SITE_OUTSIDE)
        pub = det_port(client.inner_ip6, 0x77)
        site.send_inner(canonical(IPv6(src=SITE_HOST, dst=REMOTE6) /
                                  ICMPv6EchoRequest(id=0x55, seq=1, data=b"site")))
        client.send_inner(canonical(IPv6(src=client.inner_ip6, dst=REMOTE6) /
                                    ICMPv6EchoRequest(id=0x77, seq=1, data=b"client")))
        out = self.outer_two()
        self.assertEqual(out.get(outside, b"").hex(), canonical(
            IPv6(src=outside, dst=REMOTE6, hlim=63) /
            ICMPv6EchoRequest(id=0x55, seq=1, data=b"site")).hex())
        self.assertEqual(out.get(POOL6, b"").hex(), canonical(
            IPv6(src=POOL6, dst=REMOTE6, hlim=63) /
            ICMPv6EchoRequest(id=pub, seq=1, data=b"client")).hex())
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=outside) /
                                         ICMPv6EchoReply(id=0x55, seq=1, data=b"site")))
        self.expect_in(site, IPv6(src=REMOTE6, dst=SITE_HOST, hlim=63) /
                       ICMPv6EchoReply(id=0x55, seq=1, data=b"site"))

    def test_packet_too_big_to_the_sites_outside_reaches_it_quoting_its_own_address(self):
        site = self.lab.peers[1]
        outside = nptv6_ref.nptv6(SITE_HOST, SITE_INSIDE, SITE_OUTSIDE)
        payload = b"P" * 600
        site.send_inner(canonical(IPv6(src=SITE_HOST, dst=REMOTE6, hlim=64) /
                                  UDP(sport=41001, dport=443) / Raw(payload)))
        sent = self.expect_out(IPv6(src=outside, dst=REMOTE6, hlim=63) /
                               UDP(sport=41001, dport=443) / Raw(payload))
        self.lab.send_internet(canonical(IPv6(src=ROUTER6, dst=outside, hlim=60) /
                                         ICMPv6PacketTooBig(mtu=1280) / Raw(sent)))
        as_sent_by_site = canonical(IPv6(src=SITE_HOST, dst=REMOTE6, hlim=63) /
                                    UDP(sport=41001, dport=443) / Raw(payload))
        self.expect_in(site, IPv6(src=ROUTER6, dst=SITE_HOST, hlim=59) /
                       ICMPv6PacketTooBig(mtu=1280) / Raw(as_sent_by_site))

    def test_the_mapping_is_logged_at_start(self):
        self.assertIn("nat: NPTv6 %s/48 <-> %s/48 (--nptv6_map, RFC 6296, before the stateful "
                      "pool)" % (SITE_INSIDE, SITE_OUTSIDE), self.lab.log_tail(200))

    def test_internet_packet_for_neither_dropped_nat66_not_in_pool6(self):
        before = self.lab.metrics()
        for dst in ("2001:db8:301::20", "2001:db8:100::2"):
            self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=dst) /
                                             UDP(sport=443, dport=41000)))
        m = self.lab.wait_metric(lambda m: m.drop("nat66_not_in_pool6") >=
                                 before.drop("nat66_not_in_pool6") + 2, 3)
        self.assertEqual(m.drop("nat66_not_in_pool6") - before.drop("nat66_not_in_pool6"), 2)
        for p in self.lab.peers:
            self.assertIsNone(p.recv_inner(0.2))


class NptMixNptv6Case(SitePeer, ipv6_lab.Ipv6LabCase):
    """--nat6_mode=nptv6: --nat_inside6/--nat_pool6's mapping and --nptv6_map's side by side."""

    POOL_PREFIX = "2001:db8:100::"
    flags = ipv6_lab.FLAGS + ("--nat_pool6=%s/48" % POOL_PREFIX,
                              "--nptv6_map=%s/48=%s/48" % (SITE_INSIDE, SITE_OUTSIDE))

    def test_each_source_leaves_through_its_own_mapping_and_comes_back(self):
        for p, inside, outside_prefix in ((self.lab.peers[0], INSIDE, self.POOL_PREFIX),
                                          (self.lab.peers[1], SITE_INSIDE, SITE_OUTSIDE)):
            round_trip(self, p, nptv6_ref.nptv6(p.inner_ip6, inside, outside_prefix), 43000,
                       b"npt" * 9)


class NptMixMapOnlyCase(SitePeer, ipv6_lab.Ipv6LabCase):
    """--nat6_mode=nptv6 with --nptv6_map alone (no --nat_pool6): only the mapped source
    leaves; the tailnet client's has no translation and is dropped under its reason."""

    flags = ipv6_lab.FLAGS + ("--nptv6_map=%s/48=%s/48" % (SITE_INSIDE, SITE_OUTSIDE),)

    def test_mapped_source_leaves_and_an_unmapped_one_is_dropped(self):
        client, site = self.lab.peers
        outside = nptv6_ref.nptv6(SITE_HOST, SITE_INSIDE, SITE_OUTSIDE)
        before = self.lab.metrics()
        client.send_inner(canonical(IPv6(src=client.inner_ip6, dst=REMOTE6) /
                                    UDP(sport=44000, dport=443)))
        m = self.lab.wait_metric(lambda m: m.drop("nptv6_source_not_inside") >=
                                 before.drop("nptv6_source_not_inside") + 1, 3)
        self.assertEqual(m.drop("nptv6_source_not_inside") -
                         before.drop("nptv6_source_not_inside"), 1)
        site.send_inner(canonical(IPv6(src=SITE_HOST, dst=REMOTE6, hlim=64) /
                                  UDP(sport=44001, dport=443) / Raw(b"only")))
        got = self.outer_ipv6()
        self.assertIsNotNone(got, "nothing left: %s" % self.lab.metrics().drops())
        self.assertEqual(got.hex(), canonical(IPv6(src=outside, dst=REMOTE6, hlim=63) /
                                              UDP(sport=44001, dport=443) / Raw(b"only")).hex())
        self.assertIsNone(self.outer_ipv6(0.2), "the unmapped source left")


class NptMixRoutedMapOnlyCase(SitePeer, ipv6_lab.Ipv6LabCase):
    """Routed mode (no --nat_pool) with --nptv6_map alone: the mapped source leaves through
    its mapping, and IPv6 no mapping holds is routed untranslated both ways, as all IPv6 is in
    routed mode without a mapping."""

    flags = ipv6_lab.FLAGS + ("--nat_pool=",
                              "--nptv6_map=%s/48=%s/48" % (SITE_INSIDE, SITE_OUTSIDE))

    def test_unmapped_ipv6_is_routed_untranslated_beside_the_mapped_source(self):
        client, site = self.lab.peers
        outside = nptv6_ref.nptv6(SITE_HOST, SITE_INSIDE, SITE_OUTSIDE)
        for p, src in ((client, client.inner_ip6), (site, outside)):
            round_trip(self, p, src, 45000, b"routed")
        self.assertIn("routed mode: IPv6 that no --nptv6_map mapping holds leaves untranslated",
                      self.lab.log_tail(400))


class NptMixRefusedAtStart(harness.LabCase):
    """A --nptv6_map that collides stops the gateway at start, naming the flag and prefixes."""

    @classmethod
    def setUpClass(cls):
        pass  # each case starts (and fails to start) its own gateway

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        pass

    def refused(self, flags, *parts, endpoint=None):
        lab = harness.Lab(harness.EXITGW, flags=ipv6_lab.FLAGS + flags, peers=1)
        if endpoint:  # the peer's entry in the peers file gains an Endpoint line
            conf = lab.peers[0].peers_conf
            lab.peers[0].peers_conf = lambda: conf() + "Endpoint = %s\n" % endpoint
        with self.assertRaises(harness.HarnessError) as e:
            with lab:
                pass
        for part in parts:
            self.assertIn(part, str(e.exception))

    def test_outside_on_the_stateful_pool(self):
        self.refused(("--nat6_mode=stateful", "--nat_pool6=2001:db8:100::1",
                      "--nptv6_map=fd00:5173:1::/48=2001:db8:100::/48"),
                     "--nptv6_map: fd00:5173:1::/48=2001:db8:100::/48",
                     "overlaps --nat_pool6 2001:db8:100::1/128")

    def test_outside_holding_the_gateways_own_address(self):
        self.refused(("--nptv6_map=fd00:5173:1::/48=2001:db8:1::/48",),
                     "--nptv6_map: fd00:5173:1::/48=2001:db8:1::/48",
                     "own address " + ipv6_lab.INTERNET6)

    def test_peer_endpoint_inside_an_outside(self):
        self.refused(("--nptv6_map=%s/48=%s/48" % (SITE_INSIDE, SITE_OUTSIDE),),
                     "[2001:db8:300::5]:51820", "in the gateway's own NAT pool",
                     endpoint="[2001:db8:300::5]:51820")


if __name__ == "__main__":
    harness.main()
