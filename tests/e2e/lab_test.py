#!/usr/bin/env python3
"""E2E: the namespace lab (tools/lab) and what the gateway does on it today.

  /usr/bin/python3 tests/e2e/lab_test.py --exitgw build/control/exitgw [-v] [unittest args]

Runs as root; builds labs with names unique to this process and always takes them down.
"""
import os
import signal
import subprocess
import sys
import tempfile
import unittest

import labutil as L

NAME = L.lab_name("e2e")


def setUpModule():
    L.down(NAME)
    L.up(NAME)


def tearDownModule():
    L.down(NAME)


class LabTest(unittest.TestCase):
    def test_gateway_answers_ping_on_tunnel_lan(self):
        for client in ("c1", "c2"):
            p = L.lab_exec(NAME, client, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.0.1")
            self.assertEqual(p.returncode, 0, "%s could not ping 10.77.0.1:\n%s" % (client, p.stdout))
            self.assertIn(" 0% packet loss", p.stdout)
        self.assertGreaterEqual(L.metric_sum(NAME, "exitgw_icmp_echo_replies_total"), 4)

    def test_gateway_answers_ping6_and_resolved_its_ipv6_router(self):
        # The kernel in P-inet resolves 2001:db8:1::1 by neighbor solicitation (the gateway
        # answers), pings it, and was itself resolved as --internet_gateway6 at start. The
        # gateway's own solicitation taught the kernel its MAC already: forget it first.
        L.lab_exec(NAME, "inet", "ip", "-6", "neigh", "flush", "dev", "eth0")
        p = L.lab_exec(NAME, "inet", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1200",
                       "2001:db8:1::1")
        self.assertEqual(p.returncode, 0, "inet could not ping6 the gateway:\n%s" % p.stdout)
        self.assertIn(" 0% packet loss", p.stdout)
        p = L.lab_exec(NAME, "inet", "ip", "-6", "neigh", "show", "2001:db8:1::1", "dev", "eth0")
        self.assertIn("lladdr", p.stdout, "the gateway's address did not resolve: %s" % p.stdout)
        self.assertGreaterEqual(L.metric_sum(NAME, "exitgw_icmpv6_echo_replies_total"), 3)
        self.assertGreaterEqual(L.metric_sum(NAME, "exitgw_nd_advertisements_sent_total"), 1)
        self.assertTrue(L.wait_until(
            lambda: L.metric_sum(NAME, "exitgw_ipv6_neighbors") >= 1 and
            L.metric_sum(NAME, "exitgw_nd_learned_total") >= 1, 5),
            "the gateway did not learn its IPv6 router")
        for reason in ("nd_malformed", "nd_bad_hop_limit", "icmp6_bad_checksum",
                       "ipv6_bad_source", "ipv6_ext_malformed"):
            self.assertEqual(L.metric_sum(NAME, "exitgw_drops_total", reason=reason), 0, reason)

    def test_gateway_is_ready_and_labelled(self):
        self.assertEqual(L.readyz(NAME), "200")
        self.assertEqual(L.metric_sum(NAME, "exitgw_workers", region="lab", node=NAME + "-gw"), 2)

    def test_up_again_on_a_running_lab_says_so(self):
        p = L.lab("up", "--name", NAME, "--exitgw", L.EXITGW)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("already up", p.stdout)

    def test_exec_passes_the_exit_code_through(self):
        self.assertEqual(L.lab_exec(NAME, "inet", "sh", "-c", "exit 7").returncode, 7)
        self.assertEqual(L.lab_exec(NAME, "c1", "true").returncode, 0)
        self.assertNotEqual(L.lab_exec(NAME, "nosuchhost", "true").returncode, 0)

    def test_internet_servers_answer_inside_inet(self):
        # Local to PREFIX-inet: proves the servers before any tunnel exists.
        p = L.lab_exec(NAME, "inet", "curl", "-sS", "--max-time", "5", "http://%s/" % L.SERVER)
        self.assertIn("hello", p.stdout)
        p = L.lab_exec(NAME, "inet", sys.executable, os.path.join(L.REPO, "tools", "lab_servers.py"),
                       "dns-query", L.SERVER, "x.lab.test")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("A %s" % L.SERVER, p.stdout)
        p = L.lab_exec(NAME, "inet", sys.executable, os.path.join(L.REPO, "tools", "lab_servers.py"),
                       "udp-probe", L.SERVER)
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_files_for_the_daemon(self):
        d = os.path.join(L.STATE_ROOT, NAME)
        self.assertEqual(os.stat(os.path.join(d, "gateway.key")).st_mode & 0o777, 0o600)
        with open(os.path.join(d, "peers.conf")) as f:
            peers = f.read()
        self.assertGreaterEqual(peers.splitlines().count("[Peer]"), 2)  # add-client may add more
        self.assertIn("AllowedIPs = 100.64.0.11/32", peers)
        self.assertIn("User = c2@lab.test", peers)
        with open(os.path.join(d, "exitgw.flags")) as f:
            flags = f.read()
        self.assertIn("--tunnel_port=net_af_packet0", flags)
        self.assertIn("--node=%s-gw" % NAME, flags)

    def test_status_reports_up(self):
        p = L.lab("status", "--name", NAME)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("lab %s: UP" % NAME, p.stdout)
        self.assertIn("readyz 200", p.stdout)

    def test_two_labs_side_by_side_do_not_clash(self):
        other = L.lab_name("e2x")
        L.down(other)
        try:
            L.up(other, clients=1)
            self.assertEqual(L.readyz(other), "200")
            self.assertEqual(L.readyz(NAME), "200")
            p = L.lab_exec(other, "c1", "ping", "-c", "1", "-W", "2", "10.77.0.1")
            self.assertEqual(p.returncode, 0, p.stdout)
            p = L.lab_exec(NAME, "c1", "ping", "-c", "1", "-W", "2", "10.77.0.1")
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertTrue(set(L.namespaces(other)).isdisjoint(L.namespaces(NAME)))
            self.assertTrue(set(L.wg_sockets(other)).isdisjoint(L.wg_sockets(NAME)))
        finally:
            self.assertEqual(L.down(other).returncode, 0)
        self.assertEqual(L.namespaces(other), [])
        self.assertEqual(L.readyz(NAME), "200", "taking the other lab down hurt this one")

    def test_add_client_gets_next_addresses(self):
        p = L.lab("add-client", "--name", NAME, "c9")
        self.assertEqual(p.returncode, 0, p.stdout)
        c = [x for x in L.state(NAME)["clients"] if x["name"] == "c9"][0]
        self.assertEqual((c["veth_addr"], c["tailnet"]), ("10.77.0.13", "100.64.0.13"))
        with open(os.path.join(L.STATE_ROOT, NAME, "peers.conf")) as f:
            peers = f.read()
        self.assertIn("AllowedIPs = 100.64.0.13/32", peers)
        self.assertIn("User = c9@lab.test", peers)
        p = L.lab_exec(NAME, "c9", "ping", "-c", "1", "-W", "2", "10.77.0.1")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(L.lab("status", "--name", NAME).returncode, 0)

    def test_down_is_idempotent_and_cleans_everything(self):
        name = L.lab_name("e2d")
        L.down(name)
        L.up(name, clients=2)
        recorded = L.pids(name)
        self.assertTrue({"exitgw", "servers", "iperf3", "wg-c1", "wg-c2"} <= set(recorded))
        # A crash: the gateway and one client die hard, pid files stay behind.
        os.kill(recorded["exitgw"], signal.SIGKILL)
        os.kill(recorded["wg-c1"], signal.SIGKILL)
        L.wait_until(lambda: not L.pid_running(recorded["exitgw"]), 5)
        p = L.lab("up", "--name", name, "--exitgw", L.EXITGW)
        self.assertNotEqual(p.returncode, 0, "up over a broken lab must refuse")
        self.assertIn("tools/lab down --name %s" % name, p.stdout)
        for _ in range(2):
            p = L.down(name)
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertEqual(L.namespaces(name), [])
            self.assertEqual(L.wg_sockets(name), [])
            self.assertFalse(os.path.exists(os.path.join(L.STATE_ROOT, name)))
            self.assertFalse(os.path.exists("/var/run/dpdk/" + name))
            running = {k: v for k, v in recorded.items() if L.pid_running(v)}
            self.assertEqual(running, {})
        self.assertEqual(L.readyz(NAME), "200", "taking another lab down hurt this one")

    def test_up_refuses_a_binary_without_a_flag_the_lab_needs(self):
        # A stand-in whose help is exitgw's minus --domain_list_file: the lab must not run a
        # gateway without it (it used to note the flag as "not accepted" and carry on).
        help_text = subprocess.run([L.EXITGW, "--help"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True).stdout
        self.assertIn("-domain_list_file", help_text)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "help.txt"), "w") as f:
                f.write("".join(ln + "\n" for ln in help_text.splitlines()
                                if "-domain_list_file" not in ln))
            fake = os.path.join(d, "exitgw")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\ncat %s/help.txt\n" % d)
            os.chmod(fake, 0o755)
            name = L.lab_name("e2f")
            p = L.lab("up", "--name", name, "--exitgw", fake)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("does not accept --domain_list_file, which the lab needs", p.stdout)
        self.assertEqual(L.namespaces(name), [], "nothing is built for a refused binary")

    def connector(self):
        """The exitgw-connector beside the exitgw under test (build/connector/)."""
        return os.path.join(os.path.dirname(os.path.dirname(L.EXITGW)), "connector",
                            "exitgw-connector")

    def test_demo_defaults_to_the_tailnet_and_exit_code_follows_a_failed_check(self):
        # The default demo is the tailnet one: a tailscaled client selects exitgw as its exit
        # node. An iperf3 floor no veth reaches: that check fails, says what it required and
        # measured, the summary says FAIL and the exit code is 1; the other checks pass.
        name = L.lab_name("e2m")
        L.down(name)
        try:
            p = L.lab("demo", "--name", name, "--clients", "1", "--exitgw", L.EXITGW,
                      "--connector", self.connector(), "--iperf-floor", "1000000", timeout=300)
        finally:
            L.down(name)
        self.assertEqual(p.returncode, 1, p.stdout)
        lines = p.stdout.splitlines()
        iperf = [ln for ln in lines if "iperf3 tcp 5s" in ln and "requires" in ln]
        self.assertTrue(iperf and " FAIL " in iperf[0], p.stdout)
        self.assertIn("requires >= 1000000 Mbit/s received", iperf[0])
        self.assertRegex(iperf[0], r"measured \d+ Mbit/s received")
        failed = [ln for ln in lines if " FAIL " in ln and "requires" in ln]
        self.assertEqual(len(failed), 1, "only the iperf3 check may fail:\n" + p.stdout)
        self.assertTrue(any(ln.startswith("== FAIL: ") for ln in lines), p.stdout)
        # The tailnet's own checks ran and passed: exit node selected, first byte timed,
        # the NAT pool seen by the server, a direct path, the gateway-side handshake.
        for label in ("exit-node list", "exit ttfb", "nat source", "direct path", "handshake"):
            got = [ln for ln in lines if ln.startswith("  c1    %s " % label)]
            self.assertTrue(got and " PASS " in got[0], "%s:\n%s" % (label, p.stdout))
        self.assertRegex(p.stdout, r"exit ttfb +PASS requires first byte .* measured [\d.]+ s")
        self.assertIn("via 10.77.0.1:51820", [ln for ln in lines if "direct path" in ln][0])
        self.assertIn("== c1: tailscale status ==", p.stdout)
        self.assertNotIn("wg show", p.stdout)

    def test_demo_wireguard_go_option_passes(self):
        name = L.lab_name("e2w")
        L.down(name)
        try:
            p = L.lab("demo", "--name", name, "--clients", "1", "--exitgw", L.EXITGW,
                      "--wireguard-go", timeout=300)
        finally:
            L.down(name)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertTrue(any(ln.startswith("== PASS: ") for ln in p.stdout.splitlines()), p.stdout)
        self.assertIn("== peers (wg show on the clients) ==", p.stdout)
        self.assertNotIn("exit ttfb", p.stdout)

    def test_demo_refuses_tailnet_with_wireguard_go(self):
        name = L.lab_name("e2x")
        p = L.lab("demo", "--name", name, "--exitgw", L.EXITGW, "--tailnet", "--wireguard-go")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("--tailnet and --wireguard-go exclude each other", p.stdout)
        self.assertEqual(L.namespaces(name), [], "nothing is built for a refused demo")

if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
