#!/usr/bin/python3
"""Stateful NAT66 on the real gateway (--nat6_mode=stateful): Python WireGuard peers with
tailnet IPv6 addresses send inner IPv6; it leaves the internet port from the one address of
--nat_pool6 with the port (or ICMPv6 echo identifier) the RFC 7422 arithmetic gives (the
deterministic mode NAT44 shares, so this file can compute every port), and replies and ICMPv6
errors from the path come back to the peer with its own address and port. Every packet is
compared with exact bytes scapy builds here, checksums included: the gateway's incremental
updates against scapy's full computation.

  /usr/bin/python3 tests/live/nat66_test.py --exitgw build/control/exitgw [-k NAME]
"""
import ipaddress
import json
import os
import time

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPv6, IPv6ExtHdrFragment,
                                fragment6)
from scapy.packet import Raw

import harness
import ipv6_lab
from ipv6_lab import INSIDE, canonical

DET_INSIDE6 = INSIDE + "/123"  # 32 subscribers, the peers are ::10 and ::11
POOL6 = "2001:db8:100::1"  # --nat_pool6: one public IPv6 address
ROUTER6 = "2001:db8:ff::1"  # a router on the path that reports errors
REMOTE6 = "2a00:1450:4001::5"  # an ordinary global unicast destination
PORT_MIN, PORT_MAX, SUBSCRIBERS = 1024, 65535, 32
DET_PORTS = (PORT_MAX - PORT_MIN + 1) // SUBSCRIBERS


def det_port(inner_ip6, port):
    """The public port (or identifier) deterministic NAT66 gives inner_ip6's port (RFC 7422,
    the arithmetic of dataplane/nat/nat_config.cc with one worker and one public address)."""
    i = int(ipaddress.IPv6Address(inner_ip6)) - int(ipaddress.IPv6Address(INSIDE))
    first = PORT_MIN + i * DET_PORTS
    return first + (port - first) % DET_PORTS


class Nat66Lab(ipv6_lab.Ipv6LabCase):
    """The stateful NAT66 gateway and the expectations' helpers (no cases of its own)."""

    flags = ipv6_lab.FLAGS + (
        "--nat6_mode=stateful", "--nat_pool6=" + POOL6,
        "--nat_mode=deterministic", "--nat_deterministic_inside=100.64.0.0/28",
        "--nat_deterministic_inside6=" + DET_INSIDE6,
        "--nat_port_min=%d" % PORT_MIN, "--nat_port_max=%d" % PORT_MAX)

    def expect_out(self, want):
        got = self.outer_ipv6()
        self.assertIsNotNone(got, "nothing left: %s" % self.lab.metrics().drops())
        self.assertEqual(got.hex(), canonical(want).hex())
        return got

    def expect_in(self, peer, want):
        back = peer.recv_inner()
        self.assertIsNotNone(back, "nothing reached the peer: %s" % self.lab.metrics().drops())
        self.assertEqual(back.hex(), canonical(want).hex())


