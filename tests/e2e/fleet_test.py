#!/usr/bin/env python3
"""E2E: a fleet on one etcd. Two gateways, one region prefix, a real etcd on loopback.

  /usr/bin/python3 tests/e2e/fleet_test.py --exitgw build/control/exitgw [-v]

Both gateways run in the root namespace on DPDK virtual devices that need no interface
(net_null, --no-huge), each with its own --file-prefix, metrics and admin ports; etcd listens
on free loopback ports with its own data directory. The test writes hundreds of peers, changes
and deletes some, approves the nodes, stops one gateway (SIGSTOP) and restarts etcd while
writing, then proves both gateways hold exactly the peer set and approval etcd describes
(compared through the admin API and /metrics), and that each handled every watched write
exactly once (the "events" count each node publishes in its status key equals the writes the
test made, and no event was seen twice).
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import labutil as L

TAG = "fleet%d" % os.getpid()
PREFIX = "/exitgw/%s/" % TAG
NODES = ("%s-a" % TAG, "%s-b" % TAG)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def urlkey(pub_b64):
    return base64.urlsafe_b64encode(base64.b64decode(pub_b64)).decode().rstrip("=")


class Etcd:
    """A real etcd on loopback with its own data directory; restartable on the same data."""

    def __init__(self, work):
        self.data = os.path.join(work, "etcd-data")
        self.log = os.path.join(work, "etcd.log")
        self.client_port, self.peer_port = free_ports(2)
        self.endpoint = "http://127.0.0.1:%d" % self.client_port
        self.proc = None

    def start(self):
        peer = "http://127.0.0.1:%d" % self.peer_port
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                ["etcd", "--name", TAG, "--data-dir", self.data,
                 "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", "%s=%s" % (TAG, peer)],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True)
        if not L.wait_until(self.healthy, 20):
            with open(self.log, errors="replace") as f:
                raise RuntimeError("etcd did not start: " + f.read()[-2000:])

    def stop(self):
        L.stop(self.proc)

    def call(self, path, body, timeout=5):
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def healthy(self):
        try:
            self.call("/v3/kv/range", {"key": b64("probe")}, timeout=1)
            return True
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def put(self, key, value):
        """The revision of the write."""
        return int(self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})["header"]["revision"])

    def delete(self, key):
        return int(self.call("/v3/kv/deleterange", {"key": b64(key)})["header"]["revision"])

    def get(self, key):
        kvs = self.call("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


class Gateway:
    """exitgw in the root namespace on two net_null ports, watching the region prefix."""

    def __init__(self, work, node, etcd):
        self.node = node
        self.dir = os.path.join(work, node)
        os.makedirs(self.dir)
        self.metrics_port, self.admin_port = free_ports(2)
        self.log = os.path.join(self.dir, "exitgw.log")
        key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
        self.key_file = os.path.join(self.dir, "private.key")
        self.token_file = os.path.join(self.dir, "admin.token")
        for path, text in ((self.key_file, key), (self.token_file, os.urandom(24).hex() + "\n")):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        with open(self.token_file) as f:
            self.token = f.read().strip()
        self.args = [
            # no-rx: a null port that receives nothing, so idle workers back off and two
            # gateways share the CPUs with etcd and the test.
            L.EXITGW, "--lcores=0@0,1@0", "--no-pci", "--vdev=net_null0,no-rx=1",
            "--vdev=net_null1,no-rx=1",
            "--no-huge", "-m", "256", "--file-prefix=" + node, "--no-telemetry",
            "--log-level=error", "--",
            "--tunnel_port=net_null0", "--internet_port=net_null1",
            "--tunnel_addr=10.77.0.1/24", "--internet_addr=192.0.2.1/24",
            "--internet_gateway=192.0.2.2", "--nat_pool=203.0.113.1/32", "--mbufs=4095",
            "--private_key_file=" + self.key_file, "--max_peers=2048",
            "--metrics_listen=127.0.0.1:%d" % self.metrics_port,
            "--admin_listen=127.0.0.1:%d" % self.admin_port, "--admin_token_file=" + self.token_file,
            "--export_spool_dir=" + os.path.join(self.dir, "spool"),
            "--etcd_endpoints=" + etcd.endpoint, "--etcd_prefix=" + PREFIX,
            "--etcd_status_ttl=3", "--region=" + TAG, "--node=" + node]
        self.proc = None

    def start(self):
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if not L.wait_until(lambda: self.proc.poll() is not None or self.etcd_ok(), 30):
            raise RuntimeError("%s did not load from etcd:\n%s" % (self.node, self.log_tail()))
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited:\n%s" % (self.node, self.log_tail()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot take SIGTERM
        rc = L.stop(self.proc, grace=15)
        # EAL's runtime directory for this --file-prefix outlives the process.
        shutil.rmtree(os.path.join("/var/run/dpdk", self.node), ignore_errors=True)
        return rc

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def api(self, path):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                     headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def etcd_ok(self):
        try:
            return self.api("/v1/status")["sources"]["etcd"]["ok"]
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return False

    def peers(self):
        """public key -> (allowed IPs, user, source)."""
        return {p["public_key"]: (tuple(p["allowed_ips"]), p["user"], p["source"])
                for p in self.api("/v1/peers")["peers"]}

    def metric(self, name):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=5) as r:
            text = r.read().decode()
        return sum(v for n, _l, v in L.parse_metrics(text) if n == name)


class FleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("etcd"):
            raise unittest.SkipTest("etcd not installed (tools/install-deps)")
        cls.work = tempfile.mkdtemp(prefix="exitgw-fleet-")
        cls.etcd = Etcd(cls.work)
        cls.gateways = []
        try:
            cls.etcd.start()
            for node in NODES:
                g = Gateway(cls.work, node, cls.etcd)
                cls.gateways.append(g)
                g.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for g in cls.gateways:
                g.stop()
            cls.etcd.stop()
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        self.want = {}      # public key -> (allowed IPs, user): what etcd says
        self.writes = 0     # writes into the watched range (peers/ and nodes/)
        self.last_rev = 0

    def put_peer(self, i, variant=0):
        pub = self.keys[i]
        ips = ["100.%d.%d.%d/32" % (64 + variant, i // 256, i % 256)]
        if i % 10 == 0:
            ips.append("10.%d.%d.0/24" % (variant, i // 10))
        user = "user%d-v%d@fleet.test" % (i, variant)
        self.last_rev = self.etcd.put(PREFIX + "peers/" + urlkey(pub), json.dumps(
            {"public_key": pub, "allowed_ips": ips, "user": user}))
        self.want[pub] = (tuple(ips), user)
        self.writes += 1

    def del_peer(self, i):
        if self.keys[i] not in self.want:
            return  # etcd records no event for deleting nothing
        self.last_rev = self.etcd.delete(PREFIX + "peers/" + urlkey(self.keys[i]))
        self.want.pop(self.keys[i], None)
        self.writes += 1

    def approve(self, node, value):
        self.last_rev = self.etcd.put(PREFIX + "nodes/%s/approval" % node, value)
        self.writes += 1

    def put_bad_values(self):
        """Writes values every node must refuse; the number of writes."""
        live = sorted(i for i in range(len(self.keys)) if self.keys[i] in self.want)
        kept, victim = live[0], live[1]
        pub = self.keys[kept]
        name = PREFIX + "peers/" + urlkey(pub)
        ips, user = self.want[pub]
        writes = [
            # an unknown field on a running peer: it keeps its settings
            (name, json.dumps({"public_key": pub, "allowed_ips": ["100.127.0.1/32"], "user": user,
                               "nickname": "x"})),
            # a value over 64 KiB
            (PREFIX + "peers/" + urlkey(b64(os.urandom(32))),
             json.dumps({"allowed_ips": ["100.127.0.2/32"], "user": "x" * 70000})),
            # a key name that is no key
            (PREFIX + "peers/not-a-key", json.dumps({"allowed_ips": ["100.127.0.3/32"]})),
            # a new peer claiming a running peer's allowed IPs
            (PREFIX + "peers/" + urlkey(b64(os.urandom(32))),
             json.dumps({"allowed_ips": [self.want[self.keys[victim]][0][0]]})),
        ]
        for key, value in writes:
            self.last_rev = self.etcd.put(key, value)
            self.writes += 1
        return len(writes)

    def status_key(self, g):
        v = self.etcd.get(PREFIX + "status/" + g.node)
        return json.loads(v) if v else None

    def converged(self, g):
        st = self.status_key(g)
        if not st or st.get("revision", 0) < self.last_rev:
            return False
        return {k: v[:2] for k, v in g.peers().items()} == self.want

    def test_two_gateways_converge_through_a_stopped_node_and_an_etcd_restart(self):
        a, b = self.gateways
        self.keys = [b64(os.urandom(32)) for _ in range(600)]
        for i in range(500):
            self.put_peer(i)
        self.approve(a.node, "approved")
        for i in range(0, 500, 7):  # changed: new addresses and user
            self.put_peer(i, variant=1)

        # b stops answering: its status lease runs out, so the fleet sees it gone.
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            for i in range(0, 500, 11):
                self.del_peer(i)
            self.approve(b.node, "unapproved")
            self.assertTrue(L.wait_until(lambda: self.status_key(b) is None, 15),
                            "the stopped node's status key outlived its lease")
            # etcd restarts mid-stream (same data): a is watching, b is frozen.
            for i in range(500, 550):
                self.put_peer(i)
            self.etcd.stop()
            self.etcd.start()
            for i in range(550, 600):
                self.put_peer(i)
            for i in range(1, 500, 13):
                self.put_peer(i, variant=2)
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        self.approve(b.node, "approved")
        for i in range(3, 600, 17):
            self.del_peer(i)
        # Bad values: each refused by both nodes with the running state unchanged.
        bad_writes = self.put_bad_values()

        for g in (a, b):
            self.assertTrue(L.wait_until(lambda: self.converged(g), 60),
                            "%s did not converge: status %s, %d peers vs %d wanted\n%s" % (
                                g.node, self.status_key(g), len(g.peers()), len(self.want),
                                g.log_tail()))
        pa, pb = a.peers(), b.peers()
        self.assertEqual(pa, pb)
        self.assertEqual({v[2] for v in pa.values()}, {"etcd"})
        self.assertGreater(len(pa), 450)
        for g in (a, b):
            st = g.api("/v1/status")
            self.assertTrue(st["approval"]["approved"], st)
            self.assertEqual(st["approval"]["override"], True)
            self.assertEqual(st["peer_count"], len(self.want))
            self.assertEqual(g.metric("exitgw_wg_peers"), len(self.want))
            self.assertEqual(g.metric("exitgw_exit_approved"), 1)
            self.assertEqual(g.metric("exitgw_config_generation"), st["generation"])
            # Exactly once: every watched write handled once (none missed, none repeated),
            # from the one load at start (no re-list was needed).
            key = self.status_key(g)
            self.assertEqual(key["events"], self.writes, key)
            self.assertEqual(key["stale_events_skipped"], 0, key)
            self.assertEqual(key["loads"], 1, key)
            self.assertEqual(key["updates_rejected"], bad_writes, key)
        # b caught up on a backlog: fewer, larger updates than a, same state.
        print("\ngenerations: a %d, b %d; %d watched writes, %d peers" % (
            a.api("/v1/status")["generation"], b.api("/v1/status")["generation"],
            self.writes, len(self.want)), file=sys.stderr)


# A UDP sink in the lab's inet namespace: counts numbered datagrams per stream tag, remembers
# where each stream comes from (its NAT mapping), and on SIGUSR1 sends one datagram back to
# every stream's mapping (an unsolicited inbound packet, to see whether the gateway still
# routes to that peer). Writes its counts as JSON when stopped (SIGTERM).
SINK = r"""
import json, signal, socket, struct, sys
addr, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: a descheduled sink loses nothing
s.bind((addr, port))
s.settimeout(0.1)
seen, dups, src, flags = {}, {}, {}, {"stop": False, "probe": False}
signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("probe", True))
while not flags["stop"]:
    if flags["probe"]:
        flags["probe"] = False
        for a in src.values():
            s.sendto(b"probe", a)
    try:
        data, a = s.recvfrom(2048)
    except (socket.timeout, InterruptedError):
        continue
    tag = data[:2].decode(errors="replace")
    seq = struct.unpack("!Q", data[2:10])[0]
    got = seen.setdefault(tag, set())
    if seq in got:
        dups[tag] = dups.get(tag, 0) + 1
    got.add(seq)
    src[tag] = a
