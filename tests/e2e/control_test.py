#!/usr/bin/env python3
"""E2E: the control thread never wedges (tools/lab, real wireguard-go clients).

  /usr/bin/python3 tests/e2e/control_test.py --exitgw build/control/exitgw [-v] [unittest args]

The worst an operator (or an attacker with write access to the config directory) can do to
the control side, all at once: a FIFO swapped in for the peers file, a policy whose groups
nest 32 deep, each listing the next twice, and 300 regex domain rules. Meanwhile a client's fresh
handshake must complete (the control thread answers handshakes), the running peers stay,
and /readyz stays truthful (200 while the control thread runs, with a fresh heartbeat).
Root only; the lab's name is unique to this process and it is always taken down.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import labutil as L

NAME = L.lab_name("ct")


def nested_policy(levels):
    """conf/policy.hujson with group:lab also including group:g0, and g0..g(n-1) each listing
    the next group twice (2^n paths without memoised expansion)."""
    with open(os.path.join(L.REPO, "conf", "policy.hujson")) as f:
        text = f.read()
    groups = ""
    for i in range(levels):
        nxt = '"group:g%d"' % (i + 1)
        members = '%s, %s, "u%d@example.com"' % (nxt, nxt, i) if i + 1 < levels else '"last@example.com"'
        groups += '    "group:g%d": [%s],\n' % (i, members)
    old = '"group:lab": ["alice@example.com", "bob@example.com"],'
    if old not in text:
        raise AssertionError("conf/policy.hujson changed: no %s line" % old)
    return text.replace(old, '"group:lab": ["alice@example.com", "bob@example.com", "group:g0"],\n'
                        + groups)


def regex_domains(n):
    with open(os.path.join(L.REPO, "conf", "domains.conf")) as f:
        text = f.read()
    for i in range(n):
        text += ("log regex ^(www|api|cdn)%d[a-z0-9-]{2,40}\\.(svc|pod|node)[0-9]*"
                 "\\.example[0-9]?\\.(test|lab)$\n" % i)
    return text


def large_policy(destinations, ports, first_port=1000):
    """A policy whose one grant compiles to destinations x ports classifier rules: a build of
    a quarter to a few seconds on the builder thread (it once ran on the control thread)."""
    dsts = ", ".join('"44.%d.%d.1/32"' % (d // 250, d % 250) for d in range(destinations))
    ips = ", ".join('"tcp:%d"' % (first_port + 2 * p) for p in range(ports))
    return ('{"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:internet"], '
            '"ip": ["*"]}, {"src": ["autogroup:member"], "dst": [%s], "ip": [%s]}]}'
            % (dsts, ips))


def admin_put_policy(name, text, result):
    """PUT /v1/policy through the lab gateway's admin API; stores (HTTP status, seconds)."""
    with open(os.path.join(L.lab_dir(name), "admin.token")) as f:
        token = f.read().strip()
    body = os.path.join(L.lab_dir(name), "large-policy.hujson")
    with open(body, "w") as f:
        f.write(text)
    t0 = time.time()
    p = L.nsrun(name, "gw", "curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w",
                "%{http_code}", "-X", "PUT", "-H", "Authorization: Bearer " + token, "-H",
                "Content-Type: text/plain", "--data-binary", "@" + body,
                "http://127.0.0.1:9551/v1/policy", timeout=40)
    result["code"] = p.stdout.strip()
    result["seconds"] = time.time() - t0


def admin_delete_policy(name):
    with open(os.path.join(L.lab_dir(name), "admin.token")) as f:
        token = f.read().strip()
    L.nsrun(name, "gw", "curl", "-sS", "--max-time", "10", "-X", "DELETE", "-H",
            "Authorization: Bearer " + token, "http://127.0.0.1:9551/v1/policy", timeout=20,
            check=True)


def window(m0, m1, metric, **labels):
    """A histogram's cumulative buckets between two scrapes: [(upper bound, count)]."""
    before = dict(m0.histogram(metric, **labels))
    return [(le, c - before.get(le, 0)) for le, c in m1.histogram(metric, **labels)]


def longest_at_most(buckets):
    """The least bound every observation in the window is at most (inf: one was past them all;
    0 when there was none)."""
    total = buckets[-1][1] if buckets else 0
    return next((le for le, c in buckets if c == total), 0.0) if total else 0.0


def shortest_over(buckets):
    """The greatest bound every observation in the window is over (0: some was at most the
    least bound)."""
    if not buckets or buckets[-1][1] == 0:
        return 0.0
    return max((le for le, c in buckets if c == 0), default=0.0)


