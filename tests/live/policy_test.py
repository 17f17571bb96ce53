#!/usr/bin/python3
"""Exit policy of the real gateway, driven by Python WireGuard peers (issue 5).

Allowed packets must leave on the internet wire byte for byte as scapy predicts; denied
ones must not, and must be counted as policy_denied against the rule that decided
(exitgw_policy_rule_hits_total{rule=...}). The policy file is replaced atomically (rename)
while traffic streams: no packet may be lost, and the reload metrics must show every swap.

  /usr/bin/python3 tests/live/policy_test.py --exitgw build/control/exitgw [-k NAME]
"""
import struct
import time
import unittest

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import harness
from harness import DET_FLAGS, PUBLIC_IP, Lab, det_port

DNS = "1.1.1.1"  # an internet host (frames stay on our wire)
WEB = "93.184.216.34"
NAMED_PRIVATE = "192.168.50.7"  # inside a private range the policy names
OTHER_PRIVATE = "192.168.60.7"  # inside a private range the policy does not name
TEN = "10.1.2.3"

# grants[0]: the internet, UDP 53 only; grants[1]: a named part of a safety range, TCP 22.
# acls[0]: WEB's /24 on TCP 443.
POLICY = """{
  "grants": [
    {"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["udp:53"]},
    {"src": ["autogroup:member"], "dst": ["192.168.50.0/24"], "ip": ["tcp:22"]},
  ],
  "acls": [
    {"action": "accept", "src": ["autogroup:member"], "dst": ["93.184.216.0/24:443"],
     "proto": "tcp"},
  ],
}
"""


def policy_version(n):
    """Version n of a policy that always allows UDP 53 to the internet (grants[0]) and
    changes everything else: n extra port grants to WEB, a different named range."""
    extra = ",\n".join(
        '    {"src": ["autogroup:member"], "dst": ["93.184.216.0/24"], "ip": ["tcp:%d"]}'
        % (8000 + i) for i in range(n))
    return """{
  // version %d
  "grants": [
    {"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["udp:53"]},
    {"src": ["autogroup:member"], "dst": ["192.168.%d.0/24"], "ip": ["tcp:22"]},
%s
  ],
}
""" % (n, 50 + n, extra)


REVOKED = """{
  "grants": [
    {"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["tcp:443"]},
  ],
}
"""


class Policy(harness.LabCase):
    flags = DET_FLAGS
    policy = POLICY
    peers = 1

    def setUp(self):
        super().setUp()
        self.peer = self.lab.peers[0]

    def out_frame(self, inner):
        p = inner.copy()
        p[IP].src, p[IP].ttl = PUBLIC_IP, p[IP].ttl - 1
        l4 = p[UDP] if p.haslayer(UDP) else p[TCP]
        l4.sport = det_port(inner[IP].src, l4.sport)
        del p[IP].chksum, l4.chksum
        return bytes(Ether(dst=self.lab.inetp_mac, src=self.lab.gw_inet_mac) / p)

    def allowed(self, inner, rule):
        before = self.lab.metrics()
        self.peer.send_inner(inner)
        got = self.lab.recv_outer_internet(2.0)
        self.assertIsNotNone(got, "%s not forwarded; drops %s"
                             % (inner.summary(), self.lab.metrics().drops()))
        self.assertEqual(got.hex(), self.out_frame(inner).hex())
        self.assert_hits(before, rule, 1)
        self.assertEqual(self.lab.metrics().drop("policy_denied"), before.drop("policy_denied"))

    def assert_hits(self, before, rule, n):
        """Rule hits reach the metrics when control next samples them (every 100 ms)."""
        hits = lambda m: m.sum("exitgw_policy_rule_hits_total", rule=rule)  # noqa: E731
        m = self.lab.wait_metric(lambda m: hits(m) >= hits(before) + n, 3.0)
        self.assertEqual(hits(m) - hits(before), n, "rule %s" % rule)

    def denied(self, inner, rule):
        before = self.lab.metrics()
        self.peer.send_inner(inner)
        got = self.lab.recv_outer_internet(0.5)
        self.assertIsNone(got, "denied packet forwarded: %s" % (got and got.hex()))
        m = self.lab.wait_metric(
            lambda m: m.drop("policy_denied") > before.drop("policy_denied"), 3.0)
        self.assertEqual(m.drop("policy_denied") - before.drop("policy_denied"), 1, m.drops())
        self.assert_hits(before, rule, 1)

    def udp(self, dst, dport, sport=41000, payload=b"q"):
        return IP(src=self.peer.inner_ip, dst=dst, id=1, flags="DF") / UDP(
            sport=sport, dport=dport) / Raw(payload)

    def tcp(self, dst, dport, sport=41001):
        return IP(src=self.peer.inner_ip, dst=dst, id=2, flags="DF") / TCP(
            sport=sport, dport=dport, flags="S", seq=1)

    # one policy ----------------------------------------------------------------------
    def test_grant_allows_its_port_and_protocol(self):
        self.allowed(self.udp(DNS, 53), "grants[0]")

    def test_other_port_of_a_granted_destination_denied(self):
        self.denied(self.udp(DNS, 54), "default-deny")

    def test_other_protocol_on_the_granted_port_denied(self):
        self.denied(self.tcp(DNS, 53), "default-deny")

    def test_acl_allows_tcp_443_to_its_prefix_only(self):
        self.allowed(self.tcp(WEB, 443), "acls[0]")
        self.denied(self.tcp("93.184.217.1", 443), "default-deny")

    def test_builtin_private_10_denied_though_internet_is_granted(self):
        self.denied(self.udp(TEN, 53), "builtin:private-10")

    def test_builtin_private_192_denied_unless_named(self):
        self.denied(self.udp(OTHER_PRIVATE, 53), "builtin:private-192")
        self.allowed(self.tcp(NAMED_PRIVATE, 22, sport=41002), "grants[1]")
        # Naming the range grants only what the rule says: UDP 53 there stays denied.
        self.denied(self.udp(NAMED_PRIVATE, 53), "builtin:private-192")