res = {}
for tag, got in seen.items():
    top = max(got)
    res[tag] = {"distinct": len(got), "max": top, "dups": dups.get(tag, 0),
                "missing": [i for i in range(top + 1) if i not in got][:20]}
with open(out, "w") as f:
    json.dump(res, f)
"""

# A paced sender in a client namespace: datagrams tag + sequence number (from 0) at RATE per
# second to DST:PORT until SIGTERM; counts what comes back. Writes {"sent", "received"}.
SOURCE = r"""
import json, signal, socket, struct, sys, time
dst, port, rate, tag, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
flags = {"stop": False}
signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
sent = received = 0
t0 = time.monotonic()
pad = bytes(64)
while not flags["stop"]:
    due = t0 + sent / rate
    now = time.monotonic()
    if now < due:
        time.sleep(min(due - now, 0.01))
        continue
    try:
        s.sendto(tag.encode() + struct.pack("!Q", sent) + pad, (dst, port))
        sent += 1
    except BlockingIOError:
        pass  # not sent, not counted: the same number goes again
    try:
        while True:
            s.recv(2048)
            received += 1
    except (BlockingIOError, InterruptedError):
        pass
with open(out, "w") as f:
    json.dump({"sent": sent, "received": received}, f)
"""

# Writes COUNT peers (keys made here, one /32 each in 100.96.0.0/12) into etcd under PREFIX as
# single puts over two keep-alive connections to the v3 JSON gateway; prints the last revision.
BULK_WRITER = r"""
import base64, http.client, json, os, sys, threading
host, port, prefix, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def b64(b):
    return base64.b64encode(b).decode()
