#!/usr/bin/env python3
"""E2E: WireGuard behaviour of the gateway against real wireguard-go clients (tools/lab).

  /usr/bin/python3 tests/e2e/wireguard_test.py --exitgw build/control/exitgw [-v] [unittest args]

Peers-file reloads (good and bad), replay protection, cryptokey routing of sources, roaming,
rekeying under traffic (a second lab with short REKEY/REJECT timers) and a handshake flood.
Every test asserts on the gateway's counters and on what a client sees. Root only; the labs
have names unique to this process and are always taken down. Traffic goes only to addresses
inside the lab's namespaces.
"""
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

import labutil as L

NAME = L.lab_name("wg")      # the main lab: c1, c2 with the protocol's timers
REKEY_NAME = L.lab_name("wr")  # a lab with --wg_rekey_after_time=8 --wg_reject_after_time=30
GW = "10.77.0.1"
GW6 = "2001:db8:77::1"  # tools/lab GW_TUN6: the tunnel port's IPv6 address
SERVER6 = "2001:db8:5::10"  # tools/lab SERVER6
WG_PORT = 51820

# Sends each hex payload `repeat` times to the gateway from a fresh UDP socket (another source
# port than the client's wireguard-go): argv = bind address, repeat, hex payloads...
REPLAY_CODE = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
n = 0
for h in sys.argv[3:]:
    for _ in range(int(sys.argv[2])):
        s.sendto(bytes.fromhex(h), ("10.77.0.1", 51820))
        n += 1
        time.sleep(0.01)
print("sent %d from port %d" % (n, s.getsockname()[1]))
"""

# Handshake-initiation flood: 148-byte type-1 messages, half random (bad MAC1), half with a
# valid MAC1 for the gateway's public key (random ephemeral/static/timestamp: they cost the
# gateway a DH unless it is under load and demands a cookie). Paced to `rate` per second over
# `sockets` source ports for `seconds`; counts cookie replies that come back.
# argv = bind address, gateway public key (base64), seconds, rate, sockets. Prints JSON.
FLOOD_CODE = r"""
import base64, hashlib, json, os, socket, sys, time
bind, pub, seconds, rate, nsock = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
key = hashlib.blake2s(b"mac1----" + base64.b64decode(pub)).digest()
msgs = []
for i in range(1024):
    body = b"\x01\x00\x00\x00" + os.urandom(112)
    if i % 2:
        msgs.append((True, body + hashlib.blake2s(body, key=key, digest_size=16).digest() + bytes(16)))
    else:
        msgs.append((False, body + os.urandom(32)))
socks = []
for _ in range(nsock):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind, 0))
    s.setblocking(False)
    socks.append(s)
