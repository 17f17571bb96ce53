#!/usr/bin/env python3
"""E2E: the admin API through exitgwctl against the running gateway (tools/lab).

  /usr/bin/python3 tests/e2e/admin_test.py --exitgw build/control/exitgw [-v]

Updates go through the one typed update path: a bad one changes nothing, every applied one
advances the generation, peers added by the API coexist with the peers file's and cannot
take them over, approval set by the API stops forwarding at once.
"""
import json
import os
import subprocess
import sys
import unittest

import labutil as L

NAME = L.lab_name("ad")
def ctl(*args, token=None):
    # exitgwctl from the same build as the daemon under test.
    binary = os.path.realpath(os.path.join(os.path.dirname(L.EXITGW), "..", "tools", "exitgwctl"))
    token = token or os.path.join(L.lab_dir(NAME), "admin.token")
    p = L.nsrun(NAME, "gw", binary, "--token-file", token, *args, timeout=20)
    return p.returncode, p.stdout


def wg_pubkey():
    priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    return subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, text=True,
                          check=True).stdout.strip()


class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        L.down(NAME)
        L.up(NAME, clients=1)
        L.ensure_handshakes(NAME, ("c1",), timeout=25)

    @classmethod
    def tearDownClass(cls):
        L.down(NAME)

    def status(self):
        rc, out = ctl("--json", "status")
        self.assertEqual(rc, 0, out)
        return json.loads(out)

    def test_status_and_peers(self):
        st = self.status()
        self.assertIn("generation", st)
        rc, out = ctl("--json", "peers")
        self.assertEqual(rc, 0, out)
        peers = json.loads(out)
        peers = peers.get("peers", peers) if isinstance(peers, dict) else peers
        self.assertEqual(len(peers), 1)
        self.assertEqual(peers[0]["source"], "file")

    def test_peer_added_and_removed_through_the_api_advances_the_generation(self):
        g0 = self.status()["generation"]
        key = wg_pubkey()
        rc, out = ctl("peer", "add", key, "--allowed-ips", "100.64.0.50/32", "--user",
                      "dave@lab.test")
        self.assertEqual(rc, 0, out)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_wg_peers") == 2, 5))
        self.assertGreater(self.status()["generation"], g0)
        rc, out = ctl("peer", "remove", key)
        self.assertEqual(rc, 0, out)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_wg_peers") == 1, 5))

    def test_bad_updates_are_rejected_and_change_nothing(self):
        c1 = L.client(NAME, "c1")
        g0 = self.status()["generation"]
        # Allowed IPs that another peer (the file's c1) already has: refused.
        rc, out = ctl("peer", "add", wg_pubkey(), "--allowed-ips", c1["tailnet"] + "/32")
        self.assertEqual(rc, 1, out)
        # A peer owned by the peers file cannot be removed through the API.
        rc, out = ctl("peer", "remove", c1["pub"])
        self.assertEqual(rc, 1, out)
        # A key that is not a key, and a wrong token.
        rc, out = ctl("peer", "add", "not-a-key", "--allowed-ips", "100.64.0.60/32")
        self.assertNotEqual(rc, 0, out)
        bad = os.path.join(L.lab_dir(NAME), "bad.token")
        with open(bad, "w") as f:
            f.write("0123456789abcdef0123456789\n")
        os.chmod(bad, 0o600)
        rc, out = ctl("status", token=bad)
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.status()["generation"], g0)
        self.assertEqual(L.Metrics(NAME).get("exitgw_wg_peers"), 1)
        tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=2)
        self.assertGreater(rx, 0, out)

    def test_unapprove_stops_forwarding_at_once_and_clear_restores_it(self):
        try:
            rc, out = ctl("unapprove")
            self.assertEqual(rc, 0, out)
            self.assertEqual(L.Metrics(NAME).get("exitgw_exit_approved"), 0)
            tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=2)
            self.assertEqual(rx, 0, out)
        finally:
            rc, out = ctl("approval", "clear")
            self.assertEqual(rc, 0, out)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_exit_approved") == 1, 5))
        tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=2)
        self.assertGreater(rx, 0, out)


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    unittest.main(verbosity=2)