revs = []
def writer(lo, hi):
    c = http.client.HTTPConnection(host, port, timeout=10)
    for i in range(lo, hi):
        key = os.urandom(32)
        name = base64.urlsafe_b64encode(key).decode().rstrip("=")
        ip = "100.%d.%d.%d/32" % (96 + i // 65536, (i // 256) % 256, i % 256)
        value = json.dumps({"public_key": b64(key), "allowed_ips": [ip], "user": "bulk@lab.test"})
        body = json.dumps({"key": b64((prefix + "peers/" + name).encode()), "value": b64(value.encode())})
        c.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit("put %d: %d %s" % (i, r.status, data[:200]))
        revs.append(int(json.loads(data)["header"]["revision"]))
half = count // 2
ts = [threading.Thread(target=writer, args=(0, half)), threading.Thread(target=writer, args=(half, count))]
[t.start() for t in ts]
[t.join() for t in ts]
if len(revs) != count:
    raise SystemExit("only %d of %d puts answered" % (len(revs), count))
print(max(revs))
"""

LAB = L.lab_name("fl")
LAB_CLIENT_PORT, LAB_PEER_PORT = 23890, 23900
LAB_PREFIX = "/exitgw/fleetlab/"
LAB_ENDPOINT = "http://127.0.0.1:%d" % LAB_CLIENT_PORT
SINK_PORT = 9100
BULK = 10000


class LabBulkTest(unittest.TestCase):
    """The lab (real wireguard-go clients, exitgw on af_packet) with etcd in the gateway's namespace."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("etcd"):
            raise unittest.SkipTest("etcd not installed (tools/install-deps)")
        cls.work = tempfile.mkdtemp(prefix="exitgw-fleetlab-")
        os.chmod(cls.work, 0o755)
        cls.etcd = None
        L.down(LAB)
        try:
            L.up(LAB, clients=2, extra=("--gw-flag", "etcd_endpoints=" + LAB_ENDPOINT,
                                        "--gw-flag", "etcd_prefix=" + LAB_PREFIX,
                                        "--gw-flag", "max_peers=16384"))
            cls.etcd = L.nsspawn(
                LAB, "gw", "etcd", "--name", "fleetlab", "--data-dir", os.path.join(cls.work, "data"),
                "--listen-client-urls", LAB_ENDPOINT, "--advertise-client-urls", LAB_ENDPOINT,
                "--listen-peer-urls", "http://127.0.0.1:%d" % LAB_PEER_PORT,
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % LAB_PEER_PORT,
                "--initial-cluster", "fleetlab=http://127.0.0.1:%d" % LAB_PEER_PORT,
                out=os.path.join(cls.work, "etcd.log"))
            if not L.wait_until(lambda: cls.etcd_call("/v3/kv/range", {"key": b64("x")}) is not None, 20):
                raise RuntimeError("etcd did not start")
            # c2's peer lives in etcd (the removal test deletes it there), c1's in the file.
            cls.c2 = L.client(LAB, "c2")
            L.write_peers(LAB, L.peers_without(L.read_peers(LAB), cls.c2["pub"]))
            if not L.wait_until(lambda: L.Metrics(LAB).get("exitgw_wg_peers") == 1, 10):
                raise RuntimeError("the peers file reload did not drop c2")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            L.stop(cls.etcd)
            L.down(LAB)
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def etcd_call(cls, path, body):
        p = L.nsrun(LAB, "gw", "curl", "-sS", "--max-time", "5", "-X", "POST",
                    "-H", "Content-Type: application/json", "-d", json.dumps(body),
                    LAB_ENDPOINT + path, timeout=10)
        try:
            return json.loads(p.stdout) if p.returncode == 0 else None
        except ValueError:
            return None

    def start_sink(self, name):
        out = os.path.join(self.work, name + ".json")
        proc = L.nsspawn(LAB, "inet", sys.executable, "-c", SINK, L.SERVER, str(SINK_PORT), out,
                         out=os.path.join(self.work, name + ".log"))
        time.sleep(0.5)
        return proc, out

    def start_source(self, client, tag, rate):
        out = os.path.join(self.work, "%s-%s.json" % (client, tag))
        proc = L.nsspawn(LAB, client, sys.executable, "-c", SOURCE, L.SERVER, str(SINK_PORT),
                         str(rate), tag, out, out=os.path.join(self.work, tag + "-source.log"))
        return proc, out

    @staticmethod
    def finish(proc, out):
        L.stop(proc, grace=10)
        with open(out) as f:
            return json.load(f)

    def test_ten_thousand_upserts_from_etcd_while_a_stream_flows_lose_no_datagram(self):
        self.assertFalse(L.ensure_handshakes(LAB, ("c1",), timeout=25))
        m0 = L.Metrics(LAB)
        base = m0.get("exitgw_wg_peers")
        udp0 = {ns: L.udp_counters(LAB, ns) for ns in ("c1", "inet")}
        sink, sink_out = self.start_sink("bulk-sink")
        source, source_out = self.start_source("c1", "c1", 1500)
        try:
            # The stream is through before the updates start.
            time.sleep(2)
            t0 = time.monotonic()
            w = L.nsrun(LAB, "gw", sys.executable, "-c", BULK_WRITER, "127.0.0.1",
                        str(LAB_CLIENT_PORT), LAB_PREFIX, str(BULK), timeout=300)
            self.assertEqual(w.returncode, 0, w.stdout)
            t_written = time.monotonic() - t0
            self.assertTrue(L.wait_until(
                lambda: L.Metrics(LAB).get("exitgw_wg_peers") == base + BULK, 240, step=1),
                "peers %s, wanted %d\n%s" % (L.Metrics(LAB).get("exitgw_wg_peers"), base + BULK,
                                              L.gateway_log(LAB)[-3000:]))
            t_applied = time.monotonic() - t0
            time.sleep(2)  # traffic after the last update, too
        finally:
            sent = self.finish(source, source_out)
            time.sleep(1)  # the last datagrams in flight
            got = self.finish(sink, sink_out)
        m = L.Metrics(LAB)
        c1 = got.get("c1", {})
        print("\n%d upserts written in %.1f s, all applied after %.1f s; stream: %d sent, %d "
              "received, %d duplicates, generation %d" % (
                  BULK, t_written, t_applied, sent["sent"], c1.get("distinct", 0), c1.get("dups", 0),
                  m.get("exitgw_config_generation")), file=sys.stderr)
        before = {(n, tuple(sorted(l.items()))): v for n, l, v in m0.series}
        # Where a lost datagram went: the gateway's drops and its devices' counters, its
        # af_packet sockets (the kernel ring's drops: skmem d, which DPDK 22.11's af_packet
        # driver does not report), the namespaces' UDP socket overflows, the client's links.
        where = "gateway (since the stream started):\n%s\n%s\nUDP c1 %s\nUDP inet %s\n%s" % (
            "\n".join("%s%s +%g" % (n, l, v - before.get((n, tuple(sorted(l.items()))), 0))
                      for n, l, v in m.series
                      if n in ("exitgw_drops_total", "exitgw_port_rx_missed_total",
                               "exitgw_port_tx_errors_total", "exitgw_port_rx_nombuf_total",
                               "exitgw_punted_packets_total")
                      and v != before.get((n, tuple(sorted(l.items()))), 0)),
            L.nsrun(LAB, "gw", "ss", "-0", "-m", "-n", "-p").stdout,
            {k: v - udp0["c1"][k] for k, v in L.udp_counters(LAB, "c1").items() if v != udp0["c1"][k]},
            {k: v - udp0["inet"][k] for k, v in L.udp_counters(LAB, "inet").items() if v != udp0["inet"][k]},
            L.nsrun(LAB, "c1", "ip", "-s", "link").stdout)
        self.assertGreater(sent["sent"], 1500 * 5)
        self.assertEqual(c1.get("missing"), [], "%s\n%s" % (c1, where))
        self.assertEqual(c1.get("distinct"), sent["sent"], "%s %s\n%s" % (c1, sent, where))
        self.assertEqual(c1.get("dups"), 0)
        # Every peer present, as the admin API's count and the peer gauge both say.
        st = json.loads(L.nsrun(LAB, "gw", os.path.realpath(os.path.join(os.path.dirname(L.EXITGW), "..", "tools", "exitgwctl")),
                                "--token-file", os.path.join(L.lab_dir(LAB), "admin.token"),
                                "--json", "status", timeout=20).stdout)
        self.assertEqual(st["peer_count"], base + BULK)
        self.assertEqual(m.get("exitgw_update_source_healthy", source="etcd"), 1)

    def test_removing_a_peer_removes_its_keypairs_nat_sessions_and_routes(self):
        c2 = self.c2
        key = LAB_PREFIX + "peers/" + urlkey(c2["pub"])
        peer = {"public_key": c2["pub"], "allowed_ips": [c2["tailnet"] + "/32"], "user": "c2@lab.test"}
        self.assertIsNotNone(self.etcd_call("/v3/kv/put", {"key": b64(key), "value": b64(json.dumps(peer))}))
        self.assertFalse(L.ensure_handshakes(LAB, ("c1", "c2"), timeout=25))
        sink, sink_out = self.start_sink("rm-sink")
        source, source_out = self.start_source("c2", "c2", 20)
        try:
            self.assertTrue(L.wait_until(lambda: L.metric_sum(LAB, "exitgw_wg_keypairs") >= 2, 10))
            time.sleep(1)  # the sink has c2's mapping now
            before = L.Metrics(LAB)
            keypairs_before = before.get("exitgw_wg_keypairs")
            peers_before = before.get("exitgw_wg_peers")
            self.assertIsNotNone(self.etcd_call("/v3/kv/deleterange", {"key": b64(key)}))
            self.assertTrue(L.wait_until(
                lambda: L.Metrics(LAB).get("exitgw_wg_peers") == peers_before - 1, 10))
            # NAT: every worker freed c2's sessions (the command ring from control).
            self.assertTrue(L.wait_until(
                lambda: L.metric_sum(LAB, "exitgw_nat_sessions_removed_total")
                > before.get("exitgw_nat_sessions_removed_total"), 10),
                "the removed peer's NAT sessions were not freed")
            after = L.Metrics(LAB)
            # Keypairs: c2's are gone from the table, and its datagrams now find no keypair.
            self.assertLess(after.get("exitgw_wg_keypairs"), keypairs_before)
            unknown0 = L.drops(after, "wg_unknown_index")
            self.assertTrue(L.wait_until(
                lambda: L.drops(L.Metrics(LAB), "wg_unknown_index") > unknown0, 10),
                "c2's transport packets after its removal were not dropped as unknown index")
            # Mapping and route: an inbound datagram to c2's old public endpoint finds no NAT
            # mapping (its sessions went with the peer), never c2's old keypair.
            m0 = L.Metrics(LAB)
            sink.send_signal(signal.SIGUSR1)
            self.assertTrue(L.wait_until(lambda: (
                L.drops(L.Metrics(LAB), "nat_no_mapping") > L.drops(m0, "nat_no_mapping")), 10),
                L.Metrics(LAB).nonzero())
            m1 = L.Metrics(LAB)
            self.assertEqual(L.drops(m1, "wg_no_keypair"), L.drops(m0, "wg_no_keypair"))
            print("\ninbound to the removed peer's mapping: wg_no_peer_for_destination +%d, "
                  "nat_no_mapping +%d" % tuple(L.drops(m1, r) - L.drops(m0, r) for r in (
                      "wg_no_peer_for_destination", "nat_no_mapping")), file=sys.stderr)
        finally:
            sent = self.finish(source, source_out)
            self.finish(sink, sink_out)
        self.assertGreater(sent["sent"], 0)
        # Re-adding it works: a fresh handshake and traffic again.
        self.assertIsNotNone(self.etcd_call("/v3/kv/put", {"key": b64(key), "value": b64(json.dumps(peer))}))
        self.assertTrue(L.wait_until(lambda: L.ping(LAB, "c2", L.SERVER, count=2, wait=2)[1] > 0, 30))


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
