#!/usr/bin/python3
"""WireGuard behaviour of the real gateway that only shows over time or on a live session:
inner-packet checks after decryption, the gateway's own keepalive timers, and keypairs
refused after REJECT_AFTER_TIME. Driven by Python WireGuard peers (tests/support/wgpy.py);
drops are checked through their reason counters (dataplane/drop_reason.h).

  /usr/bin/python3 tests/live/wireguard_test.py --exitgw build/control/exitgw [-k NAME]
"""
import struct
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

import harness

R1 = "93.184.216.34"
KEEPALIVE_TIMEOUT = 10  # seconds (the protocol's constant, wg::kKeepaliveTimeout)


class LiveCase(harness.LabCase):
    peers = 1

    def udp(self, peer, payload=b"hello", sport=40000):
        return IP(src=peer.inner_ip, dst=R1, id=1, flags="DF") / UDP(sport=sport, dport=7000) / Raw(
            payload)

    def forwarded(self, peer, payload=b"hello"):
        """Whether an inner packet from peer reaches the internet wire."""
        peer.send_inner(self.udp(peer, payload))
        return self.lab.recv_outer_internet(1.0) is not None

    def drop_delta(self, before, reasons, n, timeout=3.0):
        total = lambda m: sum(m.drop(r) for r in reasons)  # noqa: E731
        m = self.lab.wait_metric(lambda m: total(m) >= total(before) + n, timeout)
        self.assertEqual(total(m) - total(before), n, "drops %s: %s" % (reasons, m.drops()))
        return m


class InnerPacketChecks(LiveCase):
    """What a peer seals must be a well-formed IPv4 or IPv6 packet from its allowed IPs;
    anything else is dropped after decryption under its own reason and never reaches the
    internet."""

    def inner_dropped(self, raw, reason, n=1):
        p = self.lab.peers[0]
        before = self.lab.metrics()
        for _ in range(n):
            p.send_inner(raw)
        self.drop_delta(before, [reason], n)
        self.assertIsNone(self.lab.recv_outer_internet(0.3), "a bad inner packet left")
        # The session still works: the next good packet goes out.
        self.assertTrue(self.forwarded(p), "drops %s" % self.lab.metrics().drops())

    def test_inner_shorter_than_an_ipv4_header_dropped_wg_inner_malformed(self):
        self.inner_dropped(bytes(IP(src=self.lab.peers[0].inner_ip, dst=R1))[:12],
                           "wg_inner_malformed")

    def test_inner_with_ip_options_dropped_wg_inner_malformed(self):
        pkt = IP(src=self.lab.peers[0].inner_ip, dst=R1, options=b"\x01\x01\x01\x01") / UDP(
            sport=40000, dport=7000) / Raw(b"x")
        self.inner_dropped(bytes(pkt), "wg_inner_malformed")

    def test_inner_total_length_beyond_the_payload_dropped_wg_inner_malformed(self):
        raw = bytearray(bytes(self.udp(self.lab.peers[0], b"x" * 20)))
        raw[2:4] = struct.pack("!H", len(raw) + 40)  # past the 16-byte padding too
        raw[10:12] = b"\0\0"
        raw[10:12] = struct.pack("!H", harness.checksum(bytes(raw[:20])))
        self.inner_dropped(bytes(raw), "wg_inner_malformed")

    def test_inner_bad_header_checksum_dropped_wg_inner_bad_checksum(self):
        raw = bytearray(bytes(self.udp(self.lab.peers[0])))
        raw[10] ^= 0x5A
        self.inner_dropped(bytes(raw), "wg_inner_bad_checksum", n=2)

    def test_inner_ipv6_from_outside_the_allowed_ips_dropped_wg_bad_source(self):
        pkt = IPv6(src="fd7a:115c:a1e0::10", dst="2a00:1450::1") / UDP(sport=40000, dport=7000)
        self.inner_dropped(bytes(pkt / Raw(b"six")), "wg_bad_source")

    def test_inner_version_neither_4_nor_6_dropped_wg_inner_malformed(self):
        raw = bytearray(bytes(self.udp(self.lab.peers[0])))
        raw[0] = (5 << 4) | 5
        self.inner_dropped(bytes(raw), "wg_inner_malformed")


