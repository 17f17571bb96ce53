#!/usr/bin/env python3
"""E2E: the namespace lab (tools/lab) and what the gateway does on it today.

  /usr/bin/python3 tests/e2e/lab_test.py --exitgw build/control/exitgw [-v] [unittest args]

Runs as root; builds labs with names unique to this process and always takes them down.
"""
import os
import signal
import sys
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


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    unittest.main(verbosity=2)