class Nat66Case(Nat66Lab):
    def test_udp_leaves_from_the_pool_with_its_mapped_port_and_the_reply_returns(self):
        p = self.lab.peers[0]
        pub = det_port(p.inner_ip6, 40000)
        p.send_inner(canonical(IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=64) /
                               UDP(sport=40000, dport=443) / Raw(b"six" * 20)))
        self.expect_out(IPv6(src=POOL6, dst=REMOTE6, hlim=63) / UDP(sport=pub, dport=443) /
                        Raw(b"six" * 20))
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=POOL6, hlim=55) /
                                         UDP(sport=443, dport=pub) / Raw(b"back")))
        self.expect_in(p, IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=54) /
                       UDP(sport=443, dport=40000) / Raw(b"back"))
        m = self.lab.metrics()
        self.assertGreaterEqual(m.sum("exitgw_nat66_sessions"), 1)
        self.assertGreaterEqual(m.sum("exitgw_nat66_translations_total", direction="out"), 1)
        self.assertGreaterEqual(m.sum("exitgw_nat66_translations_total", direction="in"), 1)

    def test_tcp_syn_out_and_syn_ack_back(self):
        p = self.lab.peers[1]
        pub = det_port(p.inner_ip6, 50123)
        p.send_inner(canonical(IPv6(src=p.inner_ip6, dst=REMOTE6) /
                               TCP(sport=50123, dport=443, flags="S", seq=1000)))
        self.expect_out(IPv6(src=POOL6, dst=REMOTE6, hlim=63) /
                        TCP(sport=pub, dport=443, flags="S", seq=1000))
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=POOL6, hlim=50) /
                                         TCP(sport=443, dport=pub, flags="SA", seq=7, ack=1001)))
        self.expect_in(p, IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=49) /
                       TCP(sport=443, dport=50123, flags="SA", seq=7, ack=1001))

    def test_ping6_identifier_mapped_out_and_back(self):
        p = self.lab.peers[1]
        pub = det_port(p.inner_ip6, 0x66)
        p.send_inner(canonical(IPv6(src=p.inner_ip6, dst=REMOTE6) /
                               ICMPv6EchoRequest(id=0x66, seq=1, data=b"ping6")))
        self.expect_out(IPv6(src=POOL6, dst=REMOTE6, hlim=63) /
                        ICMPv6EchoRequest(id=pub, seq=1, data=b"ping6"))
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=POOL6) /
                                         ICMPv6EchoReply(id=pub, seq=1, data=b"ping6")))
        self.expect_in(p, IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=63) /
                       ICMPv6EchoReply(id=0x66, seq=1, data=b"ping6"))

    def error_from_the_path_reaches_the_peer(self, kind, sport):
        """A router's ICMPv6 error about a packet the peer sent comes back with the outer
        destination and the quoted source (address and port) the peer's own."""
        p = self.lab.peers[0]
        payload = b"E" * 600
        inner = IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=64) / UDP(sport=sport, dport=443) / Raw(
            payload)
        p.send_inner(canonical(inner))
        sent = self.expect_out(IPv6(src=POOL6, dst=REMOTE6, hlim=63) /
                               UDP(sport=det_port(p.inner_ip6, sport), dport=443) / Raw(payload))
        self.lab.send_internet(canonical(IPv6(src=ROUTER6, dst=POOL6, hlim=60) / kind /
                                         Raw(sent)))
        as_sent_by_peer = canonical(IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=63) /
                                    UDP(sport=sport, dport=443) / Raw(payload))
        self.expect_in(p, IPv6(src=ROUTER6, dst=p.inner_ip6, hlim=59) / kind /
                       Raw(as_sent_by_peer))

    def test_packet_too_big_from_the_path_reaches_the_peer_translated(self):
        self.error_from_the_path_reaches_the_peer(ICMPv6PacketTooBig(mtu=1280), 40100)

    def test_destination_unreachable_from_the_path_reaches_the_peer_translated(self):
        self.error_from_the_path_reaches_the_peer(ICMPv6DestUnreach(code=4), 40101)

    def test_time_exceeded_from_the_path_reaches_the_peer_translated(self):
        self.error_from_the_path_reaches_the_peer(ICMPv6TimeExceeded(code=0), 40102)

    def test_unsolicited_packet_to_an_unmapped_port_dropped_nat_no_mapping(self):
        before = self.lab.metrics()
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=POOL6) /
                                         UDP(sport=443, dport=PORT_MIN + 31 * DET_PORTS + 7)))
        m = self.lab.wait_metric(
            lambda m: m.drop("nat_no_mapping") >= before.drop("nat_no_mapping") + 1, 3)
        self.assertEqual(m.drop("nat_no_mapping") - before.drop("nat_no_mapping"), 1)
        for p in self.lab.peers:
            self.assertIsNone(p.recv_inner(0.2))

    def test_packet_for_an_address_outside_the_pool_dropped_before_any_error(self):
        before = self.lab.metrics()
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst="2001:db8:100::2", hlim=1) /
                                         UDP(sport=443, dport=2000)))
        m = self.lab.wait_metric(
            lambda m: m.drop("nat66_not_in_pool6") >= before.drop("nat66_not_in_pool6") + 1, 3)
        self.assertEqual(m.drop("nat66_not_in_pool6") - before.drop("nat66_not_in_pool6"), 1)
        self.assertIsNone(self.outer_ipv6(0.3), "an error about a packet not for the pool")


