"""Live harness: the real exitgw binary on af_packet vdevs, driven by Python WireGuard peers.

One network namespace lv<pid>[x<n>] holds two veth pairs, every end without an IP address
and with IPv6 off, so the kernel never sends a frame on them:
    tun0  (gateway, T port, net_af_packet0) <-> tunp  (the peers' wire)
    inet0 (gateway, I port, net_af_packet1) <-> inetp (the internet's wire)
exitgw runs in that namespace with static neighbors for the peers' endpoints and the
internet next hop (no ARP). This process enters the namespace (setns) for the lifetime of a
Lab, so its AF_PACKET sockets on tunp/inetp and its metrics requests are inside; close()
returns to the original namespace, stops the gateway by the pid it holds and deletes the
namespace by its name. Python peers (tests/support/wgpy.py) handshake with the gateway,
then seal inner packets as WireGuard transport data and open what the gateway sends back.

Needs root, DPDK 22.11's af_packet PMD, ethtool, python3-cryptography and scapy.
"""
import base64
import ctypes
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import skips  # noqa: E402
import wgpy  # noqa: E402
from gateway_process import http_get, wg_keypair  # noqa: E402,F401

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6

TUNNEL_IP = "10.77.0.1"
INTERNET_IP = "192.0.2.1"
ROUTER_IP = "192.0.2.2"
WG_PORT = 51820
PUBLIC_IP = "203.0.113.1"
# Deterministic NAT (RFC 7422) over the peers' inner addresses: with one public address and
# one worker, subscriber i of the /28 owns ports 1024 + i * 4032 ... + 4031, and the gateway
# keeps a port's offset within that range (nat_alloc.cc, take_port_in_block mode 0).
DET_INSIDE = "100.64.0.0/28"
DET_FLAGS = ("--nat_mode=deterministic", "--nat_deterministic_inside=" + DET_INSIDE,
             "--nat_port_min=1024", "--nat_port_max=65535")
DET_PORTS = (65535 - 1024 + 1) // 16


def det_port(inner_ip, port):
    """The public port (or ICMP identifier) deterministic NAT gives inner_ip's port."""
    i = struct.unpack("!I", socket.inet_aton(inner_ip))[0] - 0x64400000
    first = 1024 + i * DET_PORTS
    return first + (port - first) % DET_PORTS
DPDK_RUN = "/var/run/dpdk"

_libc = ctypes.CDLL(None, use_errno=True)
_instances = 0
_open_labs = []  # closed at exit and on SIGTERM (ctest's timeout), whatever the tests did


class HarnessError(Exception):
    pass


def run(args, check=True, timeout=30):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise HarnessError("'%s' failed (%d): %s" % (" ".join(args), p.returncode,
                                                     (p.stderr or p.stdout).strip()))
    return p


def setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def ip_bytes(a):
    return socket.inet_aton(a)


def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ttl=64, ident=0, flags_frag=0x4000):
    """An IPv4 packet (no options) around payload, header checksum filled."""
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_frag, ttl, proto,
                      0, ip_bytes(src), ip_bytes(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def udp4(src, dst, sport, dport, payload, ttl=64, ident=0):
    """A UDP/IPv4 packet with correct checksums (fast path for streams; tests use scapy)."""
    length = 8 + len(payload)
    pseudo = ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, 17, length)
    u = struct.pack("!HHHH", sport, dport, length, 0) + payload
    c = checksum(pseudo + u) or 0xFFFF
    u = u[:6] + struct.pack("!H", c) + u[8:]
    return ipv4(src, dst, 17, u, ttl=ttl, ident=ident)


def ether(dst_mac, src_mac, payload, ethertype=ETH_P_IP):
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ethertype) + payload


# --- metrics ---------------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """One scrape: sum(name, **labels) over the matching series."""

    def __init__(self, text):
        self.samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if m:
                self.samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")),
                                     float(m.group(3))))

    def sum(self, name, **labels):
        return sum(v for n, l, v in self.samples
                   if n == name and all(l.get(k) == w for k, w in labels.items()))

    def drop(self, reason):
        return self.sum("exitgw_drops_total", reason=reason)

    def drops(self):
        out = {}
        for n, l, v in self.samples:
            if n == "exitgw_drops_total" and v:
                out[l.get("reason")] = out.get(l.get("reason"), 0) + v
        return out

    def has(self, name):
        return any(n == name for n, _, _ in self.samples)


