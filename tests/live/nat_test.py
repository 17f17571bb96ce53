#!/usr/bin/python3
"""Carrier-grade NAT44 of the real gateway, driven by Python WireGuard peers (issue 4).

Every forwarded packet is compared byte for byte with one scapy builds: the frame on the
internet wire (outbound) or the inner packet the peer decrypts (inbound). Most classes run
deterministic NAT (RFC 7422, harness.DET_FLAGS), so every public port is known in advance
(harness.det_port); the exhaustion class runs port blocks (the default mode). Drops are
checked through their reason counters (dataplane/drop_reason.h, nat/nat_drops.h).

  /usr/bin/python3 tests/live/nat_test.py --exitgw build/control/exitgw [-k NAME]
"""

from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import harness
from harness import DET_FLAGS, PUBLIC_IP, det_port

R1, R2, R3 = "93.184.216.34", "93.184.216.35", "151.101.1.69"  # "internet" hosts (on our wire)
HOP = "62.115.1.1"  # a router on the path, for time-exceeded

POLICY = """{
  "grants": [
    {"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["*"]},
    // The pool is in the built-in safety ranges (test-net-3): named, for hairpinning.
    {"src": ["autogroup:member"], "dst": ["203.0.113.0/24"], "ip": ["*"]},
  ],
}
"""

# Names in dataplane/drop_reason.h and dataplane/nat/nat_drops.h.
NAT_NO_MAPPING, NAT_FILTERED = "nat_no_mapping", "nat_filtered"


def rebuild(pkt):
    """A copy of a scapy packet with every length and checksum computed afresh."""
    p = pkt.copy()
    for layer in (IP, UDP, TCP, ICMP):
        if p.haslayer(layer):
            for f in ("chksum", "len"):
                p[layer].fields.pop(f, None)
    return p.__class__(bytes(p))


