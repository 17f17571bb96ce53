"""The real exitgw on DPDK virtual devices with a small complete configuration and no traffic.

For tests and benchmarks that need a running gateway's HTTP endpoints rather than packets
through it: tests/dashboard_series.py (every series the dashboard and alert rules name is
exported), perf/policy_api_bench.py (policy replaced through the admin API). Root only
(DPDK); --no-huge.

  with Gateway(exitgw, ["net_null0,no-rx=1", "net_null1,no-rx=1"]) as gw:
      status, body = gw.get("/metrics")
"""
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wgpy  # noqa: E402

DPDK_RUN = "/var/run/dpdk"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class GatewayError(Exception):
    pass


def wg_keypair():
    """(private key base64, private key bytes, public key base64), clamped as `wg genkey`."""
    raw = bytearray(os.urandom(32))
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    raw = bytes(raw)
    return base64.b64encode(raw).decode(), raw, base64.b64encode(wgpy.PUB(raw)).decode()


def http_get(port, path):
    """(HTTP status, body) of GET http://127.0.0.1:port/path, no proxy; raises OSError when
    nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open("http://127.0.0.1:%d%s" % (port, path), timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gateway:
    """exitgw with ports vdevs[0] (tunnel) and vdevs[1] (internet), peers, a NAT pool, the
    repository's policy, an IPFIX collector address and a spool: every subsystem the
    dashboard shows is configured. admin=True: the admin API on a free loopback port, its
    token in self.admin_token."""

    def __init__(self, exitgw, vdevs, flags=(), peers=2, admin=False, ready_timeout=30):
        self.exitgw = os.path.realpath(exitgw)
        self.vdevs = list(vdevs)
        self.extra_flags = list(flags)
        self.n_peers = peers
        self.ready_timeout = ready_timeout
        self.proc = None
        self.dir = None
        self.prefix = "gwp%d_%d" % (os.getpid(), int(time.monotonic() * 1000) % 100000)
        self.metrics_port = 0
        self.admin = admin
        self.admin_port = 0
        self.admin_token = ""

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="exitgw-gwp-")
        priv, _, _ = wg_keypair()
        key = os.path.join(self.dir, "gateway.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(priv + "\n")
        peers = os.path.join(self.dir, "peers.conf")
        with open(peers, "w") as f:
            for i in range(self.n_peers):
                f.write("[Peer]\nPublicKey = %s\nAllowedIPs = 100.64.0.%d/32\nUser = u%d@test\n"
                        % (wg_keypair()[2], 10 + i, i))
        approvals = os.path.join(self.dir, "approvals.conf")
        with open(approvals, "w") as f:
            f.write("exit-node approved\n")
        self.metrics_port = free_port()
        admin_flags = ["--admin_token_file="]
        if self.admin:
            self.admin_port, self.admin_token = free_port(), os.urandom(16).hex()
            token = os.path.join(self.dir, "admin.token")
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.admin_token + "\n")
            admin_flags = ["--admin_token_file=" + token,
                           "--admin_listen=127.0.0.1:%d" % self.admin_port]
        flags = ["--tunnel_port=" + self.vdevs[0].split(",")[0],
                 "--internet_port=" + self.vdevs[1].split(",")[0],
                 "--tunnel_addr=10.77.0.1/24", "--internet_addr=192.0.2.1/24",
                 "--internet_gateway=192.0.2.2", "--wg_listen_port=51820",
                 "--metrics_listen=127.0.0.1:%d" % self.metrics_port, "--region=test",
                 "--node=" + self.prefix, "--private_key_file=" + key, "--peers_file=" + peers,
                 "--approvals_file=" + approvals, "--nat_pool=203.0.113.1/32",
                 "--policy_file=" + os.path.join(REPO, "conf", "policy.hujson"),
                 "--ipfix_collector=udp://127.0.0.1:9", "--export_spool_dir=" + self.dir,
                 "--mbufs=4095"] + admin_flags + self.extra_flags
        args = [self.exitgw, "--lcores=0@0,1@%d" % min(1, (os.cpu_count() or 1) - 1),
                "--file-prefix=" + self.prefix, "--no-pci", "--no-huge", "-m", "512",
                "--log-level=error"] + ["--vdev=" + v for v in self.vdevs] + ["--"] + flags
        self.log_path = os.path.join(self.dir, "exitgw.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if not self.wait(lambda: self.get("/readyz")[0] == 200, self.ready_timeout):
            raise GatewayError("exitgw %s:\n%s" % (
                "exited with %s" % self.proc.returncode if self.proc.poll() is not None
                else "not ready in %d s" % self.ready_timeout, self.log_tail()))

    def wait(self, pred, timeout, step=0.2):
        """Polls pred until it holds (True), the gateway exits or timeout passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                return False
            if pred():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(step)

    def get(self, path):
        """(HTTP status, body) of GET http://127.0.0.1:PORT/path; status 0 when unreachable."""
        try:
            return http_get(self.metrics_port, path)
        except OSError:
            return 0, ""

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self):
        """SIGTERM, then the exit code (None if it had to be killed); removes its files."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            else:
                rc = self.proc.returncode
            self.proc = None
        shutil.rmtree(os.path.join(DPDK_RUN, self.prefix), ignore_errors=True)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        return rc