class Keepalives(LiveCase):
    """The gateway's own timers. Peer 0: after data from it, when the gateway has sent it
    nothing for KEEPALIVE_TIMEOUT, one passive keepalive. Peer 1 (PersistentKeepalive = 1):
    a keepalive every second while the gateway sends it nothing else."""

    peers = 2

    @classmethod
    def configure(cls, lab):
        lab.peers[1].persistent_keepalive = 1

    def keepalives(self, peer, seconds):
        """Arrival times of the keepalives (empty transport messages) peer gets in `seconds`."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            got = peer.recv_transport(deadline - time.monotonic())
            if got is None:
                return out
            self.assertEqual(got[1], b"", "the gateway sent data, not a keepalive")
            out.append(got[0])

    def test_passive_keepalive_after_keepalive_timeout_once(self):
        p = self.lab.peers[0]
        sent_before = self.lab.metrics().sum("exitgw_wg_keepalives_sent_total")
        # Quiet first: the handshake alone (no data from the peer) draws no keepalive.
        self.assertEqual(self.keepalives(p, 1.0), [])
        t0 = time.monotonic()
        self.assertTrue(self.forwarded(p))
        got = self.keepalives(p, KEEPALIVE_TIMEOUT + 4)
        self.assertEqual(len(got), 1, "keepalives at %s s" % [round(t - t0, 2) for t in got])
        # Ticks are 100 ms apart; the loaded CI machine may add a little.
        self.assertGreaterEqual(got[0] - t0, KEEPALIVE_TIMEOUT - 0.3)
        self.assertLess(got[0] - t0, KEEPALIVE_TIMEOUT + 2)
        self.assertGreaterEqual(
            self.lab.metrics().sum("exitgw_wg_keepalives_sent_total") - sent_before, 1)

    def test_persistent_keepalive_every_interval(self):
        got = self.keepalives(self.lab.peers[1], 5.5)
        # About one a second. Read times, not send times: a busy test host may read two at
        # once, so the mean spacing is checked, not each gap.
        self.assertGreaterEqual(len(got), 4, "keepalives at %s" % got)
        self.assertLessEqual(len(got), 7, "keepalives at %s" % got)
        mean = (got[-1] - got[0]) / (len(got) - 1)
        self.assertGreater(mean, 0.8, got)
        self.assertLess(mean, 1.4, got)


class RejectAfterTime(LiveCase):
    """--wg_reject_after_time=3: the session works until then; after it the gateway refuses
    the keypair both ways (the peer's packets dropped, the internet's replies for it not
    sealed) and, having data for the peer, starts a handshake of its own."""

    flags = ("--wg_rekey_after_time=1", "--wg_reject_after_time=3")
    reject_after = 3

    def test_keypair_refused_after_reject_after_time_both_ways(self):
        p = self.lab.peers[0]
        handshake_at = time.monotonic()  # an upper bound: the lab just completed it
        self.assertTrue(self.forwarded(p, b"in time"))
        out = self.lab.metrics()
        time.sleep(max(0.0, handshake_at + self.reject_after + 0.5 - time.monotonic()))
        before = self.lab.metrics()
        self.assertGreaterEqual(before.sum("exitgw_wg_keypairs_expired_total")
                                - out.sum("exitgw_wg_keypairs_expired_total"), 1)
        # From the peer: refused (the keypair is gone from the index table once control's timer
        # retired it; in the ~100 ms before, the worker refuses it as expired).
        p.send_inner(self.udp(p, b"too late"))
        self.drop_delta(before, ["wg_keypair_expired", "wg_unknown_index"], 1)
        self.assertIsNone(self.lab.recv_outer_internet(0.5), "a packet on an expired keypair left")
        # To the peer: the reply to its mapping is not sealed with the expired keypair; the
        # gateway asks for a new session instead.
        reply = IP(src=R1, dst=harness.PUBLIC_IP, ttl=55) / UDP(sport=7000, dport=self.mapped_port)
        self.lab.send_internet(reply / Raw(b"reply"))
        self.drop_delta(before, ["wg_no_keypair"], 1)
        deadline = time.monotonic() + 3
        initiation = None
        while initiation is None and time.monotonic() < deadline:
            msg = p._next_wg(deadline - time.monotonic())
            if msg and msg[0] == 1:  # handshake initiation (wgpy.MSG_INITIATION)
                initiation = msg
            self.assertFalse(msg and msg[0] == 4, "the gateway sealed on an expired keypair")
        self.assertIsNotNone(initiation, "no handshake initiation from the gateway")
        self.assertEqual(len(initiation), 148)

    def setUp(self):
        super().setUp()
        self.mapped_port = None

    def forwarded(self, peer, payload=b"hello"):
        peer.send_inner(self.udp(peer, payload))
        f = self.lab.recv_outer_internet(1.0)
        if f is not None and self.mapped_port is None:
            self.mapped_port = struct.unpack("!H", f[34:36])[0]
        return f is not None


class NeighborUnresolved(LiveCase):
    """The peer roams to an endpoint on the tunnel's link that never answers ARP: the reply
    sealed for it waits for resolution, three ARP requests go out (--arp_retry_ms=100), then
    it is dropped as neighbor_unresolved and never sent."""

    flags = ("--arp_retry_ms=100",)
    SILENT = "10.77.0.99"

    def arp_requests_for(self, ip, seconds):
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            for f in self.lab._read("tunp"):
                if f[12:14] == b"\x08\x06" and f[38:42] == harness.ip_bytes(ip):
                    n += 1
            time.sleep(0.05)
        return n

    def test_reply_to_endpoint_without_arp_answer_dropped_neighbor_unresolved(self):
        p = self.lab.peers[0]
        home = p.endpoint_ip
        p.send_inner(self.udp(p, b"from home"))
        f = self.lab.recv_outer_internet(1.0)
        self.assertIsNotNone(f, "drops %s" % self.lab.metrics().drops())
        port = struct.unpack("!H", f[34:36])[0]
        try:
            p.endpoint_ip = self.SILENT  # roams: its next packet comes from there
            self.assertTrue(self.forwarded(p, b"from the new endpoint"))
            before = self.lab.metrics()
            reply = IP(src=R1, dst=harness.PUBLIC_IP, ttl=55) / UDP(sport=7000, dport=port)
            self.lab.send_internet(reply / Raw(b"reply"))
            self.assertEqual(self.arp_requests_for(self.SILENT, 1.5), 3)
            self.drop_delta(before, ["neighbor_unresolved"], 1)
            self.assertIsNone(p.recv_transport(0.3), "the reply was sent unresolved")
        finally:
            p.endpoint_ip = home
            p.send_wg(p.wg.keepalive())  # roams back


if __name__ == "__main__":
    harness.main()
