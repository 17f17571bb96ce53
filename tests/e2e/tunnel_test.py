#!/usr/bin/env python3
"""E2E through the WireGuard tunnel: real wireguard-go clients, exitgw, the lab's internet.

  /usr/bin/python3 tests/e2e/tunnel_test.py --exitgw build/control/exitgw [-v]

These need the daemon's WireGuard (handshake, transport, NAT); they fail until it lands.
Every client is tested: af_packet spreads flows over queues by hash, so one client passing
says little about the others.
"""
import os
import sys
import time
import unittest

import labutil as L
import nptv6_ref  # noqa: E402 (tests/support, on the path labutil sets)

NAME = L.lab_name("e2t")
CLIENTS = ("c1", "c2")
SERVERS = os.path.join(L.REPO, "tools", "lab_servers.py")
BIG = 64 * 1024 * 1024
POOL = "203.0.113.1"  # the lab's NAT pool (tools/lab NAT_POOL)
SERVER6 = "2001:db8:5::10"  # tools/lab SERVER6
INSIDE6, POOL6 = "fd7a:115c:a1e0::", "2001:db8:100::"  # --nat_inside6, --nat_pool6 (/48)


def nptv6(addr):
    return nptv6_ref.nptv6(addr, INSIDE6, POOL6)


def tailnet6(client):
    return [x for x in L.state(NAME)["clients"] if x["name"] == client][0]["tailnet6"]


def setUpModule():
    L.down(NAME)
    L.up(NAME, clients=len(CLIENTS))


def tearDownModule():
    L.down(NAME)


def latest_handshake(client):
    st = L.state(NAME)
    c = [x for x in st["clients"] if x["name"] == client][0]
    p = L.lab_exec(NAME, client, "wg", "show", c["wg"], "latest-handshakes", timeout=10)
    for ln in p.stdout.splitlines():
        parts = ln.split()
        if len(parts) == 2 and parts[1].isdigit():
            return int(parts[1])
    return 0


def kick(client):
    """Sends one packet into the tunnel so wireguard-go starts a handshake."""
    L.lab_exec(NAME, client, "ping", "-c", "1", "-W", "1", L.SERVER, timeout=10)


class TunnelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Handshakes first (up to 15 s: wireguard-go retries every 5 s); the tests below
        # then measure the data path, not handshake latency.
        deadline = time.monotonic() + 15
        pending = set(CLIENTS)
        while pending and time.monotonic() < deadline:
            for c in sorted(pending):
                if latest_handshake(c):
                    pending.discard(c)
                else:
                    kick(c)
        cls.no_handshake = pending

    def test_handshake_completes(self):
        self.assertEqual(self.no_handshake, set(),
                         "no handshake within 15 s for " + " ".join(sorted(self.no_handshake)))
        self.assertGreaterEqual(L.metric_sum(NAME, "exitgw_port_rx_packets_total", port="tunnel"),
                                len(CLIENTS))
        for c in CLIENTS:
            self.assertLess(time.time() - latest_handshake(c), 180, c)

    def test_ping_through_tunnel(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, "ping", "-c", "5", "-i", "0.2", "-W", "2", L.SERVER,
                               timeout=20)
                self.assertEqual(p.returncode, 0, p.stdout)
                self.assertIn(" 0% packet loss", p.stdout)

    def test_tcp_download(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, "curl", "-sS", "--connect-timeout", "5", "--max-time", "5",
                               "http://%s/" % L.SERVER, timeout=15)
                self.assertEqual(p.returncode, 0, p.stdout)
                self.assertIn("hello", p.stdout)
                p = L.lab_exec(NAME, c, "curl", "-sS", "-o", "/dev/null", "--connect-timeout", "5",
                               "--max-time", "90", "-w", "%{size_download} %{speed_download}",
                               "http://%s/64M.bin" % L.SERVER, timeout=100)
                self.assertEqual(p.returncode, 0, p.stdout)
                size, speed = p.stdout.split()[-2:]
                self.assertEqual(int(float(size)), BIG)
                print("\n  %s: 64 MiB at %.0f Mbit/s" % (c, float(speed) * 8 / 1e6), end=" ")

    def test_tcp_iperf3(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, "iperf3", "-c", L.SERVER, "-t", "3", "--connect-timeout",
                               "4000", timeout=30)
                self.assertEqual(p.returncode, 0, p.stdout)
                self.assertIn("receiver", p.stdout)

    def test_udp_echo(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, sys.executable, SERVERS, "udp-probe", L.SERVER,
                               "--count", "5", "--timeout", "2", timeout=20)
                self.assertEqual(p.returncode, 0, p.stdout)
                self.assertIn("5/5 back", p.stdout)

    def test_dns(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, sys.executable, SERVERS, "dns-query", L.SERVER,
                               "%s.lab.test" % c, "--timeout", "2", timeout=10)
                self.assertEqual(p.returncode, 0, p.stdout)
                self.assertIn("A %s" % L.SERVER, p.stdout)


    def test_ttl_expiring_at_the_gateway_returns_time_exceeded_through_the_tunnel(self):
        # traceroute's first hop past the tunnel: the gateway answers, sealed to the peer.
        for c in CLIENTS:
            before = L.Metrics(NAME).get("exitgw_drops_total", reason="ipv4_ttl_expired")
            p = L.lab_exec(NAME, c, "ping", "-c", "1", "-W", "2", "-t", "1", L.SERVER, timeout=10)
            self.assertIn("Time to live exceeded", p.stdout, f"{c}: {p.stdout}")
            self.assertIn("From 192.0.2.1", p.stdout, f"{c}: {p.stdout}")
            after = L.Metrics(NAME).get("exitgw_drops_total", reason="ipv4_ttl_expired")
            self.assertEqual(after - before, 1, c)

    def test_path_mtu_discovery_finds_the_tunnel_mtu(self):
        # A DF packet from the internet larger than the tunnel MTU draws fragmentation-needed
        # with the tunnel's MTU (RFC 1191), before NAT looks at it.
        before = L.Metrics(NAME).get("exitgw_drops_total", reason="wg_too_large")
        p = L.lab_exec(NAME, "inet", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472",
                       POOL, timeout=10)
        self.assertIn("Frag needed and DF set (mtu = 1420)", p.stdout, p.stdout)
        self.assertEqual(L.Metrics(NAME).get("exitgw_drops_total", reason="wg_too_large") - before, 1)
        # A client's own large DF datagram that fits the tunnel goes out and back.
        for c in CLIENTS:
            p = L.lab_exec(NAME, c, "ping", "-c", "2", "-W", "2", "-M", "do", "-s", "1392",
                           L.SERVER, timeout=10)
            self.assertIn(" 0% packet loss", p.stdout, f"{c}: {p.stdout}")

    def test_fragmented_reply_reaches_the_nat_as_fragments_and_is_counted_too_large(self):
        # ping -s 3000: the client fragments the request to its tunnel MTU, the server answers
        # with 1500 + 1500 + 68-byte fragments (DF clear). af_packet delivers them as fragments
        # (control/af_packet_fanout.cc): the two larger than the tunnel MTU are wg_too_large,
        # none is ipv4_bad_total_length (the kernel's reassembly, cut to the ring frame, was).
        for c in CLIENTS:
            m0 = L.Metrics(NAME)
            p = L.lab_exec(NAME, c, "ping", "-c", "1", "-W", "2", "-s", "3000", L.SERVER,
                           timeout=10)
            time.sleep(0.3)
            m1 = L.Metrics(NAME)
            drops = m1.drops_text()
            self.assertEqual(m1.get("exitgw_drops_total", reason="ipv4_bad_total_length") -
                             m0.get("exitgw_drops_total", reason="ipv4_bad_total_length"), 0,
                             f"{c}: {p.stdout}{drops}")
            self.assertEqual(m1.get("exitgw_drops_total", reason="wg_too_large") -
                             m0.get("exitgw_drops_total", reason="wg_too_large"), 2,
                             f"{c}: {p.stdout}{drops}")

    def test_server_sees_the_pool_address_not_the_clients(self):
        for c in CLIENTS:
            p = L.lab_exec(NAME, c, "curl", "-s", "-m", "5", f"http://{L.SERVER}/whoami",
                           timeout=10)
            self.assertTrue(p.stdout.startswith(POOL + ":"), f"{c}: {p.stdout!r}")
        m = L.Metrics(NAME)
        self.assertGreater(m.get("exitgw_nat_translations_total", direction="out"), 0)
        self.assertGreater(m.get("exitgw_nat_blocks_allocated_total"), 0)

    def test_internet_cannot_reach_a_client_without_a_mapping(self):
        # Unsolicited traffic to the pool or a tailnet address is dropped and counted.
        m0 = L.Metrics(NAME)
        p = L.lab_exec(NAME, "inet", "ping", "-c", "1", "-W", "1", "100.64.0.11", timeout=10)
        self.assertIn(" 100% packet loss", p.stdout, p.stdout)
        send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                f"[s.sendto(b'x', ('{POOL}', 40000 + i)) for i in range(5)]")
        L.lab_exec(NAME, "inet", "/usr/bin/python3", "-c", send, timeout=10)
        time.sleep(0.5)
        m1 = L.Metrics(NAME)
        self.assertEqual(m1.get("exitgw_drops_total", reason="nat_no_mapping") -
                         m0.get("exitgw_drops_total", reason="nat_no_mapping"), 5)
        self.assertGreater(m1.get("exitgw_drops_total", reason="nat_unsupported_icmp"),
                           m0.get("exitgw_drops_total", reason="nat_unsupported_icmp"))

    # IPv6 through the exit: the clients' tailnet IPv6 addresses leave as NPTv6 pool addresses.
    def test_ping6_through_the_exit(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, "ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", SERVER6,
                               timeout=20)
                self.assertEqual(p.returncode, 0, p.stdout + L.Metrics(NAME).drops_text())
                self.assertIn(" 0% packet loss", p.stdout)

    def test_ipv6_server_sees_the_npt_pool_address_and_a_download_completes(self):
        for c in CLIENTS:
            with self.subTest(client=c):
                p = L.lab_exec(NAME, c, "curl", "-s", "-m", "5", f"http://[{SERVER6}]/whoami",
                               timeout=10)
                self.assertTrue(p.stdout.startswith(nptv6(tailnet6(c)) + ":"),
                                f"{c}: {p.stdout!r}, expected {nptv6(tailnet6(c))}")
                p = L.lab_exec(NAME, c, "curl", "-sS", "-o", "/dev/null", "--connect-timeout", "5",
                               "--max-time", "90", "-w", "%{size_download} %{speed_download}",
                               f"http://[{SERVER6}]/64M.bin", timeout=100)
                self.assertEqual(p.returncode, 0, p.stdout)
                size, speed = p.stdout.split()[-2:]
                self.assertEqual(int(float(size)), BIG)
                print("\n  %s: 64 MiB over IPv6 at %.0f Mbit/s" % (c, float(speed) * 8 / 1e6),
                      end=" ")

    def test_ipv6_iperf3(self):
        p = L.lab_exec(NAME, CLIENTS[0], "iperf3", "-6", "-c", SERVER6, "-t", "3",
                       "--connect-timeout", "4000", timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("receiver", p.stdout)

    def test_ipv6_path_mtu_discovery_finds_the_tunnel_mtu(self):
        # IPv6 routers never fragment: a packet from the internet larger than the tunnel MTU
        # draws Packet Too Big with the tunnel's MTU, and the sender's kernel learns it.
        c = CLIENTS[0]
        before = L.Metrics(NAME).get("exitgw_drops_total", reason="wg_too_large")
        p = L.lab_exec(NAME, "inet", "ping", "-6", "-c", "1", "-W", "2", "-s", "1452",
                       nptv6(tailnet6(c)), timeout=10)
        self.assertIn("Packet too big: mtu=1420", p.stdout, p.stdout)
        self.assertEqual(L.Metrics(NAME).get("exitgw_drops_total", reason="wg_too_large") - before,
                         1)
        # Hop limit 1 from a client: time exceeded from the gateway's internet address.
        p = L.lab_exec(NAME, c, "ping", "-6", "-c", "1", "-W", "2", "-t", "1", SERVER6, timeout=10)
        self.assertIn("Time exceeded: Hop limit", p.stdout, p.stdout)
        self.assertIn("From 2001:db8:1::1", p.stdout, p.stdout)


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
