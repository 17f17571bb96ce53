#!/usr/bin/env python3
"""E2E: `tailscale exit-node suggest` follows the gateways' load and approval.

  /usr/bin/python3 tests/e2e/suggest_test.py --exitgw build/control/exitgw
      [--connector build/connector/exitgw-connector] [-v]

`tools/lab up --tailnet --gateways 2` (tools/lab_tailnet.py): Headscale with nodeAttrs
granting tag:exit `suggest-exit-node`, one tailscaled client c1 and two gateways, each exitgw
+ exitgw-connector: P-gw ("North", 33 km from the client's DERP region, --location-priority
100) and P-gw2 ("South", region lab2, 56 km, priority 60), both with
--priority-load-curve 0.1:-50 and --priority-hysteresis 0.05. Within tailscaled's
100 km allowance the higher Location.Priority wins (ipn/ipnlocal suggestExitNodeUsingDERP).

What it proves:
  a. c1 is suggested P-gw, every time, while both gateways are offered;
  b. iperf3 from c1 through P-gw raises the average of its busiest worker's busy ratio past
     0.1: its connector lowers the priority to 50 and c1 is suggested P-gw2; after the load stops, P-gw again
     (a connector that ignored load would keep priority 100 and fail this);
  c. P-gw's approval withdrawn (headscale nodes approve-routes --routes "") makes c1 suggest
     P-gw2; restored, P-gw again.
"""
import json
import os
import re
import sys
import time
import unittest

import labutil as L

NAME = L.lab_name("sug")
BIN = os.environ.get("EXITGW_LAB_BIN", "/opt/exitgw-lab/bin")
CONNECTOR = os.path.join(L.REPO, "build", "connector", "exitgw-connector")
CONNECTOR_METRICS = "http://127.0.0.1:9552/metrics"
SUGGEST_RE = re.compile(r"^Suggested exit node: ([^.\s]+)", re.M)
# How long the suggestion may take to follow a change: the connector's 1 s poll, Headscale's
# change batching and the client's netmap.
FOLLOW_S = 30


def parse_args():
    global CONNECTOR
    argv, CONNECTOR = L.parse_args_with_connector(CONNECTOR)
    return argv


def ts(host, *args, timeout=30):
    return L.lab_exec(NAME, host, "tailscale", *args, timeout=timeout)


def headscale(*args, timeout=30):
    return L.lab_exec(NAME, "ctl", "headscale", *args, timeout=timeout)


def hs_node(name):
    p = headscale("nodes", "list", "-o", "json")
    for n in json.loads(p.stdout or "[]") or []:
        if name in (n.get("name"), n.get("given_name")):
            return n
    return None


def node_ipv4(name):
    n = hs_node(name)
    return [a for a in (n or {}).get("ip_addresses") or [] if ":" not in a][0]


def suggestion():
    """The node `tailscale exit-node suggest` names on c1 (its first DNS label), or the
    command's output when it names none."""
    p = ts("c1", "exit-node", "suggest")
    m = SUGGEST_RE.search(p.stdout)
    return m.group(1) if m else "(none: %s)" % p.stdout.strip()


def connector_metric(gw, metric):
    """A series of the connector beside gateway gw ("gw" or "gw2"), or None."""
    p = L.nsrun(NAME, gw, "curl", "-sS", "--max-time", "3", CONNECTOR_METRICS, timeout=10)
    for n, _l, v in L.parse_metrics(p.stdout):
        if n == metric:
            return v
    return None


def busiest(gw):
    p = L.nsrun(NAME, gw, "curl", "-sS", "--max-time", "3", "http://127.0.0.1:9550/metrics",
                timeout=10)
    return max([v for n, _l, v in L.parse_metrics(p.stdout) if n == "exitgw_worker_busy_ratio"]
               or [float("nan")])


class SuggestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for b in ("headscale", "tailscaled", "tailscale"):
            if not os.access(os.path.join(BIN, b), os.X_OK):
                raise AssertionError("%s/%s missing: run tools/install-tailnet" % (BIN, b))
        if not os.access(CONNECTOR, os.X_OK):
            raise AssertionError("exitgw-connector missing at %s: build it (ninja -C build "
                                 "exitgw_connector)" % CONNECTOR)
        L.down(NAME)
        t0 = time.monotonic()
        try:
            L.up(NAME, clients=1, extra=("--tailnet", "--gateways", "2", "--connector", CONNECTOR))
        except BaseException:
            L.down(NAME)
            raise
        cls.gw1, cls.gw2 = NAME + "-gw", NAME + "-gw2"
        print("\nsuggest lab %s up in %.1f s" % (NAME, time.monotonic() - t0), file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        L.down(NAME)

    def wait_suggestion(self, want, timeout=FOLLOW_S):
        seen = []

        def named():
            seen.append(suggestion())
            return seen[-1] == want

        t0 = time.monotonic()
        ok = L.wait_until(named, timeout, step=1)
        self.assertTrue(ok, "c1 was not suggested %s within %d s; suggestions seen: %s"
                        % (want, timeout, sorted(set(seen))))
        return time.monotonic() - t0

    def test_a_suggests_the_higher_priority_gateway_of_two(self):
        ips = [node_ipv4(self.gw1), node_ipv4(self.gw2)]
        self.assertTrue(L.wait_until(
            lambda: all(ip in ts("c1", "exit-node", "list").stdout for ip in ips), 40, 1),
            "c1 does not offer both gateways: " + ts("c1", "exit-node", "list").stdout)
        self.assertEqual(connector_metric("gw", "exitgw_connector_location_priority"), 100)
        self.assertEqual(connector_metric("gw2", "exitgw_connector_location_priority"), 60)
        t = self.wait_suggestion(self.gw1, 60)
        # Not a coin toss among equals: the same answer every time.
        self.assertEqual({suggestion() for _ in range(5)}, {self.gw1})
        print("\nsuggested %s within %.1f s of both being offered" % (self.gw1, t), file=sys.stderr)

    def test_b_loaded_gateway_hands_the_suggestion_to_the_other(self):
        self.wait_suggestion(self.gw1)
        gw1_ip = node_ipv4(self.gw1)
        self.assertTrue(L.wait_until(
            lambda: ts("c1", "set", "--exit-node=" + gw1_ip).returncode == 0, 20, 0.5))
        iperf = None
        try:
            def via_gw1():
                p = L.nsrun(NAME, "c1", "curl", "-sS", "-m", "2", "http://%s/whoami" % L.SERVER,
                            timeout=6)
                return p.returncode == 0 and p.stdout.startswith("203.0.113.1:")
            self.assertTrue(L.wait_until(via_gw1, 20, 0.3), "no traffic through %s" % self.gw1)
            log = os.path.join(L.lab_dir(NAME), "suggest-iperf3.log")
            iperf = L.nsspawn(NAME, "c1", "iperf3", "-c", L.SERVER, "-t", "60", "-P", "2",
                              "--connect-timeout", "4000", out=log)
            samples = []

            def loaded_away():
                samples.append((round(busiest("gw"), 3),
                                round(connector_metric("gw", "exitgw_connector_busy_ratio_average"), 3),
                                connector_metric("gw", "exitgw_connector_location_priority")))
                return suggestion() == self.gw2

            t0 = time.monotonic()
            ok = L.wait_until(loaded_away, 45, step=1)
            print("\nunder iperf3 through %s: (busiest worker, its average, priority) samples %s; suggestion "
                  "moved to %s: %s after %.1f s" % (self.gw1, samples, self.gw2, ok,
                                                    time.monotonic() - t0), file=sys.stderr)
            self.assertTrue(ok, "c1 still suggested %s under load; (busy ratio, average, "
                            "advertised priority) samples: %s" % (self.gw1, samples))
            self.assertLess(connector_metric("gw", "exitgw_connector_location_priority"), 60)
            # Level 1 of the curve holds while the average stays above 0.1 - 0.05.
            self.assertGreaterEqual(
                connector_metric("gw", "exitgw_connector_busy_ratio_average"), 0.05)
        finally:
            L.stop(iperf)
            ts("c1", "set", "--exit-node=")
        t = self.wait_suggestion(self.gw1, 45)
        print("load stopped: %s suggested again after %.1f s" % (self.gw1, t), file=sys.stderr)
        self.assertEqual(connector_metric("gw", "exitgw_connector_location_priority"), 100)
        self.assertGreaterEqual(
            connector_metric("gw", "exitgw_connector_location_priority_changes_total"), 2)

    def test_c_withdrawn_approval_hands_the_suggestion_to_the_other(self):
        self.wait_suggestion(self.gw1)
        node_id = str(hs_node(self.gw1)["id"])
        try:
            p = headscale("nodes", "approve-routes", "--identifier", node_id, "--routes", "")
            self.assertEqual(p.returncode, 0, p.stdout)
            t = self.wait_suggestion(self.gw2)
            print("\napproval of %s withdrawn: %s suggested after %.1f s"
                  % (self.gw1, self.gw2, t), file=sys.stderr)
        finally:
            p = headscale("nodes", "approve-routes", "--identifier", node_id,
                          "--routes", "0.0.0.0/0,::/0")
            self.assertEqual(p.returncode, 0, p.stdout)
        t = self.wait_suggestion(self.gw1)
        print("approval restored: %s suggested again after %.1f s" % (self.gw1, t),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(argv=parse_args(), verbosity=2)
