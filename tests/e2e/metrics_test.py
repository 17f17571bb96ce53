#!/usr/bin/env python3
"""E2E: the gateway's observability endpoints as their consumers see them (tools/lab).

  /usr/bin/python3 tests/e2e/metrics_test.py --exitgw build/control/exitgw [-v] [unittest args]

A real Prometheus server (Debian's `prometheus`) scrapes /metrics inside the gateway's
namespace and answers queries about it; `promtool check metrics` lints the exposition;
/healthz and /readyz answer as a load balancer or kubelet expects. Root only; the lab has a
name unique to this process and is always taken down.
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest
import urllib.parse

import labutil as L

NAME = L.lab_name("mt")
METRICS = "127.0.0.1:9550"
JOB = "exitgw_lab"


def http(path, addr=METRICS, timeout=5):
    """(status code, body) of GET http://addr/path from inside the gateway's namespace."""
    p = L.nsrun(NAME, "gw", "curl", "-sS", "--max-time", str(timeout), "-o", "/dev/stdout",
                "-w", "\n%{http_code}", "http://%s%s" % (addr, path), timeout=timeout + 5)
    body, _, code = p.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="exitgw-metricstest-")
        L.up_or_clean(NAME, cls.tmp)
        try:
            cls.missing = L.ensure_handshakes(NAME, ("c1", "c2"), timeout=25)
        except BaseException:
            L.down_and_clean(NAME, cls.tmp)
            raise

    @classmethod
    def tearDownClass(cls):
        L.down_and_clean(NAME, cls.tmp)

    def test_metrics_scraped_by_a_real_prometheus_server(self):
        self.assertEqual(self.missing, set(), "clients without a handshake")
        prom = shutil.which("prometheus")
        self.assertIsNotNone(prom, "Debian's prometheus is not installed (tools/install-deps)")
        port = int(L.nsrun(NAME, "gw", sys.executable, "-c",
                           "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
                           "print(s.getsockname()[1])", timeout=10).stdout.strip())
        d = tempfile.mkdtemp(prefix="prom-", dir=self.tmp)
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
                    "scrape_configs:\n  - job_name: %s\n    static_configs:\n"
                    "      - targets: ['%s']\n" % (JOB, METRICS))
        web = "127.0.0.1:%d" % port
        logf = os.path.join(d, "prometheus.log")
        p = L.nsspawn(NAME, "gw", prom, "--config.file=" + cfg,
                      "--storage.tsdb.path=" + os.path.join(d, "data"),
                      "--web.listen-address=" + web, "--log.level=warn", out=logf)

        def query(q):
            code, body = http("/api/v1/query?query=" + urllib.parse.quote(q), addr=web)
            if code != 200:
                return None
            j = json.loads(body)
            return j["data"]["result"] if j.get("status") == "success" else None

        def log():
            with open(logf, errors="replace") as f:
                return f.read()[-3000:]

        try:
            self.assertTrue(L.wait_until(lambda: http("/-/ready", addr=web)[0] == 200 or p.poll() is not None, 30),
                            "prometheus did not become ready:\n" + log())
            self.assertIsNone(p.poll(), "prometheus exited:\n" + log())
            got = []
            ok = L.wait_until(lambda: got.append(query("exitgw_wg_peers")) or bool(got[-1]), 20, step=0.5)
            self.assertTrue(ok, "prometheus has no exitgw_wg_peers after 20 s; targets: %s\n%s"
                            % (http("/api/v1/targets", addr=web)[1][:2000], log()))
            series = got[-1]
            self.assertEqual(len(series), 1, series)
            labels, value = series[0]["metric"], float(series[0]["value"][1])
            self.assertEqual(value, 2, "two peers configured, prometheus says %s" % value)
            self.assertEqual(labels.get("region"), "lab", labels)
            self.assertEqual(labels.get("node"), NAME + "-gw", labels)
            self.assertEqual(labels.get("job"), JOB, labels)
            up = query('up{job="%s"}' % JOB)
            self.assertEqual([float(s["value"][1]) for s in up or []], [1.0], up)
            # The target's own view: healthy, no scrape error, scraped many series.
            _, tbody = http("/api/v1/targets", addr=web)
            targets = json.loads(tbody)["data"]["activeTargets"]
            self.assertEqual(len(targets), 1, targets)
            self.assertEqual((targets[0]["health"], targets[0]["lastError"]), ("up", ""), targets[0])
            n = query('count({job="%s", __name__=~"exitgw_.+"})' % JOB)
            # Every series carries both labels: none without region or node.
            unlabelled = query('count({job="%s", __name__=~"exitgw_.+", region=""}) or '
                               'count({job="%s", __name__=~"exitgw_.+", node=""})' % (JOB, JOB))
            hs = query('sum(exitgw_wg_handshakes_total{job="%s", result="ok"})' % JOB)
            gw = L.Metrics(NAME)
            print("\n  prometheus on %s: %s exitgw series, handshakes ok %s (gateway says %d)"
                  % (web, n and n[0]["value"][1], hs and hs[0]["value"][1],
                     gw.get("exitgw_wg_handshakes_total", result="ok")), end=" ")
            self.assertGreater(float(n[0]["value"][1]), 50, n)
            self.assertEqual(unlabelled, [], "series without region or node: %s" % unlabelled)
            self.assertGreaterEqual(float(hs[0]["value"][1]), 2, hs)
            # Counters move: traffic through the tunnel shows up in a rate over a few scrapes.
            tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=20, interval=0.1, wait=2)
            self.assertEqual(rx, 20, out)
            q = 'sum(increase(exitgw_wg_transport_packets_total{job="%s", direction="rx"}[10s]))' % JOB
            inc = []
            self.assertTrue(L.wait_until(lambda: inc.append(query(q)) or (inc[-1] and float(inc[-1][0]["value"][1]) >= 15),
                                         10, step=0.5),
                            "prometheus saw no transport packets increase: %s" % inc[-1])
        finally:
            L.stop(p, signal.SIGTERM, grace=15)
        self.assertFalse(L.pid_running(p.pid))

    def test_metrics_exposition_passes_promtool_check(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian prometheus) is not installed")
        text = L.metrics_text(NAME)
        self.assertIn("exitgw_wg_peers", text)
        p = L.nsrun(NAME, "gw", "sh", "-c", "curl -sS --max-time 3 http://%s/metrics | %s check metrics"
                    % (METRICS, promtool), timeout=20)
        self.assertEqual(p.returncode, 0, "promtool check metrics:\n" + p.stdout)

    def test_readyz_and_healthz(self):
        code, body = http("/healthz")
        self.assertEqual((code, body.strip()), (200, "ok"))
        code, body = http("/readyz")
        self.assertEqual((code, body.strip()), (200, "ready"))
        self.assertEqual(http("/no-such-page")[0], 404)
        m = L.Metrics(NAME)
        # tunnel, internet and the exception TUN (the lab's --exception_port).
        self.assertEqual(m.get("exitgw_port_link_up"), 3)
        self.assertEqual(m.get("exitgw_port_link_up", port="exception"), 1)
        self.assertEqual(m.get("exitgw_workers"), 2)
        for fam in ("rx_missed", "rx_errors", "rx_nombuf", "tx_errors"):
            self.assertEqual(sum(1 for n, l, _v in m.series if n == "exitgw_port_%s_total" % fam), 3, fam)
        # Carrier loss on the internet side (the far end of inet0 goes down): the port's link
        # is down (af_packet: the gateway reads its kernel interface), so /readyz answers 503
        # naming the port while /healthz still answers; back to 200 when the carrier returns.
        L.nsrun(NAME, "inet", "ip", "link", "set", "eth0", "down", timeout=10, check=True)
        try:
            down = []
            L.wait_until(lambda: down.append(http("/readyz")) or down[-1][0] == 503, 5)
            code, body = down[-1]
            link = L.Metrics(NAME).get("exitgw_port_link_up", port="internet")
            hcode, _ = http("/healthz")
        finally:
            L.nsrun(NAME, "inet", "ip", "link", "set", "eth0", "up", timeout=10, check=True)
            # The kernel dropped inet's routes through eth0 with the link; put tools/lab's back.
            for net in ("203.0.113.0/24", "100.64.0.0/10"):
                L.nsrun(NAME, "inet", "ip", "route", "replace", net, "via", "192.0.2.1",
                        timeout=10, check=True)
        print("\n  internet carrier down: exitgw_port_link_up=%d, readyz %d %r, healthz %d"
              % (link, code, body.strip(), hcode), end=" ")
        self.assertEqual(hcode, 200, "healthz must answer while the process runs")
        self.assertEqual(link, 0, "the internet port's carrier is down")
        self.assertEqual((code, body.strip()), (503, "port internet link down"))
        self.assertTrue(L.wait_until(lambda: http("/readyz")[0] == 200, 10), "readyz not back to 200")
        # The tunnel port set down on the gateway's side: 503 again, naming that port.
        L.nsrun(NAME, "gw", "ip", "link", "set", "tun0", "down", timeout=10, check=True)
        try:
            down = []
            L.wait_until(lambda: down.append(http("/readyz")) or down[-1][0] == 503, 5)
        finally:
            L.nsrun(NAME, "gw", "ip", "link", "set", "tun0", "up", timeout=10, check=True)
        self.assertEqual((down[-1][0], down[-1][1].strip()), (503, "port tunnel link down"))
        self.assertTrue(L.wait_until(lambda: http("/readyz")[0] == 200, 10), "readyz not back to 200")
        # Answers stay quick while traffic flows.
        t0 = time.monotonic()
        for _ in range(10):
            self.assertEqual(http("/readyz")[0], 200)
        self.assertLess((time.monotonic() - t0) / 10, 0.5)
        tx, rx, out = L.ping(NAME, "c2", L.SERVER, count=3)
        self.assertEqual(rx, 3, out)


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