class NatCase(harness.LabCase):
    policy = POLICY

    # packet builders ----------------------------------------------------------------
    def pub(self, peer, port):
        """The public port (ICMP identifier) of peer's inner port: RFC 7422 arithmetic."""
        return det_port(peer.inner_ip, port)

    def out_frame(self, inner):
        """What the internet wire must carry for an inner packet: source address and port (or
        ICMP identifier) translated, TTL - 1, checksums as a fresh computation gives them."""
        p = inner.copy()
        p[IP].ttl -= 1
        p[IP].src = PUBLIC_IP
        if p.haslayer(UDP) or p.haslayer(TCP):
            l4 = p[UDP] if p.haslayer(UDP) else p[TCP]
            if not (p[IP].frag or p[IP].flags.MF):
                l4.sport = det_port(inner[IP].src, l4.sport)
        elif p.haslayer(ICMP) and p[ICMP].type == 8:
            p[ICMP].id = det_port(inner[IP].src, p[ICMP].id)
        return bytes(Ether(dst=self.lab.inetp_mac, src=self.lab.gw_inet_mac) / rebuild(p))

    def in_packet(self, reply, peer, inner_port):
        """What the peer must decrypt for an internet packet: destination address and port
        (or ICMP identifier) translated back, TTL - 1."""
        p = reply.copy()
        p[IP].dst = peer.inner_ip
        p[IP].ttl -= 1
        if p.haslayer(UDP):
            p[UDP].dport = inner_port
        elif p.haslayer(TCP):
            p[TCP].dport = inner_port
        elif p.haslayer(ICMP) and p[ICMP].type == 0:
            p[ICMP].id = inner_port
        return bytes(rebuild(p))

    def udp(self, peer, dst, sport, dport, payload, ttl=64, ident=1):
        return IP(src=peer.inner_ip, dst=dst, ttl=ttl, id=ident, flags="DF") / UDP(
            sport=sport, dport=dport) / Raw(payload)

    def reply(self, src, sport, dport, payload, dst=PUBLIC_IP, ttl=55, ident=7):
        return IP(src=src, dst=dst, ttl=ttl, id=ident) / UDP(sport=sport, dport=dport) / Raw(
            payload)

    def expect_out(self, inner):
        got = self.lab.recv_outer_internet(2.0)
        self.assertIsNotNone(got, "nothing on the internet wire for %r; drops %s"
                             % (inner.summary(), self.lab.metrics().drops()))
        self.assertEqual(got.hex(), self.out_frame(inner).hex())

    def expect_in(self, peer, want):
        got = peer.recv_inner(2.0)
        self.assertIsNotNone(got, "peer %s received nothing; drops %s"
                             % (peer.name, self.lab.metrics().drops()))
        self.assertEqual(got.hex(), want.hex())

    def roundtrip(self, peer, dst, sport, dport, payload):
        inner = self.udp(peer, dst, sport, dport, payload)
        peer.send_inner(inner)
        self.expect_out(inner)
        rep = self.reply(dst, dport, self.pub(peer, sport), b"re:" + payload)
        self.lab.send_internet(rep)
        self.expect_in(peer, self.in_packet(rep, peer, sport))

    def nothing_arrives(self, peer=None, timeout=0.5):
        if peer is not None:
            got = peer.recv_inner(timeout)
            self.assertIsNone(got, "peer %s received %s" % (peer.name, got and got.hex()))
        else:
            got = self.lab.recv_outer_internet(timeout)
            self.assertIsNone(got, "internet wire carried %s" % (got and got.hex()))

    def _hairpin(self, a, b, a_port, b_port, payload, ttl=64):
        """A sends to B's public endpoint; B receives it from A's public endpoint, TTL - 1
        (one forwarding decision), every byte exact."""
        before = self.lab.metrics()
        pkt = self.udp(a, PUBLIC_IP, a_port, self.pub(b, b_port), payload, ttl=ttl, ident=42)
        a.send_inner(pkt)
        want = pkt.copy()
        want[IP].src, want[IP].dst, want[IP].ttl = PUBLIC_IP, b.inner_ip, ttl - 1
        want[UDP].sport, want[UDP].dport = self.pub(a, a_port), b_port
        want = bytes(rebuild(want))
        got = b.recv_inner(2.0)
        self.assertIsNotNone(got, "peer %s received nothing; drops %s"
                             % (b.name, self.lab.metrics().drops()))
        self.assertEqual(got.hex(), want.hex())
        self.nothing_arrives()  # nothing leaks to the internet wire
        m = self.lab.metrics()
        self.assertEqual(m.sum("exitgw_nat_hairpinned_total")
                         - before.sum("exitgw_nat_hairpinned_total"), 1)

    def drop_delta(self, before, reason, n, timeout=3.0):
        m = self.lab.wait_metric(lambda m: m.drop(reason) >= before.drop(reason) + n, timeout)
        self.assertEqual(m.drop(reason) - before.drop(reason), n,
                         "drops %s: %s" % (reason, m.drops()))
        return m


