#!/usr/bin/env python3
"""E2E: the tailnet endpoints of the admin API against the running gateway (tools/lab), as
exitgw-connector uses them.

  /usr/bin/python3 tests/e2e/tailnet_api_test.py --exitgw build/control/exitgw [-v]

PUT /v1/filter (here through `exitgwctl filter set`) installs the tailnet's compiled packet
filter in the same classifier: a client it grants reaches the server through the exit, a client
it does not is dropped and counted (policy_denied); clearing it brings the HuJSON
policy back. PUT /v1/tailnet reports the connector's health: `exitgwctl status` says
"tailnet: stale since ...", the metrics follow, /readyz does not.
"""
import base64
import json
import os
import sys
import tempfile
import unittest

import labutil as L

NAME = L.lab_name("tn")
# autogroup:internet as the coordination server sends it (TAILNET.md), as CIDRs, plus the lab's
# "internet" (TEST-NET-2, a built-in safety range: reachable only where a rule names it).
INTERNET = ["0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4", "32.0.0.0/3",
            "64.0.0.0/3", "96.0.0.0/6", "100.0.0.0/10", "100.128.0.0/9", "101.0.0.0/8",
            "102.0.0.0/7", "104.0.0.0/5", "112.0.0.0/4", "128.0.0.0/3", "160.0.0.0/5",
            "168.0.0.0/8", "169.0.0.0/9", "169.128.0.0/10", "169.192.0.0/11", "169.224.0.0/12",
            "169.240.0.0/13", "169.248.0.0/14", "169.252.0.0/15", "169.255.0.0/16",
            "170.0.0.0/7", "172.0.0.0/12", "172.32.0.0/11", "172.64.0.0/10", "172.128.0.0/9",
            "173.0.0.0/8", "174.0.0.0/7", "176.0.0.0/4", "192.0.0.0/9", "192.128.0.0/11",
            "192.160.0.0/13", "192.169.0.0/16", "192.170.0.0/15", "192.172.0.0/14",
            "192.176.0.0/12", "192.192.0.0/10", "193.0.0.0/8", "194.0.0.0/7", "196.0.0.0/6",
            "200.0.0.0/5", "208.0.0.0/4", "224.0.0.0/3", "198.51.100.0/24"]


def ctl(*args):
    binary = os.path.realpath(os.path.join(os.path.dirname(L.EXITGW), "..", "tools", "exitgwctl"))
    token = os.path.join(L.lab_dir(NAME), "admin.token")
    p = L.nsrun(NAME, "gw", binary, "--token-file", token, *args, timeout=20)
    return p.returncode, p.stdout


def api(method, path, body=None):
    """A request as the connector sends it (exitgwctl has no command for these): (status
    code, body text)."""
    with open(os.path.join(L.lab_dir(NAME), "admin.token")) as f:
        token = f.read().strip()
    args = ["curl", "-sS", "-X", method, "--max-time", "5", "-H", "Authorization: Bearer " + token]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    p = L.nsrun(NAME, "gw", *args, "-w", "\n%{http_code}", "http://127.0.0.1:9551" + path,
                timeout=15)
    lines = p.stdout.strip().splitlines()
    return lines[-1], "\n".join(lines[:-1])


def put_tailnet(body):
    """PUT /v1/tailnet: the connector's health."""
    return api("PUT", "/v1/tailnet", body)[0]


def http_ok(host):
    p = L.lab_exec(NAME, host, "curl", "-sS", "--max-time", "4", "http://%s/" % L.SERVER)
    return "hello" in p.stdout


class TailnetApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        L.down(NAME)
        L.up(NAME, clients=2)
        L.ensure_handshakes(NAME, ("c1", "c2"), timeout=25)

    @classmethod
    def tearDownClass(cls):
        L.down(NAME)
        cls.tmp.cleanup()

    def write(self, name, body):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            json.dump(body, f)
        os.chmod(path, 0o644)
        return path

    def test_filter_grants_one_client_and_denies_the_other_until_cleared(self):
        self.assertTrue(L.wait_until(lambda: http_ok("c2"), 10), "c2 needs the exit first")
        c1 = L.client(NAME, "c1")
        address = c1["tailnet"]
        body = {"rules": [{"src": [address + "/32"],
                           "dst": [{"prefix": p, "ports": [0, 65535]} for p in INTERNET]}]}
        rc, out = ctl("filter", "set", self.write("filter.json", body))
        self.assertEqual(rc, 0, out)
        rc, out = ctl("--json", "status")
        self.assertEqual(json.loads(out)["policy"]["source"], "tailnet", out)
        self.assertTrue(L.wait_until(lambda: http_ok("c1"), 10), "c1 is granted")
        denied = L.metric_sum(NAME, "exitgw_drops_total", reason="policy_denied")
        # The server is in TEST-NET-2: without c1's explicit grant the safety range denies first.
        hits = L.metric_sum(NAME, "exitgw_policy_rule_hits_total", rule="builtin:test-net-2")
        self.assertFalse(http_ok("c2"), "c2 has no grant")
        self.assertTrue(L.wait_until(
            lambda: L.metric_sum(NAME, "exitgw_drops_total", reason="policy_denied") > denied, 5))
        self.assertGreater(L.metric_sum(NAME, "exitgw_policy_rule_hits_total",
                                        rule="builtin:test-net-2"), hits)
        self.assertGreater(L.metric_sum(NAME, "exitgw_policy_rule_hits_total", rule="tailnet[0]"),
                           0)
        # A bad filter is refused whole, naming the rule and field; the good one stays.
        bad = {"rules": [body["rules"][0], {"src": ["100.64.0.12/32"],
                                            "dst": [{"prefix": "2001:db8::1/32", "ports": [0, 1]}]}]}
        rc, out = ctl("filter", "set", self.write("bad.json", bad))
        self.assertEqual(rc, 1, out)
        self.assertIn("rules[1].dst[0].prefix", out)
        self.assertFalse(http_ok("c2"))
        rc, out = ctl("filter", "clear")
        self.assertEqual(rc, 0, out)
        self.assertTrue(L.wait_until(lambda: http_ok("c2"), 10), "the HuJSON policy is back")

    def test_tailnet_peers_are_their_own_source(self):
        """The connector's peers (PUT /v1/tailnet/peers) show with source tailnet; the
        operator's exitgwctl cannot remove them, and an empty set removes only them."""
        key = base64.b64encode(os.urandom(32)).decode()
        def owners():
            rc, out = ctl("--json", "peers")
            self.assertEqual(rc, 0, out)
            return {p["public_key"]: p["source"] for p in json.loads(out)["peers"]}

        before = owners()
        code, out = api("PUT", "/v1/tailnet/peers",
                        {"peers": [{"public_key": key, "allowed_ips": ["100.100.200.1/32"],
                                    "user": "tn@example.com"}]})
        self.assertEqual(code, "200", out)
        code, out = api("GET", "/v1/tailnet/peers")
        self.assertEqual([(p["public_key"], p["source"]) for p in json.loads(out)["peers"]],
                         [(key, "tailnet")], out)
        self.assertEqual(owners(), dict(before, **{key: "tailnet"}))
        rc, out = ctl("peer", "remove", key)
        self.assertEqual(rc, 1, out)
        self.assertIn("belongs to source tailnet", out)
        code, out = api("PUT", "/v1/tailnet/peers", {"peers": []})
        self.assertEqual(code, "200", out)
        self.assertEqual(owners(), before)

    def test_tailnet_health_in_status_and_metrics_not_readyz(self):
        rc, out = ctl("status")
        self.assertIn("tailnet: no connector has reported", out)
        self.assertEqual(L.metric_sum(NAME, "exitgw_tailnet_state", state="none"), 1)
        self.assertEqual(put_tailnet({"state": "ok", "since_unix_ms": 1700000000000,
                                      "last_netmap_unix_ms": 1700000000000,
                                      "node_key": "nodekey:00", "login_server": "https://hs"}),
                         "200")
        rc, out = ctl("status")
        self.assertIn("\ntailnet: ok\n", out)
        self.assertEqual(put_tailnet({"state": "stale", "since_unix_ms": 1700000000000,
                                      "last_netmap_unix_ms": 1700000000000,
                                      "message": "control server unreachable"}), "200")
        rc, out = ctl("status")
        self.assertIn("tailnet: stale since 2023-11-14T22:13:20Z (control server unreachable)",
                      out)
        self.assertEqual(L.metric_sum(NAME, "exitgw_tailnet_state", state="stale"), 1)
        self.assertEqual(L.metric_sum(NAME, "exitgw_tailnet_state", state="ok"), 0)
        self.assertGreater(L.metric_sum(NAME, "exitgw_tailnet_netmap_age_seconds"), 1e7)
        self.assertEqual(L.readyz(NAME), "200")
        self.assertEqual(put_tailnet({"state": "sleepy"}), "400")


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    unittest.main(verbosity=2)
