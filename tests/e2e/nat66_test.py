#!/usr/bin/env python3
"""E2E through stateful NAT66 (--nat6_mode=stateful): real wireguard-go clients, exitgw with
two workers, the lab's IPv6 internet. The pool is one address inside the prefix the lab
routes to the gateway, so every client's IPv6 reaches the servers from it, on its own ports.

  /usr/bin/python3 tests/e2e/nat66_test.py --exitgw build/control/exitgw [-v]
"""
import sys
import unittest

import labutil as L

NAME = L.lab_name("e2n6")
CLIENTS = ("c1", "c2")
SERVER6 = "2001:db8:5::10"  # tools/lab SERVER6
POOL6 = "2001:db8:100::1"  # one address of the /48 tools/lab routes to the gateway
BIG = 64 * 1024 * 1024


def setUpModule():
    L.down(NAME)
    L.up(NAME, clients=len(CLIENTS),
         extra=("--gw-flag", "nat6_mode=stateful", "--gw-flag", "nat_pool6=" + POOL6))


def tearDownModule():
    L.down(NAME)


class Nat66Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pending = L.ensure_handshakes(NAME, CLIENTS, timeout=15)
        if pending:
            raise AssertionError("no handshake from %s" % sorted(pending))

    def test_server_sees_the_pool_address_on_distinct_ports_and_downloads_complete(self):
        seen = {}
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, "curl", "-s", "-m", "5", f"http://[{SERVER6}]/whoami",
                               timeout=10)
                self.assertTrue(p.stdout.startswith(POOL6 + ":"),
                                f"{c}: {p.stdout!r}, expected {POOL6}:PORT; "
                                + L.Metrics(NAME).drops_text())
                seen[c] = p.stdout.strip()
                p = L.lab_exec(NAME, c, "curl", "-sS", "-o", "/dev/null", "--connect-timeout", "5",
                               "--max-time", "90", "-w", "%{size_download} %{speed_download}",
                               f"http://[{SERVER6}]/64M.bin", timeout=100)
                self.assertEqual(p.returncode, 0, p.stdout)
                size, speed = p.stdout.split()[-2:]
                self.assertEqual(int(float(size)), BIG)
                print("\n  %s: 64 MiB over stateful NAT66 at %.0f Mbit/s"
                      % (c, float(speed) * 8 / 1e6), end=" ")
        self.assertEqual(len(set(seen.values())), len(CLIENTS), seen)
        m = L.Metrics(NAME)
        self.assertGreater(m.get("exitgw_nat66_sessions_created_total"), 0)
        self.assertGreater(m.get("exitgw_nat66_translations_total", direction="in"), 0)

    def test_ping6_through_stateful_nat66(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, "ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", SERVER6,
                               timeout=20)
                self.assertEqual(p.returncode, 0, p.stdout + L.Metrics(NAME).drops_text())
                self.assertIn(" 0% packet loss", p.stdout)

    def test_ipv6_iperf3_udp_and_tcp(self):
        for args in ((), ("-u", "-b", "50M")):
            with self.subTest(args=args):
                p = L.lab_exec(NAME, CLIENTS[0], "iperf3", "-6", "-c", SERVER6, "-t", "3",
                               "--connect-timeout", "4000", *args, timeout=30)
                self.assertEqual(p.returncode, 0, p.stdout + L.Metrics(NAME).drops_text())
                self.assertIn("receiver", p.stdout)

    def test_echo_request_from_the_internet_to_the_pool_is_dropped_and_counted(self):
        # No mapping takes an echo request in: it is the gateway's to answer, never a peer's.
        def drops():
            return L.Metrics(NAME).get("exitgw_nat66_drops_total", reason="nat_unsupported_icmp")
        before = drops()
        p = L.lab_exec(NAME, "inet", "ping", "-6", "-c", "1", "-W", "1", POOL6, timeout=10)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertEqual(drops() - before, 1)


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
