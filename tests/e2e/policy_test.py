#!/usr/bin/env python3
"""E2E: exit approval and the tailnet policy, with real wireguard-go clients (tools/lab).

  /usr/bin/python3 tests/e2e/policy_test.py --exitgw build/control/exitgw [-v]

The lab runs conf/policy.hujson: members may use the exit, tag:server may reach the lab's web
servers on TCP 80/443 only, tag:quarantine is granted nothing; approval comes from the lab's
approvals file, watched by the gateway.
"""
import os
import sys
import time
import unittest

import labutil as L

NAME = L.lab_name("pt")
SERVER6 = "2001:db8:5::10"  # tools/lab SERVER6


def approvals(text):
    path = os.path.join(L.lab_dir(NAME), "approvals.conf")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # atomic, as a control service would write it


def reaches(host, count=3):
    tx, rx, _ = L.ping(NAME, host, L.SERVER, count=count, interval=0.2, wait=2)
    return rx


class PolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        L.down(NAME)
        L.up(NAME, clients=1)
        L.lab("add-client", "--name", NAME, "q1", "--tags", "tag:quarantine", check=True)
        L.lab("add-client", "--name", NAME, "s1", "--tags", "tag:server", check=True)
        cls.missing = L.ensure_handshakes(NAME, ("c1", "q1", "s1"), timeout=25)

    @classmethod
    def tearDownClass(cls):
        L.down(NAME)

    def test_member_uses_the_exit(self):
        self.assertEqual(self.missing, set())
        self.assertGreater(reaches("c1"), 0)
        self.assertTrue(L.wait_until(
            lambda: L.Metrics(NAME).get("exitgw_policy_rule_hits_total", rule="grants[1]") > 0, 3))

    def test_peer_without_the_internet_grant_is_blocked(self):
        m0 = L.Metrics(NAME)
        self.assertEqual(reaches("q1"), 0)
        p = L.lab_exec(NAME, "q1", "curl", "-s", "-m", "3", f"http://{L.SERVER}/whoami", timeout=10)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        m1 = L.Metrics(NAME)
        self.assertGreaterEqual(m1.get("exitgw_drops_total", reason="policy_denied") -
                                m0.get("exitgw_drops_total", reason="policy_denied"), 3)

    def test_grant_limits_ports_and_protocols(self):
        # tag:server: TCP 80 to the web servers, nothing else.
        self.assertEqual(reaches("s1"), 0)
        p = L.lab_exec(NAME, "s1", "curl", "-s", "-m", "5", f"http://{L.SERVER}/whoami", timeout=10)
        self.assertEqual(p.returncode, 0, p.stdout)
        # Rule counters are summed by the control loop every 100 ms.
        self.assertTrue(L.wait_until(
            lambda: L.Metrics(NAME).get("exitgw_policy_rule_hits_total", rule="acls[0]") > 0, 3))

    def test_domain_list_blocks_a_name_and_lets_others_through(self):
        # A DNS query is the first packet of a lookup: the gateway matches its name.
        query = (
            "import socket, struct, sys\n"
            "name = sys.argv[1]\n"
            "q = struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)\n"
            "q += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\0'\n"
            "q += struct.pack('!HH', 1, 1)\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\n"
            "s.sendto(q, ('%s', 53))\n"
            "try:\n    s.recv(512); print('answered')\n"
            "except socket.timeout:\n    print('no answer')\n" % L.SERVER)
        m0 = L.Metrics(NAME).get("exitgw_domain_matches_total", action="block")
        # conf/domains.conf: "block exact blocked.lab.test" is its fifth rule (index 4).
        rule = dict(rule="4", pattern="blocked.lab.test", action="block")
        r0 = L.Metrics(NAME).get("exitgw_domain_rule_matches_total", **rule)
        p = L.lab_exec(NAME, "c1", "/usr/bin/python3", "-c", query, "c1.lab.test", timeout=10)
        self.assertIn("answered", p.stdout)
        p = L.lab_exec(NAME, "c1", "/usr/bin/python3", "-c", query, "blocked.lab.test", timeout=10)
        self.assertIn("no answer", p.stdout)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
            "exitgw_domain_matches_total", action="block") > m0, 3))
        # The per-rule series is summed by control once a second.
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
            "exitgw_domain_rule_matches_total", **rule) > r0, 5))
        self.assertIn("domain_match action=block", L.gateway_log(NAME))

    def test_domain_list_blocks_an_http_host_over_ipv6(self):
        """The same list on the IPv6 chain: an HTTP request to the IPv6 server whose Host is a
        blocked name is dropped (its TCP handshake passes, its first data segment does not);
        another Host gets its answer."""
        def fetch(host):
            p = L.nsrun(NAME, "c1", "curl", "-sS", "-m", "3", "-H", "Host: " + host,
                        "http://[%s]/whoami" % SERVER6, timeout=10)
            return p.returncode == 0 and p.stdout.strip() != ""

        rule = dict(rule="4", pattern="blocked.lab.test", action="block")
        m0 = L.Metrics(NAME).get("exitgw_domain_matches_total", action="block")
        r0 = L.Metrics(NAME).get("exitgw_domain_rule_matches_total", **rule)
        self.assertTrue(fetch("c1.lab.test"), "c1 gets no HTTP answer from %s" % SERVER6)
        self.assertFalse(fetch("blocked.lab.test"), "a blocked Host was answered over IPv6")
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
            "exitgw_domain_matches_total", action="block") > m0, 3))
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
            "exitgw_domain_rule_matches_total", **rule) > r0, 5))

    def test_unapproved_node_forwards_nothing_and_resumes_when_approved(self):
        self.assertGreater(reaches("c1"), 0)
        try:
            approvals("exit-node unapproved\n")
            self.assertTrue(L.wait_until(
                lambda: L.Metrics(NAME).get("exitgw_exit_approved") == 0, timeout=5))
            m0 = L.Metrics(NAME)
            self.assertEqual(reaches("c1"), 0)
            self.assertGreaterEqual(L.Metrics(NAME).get("exitgw_drops_total", reason="exit_not_approved") -
                                    m0.get("exitgw_drops_total", reason="exit_not_approved"), 3)
            # Handshakes are still answered while unapproved.
            self.assertGreater(L.latest_handshake(NAME, "c1"), 0)
        finally:
            approvals("exit-node approved\n")
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_exit_approved") == 1,
                                     timeout=5))
        self.assertGreater(reaches("c1"), 0)

    def test_bad_approvals_file_changes_nothing(self):
        self.assertGreater(reaches("c1"), 0)
        before = L.Metrics(NAME).get("exitgw_policy_reloads_total", result="rejected")
        approvals("exit-node approved\nthis is not an approval\n")
        self.assertTrue(L.wait_until(
            lambda: L.Metrics(NAME).get("exitgw_policy_reloads_total", result="rejected") > before,
            timeout=5))
        self.assertEqual(L.Metrics(NAME).get("exitgw_exit_approved"), 1)
        self.assertGreater(reaches("c1"), 0)
        self.assertIn("approvals.conf:2", L.gateway_log(NAME))
        approvals("exit-node approved\n")


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