class Nat66Fragments(Nat66Lab):
    """Fragment headers through NAT66 on one worker: the first fragment carries the ports and is
    translated through its session; later ones follow it (dataplane/nat/nat_fragments.cc).
    The internet side is a pcap vdev (one RX queue that carries frames)."""

    internet_vdev = "pcap"

    def test_fragmented_datagram_out_and_fragmented_reply_back(self):
        p = self.lab.peers[0]
        payload = bytes(range(256)) * 8  # 2048 bytes: three fragments of 800 or less
        pub = det_port(p.inner_ip6, 40300)
        whole = (IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=64) / IPv6ExtHdrFragment(id=0x1234) /
                 UDP(sport=40300, dport=443) / Raw(payload))
        frags = fragment6(IPv6(canonical(whole)), 800)
        self.assertEqual(len(frags), 3)
        for f in frags:
            p.send_inner(bytes(f))
        want_whole = (IPv6(src=POOL6, dst=REMOTE6, hlim=63) / IPv6ExtHdrFragment(id=0x1234) /
                      UDP(sport=pub, dport=443) / Raw(payload))
        want = sorted(bytes(f).hex() for f in fragment6(IPv6(canonical(want_whole)), 800))
        got = [self.outer_ipv6() for _ in want]
        self.assertEqual(sorted(g.hex() for g in got if g), want,
                         "drops %s" % self.lab.metrics().drops())
        rep = (IPv6(src=REMOTE6, dst=POOL6, hlim=50) / IPv6ExtHdrFragment(id=0x4321) /
               UDP(sport=443, dport=pub) / Raw(payload[::-1]))
        for f in fragment6(IPv6(canonical(rep)), 800):
            self.lab.send_internet(bytes(f))
        want_in = (IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=49) / IPv6ExtHdrFragment(id=0x4321) /
                   UDP(sport=443, dport=40300) / Raw(payload[::-1]))
        want_in = sorted(bytes(f).hex() for f in fragment6(IPv6(canonical(want_in)), 800))
        got_in = [p.recv_inner(2.0) for _ in want_in]
        self.assertEqual(sorted(g.hex() for g in got_in if g), want_in,
                         "drops %s" % self.lab.metrics().drops())


    def test_fragments_out_of_order_wait_for_their_first_both_ways(self):
        p = self.lab.peers[1]
        payload = bytes(range(200, 256)) * 30  # 1680 bytes: four fragments of 600
        pub = det_port(p.inner_ip6, 40301)
        whole = (IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=64) / IPv6ExtHdrFragment(id=0x77) /
                 UDP(sport=40301, dport=443) / Raw(payload))
        frags = fragment6(IPv6(canonical(whole)), 600)
        self.assertGreaterEqual(len(frags), 3)
        for f in reversed(frags):  # the first fragment last
            p.send_inner(bytes(f))
        want_whole = (IPv6(src=POOL6, dst=REMOTE6, hlim=63) / IPv6ExtHdrFragment(id=0x77) /
                      UDP(sport=pub, dport=443) / Raw(payload))
        want = sorted(bytes(f).hex() for f in fragment6(IPv6(canonical(want_whole)), 600))
        got = [self.outer_ipv6() for _ in want]
        self.assertEqual(sorted(g.hex() for g in got if g), want,
                         "drops %s" % self.lab.metrics().drops())
        rep = (IPv6(src=REMOTE6, dst=POOL6, hlim=50) / IPv6ExtHdrFragment(id=0x88) /
               UDP(sport=443, dport=pub) / Raw(payload))
        rf = fragment6(IPv6(canonical(rep)), 600)
        for f in rf[1:] + rf[:1]:
            self.lab.send_internet(bytes(f))
        want_in = (IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=49) / IPv6ExtHdrFragment(id=0x88) /
                   UDP(sport=443, dport=40301) / Raw(payload))
        want_in = sorted(bytes(f).hex() for f in fragment6(IPv6(canonical(want_in)), 600))
        got_in = [p.recv_inner(2.0) for _ in want_in]
        self.assertEqual(sorted(g.hex() for g in got_in if g), want_in,
                         "drops %s" % self.lab.metrics().drops())