class AddressDependentFiltering(NatCase):
    """The default: --nat_filtering=address-dependent, short ICMP and TCP-transitory timeouts."""

    flags = DET_FLAGS + ("--nat_filtering=address-dependent", "--nat_timeout_icmp=2",
                         "--nat_timeout_tcp_transitory=2")

    def test_one_mapping_reused_across_destinations(self):
        p = self.lab.peers[0]
        before = self.lab.metrics()
        for i, (dst, dport) in enumerate(((R1, 7000), (R2, 7001), (R3, 443))):
            self.roundtrip(p, dst, 40001, dport, b"eim %d" % i)
        m = self.lab.metrics()
        # Three sessions, one public endpoint (every frame above carried the same source).
        self.assertEqual(m.sum("exitgw_nat_sessions_created_total")
                         - before.sum("exitgw_nat_sessions_created_total"), 3)

    def test_address_dependent_filtering_drops_reply_from_another_address(self):
        p = self.lab.peers[0]
        self.roundtrip(p, R1, 40002, 7000, b"hello R1")
        before = self.lab.metrics()
        self.lab.send_internet(self.reply(R2, 7000, self.pub(p, 40002), b"unsolicited, R2"))
        self.nothing_arrives(p)
        self.drop_delta(before, NAT_FILTERED, 1)
        # Address-dependent, not address-and-port-dependent: R1 from another port gets in.
        rep = self.reply(R1, 7999, self.pub(p, 40002), b"R1, other port")
        self.lab.send_internet(rep)
        self.expect_in(p, self.in_packet(rep, p, 40002))

    def test_unsolicited_to_unmapped_port_counted_no_mapping(self):
        before = self.lab.metrics()
        self.lab.send_internet(self.reply(R1, 7000, self.pub(self.lab.peers[0], 45999),
                                          b"nobody here"))
        self.nothing_arrives(self.lab.peers[0])
        self.drop_delta(before, NAT_NO_MAPPING, 1)

    def test_icmp_port_unreachable_translated_back_with_embedded_header(self):
        self._icmp_error(40011, lambda q: IP(src=R1, dst=PUBLIC_IP, ttl=50, id=9) /
                         ICMP(type=3, code=3) / q)

    def test_icmp_time_exceeded_from_a_router_translated_back(self):
        self._icmp_error(40012, lambda q: IP(src=HOP, dst=PUBLIC_IP, ttl=250, id=10) /
                         ICMP(type=11, code=0) / q)

    def test_icmp_fragmentation_needed_translated_back_with_mtu(self):
        self._icmp_error(40013, lambda q: IP(src=HOP, dst=PUBLIC_IP, ttl=60, id=11) /
                         ICMP(type=3, code=4, nexthopmtu=1280) / q)

    def _icmp_error(self, sport, make_error):
        p = self.lab.peers[0]
        inner = self.udp(p, R1, sport, 33434, b"probe payload 0123456789", ttl=9, ident=77)
        p.send_inner(inner)
        wire = self.lab.recv_outer_internet(2.0)
        self.assertEqual(wire.hex(), self.out_frame(inner).hex())
        # The error quotes the packet as the internet saw it (translated, TTL 8) in full.
        err = make_error(Raw(wire[14:]))
        self.lab.send_internet(err)
        # The peer gets it addressed to itself, quoting its own packet (address and port
        # restored, the quoted TTL as the internet saw it), every checksum valid.
        quoted = inner.copy()
        quoted[IP].ttl = 8
        want = err.copy()
        want[IP].dst = p.inner_ip
        want[IP].ttl -= 1
        want[ICMP].remove_payload()
        want = want / Raw(bytes(rebuild(quoted)))
        self.expect_in(p, bytes(rebuild(want)))

    def test_icmp_echo_identifier_kept_and_reply_translated(self):
        p = self.lab.peers[0]
        req = IP(src=p.inner_ip, dst=R1, ttl=64, id=3) / ICMP(type=8, id=20001, seq=1) / Raw(b"ping")
        p.send_inner(req)
        self.expect_out(req)
        rep = IP(src=R1, dst=PUBLIC_IP, ttl=50, id=4) / ICMP(
            type=0, id=self.pub(p, 20001), seq=1) / Raw(b"ping")
        self.lab.send_internet(rep)
        self.expect_in(p, self.in_packet(rep, p, 20001))

    def test_icmp_query_mapping_expires_then_a_fresh_one_is_made(self):
        p = self.lab.peers[0]
        req = IP(src=p.inner_ip, dst=R2, id=5) / ICMP(type=8, id=20002, seq=1) / Raw(b"x")
        p.send_inner(req)
        self.expect_out(req)
        expired = self.lab.metrics().sum("exitgw_nat_sessions_expired_total")
        # --nat_timeout_icmp=2: once the session is gone the late reply finds no mapping.
        self.wait_sessions_gone("icmp")
        before = self.lab.metrics()
        self.assertGreater(before.sum("exitgw_nat_sessions_expired_total"), expired)
        created = before.sum("exitgw_nat_sessions_created_total")
        rep = IP(src=R2, dst=PUBLIC_IP, id=6) / ICMP(type=0, id=self.pub(p, 20002), seq=1) / Raw(
            b"x")
        self.lab.send_internet(rep)
        self.nothing_arrives(p)
        self.drop_delta(before, NAT_NO_MAPPING, 1)
        # A new request makes a new mapping (same identifier: still preserved) that works.
        req2 = IP(src=p.inner_ip, dst=R2, id=7) / ICMP(type=8, id=20002, seq=2) / Raw(b"y")
        p.send_inner(req2)
        self.expect_out(req2)
        self.assertEqual(self.lab.metrics().sum("exitgw_nat_sessions_created_total"), created + 1)
        rep2 = IP(src=R2, dst=PUBLIC_IP, id=8) / ICMP(type=0, id=self.pub(p, 20002), seq=2) / Raw(
            b"y")
        self.lab.send_internet(rep2)
        self.expect_in(p, self.in_packet(rep2, p, 20002))

    def wait_sessions_gone(self, protocol, timeout=8.0):
        """Waits until the gateway holds no session of protocol (the timer wheel ran)."""
        m = self.lab.wait_metric(
            lambda m: m.sum("exitgw_nat_sessions", protocol=protocol) == 0, timeout)
        self.assertEqual(m.sum("exitgw_nat_sessions", protocol=protocol), 0)

    def test_tcp_syn_state_expires_after_transitory_timeout(self):
        p = self.lab.peers[1]
        syn = IP(src=p.inner_ip, dst=R3, id=12, flags="DF") / TCP(sport=40021, dport=443,
                                                                   flags="S", seq=1000)
        p.send_inner(syn)
        self.expect_out(syn)
        self.assertGreater(self.lab.metrics().sum("exitgw_nat_sessions", protocol="tcp"), 0)
        # --nat_timeout_tcp_transitory=2: the half-open session goes, the late SYN-ACK is
        # refused for want of a mapping.
        self.wait_sessions_gone("tcp")
        before = self.lab.metrics()
        self.lab.send_internet(IP(src=R3, dst=PUBLIC_IP, id=13) / TCP(
            sport=443, dport=self.pub(p, 40021), flags="SA", seq=5000, ack=1001))
        self.nothing_arrives(p)
        self.drop_delta(before, NAT_NO_MAPPING, 1)

    def test_hairpin_after_both_sides_talked(self):
        """Under address-dependent filtering a hairpinned packet passes B's filter once B has
        sent to A's public address (the pool address)."""
        a, b = self.lab.peers
        self.roundtrip(a, R1, 40041, 7000, b"A opens 40041")
        self.roundtrip(b, R1, 40042, 7000, b"B opens 40042")
        # B to A's public endpoint: hairpinned to A (A's filter has not seen the pool address).
        b.send_inner(self.udp(b, PUBLIC_IP, 40042, self.pub(a, 40041), b"B to A"))
        a.recv_inner(1.0)
        self._hairpin(a, b, 40041, 40042, b"A to B")


