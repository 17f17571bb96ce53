#!/usr/bin/env python3
"""Soak: minutes of churn under traffic in the lab; resident memory and mbufs flat, no loss.

  perf/soak.py [--minutes 10] [--exitgw build/control/exitgw] [--json FILE] [--lsan]

A lab (tools/lab) with three wireguard-go clients and a real etcd in the gateway's namespace:
- c1 sends a numbered UDP stream (50 datagrams/s, one socket) to the echo server for the
  whole run and is never touched: every datagram must come back (no loss, no duplicate).
- c2 sends a UDP probe from a new source port and an ICMP echo request with a new identifier
  every 100 ms (a NAT session each; UDP sessions expire after 120 s idle, the RFC 4787
  minimum the gateway enforces, ICMP ones after 3 s; a flow each, ending after 2 s) and roams: its wireguard-go changes its listen port every few
  seconds, so the gateway sees a new endpoint.
- c3's peer lives only in etcd and is put and deleted over and over (c3 probes meanwhile).
- Through the admin API (exitgwctl) peers without a client are added and removed, and the
  exit policy is swapped between an override and the file's (both grant the UDP echo).
Every 5 s: the gateway's resident memory (/proc/PID/status VmRSS) and, from /metrics, each
DPDK mempool's objects in use (exitgw_mempool_in_use) and the NAT sessions.

Fails (exit 1) when: a datagram of c1's stream is lost or duplicated; mbufs in use at the end
(traffic stopped, 3 s idle) exceed those at the start (idle, before traffic) by more than 64;
resident memory over the second half grows more than max(8 MiB, 5 %) (not judged under ASan,
whose quarantine grows by design); with --lsan (an ASan build), the gateway's SIGTERM exit
reports any leak (LeakSanitizer) or sanitizer error, or no churn operation failed to apply.
Needs root; prints every figure and writes them as JSON with --json.
"""
import argparse
import base64
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import labutil as L  # noqa: E402

ETCD_PORT, ETCD_PEER_PORT = 23890, 23900
ETCD = "http://127.0.0.1:%d" % ETCD_PORT
PREFIX = "/exitgw/soak/"
SAMPLE_SECONDS = 5

# c1's stream: one socket, seq every 20 ms; at SIGTERM stops sending, waits 2 s for the last
# echoes and writes {"sent", "received", "duplicates", "missing" (first 50)} to argv[1].
STREAM = r"""
import json, signal, socket, sys, threading, time
out = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 47000))
s.settimeout(0.2)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
got, dups, done = set(), [0], threading.Event()
def rx():
    while not done.is_set():
        try:
            n = int(s.recv(2048).split()[1])
        except (socket.timeout, ValueError, IndexError):
            continue
        if n in got:
            dups[0] += 1
        got.add(n)
t = threading.Thread(target=rx)
t.start()
seq, nxt = 0, time.time()
while not stop.is_set():
    s.sendto(b"seq %d" % seq, ("198.51.100.10", 7))
    seq += 1
    nxt += 0.02
    stop.wait(max(0.0, nxt - time.time()))
time.sleep(2)
done.set()
t.join()
missing = [n for n in range(seq) if n not in got]
with open(out, "w") as f:
    json.dump({"sent": seq, "received": len(got), "duplicates": dups[0], "missing": missing[:50],
               "lost": len(missing)}, f)
"""

# A UDP probe from a new source port and an ICMP echo request with a new identifier every
# interval (argv[2] s) to the echo server: a new NAT session each; counts at SIGTERM.
PROBES = r"""
import json, signal, socket, struct, sys, time
out, interval, base = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def echo_request(ident):
    h = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"soak"
    c = sum(struct.unpack("!%dH" % (len(h) // 2), h))
    c = (c >> 16) + (c & 0xFFFF)
    c = ~(c + (c >> 16)) & 0xFFFF
    return h[:2] + struct.pack("!H", c) + h[4:]
sent = echoed = 0
while not stop:
    icmp.sendto(echo_request((base + sent) % 65536), ("198.51.100.10", 0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", base + sent % 10000))
    s.settimeout(interval)
    s.sendto(b"p", ("198.51.100.10", 7))
    sent += 1
    try:
        s.recv(64)
        echoed += 1
        time.sleep(max(0.0, interval - 0.001))
    except (socket.timeout, InterruptedError):
        pass
    s.close()
with open(out, "w") as f:
    json.dump({"sent": sent, "echoed": echoed}, f)
"""