def replace_atomically(path, text):
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class ControlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="exitgw-ctltest-")
        cls.policy = os.path.join(cls.tmp, "policy.hujson")
        cls.domains = os.path.join(cls.tmp, "domains.conf")
        shutil.copy(os.path.join(L.REPO, "conf", "policy.hujson"), cls.policy)
        shutil.copy(os.path.join(L.REPO, "conf", "domains.conf"), cls.domains)
        L.up_or_clean(NAME, cls.tmp, extra=("--gw-flag", "policy_file=" + cls.policy,
                                           "--gw-flag", "domain_list_file=" + cls.domains))

    @classmethod
    def tearDownClass(cls):
        L.down_and_clean(NAME, cls.tmp)

    def fresh_handshake(self, cname):
        """Resets the client's WireGuard state (wg setconf replaces its peers) and pings; the
        seconds until its new handshake completed, or None."""
        c = L.client(NAME, cname)
        conf = os.path.join(self.tmp, cname + ".conf")
        shown = L.nsrun(NAME, cname, "wg", "showconf", c["wg"], timeout=10, check=True).stdout
        with open(conf, "w") as f:
            f.write(shown)
        os.chmod(conf, 0o600)
        old = L.latest_handshake(NAME, cname)
        if old >= int(time.time()):
            time.sleep(1.1)  # handshake times have whole seconds: tell the new one apart
        t0 = time.time()
        L.nsrun(NAME, cname, "wg", "setconf", c["wg"], conf, timeout=10, check=True)
        while time.time() - t0 < 20:
            L.nsrun(NAME, cname, "ping", "-c", "1", "-W", "1", L.SERVER, timeout=10)
            if L.latest_handshake(NAME, cname) > old:
                return time.time() - t0
        return None

    def test_fresh_handshake_completes_while_the_control_side_is_loaded_with_the_worst(self):
        self.assertEqual(L.ensure_handshakes(NAME, ("c1", "c2"), timeout=25), set())
        m0 = L.Metrics(NAME)
        peers_file = L.peers_path(NAME)
        original_peers = L.read_peers(NAME)
        fifo = peers_file + ".fifo"
        os.mkfifo(fifo, 0o600)
        t_load = time.time()
        put = {}
        putter = threading.Thread(target=admin_put_policy,
                                  args=(NAME, large_policy(320, 200), put))
        try:
            # All at once: the FIFO in place of the peers file, the nested policy, 300 regexes,
            # and an admin policy of 64,000 classifier rules (one grant may expand to 65,536:
            # its build must last long enough to be watched, well under a second on some
            # machines at 50,000).
            os.replace(fifo, peers_file)
            replace_atomically(self.policy, nested_policy(31))  # under group:lab: 32 deep
            replace_atomically(self.domains, regex_domains(300))
            putter.start()
            ready = []
            hs_s = None
            # While the domain list compiles (seconds on its builder thread), a fresh handshake.
            for cname in ("c1", "c2"):
                ready.append(L.readyz(NAME))
                took = self.fresh_handshake(cname)
                self.assertIsNotNone(took, "%s's fresh handshake did not complete within 20 s of "
                                     "loading the control side; gateway log:\n%s"
                                     % (cname, L.gateway_log(NAME)[-3000:]))
                hs_s = max(hs_s or 0, took)
                ready.append(L.readyz(NAME))
            applied = L.wait_until(lambda: L.metric_sum(NAME, "exitgw_domain_reloads_total",
                                                        result="ok") >= 1, 120, step=0.5)
            t_domains = time.time() - t_load
            m1 = L.Metrics(NAME)
            ready.append(L.readyz(NAME))
        finally:
            if putter.is_alive() or put:
                putter.join(60)
            ok0 = L.metric_sum(NAME, "exitgw_wg_peers_reloads_total", result="ok")
            L.write_peers(NAME, original_peers)  # renamed over the FIFO
            L.wait_until(lambda: L.metric_sum(NAME, "exitgw_wg_peers_reloads_total",
                                              result="ok") > ok0, 10)
        log = L.gateway_log(NAME)
        gaps = window(m0, m1, "exitgw_control_loop_gap_seconds")
        print("\n  fresh handshakes within %.2f s of the load; 300 regexes published after %.1f s;"
              " admin policy of 64,000 rules answered %s after %.1f s; every control loop gap "
              "meanwhile at most %g s (%d gaps)"
              % (hs_s, t_domains, put.get("code"), put.get("seconds", 0), longest_at_most(gaps),
                 gaps[-1][1] if gaps else 0), end=" ")
        self.assertEqual(put.get("code"), "200", "PUT /v1/policy: %r\n%s" % (put, log[-3000:]))
        # Every iteration of the control loop, not samples of it: none took a second.
        self.assertGreater(gaps[-1][1] if gaps else 0, 0, "no control loop gaps counted")
        self.assertLessEqual(longest_at_most(gaps), 1.0, "the control loop stalled under the "
                             "load: %r" % gaps)
        self.assertEqual(m1.get("exitgw_policy_source", source="admin"), 1)
        admin_delete_policy(NAME)
        # The FIFO was refused, named, counted; no peer was removed.
        self.assertRegex(log, r"peers file \S*peers\.conf is a FIFO, not a regular file")
        self.assertGreater(m1.get("exitgw_watched_file_refusals_total", reason="not_regular"),
                           m0.get("exitgw_watched_file_refusals_total", reason="not_regular"))
        self.assertEqual(m1.get("exitgw_wg_peers"), 2)
        self.assertGreater(m1.get("exitgw_wg_peers_reloads_total", result="rejected"),
                           m0.get("exitgw_wg_peers_reloads_total", result="rejected"))
        # The nested policy was expanded (memoised) and applied; the 300 rules too.
        self.assertGreater(m1.get("exitgw_policy_reloads_total", result="ok"),
                           m0.get("exitgw_policy_reloads_total", result="ok"),
                           "the nested policy was not applied:\n%s\n%s"
                           % (m1.nonzero("exitgw_policy"), log[-3000:]))
        self.assertTrue(applied, "the 300-regex domain list was never published:\n%s"
                        % log[-2000:])
        self.assertEqual(m1.get("exitgw_domain_rules"), m0.get("exitgw_domain_rules") + 300)
        # Truthful readiness: the control thread ran throughout, so ready with a fresh heartbeat.
        self.assertEqual(ready, ["200"] * len(ready))
        self.assertLess(m1.get("exitgw_control_heartbeat_age_seconds"), 1.0)
        for c in ("c1", "c2"):
            tx, rx, out = L.ping(NAME, c, L.SERVER, count=3, interval=0.2, wait=2)
            self.assertEqual((tx, rx), (3, 3), "%s lost the tunnel:\n%s" % (c, out))

    def test_policy_classifiers_build_beside_the_control_loop_never_in_it(self):
        """The gateway times every classifier build (exitgw_build_seconds) and every control
        loop iteration (exitgw_control_loop_gap_seconds): while two admin policies of 64,000
        rules build, no gap is as long as the shortest build. A build on the control thread
        would make a gap at least that long, on any machine however fast."""
        m0 = L.Metrics(NAME)
        puts = []
        for first_port in (1000, 1001):  # two different classifiers: two full builds
            put = {}
            admin_put_policy(NAME, large_policy(320, 200, first_port), put)
            puts.append(put)
            self.assertEqual(put.get("code"), "200", "PUT /v1/policy: %r\n%s"
                             % (put, L.gateway_log(NAME)[-3000:]))
        m1 = L.Metrics(NAME)
        admin_delete_policy(NAME)
        builds = window(m0, m1, "exitgw_build_seconds", builder="policy")
        gaps = window(m0, m1, "exitgw_control_loop_gap_seconds")
        built_over, gap_at_most = shortest_over(builds), longest_at_most(gaps)
        print("\n  %d policy builds, each over %g s (PUTs answered after %s s); %d control loop "
              "gaps meanwhile, each at most %g s"
              % (builds[-1][1] if builds else 0, built_over,
                 "/".join("%.2f" % p["seconds"] for p in puts), gaps[-1][1] if gaps else 0,
                 gap_at_most), end=" ")
        self.assertGreaterEqual(builds[-1][1] if builds else 0, 2, "builds: %r" % builds)
        self.assertGreater(built_over, 0, "a 64,000-rule build took at most %g s: too short to "
                           "tell a stall from an idle loop (%r)" % (builds[0][0], builds))
        self.assertLessEqual(gap_at_most, built_over, "a control loop gap was as long as a "
                             "policy build: gaps %r, builds %r" % (gaps, builds))

    def test_rejected_domain_list_is_counted_and_shown_and_keeps_the_generation(self):
        # Start from a settled generation (nothing else pending for a second).
        last = [None]

        def settled():
            g, last[0] = last[0], L.Metrics(NAME).get("exitgw_config_generation")
            return g == last[0]
        L.wait_until(settled, 15, step=1.0)
        generation = last[0]
        with open(self.domains) as f:
            original = f.read()
        try:
            replace_atomically(self.domains, original + "block regex ^.*$\n")
            ok = L.wait_until(lambda: L.metric_sum(NAME, "exitgw_domain_reloads_total",
                                                   result="rejected") >= 1, 20)
            # /v1/status (and this gauge, from the same view) shows the domain file unhealthy.
            shown = L.wait_until(lambda: L.Metrics(NAME).get(
                "exitgw_update_source_healthy", source="file:domains") == 0, 5)
            m1 = L.Metrics(NAME)
        finally:
            replace_atomically(self.domains, original)
        self.assertTrue(ok, "the empty-matching regex was not rejected:\n%s"
                        % L.gateway_log(NAME)[-2000:])
        self.assertIn("can match the empty name", L.gateway_log(NAME))
        self.assertEqual(m1.get("exitgw_config_generation"), generation,
                         "a rejected domain reload advanced the configuration generation:\n%s"
                         % L.gateway_log(NAME)[-3000:])
        self.assertTrue(shown, "the domain file's health was not shown as failed")


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    unittest.main(verbosity=2)