dst = ("10.77.0.1", 51820)
sent = {True: 0, False: 0}
blocked = cookies = other = 0
i = 0
t0 = time.monotonic()
end = t0 + seconds
batch = 64
while True:
    now = time.monotonic()
    if now >= end:
        break
    due = int((now - t0) * rate)
    while i < due:
        good, m = msgs[i % len(msgs)]
        try:
            socks[(i // 2) % nsock].sendto(m, dst)
            sent[good] += 1
        except (BlockingIOError, OSError):
            blocked += 1
        i += 1
        if i % batch == 0:
            break
    for s in socks:
        while True:
            try:
                d = s.recv(2048)
            except (BlockingIOError, OSError):
                break
            if d[:1] == b"\x03":
                cookies += 1
            else:
                other += 1
    if i >= int((time.monotonic() - t0) * rate):
        time.sleep(0.001)
el = time.monotonic() - t0
time.sleep(0.3)
for s in socks:
    while True:
        try:
            d = s.recv(2048)
        except (BlockingIOError, OSError):
            break
        cookies += d[:1] == b"\x03"
print(json.dumps({"seconds": el, "sent_valid_mac1": sent[True], "sent_bad_mac1": sent[False],
                  "send_errors": blocked, "offered_per_s": (sent[True] + sent[False]) / el,
                  "cookie_replies": cookies, "other_replies": other}))
"""


def sh(name, host, *cmd, timeout=30):
    return L.nsrun(name, host, *cmd, timeout=timeout, check=True)


def replies(path):
    """[(unix time, icmp_seq)] of the echo replies in a `ping -D` output file."""
    out = []
    with open(path, errors="replace") as f:
        for ln in f:
            m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) ", ln)
            if m:
                out.append((float(m.group(1)), int(m.group(2))))
    return out


def readf(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_for_file(path, pattern, timeout):
    return L.wait_until(lambda: os.path.exists(path) and re.search(pattern, readf(path)),
                        timeout, step=0.1)


class WireGuardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="exitgw-wgtest-")
        L.down(NAME)
        try:
            L.up(NAME, clients=2)
            cls.st = L.state(NAME)
        except BaseException:
            L.down(NAME)
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            L.down(NAME)
            L.down(REKEY_NAME)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.t_start = time.monotonic()
        missing = L.ensure_handshakes(NAME, ("c1", "c2"), timeout=25)
        self.assertEqual(missing, set(), "no handshake for %s; gateway log:\n%s"
                         % (missing, L.gateway_log(NAME)[-3000:]))

    def tearDown(self):
        print("\n  (%.1f s)" % (time.monotonic() - self.t_start), end=" ", flush=True)

    def path(self, fname):
        return os.path.join(self.tmp, "%s-%s" % (self._testMethodName[5:30], fname))

    def assert_tunnel(self, cname, count=3, name=NAME):
        tx, rx, out = L.ping(name, cname, L.SERVER, count=count, interval=0.2, wait=2)
        self.assertEqual((tx, rx), (count, count), "%s cannot reach %s through the tunnel:\n%s"
                         % (cname, L.SERVER, out))

    # ------------------------------------------------------------------------ peers file

    def test_peer_removed_from_peers_file_loses_access_at_once_and_regains_when_added_back(self):
        c1 = L.client(NAME, "c1")
        original = L.read_peers(NAME)
        without_c1 = L.peers_without(original, c1["pub"])
        m0 = L.Metrics(NAME)
        peers0, kp0 = m0.get("exitgw_wg_peers"), m0.get("exitgw_wg_keypairs")
        self.assertEqual(peers0, 2)
        out = self.path("ping.txt")
        p = L.nsspawn(NAME, "c1", "stdbuf", "-oL", "ping", "-n", "-D", "-i", "0.1", "-W", "1",
                      "-w", "60", L.SERVER, out=out)
        restored = False
        try:
            self.assertTrue(L.wait_until(lambda: len(replies(out)) >= 5, 10),
                            "c1's ping got no replies before the change:\n" + readf(out))
            t_remove = time.time()
            L.write_peers(NAME, without_c1)
            gone = L.wait_until(lambda: L.Metrics(NAME).get("exitgw_wg_peers") == peers0 - 1, 3)
            t_gone = time.time() - t_remove
            time.sleep(max(0.0, 3.0 - (time.time() - t_remove)))
            m1 = L.Metrics(NAME)
            tx2, rx2, out2 = L.ping(NAME, "c2", L.SERVER, count=3, interval=0.2, wait=2)
            t_add = time.time()
            L.write_peers(NAME, original)
            restored = True
            back = L.wait_until(lambda: any(ts > t_add for ts, _ in replies(out)), 30, step=0.2)
            m2 = L.Metrics(NAME)
        finally:
            L.stop(p, signal.SIGINT)
            if not restored:
                L.write_peers(NAME, original)
        rs = replies(out)
        last_before = max([ts for ts, _ in rs if ts < t_add], default=0)
        during = [(ts, seq) for ts, seq in rs if t_remove + 1.0 < ts < t_add]
        regained = min([ts for ts, _ in rs if ts > t_add], default=None)
        print("\n  peer gone from metrics after %.2f s; c1's last reply %.2f s after the removal; "
              "c1 back %s after re-adding" % (t_gone, last_before - t_remove,
                                             "%.1f s" % (regained - t_add) if regained else "never"),
              end=" ")
        self.assertTrue(gone, "exitgw_wg_peers did not drop to %d within 3 s:\n%s"
                        % (peers0 - 1, m1.nonzero("exitgw_wg")))
        self.assertEqual(during, [], "c1 still got replies more than 1 s after its removal")
        self.assertLess(m1.get("exitgw_wg_keypairs"), kp0, "the removed peer's keypairs stayed")
        self.assertGreater(L.drops(m1, "wg_unknown_index"), L.drops(m0, "wg_unknown_index"),
                           "c1's packets after the removal were not counted as wg_unknown_index")
        self.assertEqual((tx2, rx2), (3, 3), "c2 lost access while c1 was removed:\n" + out2)
        self.assertTrue(back, "c1 did not regain access within 30 s of being added back; ping:\n%s"
                        "\nmetrics:\n%s" % (readf(out)[-1500:], m2.nonzero("exitgw_wg")))
        self.assertEqual(m2.get("exitgw_wg_peers"), peers0)
        self.assertGreater(m2.get("exitgw_wg_handshakes_total", result="ok"),
                           m1.get("exitgw_wg_handshakes_total", result="ok"))
        self.assertEqual(m2.get("exitgw_wg_peers_reloads_total", result="ok"),
                         m0.get("exitgw_wg_peers_reloads_total", result="ok") + 2)
        self.assert_tunnel("c2")

    def test_bad_peers_file_changes_nothing(self):
        c1 = L.client(NAME, "c1")
        c2 = L.client(NAME, "c2")
        original = L.read_peers(NAME)
        # Each bad file also drops c2: applied even in part, c2 would lose its session.
        only_c1 = L.peers_without(original, c2["pub"]).rstrip("\n") + "\n"
        syntax = only_c1 + "[Peer]\nPublicKey = %s\nthis line has no equals sign\n" % c2["pub"]
        syntax_line = syntax.count("\n")
        overlap = only_c1 + "[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n" % (c2["pub"], c1["tailnet"])
        out = self.path("ping.txt")
        m0 = L.Metrics(NAME)
        p = L.nsspawn(NAME, "c2", "stdbuf", "-oL", "ping", "-n", "-D", "-i", "0.1", "-W", "1",
                      "-c", "60", L.SERVER, out=out)
        try:
            self.assertTrue(L.wait_until(lambda: len(replies(out)) >= 3, 10))
            rejected = m0.get("exitgw_wg_peers_reloads_total", result="rejected")
            for label, text in (("syntax error", syntax), ("overlapping AllowedIPs", overlap)):
                L.write_peers(NAME, text)
                ok = L.wait_until(lambda: L.Metrics(NAME).get("exitgw_wg_peers_reloads_total",
                                                               result="rejected") == rejected + 1, 5)
                self.assertTrue(ok, "a peers file with a %s was not counted as rejected:\n%s"
                                % (label, L.Metrics(NAME).nonzero("exitgw_wg_peers")))
                rejected += 1
                time.sleep(0.5)
            m1 = L.Metrics(NAME)
            for c in ("c1", "c2"):
                self.assert_tunnel(c)
        finally:
            L.write_peers(NAME, original)
            L.wait_until(lambda: p.poll() is not None, 15)
            ret = L.stop(p, signal.SIGINT)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
            "exitgw_wg_peers_reloads_total", result="ok") == m0.get("exitgw_wg_peers_reloads_total", result="ok") + 1, 5),
            "restoring the good peers file was not applied")
        tx, rx = L.ping_counts(readf(out))
        print("\n  c2's ping across both bad files: %d/%d answered" % (rx, tx), end=" ")
        self.assertEqual(ret, 0)
        self.assertEqual((tx, rx), (60, 60), "c2 lost packets while bad peers files were written")
        self.assertEqual(m1.get("exitgw_wg_peers"), m0.get("exitgw_wg_peers"))
        self.assertEqual(m1.get("exitgw_wg_keypairs"), m0.get("exitgw_wg_keypairs"))
        self.assertEqual(m1.get("exitgw_wg_peers_reloads_total", result="ok"),
                         m0.get("exitgw_wg_peers_reloads_total", result="ok"))
        log = L.gateway_log(NAME)
        self.assertIn("peers.conf:%d" % syntax_line, log,
                      "the log does not name the bad line %d:\n%s" % (syntax_line, log[-2000:]))
        self.assertRegex(log, r"(?i)%s|100\.64\.0\.11" % re.escape(c1["tailnet"]))

    # ------------------------------------------------------------------------ data path

    def test_replayed_transport_packet_dropped_and_counted(self):
        c1 = L.client(NAME, "c1")
        cap, tlog = self.path("replay.pcap"), self.path("tcpdump.txt")
        td = L.nsspawn(NAME, "c1", "timeout", "30", "tcpdump", "-i", "eth0", "-n", "-U", "-Z", "root",
                       "-c", "3", "-w", cap,
                       "udp and dst host %s and dst port %d and udp[8] = 4" % (GW, WG_PORT), out=tlog)
        try:
            self.assertTrue(wait_for_file(tlog, "listening on", 10), readf(tlog))
            self.assert_tunnel("c1", count=3)
            self.assertTrue(L.wait_until(lambda: td.poll() is not None, 10),
                            "tcpdump did not capture 3 transport packets")
        finally:
            L.stop(td, signal.SIGINT)
        pkts = [L.udp_of(f) for _ts, f in L.read_pcap(cap)]
        payloads = [u[4] for u in pkts if u and u[4][:1] == b"\x04"]
        self.assertEqual(len(payloads), 3, "captured: %r" % pkts)
        repeat = 2
        m0 = L.Metrics(NAME)
        p = L.nsrun(NAME, "c1", sys.executable, "-c", REPLAY_CODE, c1["veth_addr"], str(repeat),
                    *[x.hex() for x in payloads], timeout=20)
        self.assertEqual(p.returncode, 0, p.stdout)
        want = repeat * len(payloads)
        L.wait_until(lambda: L.drops(L.Metrics(NAME), "wg_replay") >= L.drops(m0, "wg_replay") + want, 3)
        time.sleep(0.5)
        m1 = L.Metrics(NAME)
        got = L.drops(m1, "wg_replay") - L.drops(m0, "wg_replay")
        print("\n  %s; wg_replay +%d" % (p.stdout.strip(), got), end=" ")
        self.assertEqual(got, want, "wg_replay rose by %d for %d replays:\n%s" % (got, want, m1.nonzero("exitgw_drops")))
        # The replays came from another source port: had the gateway roamed to it, c1's
        # replies would go there and this ping would fail.
        self.assert_tunnel("c1", count=5)
        self.assert_tunnel("c2")

    def test_packet_from_source_outside_allowed_ips_dropped_and_counted(self):
        c1 = L.client(NAME, "c1")
        spoof = "100.64.99.1"
        sh(NAME, "c1", "ip", "addr", "add", spoof + "/32", "dev", c1["wg"])
        try:
            m0 = L.Metrics(NAME)
            tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=5, interval=0.2, wait=1, source=spoof)
            time.sleep(0.5)
            m1 = L.Metrics(NAME)
            inet = L.nsrun(NAME, "inet", "ip", "-s", "link", "show", "eth0", timeout=10).stdout
        finally:
            L.nsrun(NAME, "c1", "ip", "addr", "del", spoof + "/32", "dev", c1["wg"], timeout=10)
        bad = L.drops(m1, "wg_bad_source") - L.drops(m0, "wg_bad_source")
        print("\n  %d pings from %s: %d answered, wg_bad_source +%d" % (tx, spoof, rx, bad), end=" ")
        self.assertEqual(tx, 5, out)
        self.assertEqual(rx, 0, "pings from a source outside c1's AllowedIPs were answered:\n" + out)
        self.assertEqual(bad, 5, "wg_bad_source rose by %d, not 5:\n%s" % (bad, m1.nonzero("exitgw_drops")))
        self.assertEqual(m1.get("exitgw_port_tx_packets_total", port="internet"),
                         m0.get("exitgw_port_tx_packets_total", port="internet"),
                         "something was forwarded to the internet:\n" + inet)
        self.assert_tunnel("c1")

    def wait_endpoint(self, pub, want, timeout=5):
        """Waits for the admin API to report `want` as the peer's current endpoint (its view is
        republished every second); returns the last one seen."""
        seen = [None]

        def check():
            seen[0] = self.current_endpoint(pub)
            return seen[0] == want
        L.wait_until(check, timeout, step=0.3)
        return seen[0]

    def current_endpoint(self, pub):
        """The peer's endpoint as the gateway's admin API reports it (where it sends now)."""
        key = pub.replace("+", "-").replace("/", "_").rstrip("=")
        return L.admin_json(NAME, "/v1/peers/" + key)["current_endpoint"]

    def test_peer_over_the_ipv6_outer_path_handshakes_and_roams_between_families(self):
        # c1 reaches the gateway's tunnel port over IPv6 instead of IPv4: a fresh handshake
        # (the peer re-added, so wireguard-go starts over) answered over IPv6 by control, then
        # transport both ways with UDP checksums the client's kernel verifies (IPv6 makes them
        # mandatory: a wrong one and nothing arrives), inner IPv4 and IPv6 alike; then back to
        # IPv4 without a new handshake, the gateway following each move.
        c1 = L.client(NAME, "c1")
        pub, wg = self.st["gw_pub"], c1["wg"]
        port = int(L.wg_show(NAME, "c1", "listen-port").strip())
        m0 = L.Metrics(NAME)
        hs0 = m0.get("exitgw_wg_handshakes_total", result="ok")
        try:
            sh(NAME, "c1", "wg", "set", wg, "peer", pub, "remove")
            sh(NAME, "c1", "wg", "set", wg, "peer", pub, "endpoint", "[%s]:%d" % (GW6, WG_PORT),
               "allowed-ips", "0.0.0.0/0,::/0", "persistent-keepalive", "25")
            tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=5, interval=0.3, wait=3)
            self.assertGreaterEqual(rx, 3, "no tunnel over IPv6:\n%s\n%s\n%s" % (
                out, L.Metrics(NAME).drops_text(), L.gateway_log(NAME)[-2000:]))
            want = "[%s]:%d" % (c1["veth_addr6"], port)
            self.assertEqual(self.wait_endpoint(c1["pub"], want), want)
            self.assertGreater(L.Metrics(NAME).get("exitgw_wg_handshakes_total", result="ok"), hs0)
            p = L.lab_exec(NAME, "c1", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", SERVER6,
                           timeout=20)
            self.assertIn(" 0% packet loss", p.stdout, p.stdout)
            # Full-size packets (1300 bytes of ICMP data: outer IPv6 datagrams of ~1400 bytes).
            p = L.lab_exec(NAME, "c1", "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1300",
                           "-M", "do", L.SERVER, timeout=20)
            self.assertIn(" 0% packet loss", p.stdout, p.stdout)
            p = L.lab_exec(NAME, "c1", "curl", "-sS", "--max-time", "10", "http://%s/" % L.SERVER,
                           timeout=20)
            self.assertIn("hello", p.stdout, p.stdout)
            # Back to IPv4: the next authenticated packet moves the endpoint (no handshake).
            sh(NAME, "c1", "wg", "set", wg, "peer", pub, "endpoint", "%s:%d" % (GW, WG_PORT))
            self.assert_tunnel("c1")
            want = "%s:%d" % (c1["veth_addr"], port)
            self.assertEqual(self.wait_endpoint(c1["pub"], want), want)
            # And to IPv6 again, within the same session.
            sh(NAME, "c1", "wg", "set", wg, "peer", pub, "endpoint", "[%s]:%d" % (GW6, WG_PORT))
            self.assert_tunnel("c1")
            want = "[%s]:%d" % (c1["veth_addr6"], port)
            self.assertEqual(self.wait_endpoint(c1["pub"], want), want)
        finally:
            L.nsrun(NAME, "c1", "wg", "set", wg, "peer", pub, "endpoint", "%s:%d" % (GW, WG_PORT),
                    timeout=10)
        self.assert_tunnel("c1")
        m1 = L.Metrics(NAME)
        self.assertEqual(m1.get("exitgw_drops_total", reason="udp_bad_checksum"),
                         m0.get("exitgw_drops_total", reason="udp_bad_checksum"))

    def test_peer_that_changes_its_endpoint_keeps_working(self):
        c1 = L.client(NAME, "c1")
        old_addr, new_addr = c1["veth_addr"], "10.77.0.%d" % (200 + os.getpid() % 50)
        old_port = int(L.wg_show(NAME, "c1", "listen-port").strip())
        port2 = 40000 + (old_port + 7) % 20000
        port3 = port2 + 1
        cap, tlog, out = self.path("roam.pcap"), self.path("tcpdump.txt"), self.path("ping.txt")
        td = L.nsspawn(NAME, "c1", "timeout", "60", "tcpdump", "-i", "eth0", "-n", "-U", "-Z", "root",
                       "-w", cap, "udp and src host %s and src port %d" % (GW, WG_PORT), out=tlog)
        p = None
        moved = False
        try:
            self.assertTrue(wait_for_file(tlog, "listening on", 10), readf(tlog))
            sh(NAME, "c1", "sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1")
            p = L.nsspawn(NAME, "c1", "stdbuf", "-oL", "ping", "-n", "-D", "-i", "0.05", "-W", "1",
                          "-c", "200", L.SERVER, out=out)
            self.assertTrue(L.wait_until(lambda: len(replies(out)) >= 10, 10), readf(out))
            # 1. New source port (wireguard-go rebinds its socket).
            t_port = time.time()
            sh(NAME, "c1", "wg", "set", c1["wg"], "listen-port", str(port2))
            time.sleep(3)
            # 2. New address and port, as a client moving networks: the old address goes
            # away and wireguard-go rebinds (which also clears its sticky source address).
            moved = True
            sh(NAME, "c1", "ip", "addr", "add", new_addr + "/24", "dev", "eth0")
            t_addr = time.time()
            sh(NAME, "c1", "ip", "addr", "del", old_addr + "/24", "dev", "eth0")
            sh(NAME, "c1", "wg", "set", c1["wg"], "listen-port", str(port3))
            self.assertTrue(L.wait_until(lambda: p.poll() is not None, 20), "ping did not end")
            time.sleep(0.5)
        finally:
            L.stop(p, signal.SIGINT)
            L.stop(td, signal.SIGINT)
            if moved:
                L.nsrun(NAME, "c1", "ip", "addr", "add", old_addr + "/24", "dev", "eth0", timeout=10)
                L.nsrun(NAME, "c1", "ip", "addr", "del", new_addr + "/24", "dev", "eth0", timeout=10)
            L.nsrun(NAME, "c1", "wg", "set", c1["wg"], "listen-port", str(old_port), timeout=10)
        tx, rx = L.ping_counts(readf(out))
        seqs = {s for _ts, s in replies(out)}
        lost = sorted(set(range(1, tx + 1)) - seqs)
        sent_to = [(ts, u[2], u[3]) for ts, f in L.read_pcap(cap) for u in [L.udp_of(f)] if u]
        after_port = {(ip, port) for ts, ip, port in sent_to if t_port + 0.5 < ts < t_addr}
        after_addr = {(ip, port) for ts, ip, port in sent_to if ts > t_addr + 0.5}
        print("\n  %d/%d echo replies, lost seqs %s; gateway sent to %s, then %s"
              % (rx, tx, lost, sorted(after_port), sorted(after_addr)), end=" ")
        self.assertEqual(tx, 200, readf(out)[-500:])
        self.assertEqual(after_port, {(old_addr, port2)},
                         "after the port change the gateway did not send only to the new port")
        self.assertEqual(after_addr, {(new_addr, port3)},
                         "after the move the gateway did not send only to the new address and port")
        # A reply in flight at each change may go to the old socket (one per change, plus one
        # for the moment without a usable address on the client).
        self.assertLessEqual(len(lost), 3, "lost %s" % lost)
        self.assert_tunnel("c1")  # and back at the original address
        self.assert_tunnel("c2")

    # ------------------------------------------------------------------------ rekey

    def test_rekey_with_traffic_flowing_loses_nothing(self):
        """The gateway initiates (so its REKEY_AFTER_TIME applies), rekeys every 8 s under
        traffic in both directions, and nothing is lost."""
        name = REKEY_NAME
        L.down(name)
        try:
            # Routed mode (no NAT pool): the internet side reaches c1 by its tailnet address,
            # which is what lets the gateway be the initiator here.
            L.up(name, clients=1, extra=("--gw-flag", "wg_rekey_after_time=8",
                                         "--gw-flag", "wg_reject_after_time=30",
                                         "--gw-flag", "nat_pool="))
            with open(os.path.join(L.lab_dir(name), "exitgw.flags")) as f:
                self.assertIn("--wg_rekey_after_time=8", f.read())
            c1 = L.client(name, "c1")
            self.assertEqual(L.latest_handshake(name, "c1"), 0, "c1 handshook on its own")
            # Give the gateway c1's endpoint so that it can initiate (c1 never sends first).
            port = int(L.wg_show(name, "c1", "listen-port").strip())
            # After c1's AllowedIPs line (its IPv4 and IPv6 tailnet addresses).
            text = re.sub(r"(AllowedIPs = %s/32[^\n]*\n)" % re.escape(c1["tailnet"]),
                          lambda m: m.group(1) + "Endpoint = %s:%d\n" % (c1["veth_addr"], port),
                          L.read_peers(name), count=1)
            self.assertIn("Endpoint = ", text)
            L.write_peers(name, text)
            self.assertTrue(L.wait_until(lambda: L.Metrics(name).get(
                "exitgw_wg_peers_reloads_total", result="ok") >= 1, 5), "Endpoint not applied")
            # The internet pings c1's tailnet address: the gateway has no session, initiates.
            # From the server's address: the lab policy grants replies to 198.51.100.0/24, not
            # to the inet router's 192.0.2.0/24 (a built-in documentation range).
            self.assertTrue(L.wait_until(lambda: L.ping(name, "inet", c1["tailnet"], count=1,
                                                        wait=1, source=L.SERVER)[1] == 1, 15),
                            "the gateway did not reach c1 on its own handshake:\n%s\n%s"
                            % (L.Metrics(name).nonzero("exitgw_wg"), L.gateway_log(name)[-2000:]))
            m0 = L.Metrics(name)
            self.assertGreaterEqual(m0.get("exitgw_wg_handshake_messages_total", direction="tx",
                                           type="initiation"), 1)
            out_in = self.path("inet-ping.txt")
            out_c1 = self.path("c1-ping.txt")
            t0 = time.monotonic()
            pi = L.nsspawn(name, "inet", "ping", "-n", "-q", "-i", "0.05", "-W", "2", "-c", "440",
                           "-I", L.SERVER, c1["tailnet"], out=out_in)  # 22 s
            pc = L.nsspawn(name, "c1", "ping", "-n", "-q", "-i", "0.1", "-W", "2", "-c", "210",
                           L.SERVER, out=out_c1)  # 21 s
            try:
                ok = L.wait_until(lambda: pi.poll() is not None and pc.poll() is not None, 60, step=0.5)
            finally:
                L.stop(pi, signal.SIGINT)
                L.stop(pc, signal.SIGINT)
            dt = time.monotonic() - t0
            m1 = L.Metrics(name)
            d = lambda metric, **kw: m1.get(metric, **kw) - m0.get(metric, **kw)
            tx_i, rx_i = L.ping_counts(readf(out_in))
            tx_c, rx_c = L.ping_counts(readf(out_c1))
            ok_hs = d("exitgw_wg_handshakes_total", result="ok")
            init_tx = d("exitgw_wg_handshake_messages_total", direction="tx", type="initiation")
            init_rx = d("exitgw_wg_handshake_messages_total", direction="rx", type="initiation")
            bad = {r: d("exitgw_drops_total", reason=r) for r in
                   ("wg_keypair_expired", "wg_unknown_index", "wg_no_keypair", "wg_decrypt_failed",
                    "wg_replay")}
            print("\n  %.1f s: inet->c1 %d/%d, c1->inet %d/%d; handshakes ok +%d, initiations "
                  "sent +%d received +%d; keypairs %d; drops %s"
                  % (dt, rx_i, tx_i, rx_c, tx_c, ok_hs, init_tx, init_rx,
                     m1.get("exitgw_wg_keypairs"), {k: v for k, v in bad.items() if v}), end=" ")
            detail = "\nmetrics:\n%s\nlog:\n%s" % (m1.nonzero("exitgw_wg"), L.gateway_log(name)[-2000:])
            self.assertTrue(ok, "the pings did not finish")
            self.assertEqual(tx_i, 440)
            self.assertEqual(tx_c, 210)
            self.assertGreaterEqual(ok_hs, 2, "fewer than 2 rekeys in %.0f s" % dt + detail)
            self.assertGreaterEqual(init_tx, 2, detail)
            self.assertEqual(init_rx, 0, "c1 initiated: the gateway's sessions lapsed" + detail)
            self.assertEqual((rx_i, rx_c), (tx_i, tx_c), "echo lost across rekeys" + detail)
            self.assertEqual(sum(bad.values()), 0, "drops across rekeys: %s" % bad + detail)
            self.assertLessEqual(m1.get("exitgw_wg_keypairs"), 3)
        finally:
            L.down(name)

    # ------------------------------------------------------------------------ flood

    def test_handshake_flood_does_not_starve_an_established_peer(self):
        """60,000 initiations/s (about 8x what one core can answer with a DH) for 5 s from
        c1's address while c2 pings and runs iperf3 UDP through the tunnel. The established
        peer must not notice; the gateway must defend itself with cookies (under load) and
        keep doing its control-plane work (here: applying a peers-file change)."""
        c1 = L.client(NAME, "c1")
        seconds, rate, sockets = 5.0, 60000, 7
        out_ping, out_flood = self.path("c2-ping.txt"), self.path("flood.json")
        original = L.read_peers(NAME)
        m0 = L.Metrics(NAME)
        pp = L.nsspawn(NAME, "c2", "ping", "-n", "-q", "-i", "0.02", "-W", "1", "-c", "350",
                       L.SERVER, out=out_ping)  # 7 s around the 5 s flood
        pi = L.nsspawn(NAME, "c2", "iperf3", "-c", L.SERVER, "-u", "-b", "8M", "-l", "1000", "-t", "6",
                       "-J", "--connect-timeout", "4000", out=self.path("c2-iperf3.json"))
        # Samples of the gateway's state while the flood runs (the metrics thread answers
        # even when the control thread is busy): (seconds, under_load, initiations rx).
        samples, done = [], threading.Event()

        def sample():
            t0 = time.monotonic()
            while not done.is_set():
                m = L.Metrics(NAME)
                samples.append((time.monotonic() - t0, m.get("exitgw_wg_under_load"),
                                m.get("exitgw_wg_handshake_messages_total", direction="rx",
                                      type="initiation")))
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        fp = None
        reload_s = None
        try:
            time.sleep(0.7)
            sampler.start()
            fp = L.nsspawn(NAME, "c1", sys.executable, "-c", FLOOD_CODE, c1["veth_addr"],
                           self.st["gw_pub"], str(seconds), str(rate), str(sockets), out=out_flood)
            # Mid-flood, a harmless peers-file change (a comment): the control thread must
            # still apply it (normally within ~0.2 s).
            time.sleep(1.5)
            ok0 = L.Metrics(NAME).get("exitgw_wg_peers_reloads_total", result="ok")
            t_w = time.monotonic()
            L.write_peers(NAME, original + "# touched during the flood\n")
            while fp.poll() is None and reload_s is None:
                if L.Metrics(NAME).get("exitgw_wg_peers_reloads_total", result="ok") > ok0:
                    reload_s = time.monotonic() - t_w
                time.sleep(0.1)
            flood_ended_s = time.monotonic() - t_w
            self.assertTrue(L.wait_until(lambda: fp.poll() is not None, 30), "the flood did not end")
            done.set()
            ok = L.wait_until(lambda: pp.poll() is not None and pi.poll() is not None, 30, step=0.2)
        finally:
            done.set()
            L.stop(fp, signal.SIGINT)
            L.stop(pp, signal.SIGINT)
            L.stop(pi, signal.SIGINT)
            L.write_peers(NAME, original)
        sampler.join(timeout=10)
        time.sleep(1.2)  # under load lasts a second after the backlog
        m1 = L.Metrics(NAME)
        self.assertEqual(fp.returncode, 0, readf(out_flood))
        fl = json.loads(readf(out_flood).strip().splitlines()[-1])
        d = lambda metric, **kw: m1.get(metric, **kw) - m0.get(metric, **kw)
        tx, rx = L.ping_counts(readf(out_ping))
        try:
            with open(self.path("c2-iperf3.json")) as fh:
                udp = json.load(fh)["end"]["sum"]
            iperf = (udp["lost_percent"], udp["lost_packets"], udp["packets"])
        except (OSError, ValueError, KeyError) as e:
            iperf = "no iperf3 result: %s" % e
        hs = {r: d("exitgw_wg_handshakes_total", result=r) for r in
              ("bad_mac1", "rate_limited", "static_decrypt_failed", "ok", "initiation_flood")}
        cookies = d("exitgw_wg_cookies_sent_total")
        rx_init = d("exitgw_wg_handshake_messages_total", direction="rx", type="initiation")
        ring = d("exitgw_drops_total", reason="punt_ring_full")
        hs_rate = ["%.0f" % ((b[2] - a[2]) / (b[0] - a[0])) for a, b in zip(samples, samples[1:])
                   if b[0] > a[0]]
        print("\n  flood: offered %.0f initiations/s for %.1f s (%d valid-MAC1, %d bad-MAC1, %d "
              "send errors), %d cookie replies came back"
              "\n  gateway: under_load samples %s, initiations handled/s %s"
              "\n    initiations rx +%d, %s, cookies sent +%d, punt_ring_full +%d"
              "\n    peers-file change mid-flood applied after %s"
              "\n  c2: ping %d/%d, iperf3 UDP 8 Mbit/s %s"
              % (fl["offered_per_s"], fl["seconds"], fl["sent_valid_mac1"], fl["sent_bad_mac1"],
                 fl["send_errors"], fl["cookie_replies"],
                 "".join("%d" % u for _t, u, _n in samples), " ".join(hs_rate),
                 rx_init, {k: v for k, v in hs.items() if v}, cookies, ring,
                 "%.2f s" % reload_s if reload_s is not None
                 else "-- not while the flood ran (%.1f s)" % flood_ended_s,
                 rx, tx, "lost %.2f%% (%d of %d datagrams)" % iperf if isinstance(iperf, tuple)
                 else iperf), end=" ")
        self.assertTrue(ok, "c2's ping or iperf3 did not finish")
        self.assertGreater(fl["offered_per_s"], 20000, "the flood was too weak to mean anything")
        # 1. The established peer does not notice.
        self.assertEqual(tx, 350)
        self.assertLess((tx - rx) / tx, 0.01, "c2's ping lost %d of %d during the flood" % (tx - rx, tx))
        self.assertIsInstance(iperf, tuple, iperf)
        self.assertLess(iperf[0], 1.0, "c2's iperf3 UDP lost %.2f%% during the flood" % iperf[0])
        # 2. Every handled message is classified: about half of them have a bad MAC1 (each
        # source port sends both kinds; ring drops do not care about MACs).
        self.assertGreater(rx_init, 0)
        self.assertTrue(0.3 < hs["bad_mac1"] / rx_init < 0.7,
                        "bad_mac1 +%d of %d initiations handled" % (hs["bad_mac1"], rx_init))
        # 3. The gateway defends itself: under load it answers valid-MAC1 initiations with
        # cookies instead of spending a DH on each.
        self.assertGreater(cookies + hs["rate_limited"], 0,
                           "valid-MAC1 initiations at %.0f/s never put the gateway under load "
                           "(no cookie replies, no rate limiting)" % fl["offered_per_s"])
        self.assertGreater(fl["cookie_replies"], 0, "no cookie reply reached the flooder")
        # 4. The control thread keeps working (timers, keepalives, rekeys, reloads share it).
        self.assertIsNotNone(reload_s, "a peers-file change was not applied while the flood ran "
                             "(%.1f s): the control thread is starved" % flood_ended_s)
        self.assertLess(reload_s, 2.0)
        # The flooder's source was c1's address: c1's own session is still fine afterwards.
        self.assert_tunnel("c1")
        self.assert_tunnel("c2")

if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
