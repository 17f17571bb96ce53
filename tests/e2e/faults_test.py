#!/usr/bin/env python3
"""E2E faults: exitgw killed with SIGKILL under traffic, restarted as its systemd unit would.

  /usr/bin/python3 tests/e2e/faults_test.py --exitgw build/control/exitgw [-v]

Two wireguard-go clients each send a numbered UDP probe to the lab's echo server every
100 ms, each from a new source port (so every probe is its own flow and flow record). The
IPFIX collector is down from the start, so the gateway's flow and NAT records go to its
on-disk spool. Then `kill -9` of exitgw; a supervisor that follows conf/exitgw.service
(Restart=, RestartSec=) starts the same command line again (the lab's exitgw.cmd).

Measured and required:
- recovery: the time from the kill until every client's probes are echoed again (printed;
  bounded by RestartSec + start-up + WireGuard's own retry: a client only re-handshakes
  after REKEY_TIMEOUT (5 s) of unanswered handshakes or KEEPALIVE + REKEY_TIMEOUT (15 s) of
  unanswered data, since the restarted gateway knows no session), and once a client is back
  every later probe is echoed.
- the spool across kill -9: what the design guarantees is that every record that was on disk
  at the kill (a valid entry of a segment file: header and CRC-32 intact) reaches the
  collector after the restart, exactly once when no replay was under way at the kill (the
  case here: the collector is down). Records still in memory at the kill (the exporter's
  queue and its sent-but-unconfirmed records, the workers' flow tables) are lost by
  definition and are not claimed; a torn last entry is not a record. A kill during a replay
  resends the replayed part of the segment being sent (deleted only once all of it was
  confirmed): at least once, as control/export/exporter.h says for outages. The test reads the spool files right after the kill,
  then starts nfcapd with tcpdump on loopback, lets the restarted gateway replay, and checks:
  each spooled record's bytes appear exactly once among the captured IPFIX data records,
  no captured record appears twice, nfcapd decoded as many records as were captured, the
  sequence numbers never go back within the exporter's session, and the gateway counted no
  export drop. The gateway's own count of spooled records, scraped just before the kill, is
  a lower bound of what was on disk (fsync on).
"""
import collections
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

import labutil as L
from export_test import nfdump_records

NAME = L.lab_name("ft")
CLIENTS = ("c1", "c2")
IPFIX_PORT = 4743
UNIT = os.path.join(L.REPO, "conf", "exitgw.service")

# Numbered UDP probes to the echo server, every 100 ms, each from a new source port. Writes a
# line "seq sent_unix echoed_unix" per echo to argv[1] as it comes, "sent N" at SIGTERM.
PROBER = r"""
import select, signal, socket, sys, time
out, base = open(sys.argv[1], "w", buffering=1), int(sys.argv[2])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
seq, open_ = 0, {}
nxt = time.time()
while not stop:
    now = time.time()
    if now >= nxt:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", base + seq % 8000))
        s.setblocking(False)
        s.sendto(b"probe %d" % seq, ("198.51.100.10", 7))
        open_[s.fileno()] = (seq, s, now)
        seq += 1
        nxt += 0.1
    try:
        ready = select.select(list(open_), [], [], max(0.0, min(0.05, nxt - time.time())))[0]
    except InterruptedError:
        ready = []
    for fd in ready:
        n, s, t = open_.pop(fd)
        try:
            if s.recv(2048) == b"probe %d" % n:
                out.write("%d %.3f %.3f\n" % (n, t, time.time()))
        except OSError:
            pass
        s.close()
    for fd, (n, s, t) in list(open_.items()):
        if time.time() - t > 2:
            s.close()
            del open_[fd]
out.write("sent %d\n" % seq)
"""


def probe_log(path):
    """({seq: (sent, echoed)}, probes sent or None while running) of a PROBER output."""
    echoed, sent = {}, None
    try:
        with open(path) as f:
            for ln in f:
                p = ln.split()
                if len(p) == 3:
                    echoed[int(p[0])] = (float(p[1]), float(p[2]))
                elif len(p) == 2 and p[0] == "sent":
                    sent = int(p[1])
    except OSError:
        pass
    return echoed, sent


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def unit_restart_policy(path=UNIT):
    """(Restart=, RestartSec= in seconds) of the systemd unit."""
    text = read(path)
    restart = re.search(r"(?m)^Restart=(\S+)", text)
    sec = re.search(r"(?m)^RestartSec=(\d+(?:\.\d+)?)(ms|s)?\s*$", text)
    if not restart or not sec:
        raise AssertionError("%s has no Restart= or RestartSec=" % path)
    return restart.group(1), float(sec.group(1)) / (1000 if sec.group(2) == "ms" else 1)


