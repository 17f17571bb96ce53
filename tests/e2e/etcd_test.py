#!/usr/bin/env python3
"""E2E: a gateway fed by a real etcd region prefix (tools/lab + etcd in the gateway's namespace).

  /usr/bin/python3 tests/e2e/etcd_test.py --exitgw build/control/exitgw [-v]

A peer written to etcd is served (its wireguard-go client gets through the exit), deleting it
cuts it off at once, the node's approval follows its etcd key, the region's policy key replaces
the policy file's (a bad value changes nothing) until deleted, and the node's status key is
kept alive under a lease.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import labutil as L

NAME = L.lab_name("et")
CLIENT_PORT, PEER_PORT = 23790, 23800
PREFIX = "/exitgw/lab/"
ENDPOINT = "http://127.0.0.1:%d" % CLIENT_PORT


def etcdctl(*args):
    return L.nsrun(NAME, "gw", "env", "ETCDCTL_API=3", "etcdctl", "--endpoints", ENDPOINT, *args,
                   timeout=15)


def urlkey(pub):
    return base64.urlsafe_b64encode(base64.b64decode(pub)).decode().rstrip("=")


class EtcdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("etcd") or not shutil.which("etcdctl"):
            raise unittest.SkipTest("etcd not installed (tools/install-deps)")
        cls.work = tempfile.mkdtemp(prefix="exitgw-etcd-")
        L.down(NAME)
        L.up(NAME, clients=1, extra=("--gw-flag", "etcd_endpoints=" + ENDPOINT,
                                     "--gw-flag", "etcd_prefix=" + PREFIX,
                                     "--gw-flag", "etcd_status_ttl=5"))
        cls.etcd = L.nsspawn(NAME, "gw", "etcd", "--name", "e2e", "--data-dir",
                             os.path.join(cls.work, "data"),
                             "--listen-client-urls", ENDPOINT, "--advertise-client-urls", ENDPOINT,
                             "--listen-peer-urls", "http://127.0.0.1:%d" % PEER_PORT,
                             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % PEER_PORT,
                             "--initial-cluster", "e2e=http://127.0.0.1:%d" % PEER_PORT,
                             out=os.path.join(cls.work, "etcd.log"))
        ok = L.wait_until(lambda: etcdctl("endpoint", "health").returncode == 0, 20)
        if not ok:
            raise RuntimeError("etcd did not start: " + open(os.path.join(cls.work, "etcd.log")).read()[-2000:])
        # A second client whose peer lives only in etcd: add it with the lab, then move its
        # [Peer] from the peers file into etcd.
        L.lab("add-client", "--name", NAME, "c2", check=True)
        c2 = L.client(NAME, "c2")
        text = L.read_peers(NAME)
        L.write_peers(NAME, L.peers_without(text, c2["pub"]))
        cls.c2 = c2

    @classmethod
    def tearDownClass(cls):
        try:
            L.stop(cls.etcd)
            L.down(NAME)
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)

    def reaches(self, host):
        return L.ping(NAME, host, L.SERVER, count=2, wait=2)[1]

    def test_peer_from_etcd_is_served_and_deleting_it_cuts_it_off(self):
        key = PREFIX + "peers/" + urlkey(self.c2["pub"])
        peer = {"public_key": self.c2["pub"], "allowed_ips": [self.c2["tailnet"] + "/32"],
                "user": "c2@lab.test"}
        self.assertEqual(etcdctl("put", key, json.dumps(peer)).returncode, 0)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_wg_peers") == 2, 10),
                        L.gateway_log(NAME)[-2000:])
        self.assertTrue(L.wait_until(lambda: self.reaches("c2") > 0, 20))
        self.assertEqual(etcdctl("del", key).returncode, 0)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_wg_peers") == 1, 10))
        self.assertEqual(self.reaches("c2"), 0)
        self.assertGreater(self.reaches("c1"), 0)  # the file's peer never noticed

    def test_approval_follows_the_etcd_key(self):
        key = PREFIX + "nodes/%s-gw/approval" % NAME
        try:
            etcdctl("put", key, "unapproved")
            self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_exit_approved") == 0, 10))
            self.assertEqual(self.reaches("c1"), 0)
        finally:
            etcdctl("del", key)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get("exitgw_exit_approved") == 1, 10))

    def test_node_status_is_written_under_a_lease(self):
        key = PREFIX + "status/%s-gw" % NAME
        self.assertTrue(L.wait_until(lambda: etcdctl("get", key).stdout.strip() != "", 15))
        out = etcdctl("get", key, "-w", "json").stdout
        kv = json.loads(out)["kvs"][0]
        self.assertGreater(int(kv.get("lease", 0)), 0)
        status = json.loads(base64.b64decode(kv["value"]))
        self.assertIn("generation", status)
        self.assertEqual(L.Metrics(NAME).get("exitgw_update_source_healthy", source="etcd"), 1)

    def udp_echo(self, host="c1"):
        p = L.lab_exec(NAME, host, sys.executable, os.path.join(L.REPO, "tools", "lab_servers.py"),
                       "udp-probe", L.SERVER, "--count", "2", "--timeout", "1")
        return p.returncode == 0

    def test_policy_key_replaces_the_file_policy_until_deleted(self):
        key = PREFIX + "policy"
        # The lab's "internet" is TEST-NET-2, refused unless the policy names it.
        http_only = ('{"grants": [{"src": ["autogroup:member"], '
                     '"dst": ["autogroup:internet", "198.51.100.0/24"], "ip": ["tcp:80"]}]}')
        self.assertTrue(L.wait_until(self.udp_echo, 10), "no UDP echo before the test")
        try:
            self.assertEqual(etcdctl("put", key, http_only).returncode, 0)
            self.assertTrue(L.wait_until(
                lambda: L.Metrics(NAME).get("exitgw_policy_source", source="etcd") == 1, 10),
                L.gateway_log(NAME)[-2000:])
            self.assertFalse(self.udp_echo(), "UDP still gets through an HTTP-only etcd policy")
            p = L.lab_exec(NAME, "c1", "curl", "-sS", "--max-time", "5", "http://%s/" % L.SERVER)
            self.assertIn("hello", p.stdout)
            # A value that does not parse: refused, reported, the etcd policy keeps running.
            seen = len(L.gateway_log(NAME))
            self.assertEqual(etcdctl("put", key, '{"grants": [').returncode, 0)
            self.assertTrue(L.wait_until(
                lambda: "etcd policy:1:" in L.gateway_log(NAME)[seen:], 10),
                L.gateway_log(NAME)[seen:][-2000:])
            self.assertEqual(L.Metrics(NAME).get("exitgw_policy_source", source="etcd"), 1)
            self.assertFalse(self.udp_echo())
        finally:
            etcdctl("del", key)
        self.assertTrue(L.wait_until(
            lambda: L.Metrics(NAME).get("exitgw_policy_source", source="file") == 1, 10))
        self.assertTrue(L.wait_until(self.udp_echo, 10), "no UDP echo after the key was deleted")


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
