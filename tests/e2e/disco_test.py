#!/usr/bin/env python3
"""E2E: disco pings from a client namespace to the gateway's WireGuard port (tools/lab).

  /usr/bin/python3 tests/e2e/disco_test.py --exitgw build/control/exitgw [-v]

The client is Tailscale's own code (tests/support/discogen `ping`: disco.Ping sealed with
key.DiscoShared, the pong opened with key.DiscoShared.Open and disco.Parse). A ping from the
disco key the peers file gives the client is answered with a pong that reports the client's
address and port as the gateway saw them; an unknown disco key and a ping that claims another
peer's node key get no answer and are counted by reason. Skipped without Go and the
tailscale.com module in the local module cache.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest

import labutil as L

NAME = L.lab_name("dc")
GENERATOR = os.path.join(L.REPO, "tests", "support", "discogen")


def wg(*args, stdin=None):
    return subprocess.run(["wg"] + list(args), input=stdin, capture_output=True, text=True,
                          check=True).stdout.strip()


def disco_key():
    """A disco key pair: (private as hex, public as base64), made like a WireGuard key."""
    priv = wg("genkey")
    return base64.b64decode(priv).hex(), wg("pubkey", stdin=priv)


class DiscoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.client_bin = os.path.join(cls.tmp.name, "discogen")
        env = dict(os.environ, GOFLAGS="-mod=mod -buildvcs=false", GOPROXY="off")
        try:
            subprocess.run(["go", "build", "-o", cls.client_bin, "."], cwd=GENERATOR, env=env,
                           check=True, capture_output=True, timeout=300)
        except (OSError, subprocess.CalledProcessError) as e:
            cls.tmp.cleanup()
            raise unittest.SkipTest("cannot build the Go disco client offline: %s" % e)
        gw_priv = wg("genkey")
        cls.gw_disco_pub = wg("pubkey", stdin=gw_priv)
        key_file = os.path.join(cls.tmp.name, "disco.key")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(gw_priv + "\n")
        L.down(NAME)
        L.up(NAME, clients=1, extra=("--gw-flag", "disco_private_key_file=" + key_file))
        L.ensure_handshakes(NAME, ("c1",), timeout=25)
        cls.client_pub = L.wg_show(NAME, "c1", "public-key").strip()
        cls.client_disco, client_disco_pub = disco_key()
        # The client's [Peer] section is the file's only one: its DiscoKey goes at the end.
        text = L.read_peers(NAME)
        L.write_peers(NAME, text.rstrip("\n") + "\nDiscoKey = %s\n" % client_disco_pub)
        # The watched file reloads; the first pong says it applied.
        ok = L.wait_until(lambda: cls.ping(cls.client_disco, cls.client_pub)[0] == 0, 15, step=0.5)
        if not ok:
            L.down(NAME)
            cls.tmp.cleanup()
            raise AssertionError("no pong after the peers file gave c1 its DiscoKey:\n" +
                                 L.gateway_log(NAME)[-3000:])

    @classmethod
    def tearDownClass(cls):
        L.down(NAME)
        cls.tmp.cleanup()

    @classmethod
    def ping(cls, key_hex, node_key=None, to="10.77.0.1:51820"):
        args = [cls.client_bin, "ping", "--key", key_hex, "--gateway", cls.gw_disco_pub,
                "--to", to, "--timeout", "1s"]
        if node_key:
            args += ["--node-key", node_key]
        p = L.nsrun(NAME, "c1", *args, timeout=10)
        return p.returncode, p.stdout

    def frames(self, result):
        return L.Metrics(NAME).get("exitgw_disco_frames_total", result=result)

    def test_ping_from_the_peers_disco_key_gets_a_pong_with_the_observed_source(self):
        before = self.frames("pong_sent")
        rc, out = self.ping(self.client_disco, self.client_pub)
        self.assertEqual(rc, 0, out)
        answer = json.loads(out.strip().splitlines()[-1])
        # No NAT between c1 and the gateway: the source the pong reports is the client's own.
        self.assertEqual(answer["src"], answer["local"])
        self.assertTrue(answer["src"].startswith("10.77.0.11:"), answer)
        # An old client that names no node key is answered too.
        rc, out = self.ping(self.client_disco)
        self.assertEqual(rc, 0, out)
        self.assertGreaterEqual(self.frames("pong_sent") - before, 2)

    def test_ping_over_ipv6_gets_a_pong_with_the_ipv6_source(self):
        # To the tunnel port's IPv6 address (tools/lab GW_TUN6): answered over IPv6, the pong
        # reporting the client's IPv6 address and port as Go's disco code reads it.
        before = self.frames("pong_sent")
        rc, out = self.ping(self.client_disco, self.client_pub, to="[2001:db8:77::1]:51820")
        self.assertEqual(rc, 0, out)
        answer = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(answer["src"], answer["local"])
        self.assertTrue(answer["src"].startswith("[2001:db8:77::11]:"), answer)
        self.assertEqual(self.frames("pong_sent") - before, 1)

    def test_unknown_disco_key_gets_no_answer_and_is_counted(self):
        stranger, _ = disco_key()
        before = self.frames("unknown_sender")
        rc, out = self.ping(stranger, self.client_pub)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no pong", out)
        self.assertTrue(L.wait_until(lambda: self.frames("unknown_sender") > before, 5))

    def test_ping_claiming_another_node_key_gets_no_answer_and_is_counted(self):
        other = wg("pubkey", stdin=wg("genkey"))
        before = self.frames("node_key_mismatch")
        rc, out = self.ping(self.client_disco, other)
        self.assertNotEqual(rc, 0, out)
        self.assertTrue(L.wait_until(lambda: self.frames("node_key_mismatch") > before, 5))

    def test_wireguard_still_flows_beside_disco(self):
        tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=3)
        self.assertGreaterEqual(rx, 1, out)


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    unittest.main(verbosity=2)