class EndpointIndependentFiltering(NatCase):
    flags = DET_FLAGS + ("--nat_filtering=endpoint-independent",)

    def test_endpoint_independent_filtering_admits_reply_from_another_address(self):
        p = self.lab.peers[0]
        self.roundtrip(p, R1, 40101, 7000, b"hello R1")
        before = self.lab.metrics()
        rep = self.reply(R2, 8000, self.pub(p, 40101), b"from R2, never contacted")
        self.lab.send_internet(rep)
        self.expect_in(p, self.in_packet(rep, p, 40101))
        self.assertEqual(self.lab.metrics().drop(NAT_FILTERED), before.drop(NAT_FILTERED))

    def test_hairpin_peer_a_reaches_peer_b_through_its_public_endpoint(self):
        a, b = self.lab.peers
        self.roundtrip(b, R1, 40102, 7000, b"B opens 40102")
        self.roundtrip(a, R2, 40103, 7000, b"A opens 40103")
        self._hairpin(a, b, 40103, 40102, b"A to B via 203.0.113.1")

    def test_hairpin_decrements_ttl_once(self):
        a, b = self.lab.peers
        self.roundtrip(b, R1, 40106, 7000, b"B opens 40106")
        self._hairpin(a, b, 40107, 40106, b"one hop")

    def test_hairpin_with_ttl_2_reaches_the_peer_with_ttl_1(self):
        a, b = self.lab.peers
        self.roundtrip(b, R1, 40104, 7000, b"B opens 40104")
        self._hairpin(a, b, 40105, 40104, b"ttl 2", ttl=2)


