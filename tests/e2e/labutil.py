"""Helpers shared by the e2e tests: drive tools/lab and look at what it built (stdlib only)."""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAB = os.path.join(REPO, "tools", "lab")
STATE_ROOT = "/run/exitgw-lab"
WG_RUN = "/var/run/wireguard"
SERVER = "198.51.100.10"

EXITGW = os.environ.get("EXITGW_BIN", os.path.join(REPO, "build", "control", "exitgw"))


def parse_args_then_unittest():
    """Consumes --exitgw PATH (given by CTest) and leaves the rest for unittest."""
    global EXITGW
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--exitgw", default=EXITGW)
    a, rest = p.parse_known_args()
    EXITGW = os.path.realpath(a.exitgw)
    return [sys.argv[0]] + rest


def lab_name(tag):
    """A lab name unique to this process: tag + pid digits, at most 8 characters."""
    return (tag + "%05d" % (os.getpid() % 100000))[:8]


def lab(*args, timeout=180, check=False):
    p = subprocess.run([sys.executable, LAB] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("tools/lab %s failed (%d):\n%s" % (" ".join(args), p.returncode, p.stdout))
    return p


def up(name, clients=2, extra=()):
    return lab("up", "--name", name, "--clients", str(clients), "--exitgw", EXITGW, *extra,
               check=True)


def down(name):
    return lab("down", "--name", name, timeout=60)


def lab_exec(name, host, *cmd, timeout=60):
    return lab("exec", "--name", name, host, *cmd, timeout=timeout)


def state(name):
    with open(os.path.join(STATE_ROOT, name, "lab.json")) as f:
        return json.load(f)


def namespaces(name):
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
    pat = re.compile(r"^%s-[a-z0-9]+$" % re.escape(name))
    return sorted(ln.split()[0] for ln in out.splitlines() if ln.split() and pat.match(ln.split()[0]))


def wg_sockets(name):
    pat = re.compile(r"^%swg\d+\.sock$" % re.escape(name))
    try:
        return sorted(f for f in os.listdir(WG_RUN) if pat.match(f))
    except OSError:
        return []


def pids(name):
    """Every pid recorded in the lab's pid files."""
    d = os.path.join(STATE_ROOT, name)
    out = {}
    for f in os.listdir(d):
        if f.endswith(".pid"):
            with open(os.path.join(d, f)) as fh:
                out[f[:-4]] = int(fh.read().split()[0])
    return out


def pid_running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def readyz(name):
    p = lab_exec(name, "gw", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "--max-time", "3", "http://127.0.0.1:9550/readyz", timeout=10)
    return p.stdout.strip()


def metric_sum(name, metric, **labels):
    p = lab_exec(name, "gw", "curl", "-sS", "--max-time", "3", "http://127.0.0.1:9550/metrics",
                 timeout=10)
    total = 0.0
    for ln in p.stdout.splitlines():
        if ln.startswith(metric + "{") or ln.startswith(metric + " "):
            if all('%s="%s"' % (k, v) in ln for k, v in labels.items()):
                total += float(ln.rsplit(None, 1)[1])
    return total


def wait_until(pred, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
