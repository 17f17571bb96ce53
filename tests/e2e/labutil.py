"""Helpers shared by the e2e tests: drive tools/lab and look at what it built (stdlib only)."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAB = os.path.join(REPO, "tools", "lab")
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from skips import main  # noqa: E402,F401  (each suite's main: skips visible to ctest)
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


def parse_args_with_connector(default):
    """parse_args_then_unittest plus --connector PATH (exitgw-connector, given by CTest to the
    tailnet suites): (argv for unittest, the connector's real path)."""
    argv = parse_args_then_unittest()
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--connector", default=default)
    a, rest = p.parse_known_args(argv[1:])
    return [argv[0]] + rest, os.path.realpath(a.connector)


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


def up_or_clean(name, tmp, clients=2, extra=()):
    """A suite's setUpClass: the lab up, or on any failure the lab down and `tmp` removed."""
    down(name)
    try:
        return up(name, clients=clients, extra=extra)
    except BaseException:
        down(name)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def down_and_clean(name, tmp):
    """A suite's tearDownClass: the lab down and `tmp` removed."""
    try:
        down(name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


# --------------------------------------------------------------------------- more helpers
# (wireguard_test.py, metrics_test.py): direct namespace commands, metrics, peers file,
# pcap reading. Stdlib only; every command has a timeout.

def lab_dir(name):
    return os.path.join(STATE_ROOT, name)


def ns_of(name, host):
    """The namespace of a lab host: gw, inet, sw or a client name."""
    if host in ("gw", "gw2", "inet", "sw", "ctl"):
        return "%s-%s" % (name, host)
    return client(name, host)["ns"]


def client(name, cname):
    for c in state(name)["clients"]:
        if c["name"] == cname:
            return c
    raise KeyError("lab %s has no client %s" % (name, cname))


def nsrun(name, host, *cmd, timeout=30, check=False):
    """Runs cmd in a lab namespace directly (no tools/lab start-up cost); stdout+stderr text."""
    args = ["ip", "netns", "exec", ns_of(name, host)] + list(cmd)
    try:
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        p = subprocess.CompletedProcess(args, 124, out + "\n(timed out after %ss)" % timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (" ".join(args), p.returncode, p.stdout))
    return p


def udp_counters(name, host):
    """The namespace's UDP counters (/proc/net/snmp: InDatagrams, RcvbufErrors, ...)."""
    rows = [ln.split() for ln in nsrun(name, host, "cat", "/proc/net/snmp").stdout.splitlines()
            if ln.startswith("Udp:")]
    return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])}


def nsspawn(name, host, *cmd, out=None):
    """Starts cmd in a lab namespace in the background; stdout+stderr to the file out.

    The caller must stop it with stop(); it runs in its own session (process group)."""
    f = open(out or os.devnull, "wb")
    try:
        return subprocess.Popen(["ip", "netns", "exec", ns_of(name, host)] + list(cmd),
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        f.close()


def stop(p, sig=None, grace=5.0):
    """Stops a process nsspawn started (its pid only), SIGKILL after grace seconds."""
    import signal
    if p is None or p.poll() is not None:
        return p.returncode if p is not None else None
    try:
        p.send_signal(sig or signal.SIGTERM)
        return p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait(timeout=5)
    except ProcessLookupError:
        return p.wait(timeout=5)


def metrics_text(name):
    return nsrun(name, "gw", "curl", "-sS", "--max-time", "3", "http://127.0.0.1:9550/metrics",
                 timeout=10).stdout


_LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] from Prometheus text."""
    out = []
    for ln in (text or "").splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = _LINE_RE.match(ln)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(_LABEL_RE.findall(m.group(2) or "")), v))
    return out


class Metrics:
    """One scrape; m.get(metric, label=value...) sums the matching series (0 when none)."""

    def __init__(self, name):
        self.series = parse_metrics(metrics_text(name))

    def get(self, metric, **labels):
        return sum(v for n, l, v in self.series
                   if n == metric and all(l.get(k) == str(x) for k, x in labels.items()))

    def has(self, metric):
        return any(n == metric for n, _l, _v in self.series)

    def histogram(self, metric, **labels):
        """A histogram's cumulative buckets, [(upper bound, count)] by bound (+Inf last)."""
        out = {}
        for n, l, v in self.series:
            if n == metric + "_bucket" and all(l.get(k) == str(x) for k, x in labels.items()):
                out[float(l["le"])] = out.get(float(l["le"]), 0) + v
        return sorted(out.items())

    def drops_text(self):
        """The non-zero drop reasons, for failure messages."""
        d = {}
        for n, l, v in self.series:
            if n == "exitgw_drops_total" and v:
                d[l.get("reason")] = d.get(l.get("reason"), 0) + v
        return "\ndrops: " + ", ".join("%s=%d" % kv for kv in sorted(d.items()))

    def nonzero(self, prefix="exitgw_"):
        """Compact text of every non-zero series under prefix (for failure messages)."""
        return "\n".join("%s%s %g" % (n, {k: v for k, v in l.items() if k not in ("region", "node")}, v)
                         for n, l, v in self.series if n.startswith(prefix) and v)