def bad_checksum_transport(case, p, sport):
    """A transport message from peer p whose outer UDP checksum is wrong; returns its inner."""
    inner = case.udp(p, R1, sport, 7000, b"wrong outer checksum")
    p.send_wg(p.wg.seal(bytes(inner)), udp_checksum=0x1234)
    return inner


class OuterUdpChecksum(NatCase):
    """--wg_udp_checksum: 'full' (the default, as every other class runs) computes the outer
    UDP checksum of sealed messages and drops transport messages whose checksum is wrong;
    'aead' sends 0 and leaves received transport messages to the AEAD tag."""

    flags = DET_FLAGS

    def test_full_computes_it_and_drops_a_wrong_one(self):
        p = self.lab.peers[0]
        self.roundtrip(p, R1, 40301, 7000, b"checksummed")
        field, valid = p.outer_checksums[-1]
        self.assertNotEqual(field, 0)
        self.assertTrue(valid)
        before = self.lab.metrics()
        bad_checksum_transport(self, p, 40302)
        self.drop_delta(before, "udp_bad_checksum", 1)
        self.nothing_arrives()


class OuterUdpChecksumAead(NatCase):
    flags = DET_FLAGS + ("--wg_udp_checksum=aead",)

    def test_aead_sends_zero_and_leaves_the_transport_checksum_to_the_tag(self):
        p = self.lab.peers[0]
        self.roundtrip(p, R1, 40303, 7000, b"tag only")
        self.assertEqual(p.outer_checksums[-1][0], 0)
        before = self.lab.metrics()
        self.expect_out(bad_checksum_transport(self, p, 40304))
        self.assertEqual(self.lab.metrics().drop("udp_bad_checksum"),
                         before.drop("udp_bad_checksum"))


