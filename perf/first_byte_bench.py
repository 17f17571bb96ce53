#!/usr/bin/env python3
"""Time to first byte after `tailscale set --exit-node`, with and without the DERP relay.

  /usr/bin/python3 perf/first_byte_bench.py [--exitgw build/control/exitgw]
      [--connector build/connector/exitgw-connector] [--clients 3]

For each mode, brings up the tailnet lab (tools/lab up --tailnet) with the connector's
--derp-region -1 (the DERP relay on: home region advertised, packets relayed to exitgw's
exception TUN) and then 0 (no DERP: tailscaled's first handshake goes to DERP, is lost, and is
retried after 5 s), adds --clients fresh tailscaled clients one by one and, for each, measures
from `tailscale set --exit-node=<gateway>` to the first HTTP answer of the inet server through
the gateway (curl every 50 ms). Prints the times per mode. Root; each lab is taken down.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import labutil as L  # noqa: E402

NAME = "fbyte"


def gateway_ip():
    nodes = json.loads(L.lab_exec(NAME, "ctl", "headscale", "nodes", "list", "-o", "json").stdout)
    gw = [n for n in nodes if n.get("name") == NAME + "-gw"][0]
    return [a for a in gw["ip_addresses"] if ":" not in a][0]


def measure(args, derp_region):
    L.down(NAME)
    try:
        L.lab("up", "--name", NAME, "--clients", "1", "--exitgw", args.exitgw, "--tailnet",
              "--connector", args.connector, "--connector-flag", "derp-region=%d" % derp_region,
              check=True, timeout=300)
        gw = gateway_ip()
        times = []
        for i in range(args.clients):
            c = "f%d" % (i + 1)
            L.lab("add-client", "--name", NAME, c, "--group", "exit", check=True, timeout=120)
            t0 = time.monotonic()
            while L.lab_exec(NAME, c, "tailscale", "set", "--exit-node=" + gw).returncode != 0:
                if time.monotonic() - t0 > 30:
                    raise SystemExit("%s cannot select the gateway %s" % (c, gw))
                time.sleep(0.1)
            ok = L.wait_until(lambda: L.nsrun(NAME, c, "curl", "-sS", "-m", "2",
                                              "http://%s/whoami" % L.SERVER,
                                              timeout=6).returncode == 0, 30, 0.05)
            times.append(round(time.monotonic() - t0, 2) if ok else None)
        return times
    finally:
        L.down(NAME)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--exitgw", default=os.path.join(ROOT, "build", "control", "exitgw"))
    ap.add_argument("--connector", default=os.path.join(ROOT, "build", "connector",
                                                        "exitgw-connector"))
    ap.add_argument("--clients", type=int, default=3)
    a = ap.parse_args()
    for region, label in ((-1, "with the DERP relay (--derp-region -1)"),
                          (0, "without DERP (--derp-region 0)")):
        print("time to first byte after --exit-node, %s: %s s"
              % (label, ", ".join("%.2f" % t if t is not None else "none in 30 s"
                                  for t in measure(a, region))))


if __name__ == "__main__":
    main()
