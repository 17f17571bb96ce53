#!/usr/bin/env python3
"""perf/compare_exits.py: exitgw against a wireguard-go + nftables exit, same machine, same run.

  perf/compare_exits.py [--quick] [--json FILE] [--peers N] [--build-dir DIR] [--no-iperf]
                        [--gw-flag FLAG=VALUE]... [--keep-logs]

Needs root. Runs, one topology at a time (never two exits at once):
  1. calibration: exitgw_loadgen with its T port wired straight to its I port (a veth pair):
     the ceiling of the generator and of the af_packet/veth plumbing, per packet size;
  2. the wireguard-go exit (namespace, `wg setconf`, ip_forward, nftables masquerade):
     zero-loss search at 64 B and 1420 B inner packets, then fixed-rate CPU runs;
  3. exitgw (af_packet on veths, lab-style 2-port topology): the same;
  4. calibration again at the fixed rates (the generator's own CPU, to subtract);
  5. TCP iperf3 through each exit from a wireguard-go client: `tools/lab up` for exitgw,
     namespaces of our own for the wireguard-go exit.
Prints a table, writes JSON (--json), and removes every namespace and process it made, also on
failure or Ctrl-C. Full run < 10 min, --quick < 3 min. perf/README.md explains each figure.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LAB = os.path.join(REPO, "tools", "lab")
DPDK_RUN = "/var/run/dpdk"
WG_RUN = "/var/run/wireguard"
GW_TUN, GW_ROUTER, GW_INET, INET_ROUTER = "10.77.0.1", "10.77.0.2", "192.0.2.1", "192.0.2.2"
ENDPOINTS = "10.78.0.0/16"
SINK = "198.51.100.10"
TAILNET = "100.64.0.0/10"
# Other sessions share these 2 CPUs: both exits run at the same raised priority, the generator
# above them (a busy exit on CPU 1 pushes everyone else's work onto the generator's CPU 0).
NICE = ["nice", "-n", "-10"]
GEN_NICE = ["nice", "-n", "-20"]
GEN_CPU, EXIT_CPU = "0", "1"

UID = "%d" % (os.getpid() % 10000)
P = "pf" + UID  # namespace / device / prefix stem, unique per invocation


def log(msg):
    print("compare_exits: " + msg, file=sys.stderr, flush=True)


class Fail(Exception):
    pass


# --------------------------------------------------------------------------- bookkeeping

class Env:
    def __init__(self, workdir):
        self.workdir = workdir
        self.namespaces = []
        self.procs = {}  # pid -> (Popen, what)
        self.dpdk_prefixes = []
        self.wg_socks = []
        self.labs = []

    # processes ------------------------------------------------------------------
    def spawn(self, args, ns, logname, what, env=None):
        logf = open(os.path.join(self.workdir, logname), "ab")
        full = (["ip", "netns", "exec", ns] if ns else []) + list(args)
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True, env=env)
        logf.close()
        self.procs[p.pid] = (p, what)
        return p

    def stop(self, pid, grace=6.0):
        ent = self.procs.get(pid)
        if not ent:
            return
        p, what = ent
        if p.poll() is None:
            try:
                os.kill(pid, signal.SIGCONT)  # it may be frozen (one exit runs at a time)
                os.kill(pid, signal.SIGTERM)
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log("%s (pid %d) ignored SIGTERM; SIGKILL" % (what, pid))
                os.kill(pid, signal.SIGKILL)
                p.wait(timeout=5)
            except ProcessLookupError:
                pass
        del self.procs[pid]

    # namespaces -----------------------------------------------------------------
    def ns_add(self, ns):
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1"], ns=ns)

    def ns_del(self, ns):
        # Our own namespace: whatever still runs in it is ours (pids we did not track included).
        pids = [int(t) for t in run(["ip", "netns", "pids", ns], check=False).stdout.split()
                if t.isdigit()]
        for pid in pids:
            if pid in self.procs:
                self.stop(pid)
            else:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and run(["ip", "netns", "pids", ns], check=False).stdout.strip():
            time.sleep(0.1)
        for t in run(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                os.kill(int(t), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run(["ip", "netns", "del", ns], check=False)
        if ns in self.namespaces:
            self.namespaces.remove(ns)

    def cleanup(self):
        for lab in list(self.labs):
            run([sys.executable, LAB, "down", "--name", lab], check=False, timeout=60)
            self.labs.remove(lab)
        for pid in list(self.procs):
            self.stop(pid)
        for ns in list(reversed(self.namespaces)):
            self.ns_del(ns)
        for prefix in self.dpdk_prefixes:
            shutil.rmtree(os.path.join(DPDK_RUN, prefix), ignore_errors=True)
        for s in self.wg_socks:
            try:
                os.unlink(s)
            except OSError:
                pass


def run(args, ns=None, check=True, timeout=60, input_text=None):
    if ns:
        args = ["ip", "netns", "exec", ns] + list(args)
    kw = {"input": input_text} if input_text is not None else {"stdin": subprocess.DEVNULL}
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        p = subprocess.CompletedProcess(args, 124, out, "timed out after %ss" % timeout)
    if check and p.returncode != 0:
        raise Fail("'%s' failed (%d): %s" % (" ".join(args), p.returncode,
                                             (p.stderr or p.stdout).strip()[-800:]))
    return p


def veth(env, ns_a, dev_a, ns_b, dev_b):
    run(["ip", "-n", ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b,
         "netns", ns_b])
    for ns, dev in ((ns_a, dev_a), (ns_b, dev_b)):
        run(["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"], ns=ns)
        run(["ip", "-n", ns, "link", "set", dev, "up"])


def wait_for(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def renice_ns(ns):
    """Same scheduling weight for everything under test (other sessions share these CPUs)."""
    for t in run(["ip", "netns", "pids", ns], check=False).stdout.split():
        run(["renice", "-n", "-10", "-p", t], check=False)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- the generator

class Gen:
    """exitgw_loadgen on the DPDK ends of two veths (T toward the exit's tunnel side, I toward
    its internet side) in namespace ns."""

    def __init__(self, env, binary, ns, t_if, i_if):
        self.env, self.binary, self.ns, self.t_if, self.i_if = env, binary, ns, t_if, i_if
        self.n = 0

    def run(self, args, timeout):
        self.n += 1
        prefix = "%sgen%d" % (P, self.n)
        self.env.dpdk_prefixes.append(prefix)
        cmd = ["ip", "netns", "exec", self.ns] + GEN_NICE + ["taskset", "-c", GEN_CPU, self.binary,
               "--lcores=0@" + GEN_CPU, "--no-pci", "--no-huge", "-m", "256", "--no-shconf",
               "--no-telemetry", "--log-level=error", "--file-prefix=" + prefix,
               "--vdev=net_af_packet0,iface=%s,qpairs=1,framecnt=4096,qdisc_bypass=1" % self.t_if,
               "--vdev=net_af_packet1,iface=%s,qpairs=1,framecnt=4096" % self.i_if, "--"] + args
        with open(os.path.join(self.env.workdir, "loadgen.log"), "a") as lf:
            lf.write("$ %s\n" % " ".join(cmd))
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.env.procs[p.pid] = (p, "exitgw_loadgen")
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.env.stop(p.pid)
            raise Fail("exitgw_loadgen timed out after %ds (%s)" % (timeout, " ".join(args)))
        self.env.procs.pop(p.pid, None)
        shutil.rmtree(os.path.join(DPDK_RUN, prefix), ignore_errors=True)
        with open(os.path.join(self.env.workdir, "loadgen.log"), "a") as lf:
            lf.write(out + err)
        lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
        if p.returncode != 0:
            raise Fail("exitgw_loadgen exited %d: %s" % (p.returncode, err.strip()[-600:]))
        return lines


def kind(lines, k):
    return [x for x in lines if x.get("kind") == k]


# --------------------------------------------------------------------------- topologies

def build_gen_pair(env, gen_ns, exit_ns, tag):
    """Generator namespace with T/I veths into exit_ns. Returns (gen T, gen I, exit T, exit I)."""
    env.ns_add(gen_ns)
    if exit_ns not in env.namespaces:
        env.ns_add(exit_ns)
    gt, gi, xt, xi = tag + "gT", tag + "gI", tag + "xT", tag + "xI"
    veth(env, gen_ns, gt, exit_ns, xt)
    veth(env, gen_ns, gi, exit_ns, xi)
    return gt, gi, xt, xi


def start_wggo_exit(env, ns, xt, xi, gw_key, peers_conf, dev, cpu=None):
    """wireguard-go as the server of every generator peer, forwarding to the internet side with
    nftables masquerade: what a user would set up instead of exitgw."""
    run(["ip", "-n", ns, "addr", "add", GW_TUN + "/24", "dev", xt])
    run(["ip", "-n", ns, "addr", "add", GW_INET + "/24", "dev", xi])
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
         "net.ipv4.conf.default.rp_filter=0"], ns=ns)
    sock = os.path.join(WG_RUN, dev + ".sock")
    if os.path.exists(sock):
        raise Fail("%s exists: another wireguard-go uses the name %s" % (sock, dev))
    env.wg_socks.append(sock)
    pin = ["taskset", "-c", cpu] if cpu else []
    p = env.spawn(NICE + pin + ["wireguard-go", "-f", dev], ns, "wg-%s.log" % dev, "wireguard-go " + dev,
                  env=dict(os.environ, LOG_LEVEL="error"))
    if not wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 5) or p.poll() is not None:
        raise Fail("wireguard-go %s did not start: %s" % (dev, tail(os.path.join(env.workdir, "wg-%s.log" % dev))))
    with open(gw_key) as f:
        priv = f.read().strip()
    with open(peers_conf) as f:
        # wg(8) knows no User/Tags (exitgw's identity keys): drop them for wireguard-go.
        peers = "".join(ln for ln in f if not re.match(r"^\s*(#|user\s*=|tags\s*=)", ln, re.I))
    conf = os.path.join(env.workdir, dev + ".conf")
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("[Interface]\nPrivateKey = %s\nListenPort = 51820\n%s" % (priv, peers))
    run(["wg", "setconf", dev, conf], ns=ns)
    run(["ip", "-n", ns, "link", "set", dev, "up"])
    run(["ip", "-n", ns, "route", "add", TAILNET, "dev", dev])
    run(["nft", "-f", "-"], ns=ns, input_text=(
        "table ip %s {\n chain post { type nat hook postrouting priority srcnat; policy accept;\n"
        "  oifname \"%s\" masquerade\n }\n}\n" % (P + "nat", xi)))
    return p


def start_exitgw(env, a, ns, xt, xi, gw_key, peers_conf):
    qpairs = 2  # one worker + control's TX queue
    prefix = P + "egw"
    env.dpdk_prefixes.append(prefix)
    flags = os.path.join(env.workdir, "exitgw.flags")
    lines = ["--tunnel_port=net_af_packet0", "--internet_port=net_af_packet1",
             "--tunnel_addr=%s/24" % GW_TUN, "--tunnel_gateway=" + GW_ROUTER,
             "--internet_addr=%s/24" % GW_INET, "--internet_gateway=" + INET_ROUTER,
             "--metrics_listen=127.0.0.1:9550", "--region=perf", "--node=" + ns,
             "--private_key_file=" + gw_key, "--peers_file=" + peers_conf]
    # Exit policy, approval and CGNAT where this exitgw has them: approved, members may reach
    # the sink's documentation range (built-in safety blocks it otherwise), NAT44 like the
    # reference exit's masquerade.
    helptext = run([a.exitgw, "--help"], check=False, timeout=10).stdout
    has = lambda f: re.search(r"^\s+-%s\s" % f, helptext, re.M) is not None
    if has("policy_file"):
        pol = os.path.join(env.workdir, "policy.hujson")
        with open(pol, "w") as f:
            f.write('{"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:internet"], '
                    '"ip": ["*"]},\n {"src": ["autogroup:member"], "dst": ["198.51.100.0/24"], '
                    '"ip": ["*"]}]}\n')
        lines.append("--policy_file=" + pol)
    if has("approvals_file"):
        appr = os.path.join(env.workdir, "approvals.conf")
        with open(appr, "w") as f:
            f.write("exit-node approved\n")
        lines.append("--approvals_file=" + appr)
    if has("nat_pool"):
        # Paired pooling with 512-port blocks: ~126 subscribers per address, so a /26 for
        # up to 8000 peers.
        lines.append("--nat_pool=203.0.113.0/26")
    lines += ["--" + f for f in a.gw_flag]
    a.exitgw_flags_used = lines
    with open(flags, "w") as f:
        f.write("\n".join(lines) + "\n")
    # Control and the one worker both on EXIT_CPU: the exit gets one CPU, as wireguard-go does.
    args = NICE + [a.exitgw, "--lcores=0@%s,1@%s" % (EXIT_CPU, EXIT_CPU), "--file-prefix=" + prefix,
                   "--no-pci", "--no-huge", "-m", "512",
                   "--vdev=net_af_packet0,iface=%s,qpairs=%d" % (xt, qpairs),
                   "--vdev=net_af_packet1,iface=%s,qpairs=%d" % (xi, qpairs), "--",
                   "--flagfile=" + flags]
    p = env.spawn(args, ns, "exitgw.log", "exitgw")

    def ready():
        r = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
                 "http://127.0.0.1:9550/readyz"], ns=ns, check=False, timeout=4)
        return r.stdout.strip() == "200" or p.poll() is not None
    if not wait_for(ready, 25, 0.2) or p.poll() is not None:
        raise Fail("exitgw did not become ready:\n" + tail(os.path.join(env.workdir, "exitgw.log")))
    return p


def exitgw_drops(ns):
    r = run(["curl", "-s", "--max-time", "3", "http://127.0.0.1:9550/metrics"], ns=ns, check=False,
            timeout=6)
    drops = {}
    for ln in r.stdout.splitlines():
        m = re.match(r'^exitgw_drops_total\{(.*)\}\s+(\S+)', ln)
        if m and float(m.group(2)) > 0:
            reason = re.search(r'reason="([^"]*)"', m.group(1))
            port = re.search(r'port="([^"]*)"', m.group(1))
            key = "%s/%s" % (port.group(1) if port else "?", reason.group(1) if reason else "?")
            drops[key] = drops.get(key, 0) + float(m.group(2))
    return drops


# --------------------------------------------------------------------------- measurements

def search(gen, base, size, ceiling, a):
    lines = gen.run(base + ["--size", str(size), "--search", "--max-rate", "%.0f" % ceiling,
                            "--duration", str(a.trial_s), "--loss", str(a.loss),
                            "--precision", "0.05", "--max-trials", str(a.max_trials)],
                    timeout=60 + a.max_trials * (a.trial_s + 1.5))
    res = kind(lines, "result")
    if not res:
        raise Fail("no search result at %d B" % size)
    out = dict(res[0])
    out["setup"] = kind(lines, "setup")[0]
    out["trials"] = [{k: t[k] for k in ("rate_pps", "offered_pps", "delivered_pps", "loss",
                                        "gen_limited", "gen_rx_missed")} for t in kind(lines, "trial")]
    return out


def fixed(gen, base, size, rate, a, watch):
    args = base + ["--size", str(size), "--rate", "%.0f" % rate, "--duration", str(a.cpu_s),
                   "--pace", "sleep"]
    for name, pids in watch.items():
        if pids:
            args += ["--cpu-watch", "%s=%s" % (name, ",".join(str(p) for p in pids))]
    lines = gen.run(args, timeout=60 + a.cpu_s)
    t = kind(lines, "trial")
    if not t:
        raise Fail("no fixed-rate result at %d B" % size)
    return t[0]


def ksoftirqd_pids():
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().startswith("ksoftirqd/"):
                        out.append(int(d))
            except OSError:
                pass
    return out


def iperf_json(text):
    try:
        j = json.loads(text)
    except ValueError:
        return {"error": "no JSON from iperf3"}
    if j.get("error"):
        return {"error": j["error"]}
    end = j["end"]
    return {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
            "retransmits": end["sum_sent"].get("retransmits", 0)}


def iperf_pair(ns_client, a, exec_prefix=None):
    res = {}
    for label, extra in (("upload", []), ("download", ["-R"])):
        cmd = (exec_prefix or ["ip", "netns", "exec", ns_client]) + \
            ["iperf3", "-c", SINK, "-t", str(a.iperf_s), "-J", "--connect-timeout", "4000"] + extra
        r = run(cmd, check=False, timeout=a.iperf_s + 25)
        res[label] = iperf_json(r.stdout)
    return res


def iperf_exitgw(env, a):
    """TCP through exitgw: the lab (real wireguard-go client, exitgw on af_packet), as a black box."""
    lab = "pfl" + UID
    env.labs.append(lab)
    r = run([sys.executable, LAB, "up", "--name", lab, "--clients", "1", "--workers", "1",
             "--exitgw", a.exitgw], check=False, timeout=120)
    if r.returncode != 0:
        raise Fail("tools/lab up failed: " + (r.stderr or r.stdout).strip()[-800:])
    for ns in run(["ip", "netns", "list"]).stdout.split("\n"):
        if ns.split() and ns.split()[0].startswith(lab + "-"):
            renice_ns(ns.split()[0])
    res = iperf_pair(None, a, exec_prefix=[sys.executable, LAB, "exec", "--name", lab, "c1"])
    run([sys.executable, LAB, "down", "--name", lab], check=False, timeout=60)
    env.labs.remove(lab)
    return res


def iperf_wggo(env, a, gw_key, gw_pub):
    """TCP through a wireguard-go exit with nftables masquerade: client -- exit -- internet."""
    c, x, i = P + "-tc", P + "-tx", P + "-ti"
    for ns in (c, x, i):
        env.ns_add(ns)
    veth(env, c, "eth0", x, "cli0")
    veth(env, x, "inet0", i, "eth0")
    # The exit: same recipe as the load test, its tunnel side facing the client.
    cdev, xdev = P + "c", P + "s"
    ckey = os.path.join(env.workdir, "iperf-client.key")
    priv = run(["wg", "genkey"]).stdout.strip()
    fd = os.open(ckey, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(priv + "\n")
    cpub = run(["wg", "pubkey"], input_text=priv + "\n").stdout.strip()
    peers = os.path.join(env.workdir, "iperf-peers.conf")
    with open(peers, "w") as f:
        f.write("[Peer]\nPublicKey = %s\nAllowedIPs = 100.64.0.11/32\n" % cpub)
    start_wggo_exit(env, x, "cli0", "inet0", gw_key, peers, xdev)
    run(["ip", "-n", i, "addr", "add", INET_ROUTER + "/24", "dev", "eth0"])
    run(["ip", "-n", i, "addr", "add", SINK + "/32", "dev", "lo"])
    run(["ip", "-n", x, "route", "add", "default", "via", INET_ROUTER])
    env.spawn(["iperf3", "-s", "-B", SINK, "-p", "5201"], i, "iperf3-server.log", "iperf3 -s")
    # The client: wireguard-go with its default route into the tunnel, as in the lab.
    run(["ip", "-n", c, "addr", "add", "10.77.0.11/24", "dev", "eth0"])
    sock = os.path.join(WG_RUN, cdev + ".sock")
    env.wg_socks.append(sock)
    p = env.spawn(["wireguard-go", "-f", cdev], c, "wg-%s.log" % cdev, "wireguard-go client",
                  env=dict(os.environ, LOG_LEVEL="error"))
    if not wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 5) or p.poll() is not None:
        raise Fail("client wireguard-go did not start")
    run(["wg", "set", cdev, "private-key", ckey, "peer", gw_pub, "endpoint", GW_TUN + ":51820",
         "allowed-ips", "0.0.0.0/0"], ns=c)
    run(["ip", "-n", c, "addr", "add", "100.64.0.11/32", "dev", cdev])
    run(["ip", "-n", c, "link", "set", cdev, "mtu", "1420", "up"])
    run(["ip", "-n", c, "route", "add", "default", "dev", cdev])
    if not wait_for(lambda: ":5201" in run(["ss", "-Hltn", "sport = :5201"], ns=i, check=False).stdout, 10):
        raise Fail("iperf3 -s did not start")
    for ns in (c, x, i):
        renice_ns(ns)
    run(["ping", "-c", "2", "-W", "2", SINK], ns=c, check=False, timeout=10)  # handshake
    res = iperf_pair(c, a)
    for ns in (c, x, i):
        env.ns_del(ns)
    return res


# --------------------------------------------------------------------------- report

def ratio(a, b):
    return (a / b) if a and b else None


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 100:
            return "%.0f%s" % (v, unit)
        return "%.3g%s" % (v, unit)
    return "%s%s" % (v, unit)


def report(R):
    rows = []
    cal = R.get("calibration", {})
    for size in R["sizes"]:
        s = str(size)
        e = R.get("exitgw", {}).get("search", {}).get(s, {})
        w = R.get("wireguard_go", {}).get("search", {}).get(s, {})
        ek, wk = e.get("no_drop_pps"), w.get("no_drop_pps")
        rows.append(("zero-loss %4d B (kpps)" % size, ek and ek / 1e3, wk and wk / 1e3, ratio(ek, wk)))
        eg, wg_ = e.get("no_drop_gbps_inner"), w.get("no_drop_gbps_inner")
        rows.append(("  inner Gbit/s at zero loss", eg, wg_, ratio(eg, wg_)))
        em, wm = e.get("max_delivered_pps"), w.get("max_delivered_pps")
        rows.append(("  max delivered (kpps, lossy)", em and em / 1e3, wm and wm / 1e3, ratio(em, wm)))
        c = cal.get("ceiling", {}).get(s, {})
        rows.append(("  generator ceiling (kpps)", c.get("delivered_pps", 0) / 1e3 or None, None, None))
    for size in R["sizes"]:
        s = str(size)
        e = R.get("exitgw", {}).get("cpu", {}).get(s, {})
        w = R.get("wireguard_go", {}).get("cpu", {}).get(s, {})
        rate = e.get("rate_pps") or w.get("rate_pps")
        rows.append(("pkts/CPU-s %4d B @%s kpps" % (size, fmt(rate and rate / 1e3)),
                     e.get("pkts_per_cpu_s"), w.get("pkts_per_cpu_s"),
                     ratio(e.get("pkts_per_cpu_s"), w.get("pkts_per_cpu_s"))))
        rows.append(("  exit CPU-s (procs + gen excess)", e.get("exit_cpu_s"), w.get("exit_cpu_s"),
                     ratio(e.get("exit_cpu_s"), w.get("exit_cpu_s"))))
        rows.append(("  pkts/CPU-s, exit procs only", e.get("pkts_per_proc_cpu_s"),
                     w.get("pkts_per_proc_cpu_s"),
                     ratio(e.get("pkts_per_proc_cpu_s"), w.get("pkts_per_proc_cpu_s"))))
        rows.append(("  delivered / offered", e.get("delivered_fraction"), w.get("delivered_fraction"), None))
        e = R.get("exitgw", {}).get("cpu_own", {}).get(s, {})
        w = R.get("wireguard_go", {}).get("cpu_own", {}).get(s, {})
        rows.append(("pkts/CPU-s %4d B @90%% own NDR" % size, e.get("pkts_per_cpu_s"),
                     w.get("pkts_per_cpu_s"), ratio(e.get("pkts_per_cpu_s"), w.get("pkts_per_cpu_s"))))
        rows.append(("  (rate kpps, exit CPU-s)", "%s, %s" % (fmt(e.get("rate_pps", 0) / 1e3), fmt(e.get("exit_cpu_s"))),
                     "%s, %s" % (fmt(w.get("rate_pps", 0) / 1e3), fmt(w.get("exit_cpu_s"))), None))
    ip = R.get("iperf3", {})
    for d in ("upload", "download"):
        e = ip.get("exitgw", {}).get(d, {}).get("gbps")
        w = ip.get("wireguard_go", {}).get(d, {}).get("gbps")
        rows.append(("iperf3 TCP %s (Gbit/s)" % d, e, w, ratio(e, w)))
    out = ["", "exitgw vs wireguard-go + nftables masquerade (same machine, same run%s)"
           % (", --quick" if R["quick"] else ""),
           "%-36s %12s %14s %8s" % ("figure", "exitgw", "wireguard-go", "ratio")]
    for name, e, w, r in rows:
        out.append("%-36s %12s %14s %8s" % (name, fmt(e), fmt(w), ("%.2fx" % r) if r else "-"))
    out.append("zero loss = loss <= %.2f%% over a %gs trial; CPU = utime+stime (/proc/PID/stat) of "
               "the exit's processes + the generator's CPU above calibration at the same rate"
               % (R["loss_tolerance"] * 100, R["trial_s"]))
    return "\n".join(out)


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[2:]))
    ap.add_argument("--quick", action="store_true", help="shorter trials (< 3 min)")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--peers", type=int, default=0, help="generator peers (default 1000, quick 256)")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                    help="the build with control/exitgw and perf/exitgw_loadgen (default build/, "
                         "what tools/build release and perf/run make)")
    ap.add_argument("--no-iperf", action="store_true", help="skip the TCP iperf3 runs")
    ap.add_argument("--loss", type=float, default=0.001, help="zero-loss tolerance (default 0.001)")
    ap.add_argument("--gw-flag", action="append", default=[], metavar="FLAG=VALUE",
                    help="extra exitgw flag for the load test (repeatable)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        log("needs root (namespaces, DPDK)")
        return 1
    a.exitgw = os.path.join(a.build_dir, "control", "exitgw")
    a.loadgen = os.path.join(a.build_dir, "perf", "exitgw_loadgen")
    for b in (a.exitgw, a.loadgen):
        if not os.access(b, os.X_OK):
            log("missing %s; build with: tools/build release (or pass --build-dir)" % b)
            return 1
    for tool in ("wireguard-go", "wg", "nft", "iperf3", "ethtool", "taskset", "curl"):
        if not shutil.which(tool):
            log("missing tool: " + tool)
            return 1
    a.peers = a.peers or (256 if a.quick else 1000)
    a.trial_s = 1.0 if a.quick else 2.0
    a.max_trials = 6 if a.quick else 8
    a.cpu_s = 3.0 if a.quick else 5.0
    a.iperf_s = 4 if a.quick else 10
    a.cal_s = 1.0 if a.quick else 2.0
    a.rounds = 1 if a.quick else 2
    sizes = [64, 1420]

    workdir = "/run/exitgw-perf/" + P
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    env = Env(workdir)
    R = {"quick": a.quick, "peers": a.peers, "sizes": sizes, "loss_tolerance": a.loss,
         "trial_s": a.trial_s, "cpu_run_s": a.cpu_s, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
         "cpu_method": "per-process utime+stime from /proc/PID/stat of the exit's processes, plus "
                       "the generator's utime+stime above its calibration run at the same rate "
                       "and size (kernel receive work the exit causes in the generator's context)",
         "pinning": "generator on CPU %s (nice -20); each exit's processes on CPU %s (nice -10)"
                    % (GEN_CPU, EXIT_CPU)}
    t_start = time.monotonic()
    ok = False

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        # Keys: the gateway's, and one per generator peer (a peers file both exits accept).
        gw_key = os.path.join(workdir, "gateway.key")
        priv = run(["wg", "genkey"]).stdout.strip()
        fd = os.open(gw_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(priv + "\n")
        gw_pub = run(["wg", "pubkey"], input_text=priv + "\n").stdout.strip()
        keys = os.path.join(workdir, "peers.keys")
        peers_conf = os.path.join(workdir, "peers.conf")
        run([a.loadgen, "keygen", "--peers", str(a.peers), "--keys", keys, "--write-peers", peers_conf])
        os.chmod(keys, 0o600)
        base = ["--keys", keys, "--server-pub", gw_pub]

        # 1. Calibration: T wired to I, no exit.
        log("calibration: generator ceiling (T wired straight to I)")
        cal_ns = P + "-cal"
        env.ns_add(cal_ns)
        veth(env, cal_ns, "calT", cal_ns, "calI")
        cal = Gen(env, a.loadgen, cal_ns, "calT", "calI")
        R["calibration"] = {"ceiling": {}, "cpu": {}}
        for size in sizes:
            t = kind(cal.run(["--calibrate", "--peers", str(a.peers), "--size", str(size), "--rate", "0",
                              "--duration", str(a.cal_s)], timeout=60), "trial")[0]
            R["calibration"]["ceiling"][str(size)] = t
            log("  %d B: %.0f kpps offered, %.0f kpps received" % (size, t["offered_pps"] / 1e3,
                                                                  t["delivered_pps"] / 1e3))

        def ceiling(size):
            return R["calibration"]["ceiling"][str(size)]["offered_pps"]

        # 2. Both exits, each behind its own generator namespace. Only one runs at a time: the
        # other is frozen with SIGSTOP (other sessions' load on these shared CPUs comes and
        # goes, so the searches alternate between the exits and each exit keeps its best round).
        log("building both exits (wireguard-go + nftables; exitgw on af_packet)")
        wg_gen_ns, wg_ns = P + "-wg", P + "-wx"
        gt, gi, xt, xi = build_gen_pair(env, wg_gen_ns, wg_ns, "w")
        wgp = start_wggo_exit(env, wg_ns, xt, xi, gw_key, peers_conf, P + "x", cpu=EXIT_CPU)
        run(["ip", "-n", wg_ns, "route", "add", ENDPOINTS, "via", GW_ROUTER])
        run(["ip", "-n", wg_ns, "route", "add", "default", "via", INET_ROUTER])
        eg_gen_ns, eg_ns = P + "-eg", P + "-ex"
        gt2, gi2, xt2, xi2 = build_gen_pair(env, eg_gen_ns, eg_ns, "e")
        egp = start_exitgw(env, a, eg_ns, xt2, xi2, gw_key, peers_conf)
        exits = {
            "wireguard_go": {"gen": Gen(env, a.loadgen, wg_gen_ns, gt, gi), "proc": wgp},
            "exitgw": {"gen": Gen(env, a.loadgen, eg_gen_ns, gt2, gi2), "proc": egp},
        }
        for name in exits:
            R[name] = {"search_rounds": {str(s): [] for s in sizes}, "search": {}, "cpu": {},
                       "cpu_own": {}}

        def only(name):
            for n, x in exits.items():
                os.kill(x["proc"].pid, signal.SIGCONT if n == name else signal.SIGSTOP)
            time.sleep(0.3)

        def busy_sample():
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return v[0] + v[1] + v[2] + v[5] + v[6], sum(v[:8])

        for rnd in range(a.rounds):
            order = ["wireguard_go", "exitgw"] if rnd % 2 == 0 else ["exitgw", "wireguard_go"]
            for name in order:
                only(name)
                for size in sizes:
                    b0 = busy_sample()
                    r = search(exits[name]["gen"], base, size, ceiling(size), a)
                    b1 = busy_sample()
                    r["machine_busy_fraction"] = round((b1[0] - b0[0]) / max(1, b1[1] - b0[1]), 3)
                    R[name]["search_rounds"][str(size)].append(r)
                    log("  round %d %-12s %4d B: zero-loss %.0f kpps, max delivered %.0f kpps, "
                        "machine busy %.0f%%" % (rnd + 1, name, size, r["no_drop_pps"] / 1e3,
                                                 r["max_delivered_pps"] / 1e3,
                                                 100 * r["machine_busy_fraction"]))
        for name in exits:
            for size in sizes:
                rounds = R[name]["search_rounds"][str(size)]
                R[name]["search"][str(size)] = max(rounds, key=lambda r: r["no_drop_pps"])

        # 3. CPU: both exits at the same fixed rate (half the slower exit's zero-loss rate, so
        # both deliver everything), and each at 90% of its own zero-loss rate (efficiency under
        # load: a polling exit pays for polling at low rates). Paced with sleeps so the
        # generator's own CPU use is meaningful.
        rates, own = {}, {}
        for size in sizes:
            nd = [R[n]["search"][str(size)]["no_drop_pps"] or
                  0.5 * R[n]["search"][str(size)]["max_delivered_pps"] for n in exits]
            rates[size] = max(1000.0, min(0.5 * min(nd), 0.4 * ceiling(size)))
            for n in exits:
                own[(n, size)] = max(1000.0, min(0.9 * (R[n]["search"][str(size)]["no_drop_pps"] or 1000),
                                                 0.8 * ceiling(size)))
        R["cpu_rates_pps"] = {str(s): rates[s] for s in sizes}
        soft = ksoftirqd_pids()
        for name in ("wireguard_go", "exitgw"):
            only(name)
            watch = {"exit": [exits[name]["proc"].pid], "ksoftirqd": soft}
            for size in sizes:
                R[name]["cpu"][str(size)] = fixed(exits[name]["gen"], base, size, rates[size], a, watch)
                R[name]["cpu_own"][str(size)] = fixed(exits[name]["gen"], base, size,
                                                      own[(name, size)], a, watch)
        for name in exits:
            os.kill(exits[name]["proc"].pid, signal.SIGCONT)
        R["exitgw"]["drops"] = exitgw_drops(eg_ns)
        R["exitgw"]["flags"] = a.exitgw_flags_used
        for ns in (wg_gen_ns, wg_ns, eg_gen_ns, eg_ns):
            env.ns_del(ns)

        # 4. Calibration at the CPU-run rates: the generator's own cost without an exit.
        cal_rates = sorted({(size, rates[size]) for size in sizes} |
                           {(size, r) for (_n, size), r in own.items()})
        cal_cpu = {}
        for size, rate in cal_rates:
            cal_cpu[(size, rate)] = fixed(cal, ["--calibrate", "--peers", str(a.peers)], size, rate,
                                          a, {"ksoftirqd": soft})
        R["calibration"]["cpu"] = [dict(v, size=k[0]) for k, v in cal_cpu.items()]
        env.ns_del(cal_ns)
        for name in exits:
            for key, rate_of in (("cpu", lambda n, s: rates[s]), ("cpu_own", lambda n, s: own[(n, s)])):
                for size in sizes:
                    c = R[name][key][str(size)]
                    base_gen = cal_cpu[(size, rate_of(name, size))]["cpu"]["loadgen_s"]
                    excess = max(0.0, c["cpu"]["loadgen_s"] - base_gen)
                    exit_s = c["cpu"]["exit_s"]
                    c["gen_excess_s"] = excess
                    c["exit_cpu_s"] = exit_s + excess
                    c["pkts_per_cpu_s"] = c["delivered"] / c["exit_cpu_s"] if c["exit_cpu_s"] > 0 else None
                    c["pkts_per_proc_cpu_s"] = c["delivered"] / exit_s if exit_s > 0 else None
                    c["delivered_fraction"] = c["delivered"] / c["offered"] if c["offered"] else None

        # 5. TCP through each exit from a wireguard-go client.
        if not a.no_iperf:
            log("iperf3: TCP through exitgw (tools/lab) and through the wireguard-go exit")
            R["iperf3"] = {}
            try:
                R["iperf3"]["exitgw"] = iperf_exitgw(env, a)
            except Fail as e:
                R["iperf3"]["exitgw"] = {"error": str(e)}
                log(str(e))
            try:
                R["iperf3"]["wireguard_go"] = iperf_wggo(env, a, gw_key, gw_pub)
            except Fail as e:
                R["iperf3"]["wireguard_go"] = {"error": str(e)}
                log(str(e))
        R["elapsed_s"] = round(time.monotonic() - t_start, 1)
        ok = True
    except (Fail, OSError, ValueError, KeyError, IndexError) as e:
        log("FAILED: %s" % e)
        R["error"] = str(e)
    except KeyboardInterrupt as e:
        log("interrupted (%s); cleaning up" % e)
        R["error"] = "interrupted"
    finally:
        env.cleanup()
        if ok and not a.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("logs kept in " + workdir)
    print(report(R))
    if "elapsed_s" in R:
        print("elapsed %.0f s" % R["elapsed_s"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(R, f, indent=1)
            f.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