# --- the lab ---------------------------------------------------------------------------

class Peer:
    """A Python WireGuard peer at an endpoint on the tunnel wire, with one inner address."""

    def __init__(self, lab, name, inner_ip, endpoint_ip, endpoint_port, user="alice@example.com",
                 tags=()):
        self.lab, self.name = lab, name
        self.inner_ip, self.endpoint_ip, self.endpoint_port = inner_ip, endpoint_ip, endpoint_port
        self.user, self.tags = user, tags
        self.persistent_keepalive = None  # seconds, written to the peers file when set
        self.inner_ip6 = None  # an IPv6 inner address (a /128 allowed IP) when set
        self.priv_b64, self.priv, self.pub_b64 = wg_keypair()
        self.wg = None
        self.inbox = []  # WireGuard UDP payloads the gateway sent to this endpoint
        # The outer UDP checksum of each of those datagrams: (field value, whether it verifies).
        self.outer_checksums = []

    def peers_conf(self):
        allowed = "%s/32" % self.inner_ip
        if self.inner_ip6:
            allowed += ", %s/128" % self.inner_ip6
        text = "[Peer]\nPublicKey = %s\nAllowedIPs = %s\nUser = %s\n" % (
            self.pub_b64, allowed, self.user)
        if self.tags:
            text += "Tags = %s\n" % ", ".join(self.tags)
        if self.persistent_keepalive is not None:
            text += "PersistentKeepalive = %d\n" % self.persistent_keepalive
        return text

    def send_wg(self, payload, udp_checksum=None):
        """udp_checksum: a value to put in the outer UDP checksum instead of the right one."""
        frame = ether(self.lab.gw_tun_mac, self.lab.tunp_mac, udp4(
            self.endpoint_ip, TUNNEL_IP, self.endpoint_port, WG_PORT, payload))
        if udp_checksum is not None:
            frame = frame[:40] + struct.pack("!H", udp_checksum) + frame[42:]
        self.lab.send_tunnel(frame)

    def handshake(self, timeout=10.0):
        """Initiation, response, then a keepalive so the gateway's keypair is confirmed."""
        self.wg = wgpy.Initiator(self.priv, self.lab.gw_pub)
        deadline = time.monotonic() + timeout
        while True:
            self.send_wg(self.wg.initiation())
            resend = min(deadline, time.monotonic() + 1.0)
            while time.monotonic() < resend:
                msg = self._next_wg(resend - time.monotonic())
                if msg and msg[0] == wgpy.MSG_RESPONSE:
                    self.wg.consume_response(msg)
                    self.send_wg(self.wg.keepalive())
                    return
            if time.monotonic() >= deadline:
                raise HarnessError("peer %s: no handshake response from the gateway in %.0f s"
                                   % (self.name, timeout))

    def _next_wg(self, timeout):
        deadline = time.monotonic() + max(timeout, 0)
        while not self.inbox:
            left = deadline - time.monotonic()
            if left <= 0 or not self.lab.pump_tunnel(left):
                if not self.inbox:
                    return None
        return self.inbox.pop(0)

    def send_inner(self, pkt):
        """Seals an inner packet (bytes or a scapy packet) and sends it to the gateway."""
        self.send_wg(self.wg.seal(bytes(pkt)))

    def recv_inner(self, timeout=2.0):
        """The next inner packet the gateway sent this peer (keepalives skipped), or None."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next_wg(deadline - time.monotonic())
            if msg is None:
                return None
            if msg[0] != wgpy.MSG_TRANSPORT:
                continue  # a handshake initiation from the gateway (rekey): not expected here
            _, plain = self.wg.open(msg)
            if plain and plain[0] >> 4 == 6:  # IPv6: the header's payload length
                return plain[:40 + struct.unpack("!H", plain[4:6])[0]]
            if plain:
                return wgpy.unpad_ipv4(plain)

    def recv_transport(self, timeout):
        """The next transport message the gateway sent this peer, opened: (arrival time,
        plaintext; empty for a keepalive), or None. Other messages are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next_wg(deadline - time.monotonic())
            if msg is None:
                return None
            if msg[0] == wgpy.MSG_TRANSPORT:
                return time.monotonic(), self.wg.open(msg)[1]

    def recv_all_inner(self, timeout=1.0):
        out = []
        while True:
            p = self.recv_inner(timeout)
            if p is None:
                return out
            out.append(p)