class Fragments(NatCase):
    """Fragments through the NAT, both ports af_packet. DPDK 22.11's af_packet PMD asks the
    kernel to reassemble IPv4 fragments (PACKET_FANOUT_FLAG_DEFRAG) and cut the datagram to
    its ring frame; exitgw takes the flag off (control/af_packet_fanout.cc), so inbound
    fragments reach the NAT as fragments, as from a NIC. Before that the first case's reply
    arrived as one frame cut to 1982 bytes (ipv4_bad_total_length), the second's as one
    whole datagram larger than the tunnel MTU (wg_too_large)."""

    flags = DET_FLAGS

    def test_fragments_in_order_both_directions(self):
        p = self.lab.peers[0]
        payload = bytes(range(256)) * 8  # 2048 bytes: three fragments of <= 800
        whole = self.udp(p, R1, 40031, 9000, payload, ident=0x1234)
        whole[IP].flags = 0
        frags = fragment(whole, fragsize=800)
        self.assertEqual(len(frags), 3)
        for f in frags:
            p.send_inner(f)
        # Translate the whole datagram, then cut it the same way: exact expected fragments.
        want_whole = whole.copy()
        want_whole[IP].src, want_whole[IP].ttl = PUBLIC_IP, 63
        want_whole[UDP].sport = self.pub(p, 40031)
        want = [bytes(Ether(dst=self.lab.inetp_mac, src=self.lab.gw_inet_mac) / f)
                for f in fragment(rebuild(want_whole), fragsize=800)]
        got = [self.lab.recv_outer_internet(2.0) for _ in want]
        self.assertEqual([g and g.hex() for g in got], [w.hex() for w in want])
        # The reply, fragmented by the internet host, reaches the peer as fragments.
        rep = self.reply(R1, 9000, self.pub(p, 40031), payload[::-1], ident=0x4321)
        rep[IP].flags = 0
        rep_frags = fragment(rebuild(rep), fragsize=800)
        for f in rep_frags:
            self.lab.send_internet(f)
        want_in = rep.copy()
        want_in[IP].dst, want_in[IP].ttl = p.inner_ip, rep[IP].ttl - 1
        want_in[UDP].dport = 40031
        want_in = [bytes(f) for f in fragment(rebuild(want_in), fragsize=800)]
        got_in = [p.recv_inner(2.0) for _ in want_in]
        self.assertEqual([g and g.hex() for g in got_in], [w.hex() for w in want_in],
                         "drops %s" % self.lab.metrics().drops())

    def test_fragments_out_of_order_all_translated(self):
        p = self.lab.peers[1]
        payload = bytes(range(200, 256)) * 30  # 1680 bytes: three fragments
        whole = self.udp(p, R2, 40032, 9001, payload, ident=0x2345)
        whole[IP].flags = 0
        frags = fragment(whole, fragsize=600)
        order = [frags[2], frags[0], frags[1]]  # last fragment first
        for f in order:
            p.send_inner(f)
        want_whole = whole.copy()
        want_whole[IP].src, want_whole[IP].ttl = PUBLIC_IP, 63
        want_whole[UDP].sport = self.pub(p, 40032)
        want = sorted(bytes(Ether(dst=self.lab.inetp_mac, src=self.lab.gw_inet_mac) / f).hex()
                      for f in fragment(rebuild(want_whole), fragsize=600))
        got = [self.lab.recv_outer_internet(2.0) for _ in want]
        self.assertEqual(sorted(g.hex() for g in got if g), want)
        rep = self.reply(R2, 9001, self.pub(p, 40032), payload, ident=0x5432)
        rep[IP].flags = 0
        rf = fragment(rebuild(rep), fragsize=600)
        for f in (rf[1], rf[2], rf[0]):
            self.lab.send_internet(f)
        want_in = rep.copy()
        want_in[IP].dst, want_in[IP].ttl = p.inner_ip, rep[IP].ttl - 1
        want_in[UDP].dport = 40032
        want_in = sorted(bytes(f).hex() for f in fragment(rebuild(want_in), fragsize=600))
        got_in = [p.recv_inner(2.0) for _ in want_in]
        self.assertEqual(sorted(g.hex() for g in got_in if g), want_in)


class FragmentsAcrossWorkers(NatCase):
    """Two workers, the internet side on one RX queue (worker 0): each reply datagram's
    fragments, first fragment last, meet at their datagram's home worker (a hash of source,
    destination, id, protocol: some are worker 1), which learns the NAT owner from the first
    fragment and hands the held ones after it. Port-block mode: the public port is read from
    the wire."""

    workers = 2
    # A peer's NAT state lives on the worker that first forwards for it (the kernel's fanout
    # hash picks it): with six peers both workers own some, but for a 1 in 32 chance.
    peers = 6
    internet_vdev = "pcap"

    def test_out_of_order_inbound_fragments_reach_the_peer_through_their_home_worker(self):
        for i, p in enumerate(self.lab.peers):
            probe = self.udp(p, R1, 40201, 9100 + i, b"opens the mapping")
            p.send_inner(probe)
            out = self.lab.recv_outer_internet(2.0)
            self.assertIsNotNone(out, "drops %s" % self.lab.metrics().drops())
            public_port = Ether(out)[UDP].sport
            for n in range(3):
                rep = self.reply(R1, 9100 + i, public_port, bytes([n]) * 1600,
                                 ident=0x6000 + 16 * i + n)
                rep[IP].flags = 0
                rf = fragment(rebuild(rep), fragsize=600)
                for f in (rf[1], rf[2], rf[0]):
                    self.lab.send_internet(f)
                want = rep.copy()
                want[IP].dst, want[IP].ttl = p.inner_ip, rep[IP].ttl - 1
                want[UDP].dport = 40201
                want = sorted(bytes(f).hex() for f in fragment(rebuild(want), fragsize=600))
                got = [p.recv_inner(2.0) for _ in want]
                self.assertEqual(sorted(g.hex() for g in got if g), want,
                                 "peer %d datagram %d; drops %s"
                                 % (i, n, self.lab.metrics().drops()))


