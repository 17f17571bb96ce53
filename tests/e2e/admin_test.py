#!/usr/bin/env python3
"""E2E: the admin API through exitgwctl against the running gateway (tools/lab).

  /usr/bin/python3 tests/e2e/admin_test.py --exitgw build/control/exitgw [-v]

Updates go through the one typed update path: a bad one changes nothing, every applied one
advances the generation, peers added by the API coexist with the peers file's and cannot
take them over, approval set by the API stops forwarding at once, a policy PUT through the API
replaces the policy file's until it is deleted.
"""
import json
import os
import subprocess
import sys
import unittest

import labutil as L

NAME = L.lab_name("ad")
# HTTP only through the exit: the lab's UDP echo (198.51.100.10:7) is denied, its web server not.
# The lab's "internet" is TEST-NET-2, a range the exit refuses unless the policy names it.
HTTP_ONLY = """{
  // Members may browse, nothing else.
  "grants": [
    {"src": ["autogroup:member"], "dst": ["autogroup:internet", "198.51.100.0/24"], "ip": ["tcp:80"]},
  ],
}
"""


def udp_echo(host="c1"):
    """True when the lab's UDP echo answers every probe from `host` through the exit."""
    p = L.lab_exec(NAME, host, sys.executable, os.path.join(L.REPO, "tools", "lab_servers.py"),
                   "udp-probe", L.SERVER, "--count", "2", "--timeout", "1")
    return p.returncode == 0