class Lab:
    """The namespace, the wires and a running gateway. Use as a context manager."""

    def __init__(self, exitgw, flags=(), policy=None, peers=2, workers=1, internet_vdev="af_packet"):
        global _instances
        _instances += 1
        self.exitgw = os.path.realpath(exitgw)
        self.extra_flags = list(flags)
        self.workers = workers
        # af_packet (the default) or pcap. DPDK 22.11's af_packet PMD asks for a PACKET_FANOUT
        # group with PACKET_FANOUT_FLAG_DEFRAG (kernel reassembly); exitgw joins without it
        # (control/af_packet_fanout.cc), so fragments arrive as fragments on either. pcap
        # gives the internet side one RX queue that carries frames (worker 0's; quiet0 feeds
        # the others), for cases about where fragments meet across workers.
        if internet_vdev not in ("af_packet", "pcap"):
            raise HarnessError("internet_vdev: af_packet or pcap")
        self.internet_vdev = internet_vdev
        self.internet_port = "net_%s1" % internet_vdev
        self.ns = "lv%dx%d" % (os.getpid(), _instances)
        self.prefix = self.ns
        self.dir = tempfile.mkdtemp(prefix=self.ns + "-")
        self.proc = None
        self._orig_ns = None
        self.socks = {}
        self.internet_inbox = []
        self.peers = [Peer(self, "p%d" % i, "100.64.0.%d" % (10 + i), "10.77.0.%d" % (10 + i),
                           51000 + i) for i in range(peers)]
        self.policy_path = os.path.join(self.dir, "policy.hujson")
        self.policy_text = policy
        self.metrics_port = None

    # lifecycle ---------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        _open_labs.append(self)
        run(["ip", "netns", "add", self.ns])
        self._orig_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open("/run/netns/" + self.ns, os.O_RDONLY)
        try:
            setns(target)
        finally:
            os.close(target)
        run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1"])
        run(["ip", "link", "set", "lo", "up"])
        # quiet0 carries nothing: the extra RX queues of a libpcap internet port read it, so
        # every frame of inet0 reaches exactly one queue (worker 0's).
        for a, b in (("tun0", "tunp"), ("inet0", "inetp"), ("quiet0", "quietp")):
            run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
            for dev in (a, b):
                run(["sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % dev])
                run(["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"])
                run(["ip", "link", "set", dev, "up"])
        self.gw_tun_mac = self._mac("tun0")
        self.tunp_mac = self._mac("tunp")
        self.gw_inet_mac = self._mac("inet0")
        self.inetp_mac = self._mac("inetp")
        for dev in ("tunp", "inetp"):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: streams queue here
            s.bind((dev, ETH_P_ALL))
            s.setblocking(False)
            self.socks[dev] = s
        self._write_config()
        self._start_gateway()
        for p in self.peers:
            p.handshake()

    def close(self):
        if self in _open_labs:
            _open_labs.remove(self)
        for s in self.socks.values():
            s.close()
        self.socks = {}
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
        if self._orig_ns is not None:
            setns(self._orig_ns)
            os.close(self._orig_ns)
            self._orig_ns = None
        run(["ip", "netns", "del", self.ns], check=False)
        shutil.rmtree(os.path.join(DPDK_RUN, self.prefix), ignore_errors=True)
        if os.environ.get("LIVE_KEEP"):
            print("live: kept", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _mac(self, dev):
        out = run(["ip", "-o", "link", "show", dev]).stdout
        return re.search(r"link/ether ([0-9a-f:]{17})", out).group(1)

    # configuration -------------------------------------------------------------
    def _write_config(self):
        priv_b64, _, self.gw_pub_b64 = wg_keypair()
        self.gw_pub = base64.b64decode(self.gw_pub_b64)
        key = os.path.join(self.dir, "gateway.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(priv_b64 + "\n")
        with open(os.path.join(self.dir, "peers.conf"), "w") as f:
            f.write("".join(p.peers_conf() for p in self.peers))
        with open(os.path.join(self.dir, "approvals.conf"), "w") as f:
            f.write("exit-node approved\n")
        if self.policy_text is not None:
            self.write_policy(self.policy_text)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.metrics_port = probe.getsockname()[1]
        probe.close()
        neighbors = ["%s=%s" % (p.endpoint_ip, self.tunp_mac) for p in self.peers]
        neighbors.append("%s=%s" % (ROUTER_IP, self.inetp_mac))
        flags = [
            "--tunnel_port=net_af_packet0", "--internet_port=" + self.internet_port,
            "--tunnel_addr=%s/24" % TUNNEL_IP, "--internet_addr=%s/24" % INTERNET_IP,
            "--internet_gateway=" + ROUTER_IP, "--static_neighbors=" + ",".join(neighbors),
            "--metrics_listen=127.0.0.1:%d" % self.metrics_port, "--region=live",
            "--node=" + self.ns, "--private_key_file=" + key,
            "--peers_file=" + os.path.join(self.dir, "peers.conf"),
            "--approvals_file=" + os.path.join(self.dir, "approvals.conf"),
            "--exit_node_advertised=true", "--wg_listen_port=%d" % WG_PORT,
            "--nat_pool=%s/32" % PUBLIC_IP, "--nat_max_sessions=65536",
            "--mbufs=4095", "--export_spool_dir=" + self.dir,
            "--admin_token_file=",
        ]
        if self.policy_text is not None:
            flags.append("--policy_file=" + self.policy_path)
        else:
            flags.append("--policy_file=")
        self.flags = flags + self.extra_flags

    def write_peers(self, text):
        """Replaces the peers file atomically; the gateway's file watch applies it."""
        path = os.path.join(self.dir, "peers.conf")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def write_policy(self, text):
        """Replaces the policy file atomically (write a temporary file, rename over)."""
        tmp = self.policy_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.policy_path)

    def _start_gateway(self):
        lcores = ",".join(["0@0"] + ["%d@%d" % (w, min(w, (os.cpu_count() or 1) - 1))
                                     for w in range(1, self.workers + 1)])
        q = self.workers + 1
        args = [self.exitgw, "--lcores=" + lcores, "--file-prefix=" + self.prefix, "--no-pci",
                "--vdev=net_af_packet0,iface=tun0,qpairs=%d" % q,
                ("--vdev=net_af_packet1,iface=inet0,qpairs=%d" % q
                 if self.internet_vdev == "af_packet" else
                 "--vdev=net_pcap1,rx_iface_in=inet0" + ",rx_iface_in=quiet0" * (q - 1) +
                 ",tx_iface=inet0" * q),
                "--no-huge", "-m", "512", "--log-level=error", "--"] + self.flags
        self.log_path = os.path.join(self.dir, "exitgw.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("exitgw exited with %d:\n%s" % (self.proc.returncode,
                                                                   self.log_tail()))
            try:
                if self._get("/readyz")[0] == 200:
                    # The pcap PMD has its own MAC, not the interface's: the gateway logs it.
                    m = re.search(r"port %s \(internet\) mac ([0-9A-Fa-f:]{17})"
                                  % self.internet_port, self.log_tail(200))
                    if m:
                        self.gw_inet_mac = m.group(1).lower()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise HarnessError("exitgw not ready in 30 s:\n" + self.log_tail())

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def _get(self, path):
        return http_get(self.metrics_port, path)

    def metrics(self):
        status, text = self._get("/metrics")
        if status != 200:
            raise HarnessError("/metrics answered %d" % status)
        return Metrics(text)

    def wait_metric(self, pred, timeout=10.0):
        """Scrapes until pred(metrics) holds; returns the last scrape (pred may be false)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            if pred(m) or time.monotonic() >= deadline:
                return m
            time.sleep(0.1)

    def gateway_alive(self):
        return self.proc is not None and self.proc.poll() is None

    # wires ---------------------------------------------------------------------
    def send_tunnel(self, frame):
        self.socks["tunp"].send(frame)

    def send_internet(self, pkt, src_mac=None):
        """Sends an IP packet (bytes or scapy; IPv4 or IPv6 by its version) from the upstream
        router to the gateway."""
        b = bytes(pkt)
        ethertype = ETH_P_IPV6 if b[0] >> 4 == 6 else ETH_P_IP
        self.socks["inetp"].send(ether(self.gw_inet_mac, src_mac or self.inetp_mac, b, ethertype))

    def _read(self, dev):
        s = self.socks[dev]
        out = []
        while True:
            try:
                data, addr = s.recvfrom(65535)
            except BlockingIOError:
                return out
            if addr[2] != PACKET_OUTGOING:
                out.append(data)

    def pump_tunnel(self, timeout):
        """Reads tunnel-side frames into the peers' inboxes; False when none came in time."""
        r, _, _ = select.select([self.socks["tunp"]], [], [], max(timeout, 0))
        if not r:
            return False
        by_ep = {(p.endpoint_ip, p.endpoint_port): p for p in self.peers}
        for f in self._read("tunp"):
            if len(f) < 42 or f[12:14] != b"\x08\x00" or f[23] != 17:
                continue
            ihl = (f[14] & 15) * 4
            udp = 14 + ihl
            dst = socket.inet_ntoa(f[30:34])
            sport, dport = struct.unpack("!HH", f[udp:udp + 4])
            if sport != WG_PORT or socket.inet_ntoa(f[26:30]) != TUNNEL_IP:
                continue
            p = by_ep.get((dst, dport))
            if p is not None:
                length = struct.unpack("!H", f[udp + 4:udp + 6])[0]
                field = struct.unpack("!H", f[udp + 6:udp + 8])[0]
                pseudo = f[26:34] + struct.pack("!BBH", 0, 17, length)
                p.outer_checksums.append((field, field == 0 or
                                          checksum(pseudo + f[udp:udp + length]) == 0))
                p.inbox.append(f[udp + 8:])
        return True

    def recv_outer_internet(self, timeout=2.0):
        """The next frame the gateway sent on the internet side (Ethernet included), or None."""
        deadline = time.monotonic() + timeout
        while not self.internet_inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.socks["inetp"]], [], [], left)
            if r:
                self.internet_inbox += self._read("inetp")
        return self.internet_inbox.pop(0)

    def recv_all_internet(self, timeout=1.0):
        out = []
        while True:
            f = self.recv_outer_internet(timeout)
            if f is None:
                return out
            out.append(f)

    def drain(self, timeout=0.3):
        """Discards whatever is queued on both wires (between cases)."""
        self.recv_all_internet(timeout)
        for p in self.peers:
            p.recv_all_inner(0.01)
        self.internet_inbox = []

    def socket_drops(self, dev):
        """Frames the kernel dropped on our AF_PACKET socket (tp_drops) since the last call."""
        raw = self.socks[dev].getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        return struct.unpack("II", raw)[1]