class Exhaustion(NatCase):
    """Tiny port space: 8 public ports in 2 blocks of 4, one block per subscriber, at most
    6 sessions per subscriber. Three peers: the third finds no block left."""

    peers = 3
    flags = ("--nat_port_min=1024", "--nat_port_max=1031", "--nat_block_size=4",
             "--nat_max_blocks=1", "--nat_max_sessions_per_subscriber=6")

    def send_out(self, peer, dst, sport, dport):
        peer.send_inner(self.udp(peer, dst, sport, dport, b"x"))
        return self.lab.recv_outer_internet(1.0)

    def test_exhaustion_session_port_and_pool_limits_counted(self):
        a, b, c = self.lab.peers
        before = self.lab.metrics()
        # A: one port to six destinations fills its session budget; the seventh is refused.
        for i in range(6):
            self.assertIsNotNone(self.send_out(a, "93.184.216.%d" % (100 + i), 40201, 7000))
        self.assertIsNone(self.send_out(a, "93.184.216.106", 40201, 7000))
        self.drop_delta(before, "nat_session_limit", 1)
        # B: four source ports take its whole block (ports 1024-1031 only); a fifth is refused.
        ports = set()
        for sport in range(40301, 40305):
            f = self.send_out(b, R1, sport, 7000)
            self.assertIsNotNone(f)
            ports.add(int.from_bytes(f[34:36], "big"))
        self.assertEqual(len(ports), 4)
        self.assertTrue(all(1024 <= x <= 1031 for x in ports), ports)
        self.assertIsNone(self.send_out(b, R1, 40305, 7000))
        self.drop_delta(before, "nat_port_limit", 1)
        # C: both blocks are held, so no block for a third subscriber.
        self.assertIsNone(self.send_out(c, R1, 40401, 7000))
        m = self.drop_delta(before, "nat_pool_exhausted", 1)
        self.assertGreaterEqual(m.sum("exitgw_nat_pool_exhausted_total")
                                - before.sum("exitgw_nat_pool_exhausted_total"), 1)
        # Existing sessions keep working: A to its first destination again.
        self.assertIsNotNone(self.send_out(a, "93.184.216.100", 40201, 7000))


class TableFull(NatCase):
    """--nat_max_sessions=3 on one worker: a fourth session finds no room (nat_table_full);
    protocols NAT cannot translate are refused before any lookup (nat_unsupported_protocol).
    Neither packet reaches the internet."""

    flags = ("--nat_max_sessions=3",)

    def test_session_beyond_the_table_dropped_nat_table_full(self):
        a = self.lab.peers[0]
        before = self.lab.metrics()
        for i in range(3):
            a.send_inner(self.udp(a, "93.184.216.%d" % (100 + i), 40501, 7000, b"fits"))
            self.assertIsNotNone(self.lab.recv_outer_internet(1.0),
                                 "drops %s" % self.lab.metrics().drops())
        a.send_inner(self.udp(a, "93.184.216.103", 40501, 7000, b"no room"))
        self.nothing_arrives()
        self.drop_delta(before, "nat_table_full", 1)
        # Existing sessions keep working.
        a.send_inner(self.udp(a, "93.184.216.100", 40501, 7000, b"still mapped"))
        self.assertIsNotNone(self.lab.recv_outer_internet(1.0))

    def test_gre_dropped_nat_unsupported_protocol(self):
        a = self.lab.peers[0]
        before = self.lab.metrics()
        gre = IP(src=a.inner_ip, dst=R1, id=5, proto=47) / Raw(b"\x00\x00\x08\x00" + b"g" * 20)
        a.send_inner(gre)
        a.send_inner(gre)
        self.nothing_arrives()
        self.drop_delta(before, "nat_unsupported_protocol", 2)