class PolicySwap(unittest.TestCase):
    """Policy replaced under traffic: zero loss while it still allows the flow, drops at once
    when a version revokes it."""

    PACKETS = 20000
    RATE = 4000  # packets per second
    SWAPS = 5

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab(harness.EXITGW, flags=DET_FLAGS, policy=policy_version(0), peers=1)
        cls.lab.__enter__()

    @classmethod
    def tearDownClass(cls):
        if cls.lab:
            cls.lab.close()

    def reloads(self, m):
        return m.sum("exitgw_policy_reloads_total", result="ok")

    def test_1_live_swaps_lose_no_packet(self):
        lab, peer = self.lab, self.lab.peers[0]
        lab.drain(0.05)
        before = lab.metrics()
        rules0 = before.sum("exitgw_policy_rules")
        lab.socket_drops("inetp")  # reset the socket's drop counter
        seen = set()

        def collect():
            for f in lab._read("inetp"):
                if len(f) >= 14 + 28 + 4 and f[23] == 17:
                    seen.add(struct.unpack("!I", f[42:46])[0])

        src, dst = peer.inner_ip, DNS
        t0 = time.monotonic()
        swap_at = [self.PACKETS * (i + 1) // (self.SWAPS + 1) for i in range(self.SWAPS)]
        swaps_done = 0
        batch = 50
        for start in range(0, self.PACKETS, batch):
            for seq in range(start, min(start + batch, self.PACKETS)):
                inner = harness.udp4(src, dst, 42000, 53, struct.pack("!I", seq) + b"s" * 28,
                                     ident=seq & 0xFFFF)
                peer.send_inner(inner)
            collect()
            if swaps_done < self.SWAPS and start + batch > swap_at[swaps_done]:
                swaps_done += 1
                lab.write_policy(policy_version(swaps_done))
            delay = t0 + (start + batch) / self.RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elapsed = time.monotonic() - t0
        deadline = time.monotonic() + 5
        while len(seen) < self.PACKETS and time.monotonic() < deadline:
            time.sleep(0.05)
            collect()
        m = lab.wait_metric(lambda m: self.reloads(m) >= self.reloads(before) + self.SWAPS, 5)
        missing = sorted(set(range(self.PACKETS)) - seen)
        print("\nlive swap: %d packets at %.0f/s in %.2f s, %d policy swaps, %d arrived, "
              "socket drops %d" % (self.PACKETS, self.PACKETS / elapsed, elapsed, self.SWAPS,
                                   len(seen), lab.socket_drops("inetp")))
        self.assertEqual(missing[:20], [], "%d of %d lost; drops %s"
                         % (len(missing), self.PACKETS, m.drops()))
        self.assertEqual(m.drop("policy_denied"), before.drop("policy_denied"))
        # Every swap was applied: the reload count, and the rule count of the last version (it
        # has SWAPS more grants than version 0). The generation: test_3.
        self.assertEqual(self.reloads(m) - self.reloads(before), self.SWAPS)
        self.assertGreater(m.sum("exitgw_policy_rules"), rules0)
        self.assertEqual(m.sum("exitgw_policy_reloads_total", result="rejected"),
                         before.sum("exitgw_policy_reloads_total", result="rejected"))

    def test_2_swap_that_revokes_access_drops_at_once(self):
        lab, peer = self.lab, self.lab.peers[0]
        lab.drain(0.05)
        before = lab.metrics()
        lab.write_policy(REVOKED)
        lab.wait_metric(lambda m: self.reloads(m) > self.reloads(before), 5)
        n = 100
        for seq in range(n):
            peer.send_inner(harness.udp4(peer.inner_ip, DNS, 42001, 53, struct.pack("!I", seq)))
        self.assertEqual(lab.recv_all_internet(0.5), [])
        m = lab.wait_metric(lambda m: m.drop("policy_denied") >= before.drop("policy_denied") + n)
        self.assertEqual(m.drop("policy_denied") - before.drop("policy_denied"), n)
        hits = lambda m: m.sum("exitgw_policy_rule_hits_total", rule="default-deny")  # noqa: E731
        m = lab.wait_metric(lambda m: hits(m) >= hits(before) + n, 3.0)
        self.assertEqual(hits(m) - hits(before), n)

    def test_3_policy_file_reload_advances_config_generation(self):
        lab = self.lab
        before = lab.metrics()
        lab.write_policy(policy_version(1))
        lab.wait_metric(lambda m: self.reloads(m) > self.reloads(before), 5)
        # The admin view (and with it the gauge) is republished at least once a second.
        m = lab.wait_metric(lambda m: m.sum("exitgw_config_generation")
                            > before.sum("exitgw_config_generation"), 3)
        self.assertGreater(m.sum("exitgw_config_generation"),
                           before.sum("exitgw_config_generation"))


if __name__ == "__main__":
    harness.main()