# --- test cases ------------------------------------------------------------------------

import unittest  # noqa: E402


class LabCase(unittest.TestCase):
    """A test class sharing one Lab (one gateway) across its cases, built from its class
    attributes; configure(lab) may change the peers before the gateway starts."""

    lab = None
    flags = ()
    policy = None
    peers = 2
    workers = 1
    internet_vdev = "af_packet"

    @classmethod
    def configure(cls, lab):
        pass

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab(EXITGW, flags=cls.flags, policy=cls.policy, peers=cls.peers,
                      workers=cls.workers, internet_vdev=cls.internet_vdev)
        cls.configure(cls.lab)
        cls.lab.__enter__()

    @classmethod
    def tearDownClass(cls):
        if cls.lab:
            cls.lab.close()

    def setUp(self):
        self.lab.drain(0.05)
        self.assertTrue(self.lab.gateway_alive(), self.lab.log_tail())


# --- test entry point ------------------------------------------------------------------

EXITGW = None


PENDING = {}  # case name -> why it is skipped; LIVE_RUN_PENDING=1 runs them anyway


def pending(reason):
    """Marks a case that states the right behaviour but waits for the gateway (PENDING set).

    Skipped with the reason, unless LIVE_RUN_PENDING=1 (to see whether it passes yet)."""
    import unittest

    def wrap(f):
        PENDING[f.__name__] = reason
        if os.environ.get("LIVE_RUN_PENDING") == "1":
            return f
        return unittest.skip("PENDING: " + reason)(f)

    return wrap


def main(argv=None):
    """unittest.main with --exitgw PATH (required) taken off the command line."""
    import argparse
    import unittest

    import atexit

    global EXITGW
    atexit.register(lambda: [lab.close() for lab in list(_open_labs)])
    # ctest ends a test that overruns its TIMEOUT with SIGTERM: unwind so the gateway (in a
    # session of its own) and the namespace are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--exitgw", required=True)
    a, rest = ap.parse_known_args(argv)
    EXITGW = os.path.realpath(a.exitgw)
    if not os.access(EXITGW, os.X_OK):
        raise SystemExit("no exitgw at %s (build it: ninja -C build exitgw)" % EXITGW)
    if os.geteuid() != 0:
        raise SystemExit("live tests need root (namespaces, AF_PACKET, DPDK)")
    skips.main(argv=[sys.argv[0]] + rest, verbosity=2)