class Nat66FragmentsAcrossWorkers(ipv6_lab.Ipv6LabCase):
    """Two workers, port blocks (the public port read from the wire), the internet side on one
    RX queue: each reply datagram's fragments, first fragment last, meet at their datagram's
    home worker, which learns the NAT66 owner from the first fragment and hands the held ones
    after it (the park NAT44 uses, keyed by the Fragment header for IPv6)."""

    workers = 2
    peers = 6  # peers' NAT state on both workers but for a 1 in 32 chance
    internet_vdev = "pcap"
    flags = ipv6_lab.FLAGS + ("--nat6_mode=stateful", "--nat_pool6=" + POOL6)

    def test_out_of_order_inbound_fragments_reach_the_peer_through_their_home_worker(self):
        for i, p in enumerate(self.lab.peers):
            p.send_inner(canonical(IPv6(src=p.inner_ip6, dst=REMOTE6) /
                                   UDP(sport=40400, dport=9100 + i) / Raw(b"opens")))
            out = self.outer_ipv6()
            self.assertIsNotNone(out, "drops %s" % self.lab.metrics().drops())
            public_port = IPv6(out)[UDP].sport
            for n in range(3):
                rep = (IPv6(src=REMOTE6, dst=POOL6, hlim=50) /
                       IPv6ExtHdrFragment(id=0x6000 + 16 * i + n) /
                       UDP(sport=9100 + i, dport=public_port) / Raw(bytes([n]) * 1600))
                rf = fragment6(IPv6(canonical(rep)), 600)
                for f in rf[1:] + rf[:1]:
                    self.lab.send_internet(bytes(f))
                want = (IPv6(src=REMOTE6, dst=p.inner_ip6, hlim=49) /
                        IPv6ExtHdrFragment(id=0x6000 + 16 * i + n) /
                        UDP(sport=9100 + i, dport=40400) / Raw(bytes([n]) * 1600))
                want = sorted(bytes(f).hex() for f in fragment6(IPv6(canonical(want)), 600))
                got = [p.recv_inner(2.0) for _ in want]
                self.assertEqual(sorted(g.hex() for g in got if g), want,
                                 "peer %d datagram %d; drops %s"
                                 % (i, n, self.lab.metrics().drops()))


class Nat66FlowLogCase(ipv6_lab.Ipv6LabCase):
    """Flow accounting and NAT events under stateful NAT66 (port blocks), as the JSON flow log
    writes them: the flow with the peer's own address and port, both directions counted; the
    block the subscriber was given, an RFC 8158 event with IPv6 addresses."""
    json_path = "/tmp/exitgw-live-nat66-%d.json" % os.getpid()
    flags = ipv6_lab.FLAGS + ("--nat6_mode=stateful", "--nat_pool6=" + POOL6,
                              "--flow_log_json=" + json_path, "--destination_logging",
                              "--flow_idle_timeout=1")

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if os.path.exists(cls.json_path):
            os.unlink(cls.json_path)

    def records(self):
        try:
            with open(self.json_path) as f:
                return [json.loads(ln) for ln in f if ln.strip()]
        except (OSError, ValueError):
            return []

    def test_nat66_flow_and_port_block_in_the_json_log(self):
        p = self.lab.peers[0]
        p.send_inner(canonical(IPv6(src=p.inner_ip6, dst=REMOTE6, hlim=64) /
                               UDP(sport=40600, dport=8443) / Raw(b"flow" * 10)))
        out = self.outer_ipv6()
        self.assertIsNotNone(out, "nothing left: %s" % self.lab.metrics().drops())
        pub = IPv6(out)[UDP].sport
        self.lab.send_internet(canonical(IPv6(src=REMOTE6, dst=POOL6, hlim=55) /
                                         UDP(sport=8443, dport=pub) / Raw(b"back")))
        self.assertIsNotNone(p.recv_inner(), "no reply: %s" % self.lab.metrics().drops())
        src, dst = "[%s]:40600" % p.inner_ip6, "[%s]:8443" % REMOTE6

        def flow():
            for r in self.records():
                for t in r.get("exitTraffic", []):
                    if t.get("src") == src and t.get("dst") == dst:
                        return t
            return None
        deadline = time.monotonic() + 10  # idle timeout 1 s, then the exporter's next drain
        while flow() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertIsNotNone(flow(), "no flow record for %s -> %s in %s"
                             % (src, dst, self.records()))
        t = flow()
        self.assertEqual((t["proto"], t["txPkts"], t["rxPkts"]), (17, 1, 1), t)
        blocks = [r["natEvent"] for r in self.records() if "natEvent" in r]
        self.assertTrue(any(e.get("subscriber") == p.inner_ip6 and e.get("public") == POOL6
                            for e in blocks), blocks)


if __name__ == "__main__":
    harness.main()