POLICY_OVERRIDE = ('{"grants": [{"src": ["autogroup:member"], "dst": ["198.51.100.0/24"], '
                   '"ip": ["udp:7", "tcp:80"]}]}')



def is_asan_build(exe):
    """An AddressSanitizer build: GCC links libasan, clang builds the runtime in (__asan_init)."""
    p = subprocess.run(["nm", "-D", "--defined-only", exe], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    d = subprocess.run(["ldd", exe], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return "__asan_init" in p.stdout or "libasan" in d.stdout

def log(msg):
    print("soak: " + msg, file=sys.stderr, flush=True)


class Soak:
    def __init__(self, a):
        self.a = a
        self.name = a.name or L.lab_name("sk")
        self.work = tempfile.mkdtemp(prefix="exitgw-soak-")
        self.ops = {k: 0 for k in ("api_peer_add", "api_peer_remove", "etcd_peer_put",
                                   "etcd_peer_delete", "policy_swap", "roam")}
        self.op_failures = []
        self.samples = []
        self.procs = []
        self.etcd = None

    # ---------------------------------------------------------------- helpers
    def ctl(self, *args):
        binary = os.path.join(os.path.dirname(os.path.dirname(L.EXITGW)), "tools", "exitgwctl")
        if not os.access(binary, os.X_OK):
            binary = os.path.join(ROOT, "build", "tools", "exitgwctl")
        p = L.nsrun(self.name, "gw", binary, "--token-file",
                    os.path.join(L.lab_dir(self.name), "admin.token"), *args, timeout=20)
        return p.returncode, p.stdout

    def etcdctl(self, *args):
        return L.nsrun(self.name, "gw", "env", "ETCDCTL_API=3", "etcdctl", "--endpoints", ETCD,
                       *args, timeout=15)

    def op(self, kind, ok, detail=""):
        self.ops[kind] += 1
        if not ok:
            self.op_failures.append("%s: %s" % (kind, detail.strip()[-300:]))

    def gw_pid(self):
        return L.pids(self.name)["exitgw"]

    def sample(self, t0):
        m = L.Metrics(self.name)
        rss = 0
        with open("/proc/%d/status" % self.gw_pid()) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    rss = int(ln.split()[1]) * 1024
        pools = {l["pool"]: v for n, l, v in m.series if n == "exitgw_mempool_in_use"}
        s = {"t": round(time.time() - t0, 1), "rss": rss, "mempool_in_use": pools,
             "nat_sessions": m.get("exitgw_nat_sessions"),
             "peers": m.get("exitgw_wg_peers"), "flows": m.get("exitgw_flows_active")}
        self.samples.append(s)
        return s

    # ---------------------------------------------------------------- set-up
    def up(self):
        L.down(self.name)
        L.up(self.name, clients=3, extra=(
            "--gw-flag", "etcd_endpoints=" + ETCD, "--gw-flag", "etcd_prefix=" + PREFIX,
            "--gw-flag", "nat_timeout_udp=120",
            "--gw-flag", "nat_timeout_icmp=3", "--gw-flag", "flow_idle_timeout=2"))
        self.etcd = L.nsspawn(self.name, "gw", "etcd", "--name", "soak", "--data-dir",
                              os.path.join(self.work, "etcd"), "--listen-client-urls", ETCD,
                              "--advertise-client-urls", ETCD,
                              "--listen-peer-urls", "http://127.0.0.1:%d" % ETCD_PEER_PORT,
                              "--initial-advertise-peer-urls",
                              "http://127.0.0.1:%d" % ETCD_PEER_PORT,
                              "--initial-cluster", "soak=http://127.0.0.1:%d" % ETCD_PEER_PORT,
                              out=os.path.join(self.work, "etcd.log"))
        if not L.wait_until(lambda: self.etcdctl("endpoint", "health").returncode == 0, 30):
            raise RuntimeError("etcd did not start")
        # c3's peer moves from the peers file to etcd.
        self.c3 = L.client(self.name, "c3")
        self.c3_key = PREFIX + "peers/" + base64.urlsafe_b64encode(
            base64.b64decode(self.c3["pub"])).decode().rstrip("=")
        self.c3_value = json.dumps({"public_key": self.c3["pub"],
                                    "allowed_ips": [self.c3["tailnet"] + "/32"],
                                    "user": "c3@lab.test"})
        L.write_peers(self.name, L.peers_without(L.read_peers(self.name), self.c3["pub"]))
        if not L.wait_until(lambda: L.Metrics(self.name).get("exitgw_wg_peers") == 2, 10):
            raise RuntimeError("the gateway did not drop c3's file peer")
        if self.etcdctl("put", self.c3_key, self.c3_value).returncode != 0:
            raise RuntimeError("etcdctl put failed")
        self.c3_in_etcd = True
        pending = L.ensure_handshakes(self.name, ("c1", "c2", "c3"), timeout=30)
        if pending:
            raise RuntimeError("no handshake from " + " ".join(sorted(pending)))

    def spawn(self, host, script, *args):
        out = os.path.join(self.work, "%s-%d.json" % (host, len(self.procs)))
        p = L.nsspawn(self.name, host, "/usr/bin/python3", "-c", script, out, *args,
                      out=out + ".log")
        self.procs.append((p, out))
        return p, out

    # ---------------------------------------------------------------- churn
    def churn_step(self, i, api_peers):
        kind = i % 4
        if kind == 0:  # admin API: add a peer, remove the oldest once there are 8
            priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True).stdout
            pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True,
                                 text=True).stdout.strip()
            ip = "100.64.%d.%d/32" % (2 + (i // 250) % 50, 1 + i % 250)
            rc, out = self.ctl("peer", "add", pub, "--allowed-ips", ip, "--user", "soak@lab.test")
            self.op("api_peer_add", rc == 0, out)
            if rc == 0:
                api_peers.append(pub)
            while len(api_peers) > 8:
                rc, out = self.ctl("peer", "remove", api_peers.pop(0))
                self.op("api_peer_remove", rc == 0, out)
        elif kind == 1:  # etcd: c3's peer deleted, or put back
            if self.c3_in_etcd:
                p = self.etcdctl("del", self.c3_key)
                self.op("etcd_peer_delete", p.returncode == 0, p.stdout)
            else:
                p = self.etcdctl("put", self.c3_key, self.c3_value)
                self.op("etcd_peer_put", p.returncode == 0, p.stdout)
            self.c3_in_etcd = not self.c3_in_etcd
        elif kind == 2:  # the exit policy: an override, or back to the file's
            if (i // 4) % 2 == 0:
                with open(os.path.join(self.work, "policy.hujson"), "w") as f:
                    f.write(POLICY_OVERRIDE)
                rc, out = self.ctl("policy", "set", os.path.join(self.work, "policy.hujson"))
            else:
                rc, out = self.ctl("policy", "clear")
            self.op("policy_swap", rc == 0, out)
        else:  # c2 roams: a new listen port, so a new endpoint at the gateway
            c2 = L.client(self.name, "c2")
            p = L.nsrun(self.name, "c2", "wg", "set", c2["wg"], "listen-port",
                        str(40000 + random.randrange(20000)), timeout=10)
            self.op("roam", p.returncode == 0, p.stdout)

    # ---------------------------------------------------------------- run
    def run(self):
        t_end_churn = self.a.minutes * 60
        self.up()
        gw_pid = self.gw_pid()
        asan = is_asan_build("/proc/%d/exe" % gw_pid)
        time.sleep(1)
        t0 = time.time()
        start = self.sample(t0)
        log("start: rss %.1f MiB, mempools in use %s" % (start["rss"] / 2**20,
                                                         start["mempool_in_use"]))
        stream, stream_out = self.spawn("c1", STREAM)
        self.spawn("c2", PROBES, "0.1", "20000")
        self.spawn("c3", PROBES, "0.5", "30000")
        api_peers, i, next_sample = [], 0, t0 + SAMPLE_SECONDS
        while time.time() - t0 < t_end_churn:
            self.churn_step(i, api_peers)
            i += 1
            now = time.time()
            if now >= next_sample:
                s = self.sample(t0)
                next_sample += SAMPLE_SECONDS
                log("t=%4.0fs rss %.1f MiB, in use %s, NAT sessions %d, ops %d, failures %d"
                    % (s["t"], s["rss"] / 2**20, s["mempool_in_use"], s["nat_sessions"],
                       sum(self.ops.values()), len(self.op_failures)))
            time.sleep(0.5)
        for p, _ in self.procs:
            L.stop(p, grace=10)
        time.sleep(3)
        end = self.sample(t0)
        with open(stream_out) as f:
            steady = json.load(f)
        probes = []
        for _p, out in self.procs[1:]:
            try:
                with open(out) as f:
                    probes.append(json.load(f))
            except (OSError, ValueError):
                probes.append(None)
        m = L.Metrics(self.name)
        figures = {
            "minutes": self.a.minutes, "asan": asan,
            "rss_start": start["rss"], "rss_end": end["rss"],
            "rss_max": max(s["rss"] for s in self.samples),
            "mempool_in_use_start": start["mempool_in_use"],
            "mempool_in_use_end": end["mempool_in_use"],
            "mempool_in_use_max": {p: max(s["mempool_in_use"].get(p, 0) for s in self.samples)
                                   for p in start["mempool_in_use"]},
            "steady_stream": steady, "probes_c2": probes[0], "probes_c3": probes[1],
            "churn_ops": dict(self.ops), "churn_op_failures": self.op_failures[:20],
            "nat_sessions_created": m.get("exitgw_nat_sessions_created_total"),
            "nat_sessions_expired": m.get("exitgw_nat_sessions_expired_total"),
            "nat_sessions_removed": m.get("exitgw_nat_sessions_removed_total"),
            "nat_translations": m.get("exitgw_nat_translations_total"),
            "drops": {l["reason"]: v for n, l, v in m.series
                      if n == "exitgw_drops_total" and v},
            "samples": self.samples,
        }
        problems = self.judge(figures)
        if self.a.lsan:
            figures["lsan"] = self.stop_gateway_and_read_sanitizer()
            if figures["lsan"]["problems"]:
                problems += figures["lsan"]["problems"]
        figures["problems"] = problems
        return figures

    def judge(self, f):
        problems = []
        s = f["steady_stream"]
        if s["lost"] or s["duplicates"] or s["received"] != s["sent"]:
            problems.append("steady stream: %d sent, %d received, %d lost, %d duplicates "
                            "(first missing %s)" % (s["sent"], s["received"], s["lost"],
                                                     s["duplicates"], s["missing"][:10]))
        for pool, v in f["mempool_in_use_end"].items():
            if v - f["mempool_in_use_start"].get(pool, 0) > 64:
                problems.append("mempool %s: %d in use at the end, %d at the start"
                                % (pool, v, f["mempool_in_use_start"].get(pool, 0)))
        half = [x["rss"] for x in self.samples if x["t"] >= f["minutes"] * 30]
        if len(half) >= 2 and not f["asan"]:
            growth = half[-1] - half[0]
            f["rss_growth_second_half"] = growth
            if growth > max(8 << 20, half[0] // 20):
                problems.append("resident memory grew %.1f MiB over the second half"
                                % (growth / 2**20))
        if self.op_failures:
            problems.append("%d churn operations failed, e.g. %s"
                            % (len(self.op_failures), self.op_failures[0]))
        if not f["nat_sessions_expired"] or not f["nat_sessions_removed"]:
            problems.append("NAT sessions never expired or were never removed with a peer")
        if not all(self.ops.values()):
            problems.append("some churn never ran: %s" % self.ops)
        return problems

    def stop_gateway_and_read_sanitizer(self):
        """SIGTERM (the unit's KillSignal), wait, and read LeakSanitizer's report from the log."""
        pid = self.gw_pid()
        logf = os.path.join(L.lab_dir(self.name), "exitgw.log")
        seen = os.path.getsize(logf)
        os.kill(pid, signal.SIGTERM)
        exited = L.wait_until(lambda: not L.pid_running(pid), 60, step=0.2)
        with open(logf, errors="replace") as f:
            f.seek(seen)
            tail = f.read()
        problems = []
        if not exited:
            problems.append("the gateway did not exit within 60 s of SIGTERM")
        for marker in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:",
                       "LeakSanitizer has encountered a fatal error"):
            if marker in tail:
                problems.append("sanitizer: " + marker)
        with open(os.path.join(self.work, "exitgw-shutdown.log"), "w") as f:
            f.write(tail)
        return {"exited": exited, "problems": problems, "report": tail[-4000:] if problems else ""}

    def cleanup(self):
        for p, _ in self.procs:
            L.stop(p)
        L.stop(self.etcd)
        L.down(self.name)


def print_figures(f):
    mib = 2 ** 20
    print("\n== soak: %g min of churn under traffic%s" % (f["minutes"], " (ASan build)" if f["asan"] else ""))
    print("resident memory  start %.1f MiB  end %.1f MiB  max %.1f MiB%s" % (
        f["rss_start"] / mib, f["rss_end"] / mib, f["rss_max"] / mib,
        "  (second half %+.1f MiB)" % (f["rss_growth_second_half"] / mib)
        if "rss_growth_second_half" in f else ""))
    for pool in sorted(f["mempool_in_use_end"]):
        print("mempool %-14s in use  start %d  end %d  max %d" % (
            pool, f["mempool_in_use_start"].get(pool, 0), f["mempool_in_use_end"][pool],
            f["mempool_in_use_max"].get(pool, 0)))
    s = f["steady_stream"]
    print("steady stream (c1)  sent %d  received %d  lost %d  duplicates %d" % (
        s["sent"], s["received"], s["lost"], s["duplicates"]))
    for c in ("c2", "c3"):
        p = f["probes_" + c]
        if p:
            print("probes %s  sent %d  echoed %d" % (c, p["sent"], p["echoed"]))
    print("churn operations  %s  (total %d)" % (
        "  ".join("%s %d" % kv for kv in sorted(f["churn_ops"].items())), sum(f["churn_ops"].values())))
    print("NAT sessions  created %d  expired %d  removed with their peer %d" % (
        f["nat_sessions_created"], f["nat_sessions_expired"], f["nat_sessions_removed"]))
    print("drops %s" % (f["drops"] or "none"))
    if "lsan" in f:
        print("LeakSanitizer at SIGTERM: %s" % ("clean" if not f["lsan"]["problems"]
                                                 else "; ".join(f["lsan"]["problems"])))
    print("result: %s" % ("ok" if not f["problems"] else "FAILED\n  " + "\n  ".join(f["problems"])))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--exitgw", default=os.path.join(ROOT, "build", "control", "exitgw"))
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--name", help="lab name (default sk + pid)")
    ap.add_argument("--lsan", action="store_true",
                    help="end with SIGTERM and fail on a LeakSanitizer report (ASan build)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("perf/soak.py: run as root (network namespaces, DPDK)")
    L.EXITGW = os.path.realpath(a.exitgw)
    s = Soak(a)
    try:
        f = s.run()
    finally:
        s.cleanup()
    print_figures(f)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(f, fh, indent=1)
    return 1 if f["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
