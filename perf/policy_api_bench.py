#!/usr/bin/env python3
"""perf/policy_api_bench.py: how long replacing the exit policy through the admin API takes.

  perf/policy_api_bench.py [--exitgw PATH] [--rounds N] [--quick] [--json FILE]

Starts the real exitgw (net_null ports, --no-huge, 2 peers, admin API on loopback) and PUTs
/v1/policy over one keep-alive HTTP connection, timing each request from send to the 200
answer: the admin server hands the text to the control thread, which parses, compiles it
with the current peers (classes and the rte_acl classifier) and publishes it to the workers
before answering. Two policies: conf/policy.hujson ("lab") and a generated one with 400
grants ("400 grants"); alternate PUTs carry one differing hosts entry, so every PUT changes
the policy. Reports p50/p90/max per policy and the compiled rule count
(exitgw_policy_rules). Needs root (DPDK). perf/run runs it.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from gateway_process import Gateway  # noqa: E402


def grants_policy(n):
    """A policy of n grants, each a user to one public /24 on one TCP port."""
    grants = ",\n".join('    {"src": ["user%d@example.com"], "dst": ["%d.%d.%d.0/24"], '
                        '"ip": ["tcp:%d"]}' % (i, 20 + i // 250, i % 250, 7, 1000 + i)
                        for i in range(n))
    return '{\n  "hosts": {},\n  "grants": [\n%s,\n  ],\n}\n' % grants


def with_host(text, i):
    """text with a "hosts" entry whose address depends on i, so consecutive PUTs differ."""
    if '"hosts": {' not in text:
        raise SystemExit('a benchmarked policy needs a "hosts": { section')
    return text.replace('"hosts": {', '"hosts": {"bench-alt": "198.18.0.%d", ' % (i % 2 + 1), 1)


def put_policy(conn, token, text):
    t0 = time.perf_counter()
    conn.request("PUT", "/v1/policy", body=text.encode(),
                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/hujson"})
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise SystemExit("PUT /v1/policy answered %d: %s" % (r.status, body.decode(errors="replace")))
    return dt


def metric(gw, name):
    status, text = gw.get("/metrics")
    for ln in text.splitlines():
        if ln.startswith(name + "{") or ln.startswith(name + " "):
            return float(ln.split()[-1])
    raise SystemExit("no %s on /metrics" % name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exitgw", default=os.path.join(REPO, "build", "control", "exitgw"))
    ap.add_argument("--rounds", type=int, default=0, help="PUTs per policy (default 100, quick 10)")
    ap.add_argument("--quick", action="store_true", help="10 PUTs per policy")
    ap.add_argument("--json", default="", help="write the figures here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("perf/policy_api_bench.py: run as root (DPDK)")
    rounds = a.rounds or (10 if a.quick else 100)
    with open(os.path.join(REPO, "conf", "policy.hujson")) as f:
        policies = [("lab", f.read()), ("400 grants", grants_policy(400))]
    rows = []
    with Gateway(a.exitgw, ["net_null0,no-rx=1", "net_null1,no-rx=1"], admin=True) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=30)
        for name, text in policies:
            put_policy(conn, gw.admin_token, with_host(text, 1))  # warm: first compile, connection
            times = [put_policy(conn, gw.admin_token, with_host(text, i)) for i in range(rounds)]
            ms = sorted(t * 1e3 for t in times)
            rows.append({"policy": name, "bytes": len(text), "rules": int(metric(gw, "exitgw_policy_rules")),
                         "puts": rounds, "p50_ms": statistics.median(ms),
                         "p90_ms": ms[min(len(ms) - 1, int(len(ms) * 0.9))], "max_ms": ms[-1]})
        conn.close()
        if gw.stop() != 0:
            sys.exit("exitgw did not exit cleanly")
    print("%-12s %7s %6s %5s %8s %8s %8s" % ("policy", "bytes", "rules", "PUTs", "p50 ms", "p90 ms",
                                              "max ms"))
    for r in rows:
        print("%-12s %7d %6d %5d %8.2f %8.2f %8.2f" % (r["policy"], r["bytes"], r["rules"], r["puts"],
                                                     r["p50_ms"], r["p90_ms"], r["max_ms"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