def http_ok(host="c1"):
    p = L.lab_exec(NAME, host, "curl", "-sS", "--max-time", "5", "http://%s/" % L.SERVER)
    return "hello" in p.stdout

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

    def api(self, method, path, body=None, token=None, content_type="application/json"):
        """(HTTP status, JSON body) of a raw request to the running gateway's admin API."""
        if token is None:
            with open(os.path.join(L.lab_dir(NAME), "admin.token")) as f:
                token = f.read().strip()
        args = ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", "-X", method,
                "-H", "Authorization: Bearer " + token]
        if body is not None:
            path_file = os.path.join(L.lab_dir(NAME), "body%d.json" % os.getpid())
            with open(path_file, "w") as f:
                f.write(body)
            args += ["-H", "Content-Type: " + content_type, "--data-binary", "@" + path_file]
        p = L.nsrun(NAME, "gw", *args, "http://127.0.0.1:9551" + path, timeout=15)
        text, _, code = p.stdout.rpartition("\n")
        return int(code or 0), (json.loads(text) if text.strip() else None)

    def test_bad_bodies_overlaps_between_api_peers_and_wrong_tokens_change_nothing(self):
        key1, key2 = wg_pubkey(), wg_pubkey()
        url1 = "/v1/peers/" + key1.replace("+", "-").replace("/", "_").rstrip("=")
        url2 = "/v1/peers/" + key2.replace("+", "-").replace("/", "_").rstrip("=")
        good = json.dumps({"allowed_ips": ["100.64.0.70/32"], "user": "erin@lab.test"})
        code, body = self.api("PUT", url1, good)
        self.assertEqual(code, 200, body)
        try:
            g1 = self.status()["generation"]
            peers1 = L.Metrics(NAME).get("exitgw_wg_peers")
            # Another API peer claiming the same prefix: 409, naming it.
            code, body = self.api("PUT", url2, json.dumps({"allowed_ips": ["100.64.0.70/32"]}))
            self.assertEqual(code, 409, body)
            self.assertIn("100.64.0.70/32", body["error"])
            # An unknown field: 400 naming it.
            code, body = self.api("PUT", url1, json.dumps(
                {"allowed_ips": ["100.64.0.71/32"], "nickname": "e"}))
            self.assertEqual(code, 400, body)
            self.assertIn("nickname", body["error"])
            # A body over the limit (64 KiB): 413.
            code, body = self.api("PUT", url1, json.dumps(
                {"allowed_ips": ["100.64.0.71/32"], "user": "x" * 100000}))
            self.assertEqual(code, 413, body)
            # A wrong token: 401, whatever the body.
            code, body = self.api("PUT", url1, json.dumps({"allowed_ips": ["100.64.0.71/32"]}),
                                  token="0123456789abcdef0123456789")
            self.assertEqual(code, 401, body)
            # Nothing changed: same generation, same peers, peer 1 as it was, no peer 2.
            self.assertEqual(self.status()["generation"], g1)
            self.assertEqual(L.Metrics(NAME).get("exitgw_wg_peers"), peers1)
            code, body = self.api("GET", url1)
            self.assertEqual(code, 200, body)
            self.assertEqual(body["allowed_ips"], ["100.64.0.70/32"])
            self.assertEqual(body["user"], "erin@lab.test")
            self.assertEqual(self.api("GET", url2)[0], 404)
        finally:
            self.api("DELETE", url1)

    def test_both_listeners_refuse_ambiguous_or_unauthorized_requests_and_count_them(self):
        """The daemon's listeners read requests strictly (control/http/): checked in the lab so
        the wiring (admin and metrics listeners, their counters in /metrics) is the real one."""
        def refused(listener, reason):
            return L.metric_sum(NAME, "exitgw_http_requests_refused_total", listener=listener,
                                reason=reason)
        unauthorized, malformed = refused("admin", "unauthorized"), refused("admin", "malformed")
        not_allowed = refused("metrics", "method_not_allowed")
        code, body = self.api("GET", "/v1/status", token="0123456789abcdef0123456789")
        self.assertEqual(code, 401, body)
        # Two Content-Lengths, sent raw: 400 on the head, nothing applied.
        g = self.status()["generation"]
        raw = ("import socket; s = socket.create_connection(('127.0.0.1', 9551), 5); "
               "s.sendall(b'DELETE /v1/policy HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1"
               "\\r\\nContent-Length: 2\\r\\n\\r\\nab'); print(s.recv(100)[:12].decode())")
        p = L.nsrun(NAME, "gw", "python3", "-c", raw, timeout=15)
        self.assertIn("HTTP/1.1 400", p.stdout, p.stdout)
        self.assertEqual(self.status()["generation"], g)
        # The metrics listener takes GET and HEAD only.
        p = L.nsrun(NAME, "gw", "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w",
                    "%{http_code}", "-X", "POST", "--data-binary", "x" * 1000,
                    "http://127.0.0.1:9550/readyz", timeout=15)
        self.assertEqual(p.stdout.strip(), "405", p.stdout)
        self.assertEqual(L.readyz(NAME), "200")
        self.assertGreaterEqual(refused("admin", "unauthorized"), unauthorized + 1)
        self.assertGreaterEqual(refused("admin", "malformed"), malformed + 1)
        self.assertGreaterEqual(refused("metrics", "method_not_allowed"), not_allowed + 1)

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

    def test_policy_put_through_the_api_replaces_the_file_policy_until_deleted(self):
        self.assertTrue(L.wait_until(udp_echo, 10), "the UDP echo does not answer before the test")
        self.assertEqual(L.Metrics(NAME).get("exitgw_policy_source", source="file"), 1)
        code, body = self.api("GET", "/v1/policy")
        self.assertEqual(code, 200, body)
        self.assertEqual(body["source"], "file")
        file_text, file_rules = body["text"], body["rules"]
        g0 = self.status()["generation"]
        try:
            code, body = self.api("PUT", "/v1/policy", HTTP_ONLY, content_type="text/plain")
            self.assertEqual(code, 200, body)
            self.assertGreater(body["generation"], g0)
            self.assertEqual(L.Metrics(NAME).get("exitgw_policy_source", source="admin"), 1)
            self.assertEqual(L.Metrics(NAME).get("exitgw_policy_source", source="file"), 0)
            code, body = self.api("GET", "/v1/policy")
            self.assertEqual((body["source"], body["text"]), ("admin", HTTP_ONLY))
            self.assertFalse(udp_echo(), "UDP still reaches the echo under an HTTP-only policy")
            self.assertTrue(http_ok(), "HTTP, which the policy grants, does not get through")
            # A bad policy: 400 naming line and column; the HTTP-only policy keeps running.
            g1 = self.status()["generation"]
            code, body = self.api("PUT", "/v1/policy", '{\n  "grants": [\n    {"ip": 7},\n  ],\n}\n',
                                  content_type="application/hujson")
            self.assertEqual(code, 400, body)
            self.assertIn("admin policy:3:", body["error"])
            self.assertEqual(self.status()["generation"], g1)
            self.assertEqual(self.api("GET", "/v1/policy")[1]["text"], HTTP_ONLY)
            self.assertFalse(udp_echo())
            # exitgwctl shows the override.
            rc, out = ctl("policy", "show")
            self.assertEqual(rc, 0, out)
            self.assertIn("admin", out)
            self.assertIn("Members may browse", out)
        finally:
            rc, out = ctl("policy", "clear")
            self.assertEqual(rc, 0, out)
        self.assertEqual(L.Metrics(NAME).get("exitgw_policy_source", source="file"), 1)
        code, body = self.api("GET", "/v1/policy")
        self.assertEqual((body["source"], body["text"], body["rules"]),
                         ("file", file_text, file_rules))
        self.assertTrue(L.wait_until(udp_echo, 10), "the UDP echo does not answer after DELETE")


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