class AllowedIpMoves(NatCase):
    """Peer A's address moves to peer B (peers file rewritten): the NAT state A held for it is
    freed, so the internet's replies to A's old mapping reach nobody; B gets a fresh mapping
    of its own when it sends."""

    def test_moved_address_frees_old_sessions_and_new_owner_maps_afresh(self):
        a, b = self.lab.peers
        moved = a.inner_ip
        a.send_inner(self.udp(a, R1, 40601, 7000, b"from A"))
        f = self.lab.recv_outer_internet(1.0)
        self.assertIsNotNone(f, "drops %s" % self.lab.metrics().drops())
        old_port = int.from_bytes(f[34:36], "big")
        rep = self.reply(R1, 7000, old_port, b"to A")
        self.lab.send_internet(rep)
        self.expect_in(a, self.in_packet(rep, a, 40601))
        before = self.lab.metrics()
        self.assertGreaterEqual(before.sum("exitgw_nat_sessions"), 1)

        a.inner_ip = "100.64.0.30"
        text = a.peers_conf() + b.peers_conf().replace(
            "AllowedIPs = %s/32" % b.inner_ip, "AllowedIPs = %s/32, %s/32" % (b.inner_ip, moved))
        self.lab.write_peers(text)
        m = self.lab.wait_metric(lambda m: m.sum("exitgw_wg_peers_reloads_total", result="ok")
                                 > before.sum("exitgw_wg_peers_reloads_total", result="ok")
                                 and m.sum("exitgw_nat_sessions") == 0
                                 and m.sum("exitgw_worker_commands_in_ring") == 0, 5.0)
        self.assertGreater(m.sum("exitgw_wg_peers_reloads_total", result="ok"),
                           before.sum("exitgw_wg_peers_reloads_total", result="ok"),
                           self.lab.log_tail())
        self.assertEqual(m.sum("exitgw_nat_sessions"), 0, "A's sessions were not freed")
        self.assertGreaterEqual(m.sum("exitgw_nat_sessions_removed_total")
                                - before.sum("exitgw_nat_sessions_removed_total"), 1)
        # The workers carried out the removal (the moved address is routed only then), in time.
        self.assertEqual(m.sum("exitgw_worker_commands_in_ring"), 0)
        self.assertEqual(m.sum("exitgw_worker_commands_overdue_total"),
                         before.sum("exitgw_worker_commands_overdue_total"))

        # A's old mapping is gone: a reply to it reaches neither peer.
        self.lab.send_internet(self.reply(R1, 7000, old_port, b"to A's old mapping"))
        self.nothing_arrives(b)
        self.nothing_arrives(a, 0.1)
        self.drop_delta(before, NAT_NO_MAPPING, 1)

        # B, sending from the moved address, gets a mapping of its own and its replies.
        pkt = IP(src=moved, dst=R1, id=1, flags="DF") / UDP(sport=40601, dport=7000) / Raw(b"B")
        b.send_inner(pkt)
        f = self.lab.recv_outer_internet(1.0)
        self.assertIsNotNone(f, "drops %s" % self.lab.metrics().drops())
        new_port = int.from_bytes(f[34:36], "big")
        rep = self.reply(R1, 7000, new_port, b"to B")
        self.lab.send_internet(rep)
        want = rep.copy()
        want[IP].dst, want[IP].ttl, want[UDP].dport = moved, rep[IP].ttl - 1, 40601
        self.expect_in(b, bytes(rebuild(want)))
        self.nothing_arrives(a, 0.1)
        self.assertGreaterEqual(self.lab.metrics().sum("exitgw_nat_sessions_created_total")
                                - before.sum("exitgw_nat_sessions_created_total"), 1)


if __name__ == "__main__":
    harness.main()