def systemd_restarts_after_sigkill(restart):
    # systemd.service(5): SIGKILL is an unclean signal; it restarts for these settings.
    return restart in ("always", "on-failure", "on-abnormal", "on-abort")


def spool_records(directory):
    """The spool's valid entries as (template id, payload) in order, and the torn bytes.

    Format of control/export/spool.h: segments NNNNNNNNNNNNNNNNNNNN.seg (20 digits, older first), a 16-byte header
    ("EXGWSPL1", u32 version, u32 reserved), then {u16 template, u16 length, u32 CRC-32 of
    those 4 bytes and the payload, payload}; the reader stops at the first bad entry."""
    out, torn = [], 0
    segments = [f for f in os.listdir(directory) if re.fullmatch(r"\d{20}\.seg", f)]
    for name in sorted(segments):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        if data[:8] != b"EXGWSPL1":
            torn += len(data)
            continue
        off = 16
        while off + 8 <= len(data):
            tid, n, crc = struct.unpack("<HHI", data[off:off + 8])
            payload = data[off + 8:off + 8 + n]
            if len(payload) != n or zlib.crc32(payload, zlib.crc32(data[off:off + 4])) != crc:
                break
            out.append((tid, payload))
            off += 8 + n
        torn += len(data) - off
    return out, torn


def ipfix_messages(pcap, port):
    """Per IPFIX message to port in a pcap of lo: (sequence, [(template id, record bytes)])."""
    lengths, msgs = {}, []
    for _t, frame in L.read_pcap(pcap):
        u = L.udp_of(frame)
        if not u or u[3] != port:
            continue
        m = u[4]
        version, length, _export, seq, _domain = struct.unpack("!HHIII", m[:16])
        if version != 10:
            continue
        recs, off = [], 16
        while off + 4 <= length:
            set_id, set_len = struct.unpack("!HH", m[off:off + 4])
            body = m[off + 4:off + set_len]
            if set_id == 2:  # template set: learn each template's record length
                p = 0
                while p + 4 <= len(body):
                    tid, count = struct.unpack("!HH", body[p:p + 4])
                    p += 4
                    total = 0
                    for _ in range(count):
                        ie, flen = struct.unpack("!HH", body[p:p + 4])
                        p += 8 if ie & 0x8000 else 4
                        total += flen
                    lengths[tid] = total
            elif set_id >= 256:
                if set_id not in lengths:
                    raise AssertionError("data set %d before its template" % set_id)
                n = lengths[set_id]
                for p in range(0, len(body) - n + 1, n):
                    recs.append((set_id, bytes(body[p:p + n])))
            off += set_len
        msgs.append((seq, recs))
    return msgs


class FaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nfcapd", "nfdump", "tcpdump", "curl"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s not installed (tools/install-deps)" % tool)
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (network namespaces, DPDK)")
        cls.work = tempfile.mkdtemp(prefix="exitgw-faults-")
        cls.spool = os.path.join(cls.work, "spool")
        L.down(NAME)
        L.up(NAME, clients=len(CLIENTS), extra=(
            "--gw-flag", "ipfix_collector=udp://127.0.0.1:%d" % IPFIX_PORT,
            "--gw-flag", "export_spool_dir=" + cls.spool,
            "--gw-flag", "flow_idle_timeout=1"))

    @classmethod
    def tearDownClass(cls):
        try:
            L.down(NAME)
            if getattr(cls, "restarted", None):
                cls.restarted.wait(timeout=10)  # down stopped it; reap it
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)

    def kill_and_restart(self, while_down):
        """kill -9 of the gateway, then what systemd does for the unit: the same command line
        RestartSec after it died; while_down() runs in between. Returns (unix time of the
        kill, seconds from the kill until the new process answered /readyz with 200)."""
        restart, delay = unit_restart_policy()
        self.assertTrue(systemd_restarts_after_sigkill(restart),
                        "conf/exitgw.service Restart=%s does not restart after SIGKILL" % restart)
        d = L.lab_dir(NAME)
        pid = L.pids(NAME)["exitgw"]
        with open(os.path.join(d, "exitgw.cmd")) as f:
            cmd = shlex.split(f.read())
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(L.wait_until(lambda: not L.pid_running(pid), 10, step=0.02))
        t_dead = time.time()
        while_down()
        time.sleep(max(0.0, t_dead + delay - time.time()))
        with open(os.path.join(d, "exitgw.log"), "ab") as log:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        type(self).restarted = p  # stopped by `tools/lab down` through the pid file
        with open(os.path.join(d, "exitgw.pid"), "w") as f:
            f.write("%d\n" % p.pid)
        self.assertTrue(L.wait_until(lambda: p.poll() is None and L.readyz(NAME) == "200", 30,
                                     step=0.05),
                        "restarted exitgw not ready:\n" + L.gateway_log(NAME)[-3000:])
        return t_kill, time.time() - t_kill

    def test_kill_9_under_traffic_recovers_and_the_spool_is_delivered_exactly_once(self):
        self.assertFalse(L.ensure_handshakes(NAME, CLIENTS, timeout=25))
        probers = {}
        for i, c in enumerate(CLIENTS):
            out = os.path.join(self.work, "probe-%s.txt" % c)
            probers[c] = (L.nsspawn(NAME, c, "/usr/bin/python3", "-c", PROBER, out,
                                    str(20000 + 8000 * i),
                                    out=os.path.join(self.work, "probe-%s.log" % c)), out)
        snapshot = {}
        try:
            # Traffic flows and the collector is down: records go to disk.
            def spooling():
                m = L.Metrics(NAME)
                return (m.get("exitgw_export_records_total", fate="spooled") >= 40 and
                        m.get("exitgw_export_collector_up") == 0)
            self.assertTrue(L.wait_until(spooling, 30, step=0.5),
                            L.Metrics(NAME).nonzero("exitgw_export"))
            counted = L.Metrics(NAME).get("exitgw_export_records_total", fate="spooled")

            def read_spool():  # what the dead process left on disk (kill -9 spares the page cache)
                snapshot["records"], snapshot["torn"] = spool_records(self.spool)
            t_kill, t_ready = self.kill_and_restart(read_spool)

            def back(out):
                return any(s > t_kill for s, _ in probe_log(out)[0].values())
            self.assertTrue(L.wait_until(lambda: all(back(o) for _, o in probers.values()), 45,
                                         step=0.5),
                            "a client never forwarded again after the restart:\n%s\n%s"
                            % (L.Metrics(NAME).nonzero("exitgw_drops"), L.gateway_log(NAME)[-2000:]))
            time.sleep(3)
        finally:
            for p, _ in probers.values():
                L.stop(p)
        self.check_recovery(probers, t_kill, t_ready)
        self.check_spool_delivered_once(snapshot["records"], snapshot["torn"], counted)

    def check_recovery(self, probers, t_kill, t_ready):
        worst = 0.0
        lines = []
        for c, (_p, out) in sorted(probers.items()):
            echoed, sent = probe_log(out)
            self.assertIsNotNone(sent, "prober of %s did not finish" % c)
            before = [n for n, (s, _) in echoed.items() if s < t_kill]
            after = sorted((s, e, n) for n, (s, e) in echoed.items() if s > t_kill)
            self.assertTrue(before and after, (c, len(before), len(after)))
            # Back: the first probe sent after the kill that was echoed; from then on every
            # probe sent until the end (but the last second, still in flight) is echoed.
            first_s, first_e, first_n = after[0]
            worst = max(worst, first_e - t_kill)
            tail = range(first_n, sent - 10)
            missing = [n for n in tail if n not in echoed]
            self.assertEqual(missing, [], "%s lost probes after it was back" % c)
            lines.append("%s: %d probes, %d echoed, forwarding again %.2f s after the kill"
                         % (c, sent, len(echoed), first_e - t_kill))
        restart, delay = unit_restart_policy()
        sys.stderr.write("\nkill -9 → restart (Restart=%s RestartSec=%gs): ready after %.2f s; "
                         "every client forwarding again after %.2f s\n  %s\n"
                         % (restart, delay, t_ready, worst, "\n  ".join(lines)))
        # RestartSec + start-up + WireGuard's retry (REKEY_TIMEOUT 5 s, or 15 s for data
        # without answer) + jitter: more means the gateway or the restart is slow.
        self.assertLess(worst, delay + 30)

    def check_spool_delivered_once(self, on_disk, torn, counted):
        self.assertGreaterEqual(len(on_disk), counted,
                                "records the gateway counted as spooled are not on disk")
        cap_path = os.path.join(self.work, "ipfix.pcap")
        nf_dir = os.path.join(self.work, "nf")
        os.makedirs(nf_dir)
        dump = L.nsspawn(NAME, "gw", "tcpdump", "-n", "-i", "lo", "-s", "0", "-B", "8192", "-U",
                         "-w", cap_path, "udp dst port %d" % IPFIX_PORT,
                         out=os.path.join(self.work, "tcpdump.log"))
        nfcapd = None
        try:
            dump_log = os.path.join(self.work, "tcpdump.log")
            self.assertTrue(L.wait_until(lambda: "listening" in read(dump_log), 10))
            nfcapd = L.nsspawn(NAME, "gw", "nfcapd", "-p", str(IPFIX_PORT), "-b", "127.0.0.1",
                               "-l", nf_dir, "-t", "3600", out=os.path.join(self.work, "nfcapd.log"))

            # The restarted gateway finds the collector (retry), replays the spool, and
            # exports what it recorded since; flows end 1 s after their last probe.
            def drained():
                m = L.Metrics(NAME)
                return (m.get("exitgw_export_collector_up") == 1 and
                        m.get("exitgw_export_spool_bytes") == 0 and
                        m.get("exitgw_flows_active") == 0 and
                        m.get("exitgw_export_records_total", fate="exported") >= len(on_disk))
            self.assertTrue(L.wait_until(drained, 60, step=0.5),
                            L.Metrics(NAME).nonzero("exitgw_export"))
            time.sleep(1.5)  # past udp_confirm_ms of the last records; the capture flushes
            after = L.Metrics(NAME)
        finally:
            L.stop(nfcapd)
            L.stop(dump, sig=signal.SIGINT)
        self.assertRegex(read(dump_log), r"(?m)^0 packets dropped by kernel")
        msgs = ipfix_messages(cap_path, IPFIX_PORT)
        captured = [r for _seq, recs in msgs for r in recs]
        counts = collections.Counter(captured)
        spooled = collections.Counter(on_disk)
        missing = [r for r in spooled if counts[r] == 0]
        twice = [r for r, n in counts.items() if n > 1]
        exported = after.get("exitgw_export_records_total", fate="exported")
        decoded = len(nfdump_records(nf_dir))
        sys.stderr.write("spool at the kill: %d records on disk (%d counted as spooled before "
                         "it), %d torn bytes; collector: %d records in %d messages, nfdump "
                         "decoded %d; restarted gateway: %d exported\n"
                         % (len(on_disk), counted, torn, len(captured), len(msgs), decoded,
                            exported))
        self.assertEqual(missing, [], "spooled records that never reached the collector")
        self.assertEqual(twice, [], "records that reached the collector twice")
        self.assertEqual(max(spooled.values()), 1, "the spool itself holds duplicates")
        self.assertEqual(decoded, len(captured))
        self.assertEqual(exported, len(captured))
        self.assertEqual(after.get("exitgw_export_records_total", fate="replayed"), len(on_disk)
                         + after.get("exitgw_export_records_total", fate="spooled"))
        for f in ("dropped_queue_full", "dropped_spool_limit", "dropped_io_error"):
            self.assertEqual(after.get("exitgw_export_records_total", fate=f), 0, f)
        # The restarted gateway's mbuf pool is back to what an idle gateway holds.
        size = after.get("exitgw_mempool_size", pool="exitgw_mbufs")
        in_use = after.get("exitgw_mempool_in_use", pool="exitgw_mbufs")
        self.assertTrue(after.has("exitgw_mempool_in_use") and size > 0 and in_use < size / 2,
                        (size, in_use))
        seqs = [s for s, _ in msgs]
        self.assertEqual(seqs, sorted(seqs), "IPFIX sequence numbers went back")


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    unittest.main(verbosity=2)