def drops(m, reason):
    return m.get("exitgw_drops_total", reason=reason)


def peers_path(name):
    return os.path.join(lab_dir(name), "peers.conf")


def read_peers(name):
    with open(peers_path(name)) as f:
        return f.read()


def write_peers(name, text):
    """Replaces the lab's peers file atomically (write a temp file, rename over it)."""
    path = peers_path(name)
    tmp = path + ".test%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def peers_without(text, pub):
    """The peers file text without the [Peer] section whose PublicKey is pub."""
    blocks, cur = [], []
    for ln in text.splitlines(keepends=True):
        if ln.strip().lower() == "[peer]" and cur:
            blocks.append(cur)
            cur = []
        cur.append(ln)
    if cur:
        blocks.append(cur)
    keep = [b for b in blocks if not any(re.match(r"\s*publickey\s*=\s*%s\s*$" % re.escape(pub), ln, re.I)
                                         for ln in b)]
    if len(keep) != len(blocks) - 1:
        raise AssertionError("peer %s is not in the peers file exactly once" % pub)
    return "".join("".join(b) for b in keep)


def gateway_log(name):
    try:
        with open(os.path.join(lab_dir(name), "exitgw.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def admin_json(name, path):
    """GET path from the gateway's admin API (127.0.0.1:9551 in P-gw, the lab's token): the
    decoded JSON, or raises AssertionError naming what failed."""
    with open(os.path.join(lab_dir(name), "admin.token")) as f:
        token = f.read().strip()
    p = nsrun(name, "gw", "curl", "-sS", "--fail-with-body", "--max-time", "5", "-H",
              "Authorization: Bearer " + token, "http://127.0.0.1:9551" + path, timeout=10)
    if p.returncode != 0:
        raise AssertionError("GET %s on the admin API: %s" % (path, p.stdout.strip()[-300:]))
    return json.loads(p.stdout)


def ping_counts(out):
    """(transmitted, received) from ping's summary, or (0, 0)."""
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def ping(name, host, dst, count=3, interval=0.2, wait=2, source=None, timeout=None):
    """(transmitted, received, output) of ping from a lab host."""
    args = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait)]
    if source:
        args += ["-I", source]
    p = nsrun(name, host, *(args + [dst]),
              timeout=timeout or (count * interval + wait + 10))
    tx, rx = ping_counts(p.stdout)
    return tx, rx, p.stdout


def wg_show(name, cname, what):
    c = client(name, cname)
    return nsrun(name, cname, "wg", "show", c["wg"], what, timeout=10).stdout


def latest_handshake(name, cname):
    for ln in wg_show(name, cname, "latest-handshakes").splitlines():
        parts = ln.split()
        if len(parts) == 2 and parts[1].isdigit():
            return int(parts[1])
    return 0


def ensure_handshakes(name, cnames, timeout=20):
    """Pings from each client until its wireguard-go reports a handshake; the ones without."""
    deadline = time.monotonic() + timeout
    pending = set(cnames)
    while pending and time.monotonic() < deadline:
        for c in sorted(pending):
            if latest_handshake(name, c):
                pending.discard(c)
            else:
                nsrun(name, c, "ping", "-c", "1", "-W", "1", SERVER, timeout=10)
    return pending


def read_pcap(path):
    """[(timestamp, frame bytes)] from a classic pcap file (tcpdump -w), Ethernet link type."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("%s is not a pcap file" % path)
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        out.append((sec + frac / (1e9 if nano else 1e6), data[off:off + incl]))
        off += incl
    return out


def udp_of(frame):
    """(src ip, src port, dst ip, dst port, payload) of an Ethernet/IPv4/UDP frame, or None."""
    import socket
    import struct
    if len(frame) < 42 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 17 or len(ip) < ihl + 8:
        return None
    total = struct.unpack("!H", ip[2:4])[0]
    sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
    payload = ip[ihl + 8:min(total, ihl + ulen)]
    return (socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport, payload)

