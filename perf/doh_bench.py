#!/usr/bin/env python3
"""DNS through the exit node: DoH queries per second answered, exitgw beside tailscaled.

  /usr/bin/python3 perf/doh_bench.py [--exitgw build/control/exitgw]
      [--connector build/connector/exitgw-connector] [--seconds 10] [--concurrency 16]
      [--rounds 3] [--json FILE]

Brings up the tailnet lab (tools/lab up --tailnet: Headscale, tailscaled client c1,
exitgw + exitgw-connector) and adds x1, a real tailscaled exit node. From c1, perf/dohload
(Go, RFC 8484 GET over keep-alive connections) asks for an A record for --seconds at
--concurrency, alternately against
  exitgw:    http://<gateway tailnet IP>:5380/dns-query  (WireGuard into exitgw, its exception
             TUN, the connector's DoH, the lab resolver over the management link)
  tailscaled: x1's own PeerAPI DoH (its PeerAPIURL + /dns-query; the same lab resolver)
and prints answered queries per second, p50/p99 latency and failures per round, the medians
and the ratio exitgw/tailscaled measured in the same run. Both share the lab's Python DNS
responder, so the ratio, not the absolute figure, is the comparison. Root; the lab is taken
down at the end.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import labutil as L  # noqa: E402

NAME = "dohb"


def build_dohload(out):
    env = dict(os.environ, GOFLAGS="-mod=mod -buildvcs=false", GOPROXY="off")
    subprocess.run(["go", "build", "-o", out, "."], cwd=os.path.join(ROOT, "perf", "dohload"),
                   env=env, check=True)


def ts_status(host):
    p = L.lab_exec(NAME, host, "tailscale", "status", "--json", timeout=20)
    return json.loads(p.stdout)


def peer_of(host, name):
    for peer in (ts_status(host).get("Peer") or {}).values():
        if peer.get("HostName") == name or (peer.get("DNSName") or "").startswith(name + "."):
            return peer
    return None


def run_load(dohload, url, seconds, conc):
    p = L.nsrun(NAME, "c1", dohload, "-url", url, "-c", str(conc), "-d", "%ds" % seconds,
                timeout=seconds + 30)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit("dohload against %s failed:\n%s" % (url, p.stdout))
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--exitgw", default=os.path.join(ROOT, "build", "control", "exitgw"))
    ap.add_argument("--connector", default=os.path.join(ROOT, "build", "connector",
                                                        "exitgw-connector"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    dohload = os.path.join(ROOT, "build", "perf", "dohload")
    os.makedirs(os.path.dirname(dohload), exist_ok=True)
    build_dohload(dohload)
    L.down(NAME)
    try:
        L.lab("up", "--name", NAME, "--clients", "1", "--exitgw", a.exitgw, "--tailnet",
              "--connector", a.connector, check=True, timeout=300)
        L.lab("add-client", "--name", NAME, "x1", "--exit-node", check=True, timeout=120)
        gw_ip = None
        x1_url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (gw_ip and x1_url):
            gw = peer_of("c1", NAME + "-gw")
            x1 = peer_of("c1", "x1")
            gw_ip = gw and [a for a in gw.get("TailscaleIPs") or [] if ":" not in a][:1]
            gw_ip = gw_ip[0] if gw_ip else None
            urls = (x1 or {}).get("PeerAPIURL") or []
            x1_url = next((u for u in urls if "[" not in u), None)
            time.sleep(1)
        if not gw_ip or not x1_url:
            raise SystemExit("c1 does not see the gateway (%s) or x1's PeerAPI (%s)"
                             % (gw_ip, x1_url))
        targets = {"exitgw": "http://%s:5380/dns-query" % gw_ip,
                   "tailscaled": x1_url + "/dns-query"}
        # Warm both paths (handshakes, disco) before measuring.
        for url in targets.values():
            run_load(dohload, url, 2, 2)
        rounds = {k: [] for k in targets}
        for r in range(a.rounds):
            for k, url in targets.items():
                res = run_load(dohload, url, a.seconds, a.concurrency)
                rounds[k].append(res)
                print("round %d %-10s %8.0f q/s  p50 %6.2f ms  p99 %6.2f ms  failed %d%s"
                      % (r + 1, k, res["qps"], res["p50_ms"], res["p99_ms"], res["failed"],
                         ("  (" + res["first_error"] + ")") if res.get("first_error") else ""))
        med = {k: statistics.median(x["qps"] for x in v) for k, v in rounds.items()}
        ratio = med["exitgw"] / med["tailscaled"] if med["tailscaled"] else float("nan")
        print("DoH answered, median of %d rounds of %d s at %d connections: exitgw %.0f q/s, "
              "tailscaled exit node %.0f q/s, ratio %.2f"
              % (a.rounds, a.seconds, a.concurrency, med["exitgw"], med["tailscaled"], ratio))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"rounds": rounds, "median_qps": med, "ratio": ratio}, f, indent=1)
    finally:
        L.down(NAME)


if __name__ == "__main__":
    main()
