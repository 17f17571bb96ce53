#!/usr/bin/env python3
"""E2E: the flow-log exporter against real IPFIX collectors on loopback.

  /usr/bin/python3 tests/e2e/export_test.py --driver build/control/export/export_driver [-v]

The driver (control/export/export_driver.cc) exports records from a JSON file to a collector
with a spool directory, then waits until they settle. Collectors: nfcapd (nfdump decodes what
it stored) and a tshark capture (Wireshark's IPFIX dissector decodes every message, template
and field) for UDP; for TCP a listener here with its own small IPFIX decoder. Proves: NAT
events and flows decoded field by field; destination logging on and off (no destination
fields at all when off); IPv6 flows with their own templates and addresses; collector outages
(none at start, one mid-run, for UDP and TCP) with every record arriving, in order, and
sequence numbers consistent; a UDP collector
restarted while the exporter was quiet (no ICMP error, so no reconnect) decodes the records
that follow without waiting for the template refresh. Root only (capture).
"""
import argparse
import collections
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import skips  # noqa: E402  (skips visible to ctest; none allowed under EXITGW_REQUIRE_ALL=1)

DRIVER = None
BASE_MS = 1700000000000


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def flow(key, dst=True):
    return {"type": "flow", "start_ms": BASE_MS + key, "end_ms": BASE_MS + key + 5000,
            "src": "100.64.0.11:%d" % key, "dst": "198.51.100.10:443",
            "post_nat": "203.0.113.5:%d" % (20000 + key % 1000), "proto": 6,
            "tcp_flags": 0x1b, "tx_pkts": key, "tx_bytes": 100 * key, "rx_pkts": 2 * key,
            "rx_bytes": 300 * key, "peer_id": 7, "log_destination": dst}


class Nfcapd:
    """nfcapd on 127.0.0.1:port writing into its own directory (one per run)."""

    def __init__(self, port, directory):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.log = open(directory + ".log", "w")
        self.p = subprocess.Popen(["nfcapd", "-p", str(port), "-b", "127.0.0.1", "-l",
                                   directory, "-t", "3600"], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        time.sleep(0.5)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=10)
        self.log.close()


def nfdump_records(directory):
    """nfdump -o raw of every file in directory: a list of {key: value} per record."""
    out = subprocess.run(["nfdump", "-q", "-R", directory, "-o", "raw"], check=True,
                         capture_output=True, text=True).stdout
    records = []
    for block in out.split("Flow Record:")[1:]:
        r = {}
        for line in block.splitlines():
            if "=" in line:
                k, _, v = line.partition("=")
                r[k.strip()] = v.strip()
        records.append(r)
    return records


def tshark_messages(path, port):
    """Per IPFIX message in a capture of UDP `port`: (sequence, templates {id: [field
    types]}, [record dicts]), as Wireshark's dissector decodes them."""
    out = subprocess.run(["tshark", "-r", path, "-d", "udp.port==%d,cflow" % port,
                          "-T", "json"], check=True, capture_output=True, text=True).stdout

    def pairs(kv):  # keep repeated keys (forward and reverse counters share names)
        d = collections.OrderedDict()
        for k, v in kv:
            d.setdefault(k, []).append(v)
        return d

    msgs = []
    for pkt in json.loads(out, object_pairs_hook=pairs):
        cf = pkt["_source"][0]["layers"][0].get("cflow")
        if not cf:
            continue
        cf = cf[0]
        templates, records = {}, []
        for key, sets in cf.items():
            if not key.startswith("Set "):
                continue
            for s in sets:
                for k, v in s.items():
                    if k.startswith("Template (Id"):
                        t = v[0]
                        # Enterprise elements (PEN set) are reported as -1.
                        templates[int(t["cflow.template_id"][0])] = [
                            int(f[0].get("cflow.template_ipfix_field_type", ["-1"])[0])
                            for fk, f in t.items() if fk.startswith("Field")]
                    elif k.startswith("Flow "):
                        records.append(v[0])
        msgs.append((int(cf["cflow.sequence"][0]), templates, records))
    return msgs


class Capture:
    """tshark on lo for one port; decoded later as IPFIX."""

    def __init__(self, path, filt):
        self.path = path
        self.p = subprocess.Popen(["tshark", "-q", "-i", "lo", "-f", filt, "-w", path],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tshark prints "Capturing on" once the capture is live.
        deadline = time.time() + 15
        line = b""
        while time.time() < deadline and b"Capturing" not in line:
            line = self.p.stderr.readline()
        time.sleep(0.3)

    def stop(self):
        time.sleep(0.5)
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=10)

    def messages(self, port):
        return tshark_messages(self.path, port)


def run_driver(records, url, spool, extra=(), background=False, work=None):
    path = os.path.join(work, "records-%d.json" % time.monotonic_ns())
    with open(path, "w") as f:
        json.dump(records, f)
    cmd = [DRIVER, "--records", path, "--url", url, "--spool", spool, "--retry-ms", "200",
           "--confirm-ms", "100"] + list(extra)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("driver failed (%d): %s %s" % (p.returncode, p.stdout, p.stderr))
    return json.loads(p.stdout.strip().splitlines()[-1])


def unique_in_order(keys):
    seen, out = set(), []
    for k in keys:
        if k not in seen:
            out.append(k)
            seen.add(k)
    return out


def check_sequences(test, msgs):
    """Within one exporter run the sequence only grows, by at least the records before it."""
    runs = 0
    for (s0, _, r0), (s1, _, _) in zip(msgs, msgs[1:]):
        if s1 == 0 and s0 + len(r0) > 0:  # a new driver process (transport session) starts at 0
            runs += 1
            continue
        test.assertGreaterEqual(s1, s0 + len(r0))
    return runs


class TcpCollector:
    """A TCP IPFIX collector with its own decoder: (sequence, [srcport of each record])."""

    def __init__(self, port):
        self.port = port
        self.messages = []
        self.sock = None
        self.stop_flag = threading.Event()
        self.start()

    def start(self):
        self.stop_flag.clear()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(4)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        self.sock.close()

    def serve(self):
        conns = []
        while not self.stop_flag.is_set():
            try:
                c, _ = self.sock.accept()
                c.settimeout(0.05)
                conns.append([c, b"", {}])
            except socket.timeout:
                pass
            for entry in list(conns):
                try:
                    data = entry[0].recv(65536)
                    if not data:
                        entry[0].close()
                        conns.remove(entry)
                        continue
                    entry[1] += data
                    entry[1] = self.decode(entry[1], entry[2])
                except socket.timeout:
                    pass
        for c, _, _ in conns:
            c.close()

    def decode(self, buf, templates):
        while len(buf) >= 16:
            version, length, _, seq, _ = struct.unpack("!HHIII", buf[:16])
            assert version == 10, version
            if len(buf) < length:
                break
            msg, buf = buf[:length], buf[length:]
            ports, off = [], 16
            while off < length:
                sid, slen = struct.unpack("!HH", msg[off:off + 4])
                body = msg[off + 4:off + slen]
                if sid == 2:
                    p = 0
                    while p + 4 <= len(body):
                        tid, count = struct.unpack("!HH", body[p:p + 4])
                        p += 4
                        fields = []
                        for _ in range(count):
                            fid, flen = struct.unpack("!HH", body[p:p + 4])
                            p += 8 if fid & 0x8000 else 4
                            fields.append((fid, flen))
                        templates[tid] = fields
                elif sid >= 256:
                    fields = templates[sid]
                    size = sum(f[1] for f in fields)
                    for r in range(0, len(body) - size + 1, size):
                        p = r
                        for fid, flen in fields:
                            if fid == 7:
                                ports.append(struct.unpack("!H", body[p:p + 2])[0])
                            p += flen
                off += slen
            self.messages.append((seq, ports))
        return buf


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nfcapd", "nfdump", "tshark"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s not installed (apt-get install nfdump tshark)" % tool)
        if os.geteuid() != 0:
            raise unittest.SkipTest("root needed to capture on lo")
        cls.work = tempfile.mkdtemp(prefix="exitgw-exporttest-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_records_decode_field_by_field_with_destination_on_and_off(self):
        port = free_port()
        cap = Capture(os.path.join(self.work, "fields.pcap"), "udp port %d" % port)
        nf = Nfcapd(port, os.path.join(self.work, "nf-fields"))
        nat = [
            {"type": "nat", "kind": "block_allocated", "time_ms": BASE_MS + 123,
             "subscriber": "100.64.0.11", "public": "203.0.113.5", "port_first": 1024,
             "port_last": 1535, "worker": 1},
            {"type": "nat", "kind": "block_released", "time_ms": BASE_MS + 124,
             "subscriber": "100.64.0.11", "public": "203.0.113.5", "port_first": 1024,
             "port_last": 1535},
            {"type": "nat", "kind": "pool_exhausted", "time_ms": BASE_MS + 125,
             "subscriber": "100.64.0.12", "public": "203.0.113.6"},
            {"type": "nat", "kind": "port_limit", "time_ms": BASE_MS + 126,
             "subscriber": "100.64.0.13", "public": "203.0.113.5"},
            {"type": "nat", "kind": "session_limit", "time_ms": BASE_MS + 127,
             "subscriber": "100.64.0.14", "public": "203.0.113.5"},
        ]
        jsonl = os.path.join(self.work, "fields.jsonl")
        spool = os.path.join(self.work, "spool-fields")
        url = "udp://127.0.0.1:%d" % port
        run_driver(nat + [flow(40000, True), flow(40001, False)], url, spool,
                   ["--json", jsonl], work=self.work)
        # The tailnet-wide switch off: even a record that allows its destination loses it.
        run_driver([flow(40002, True)], url, spool, ["--json", jsonl, "--no-destination"],
                   work=self.work)
        nf.stop()
        cap.stop()

        # nfdump: what nfcapd stored.
        recs = nfdump_records(nf.dir)
        self.assertEqual(len(recs), 8, recs)
        ev = recs[0]
        self.assertEqual(ev["nat event"].split(":")[0], "16")  # port block allocation
        self.assertEqual(ev["src addr"], "100.64.0.11")
        self.assertEqual(ev["src xlt ip"], "203.0.113.5")
        self.assertTrue(ev["Event time"].startswith(str(BASE_MS + 123)), ev)
        self.assertEqual([r["nat event"].split(":")[0] for r in recs[:5]],
                         ["16", "17", "12", "13", "13"])
        on, off, switched = recs[5], recs[6], recs[7]
        for r, key in ((on, 40000), (off, 40001), (switched, 40002)):
            self.assertEqual(r["src addr"], "100.64.0.11")
            self.assertEqual(r["src port"], str(key))
            self.assertEqual(r["proto"].split()[0], "6")
            self.assertEqual(r["in packets"], str(key))
            self.assertEqual(r["in bytes"], str(100 * key))
            self.assertEqual(r["out packets"], str(2 * key))  # RFC 5103 reverse counters
            self.assertEqual(r["out bytes"], str(300 * key))
            self.assertEqual(r["src xlt ip"], "203.0.113.5")
            self.assertEqual(r["src xlt port"], str(20000 + key % 1000))
            self.assertTrue(r["first"].startswith(str(BASE_MS + key)), r)
            self.assertTrue(r["tcp flags"].startswith("0x1b"), r)
        self.assertEqual((on["dst addr"], on["dst port"]), ("198.51.100.10", "443"))
        for r in (off, switched):  # nfdump zero-fills what the record does not carry
            self.assertEqual((r["dst addr"], r["dst port"]), ("0.0.0.0", "0"))

        # tshark: the templates and every field as Wireshark's dissector reads them.
        msgs = cap.messages(port)
        templates = {}
        rows = []
        for _, t, r in msgs:
            templates.update(t)
            rows += r
        self.assertEqual(templates[256], [323, 230, 8, 225, 361, 362])
        self.assertIn(12, templates[259])
        self.assertIn(11, templates[259])
        self.assertNotIn(12, templates[260])
        self.assertNotIn(11, templates[260])
        self.assertEqual(len(rows), 8)
        g = lambda r, k: r.get(k, [None])[0]
        self.assertEqual([g(r, "cflow.nat_event") for r in rows[:5]],
                         ["16", "17", "12", "13", "13"])
        self.assertEqual((g(rows[0], "cflow.port_range_start"),
                          g(rows[0], "cflow.port_range_end")), ("1024", "1535"))
        self.assertEqual(g(rows[2], "cflow.post_natsource_ipv4_address"), "203.0.113.6")
        self.assertEqual([g(r, "cflow.nat_quota_exceeded_event") for r in rows[3:5]],
                         ["3", "1"])
        self.assertEqual(g(rows[5], "cflow.dstaddr"), "198.51.100.10")
        self.assertEqual(g(rows[5], "cflow.dstport"), "443")
        self.assertEqual(rows[5]["cflow.packets"], ["40000", "80000"])  # forward, reverse
        self.assertEqual(g(rows[5], "cflow.post_naptsource_transport_port"), "20000")
        for r in rows[6:]:
            self.assertNotIn("cflow.dstaddr", r)
            self.assertNotIn("cflow.dstport", r)
        check_sequences(self, msgs)

        # JSON lines in the flow-log shape.
        lines = [json.loads(l) for l in open(jsonl)]
        self.assertEqual(len(lines), 8)
        self.assertEqual(lines[0]["natEvent"]["code"], 16)
        t = lines[5]["exitTraffic"][0]
        self.assertEqual(t, {"proto": 6, "src": "100.64.0.11:40000",
                             "dst": "198.51.100.10:443", "txPkts": 40000,
                             "txBytes": 4000000, "rxPkts": 80000, "rxBytes": 12000000})
        self.assertNotIn("dst", lines[6]["exitTraffic"][0])
        self.assertNotIn("dst", lines[7]["exitTraffic"][0])
        for k in ("logged", "nodeId", "start", "end"):
            self.assertIn(k, lines[5])

    def test_ipv6_flows_and_nat66_events_decode_with_their_ipv6_addresses(self):
        port = free_port()
        cap = Capture(os.path.join(self.work, "ipv6.pcap"), "udp port %d" % port)
        nf = Nfcapd(port, os.path.join(self.work, "nf-ipv6"))
        v6 = []
        for key, dst in ((41000, True), (41001, False)):
            r = flow(key, dst)
            r.update(src="[fd7a:115c:a1e0::11]:%d" % key, dst="[2001:db8:5::10]:443",
                     post_nat="[2001:db8:100:0:ffee::11]:%d" % key)
            v6.append(r)
        # A NAT66 port block (RFC 8158 with IPv6 elements), as the NAT side will report it.
        nat66 = {"type": "nat", "kind": "block_allocated", "time_ms": BASE_MS + 7,
                 "subscriber": "fd7a:115c:a1e0::11", "public": "2001:db8:100::5",
                 "port_first": 2048, "port_last": 2559}
        jsonl = os.path.join(self.work, "ipv6.jsonl")
        run_driver([flow(40000)] + v6 + [nat66], "udp://127.0.0.1:%d" % port,
                   os.path.join(self.work, "spool-ipv6"), ["--json", jsonl], work=self.work)
        nf.stop()
        cap.stop()

        # nfdump: IPv6 source and destination (it has no field for postNATSourceIPv6Address).
        recs = nfdump_records(nf.dir)
        self.assertEqual(len(recs), 4, recs)
        ev = recs[3]
        self.assertEqual(ev["nat event"].split(":")[0], "16", ev)
        self.assertEqual(ev["src addr"], "fd7a:115c:a1e0::11", ev)
        self.assertEqual(recs[0]["src addr"], "100.64.0.11")
        for r, key in ((recs[1], 41000), (recs[2], 41001)):
            self.assertEqual(r["src addr"], "fd7a:115c:a1e0::11", r)
            self.assertEqual(r["src port"], str(key))
            self.assertEqual((r["in packets"], r["out packets"]), (str(key), str(2 * key)))
            self.assertEqual((r["in bytes"], r["out bytes"]), (str(100 * key), str(300 * key)))
            self.assertEqual(r["src xlt port"], str(key))
        self.assertEqual((recs[1]["dst addr"], recs[1]["dst port"]), ("2001:db8:5::10", "443"))
        self.assertEqual((recs[2]["dst addr"], recs[2]["dst port"]), ("::", "0"))

        # tshark: templates 261 and 262 with IANA's IPv6 elements, every address decoded.
        msgs = cap.messages(port)
        templates, rows = {}, []
        for _, t, r in msgs:
            templates.update(t)
            rows += r
        g = lambda r, k: r.get(k, [None])[0]
        # (tshark gives the reverse counters their element id, the peer id -1.)
        self.assertEqual(templates[261], [152, 153, 27, 28, 7, 11, 4, 281, 227, 2, 1, 2, 1, 6, -1])
        self.assertEqual(templates[262], [152, 153, 27, 7, 4, 281, 227, 2, 1, 2, 1, 6, -1])
        self.assertNotIn(8, templates[261])
        self.assertEqual(templates[263], [323, 230, 27, 281, 361, 362])
        self.assertEqual(templates[264], [323, 230, 281, 27])
        self.assertEqual(templates[265], [323, 230, 466, 27, 281])
        self.assertEqual(len(rows), 4)
        ev = rows.pop()
        self.assertEqual([g(ev, k) for k in ("cflow.nat_event", "cflow.srcaddrv6",
                                            "cflow.post_nat_source_ipv6_address",
                                            "cflow.port_range_start", "cflow.port_range_end")],
                         ["16", "fd7a:115c:a1e0::11", "2001:db8:100::5", "2048", "2559"])
        self.assertEqual(g(rows[0], "cflow.srcaddr"), "100.64.0.11")
        for r in rows[1:]:
            self.assertEqual(g(r, "cflow.srcaddrv6"), "fd7a:115c:a1e0::11")
            self.assertEqual(g(r, "cflow.post_nat_source_ipv6_address"),
                             "2001:db8:100:0:ffee::11")
            self.assertNotIn("cflow.srcaddr", r)
        self.assertEqual(g(rows[1], "cflow.dstaddrv6"), "2001:db8:5::10")
        self.assertEqual(g(rows[1], "cflow.dstport"), "443")
        self.assertNotIn("cflow.dstaddrv6", rows[2])
        self.assertNotIn("cflow.dstport", rows[2])
        check_sequences(self, msgs)

        # JSON lines: RFC 5952 text, bracketed before the port.
        with open(jsonl) as f:
            lines = [json.loads(l) for l in f]
        self.assertEqual(len(lines), 4)
        self.assertEqual(lines[3]["natEvent"]["subscriber"], "fd7a:115c:a1e0::11")
        self.assertEqual(lines[3]["natEvent"]["public"], "2001:db8:100::5")
        self.assertEqual(lines[1]["exitTraffic"][0],
                         {"proto": 6, "src": "[fd7a:115c:a1e0::11]:41000",
                          "dst": "[2001:db8:5::10]:443", "txPkts": 41000,
                          "txBytes": 4100000, "rxPkts": 82000, "rxBytes": 12300000})
        self.assertEqual(lines[2]["exitTraffic"][0]["src"], "[fd7a:115c:a1e0::11]:41001")
        self.assertNotIn("dst", lines[2]["exitTraffic"][0])

    def test_udp_collector_outages_lose_no_record(self):
        port = free_port()
        url = "udp://127.0.0.1:%d" % port
        spool = os.path.join(self.work, "spool-udp")
        cap = Capture(os.path.join(self.work, "outage.pcap"), "udp port %d" % port)
        # 1. No collector at all: everything lands in the spool, and the driver exits.
        first = list(range(10000, 10200))
        c = run_driver([flow(k) for k in first], url, spool, ["--settle", "spooled"],
                       work=self.work)
        self.assertEqual(c["exported"], 0, c)
        self.assertEqual(c["spool_records"], 200, c)
        self.assertTrue(any(n.endswith(".seg") for n in os.listdir(spool)))
        # 2. The collector comes back; a new process replays the spool before its records.
        nf1 = Nfcapd(port, os.path.join(self.work, "nf-udp-1"))
        second = list(range(10200, 10300))
        c = run_driver([flow(k) for k in second], url, spool, work=self.work)
        self.assertEqual(c["spool_records"], 0, c)
        self.assertGreaterEqual(c["replayed"], 200, c)
        # 3. The collector stops mid-run and returns.
        third = list(range(10300, 10600))
        p = run_driver([flow(k) for k in third], url, spool, ["--pace-ms", "10"],
                       background=True, work=self.work)
        time.sleep(1.0)
        nf1.stop()
        time.sleep(1.2)
        nf2 = Nfcapd(port, os.path.join(self.work, "nf-udp-2"))
        out, _ = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out)
        c = json.loads(out.strip().splitlines()[-1])
        self.assertGreaterEqual(c["disconnects"], 1, c)
        self.assertGreater(c["replayed"], 0, c)
        self.assertEqual(c["dropped"], 0, c)
        nf2.stop()
        cap.stop()

        stored = []
        for d in ("nf-udp-1", "nf-udp-2"):
            stored += [int(r["src port"]) for r in nfdump_records(os.path.join(self.work, d))]
        self.assertEqual(unique_in_order(stored), first + second + third)
        msgs = cap.messages(port)
        seen = [int(r["cflow.srcport"][0]) for _, _, rs in msgs for r in rs]
        self.assertEqual(unique_in_order(seen), first + second + third)
        self.assertEqual(check_sequences(self, msgs), 1)  # the two driver runs that sent data

    def test_udp_collector_restarted_unnoticed_decodes_what_follows(self):
        port = free_port()
        url = "udp://127.0.0.1:%d" % port
        spool = os.path.join(self.work, "spool-restart")
        nf1 = Nfcapd(port, os.path.join(self.work, "nf-restart-1"))
        keys = list(range(30000, 30100))
        # Half the records, then 6 s of nothing; the refresh (an hour) cannot be what helps.
        p = run_driver([flow(k) for k in keys], url, spool,
                       ["--pause-after", "50", "--pause-ms", "6000",
                        "--template-refresh-s", "3600"], background=True, work=self.work)
        time.sleep(2.0)
        nf1.stop()  # no datagram meets the closed port: no ICMP error
        nf2 = Nfcapd(port, os.path.join(self.work, "nf-restart-2"))
        out, _ = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out)
        nf2.stop()
        c = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(c["disconnects"], 0, c)  # the exporter never noticed the restart
        self.assertEqual(c["dropped"], 0, c)
        before = [int(r["src port"]) for r in
                  nfdump_records(os.path.join(self.work, "nf-restart-1"))]
        after = [int(r["src port"]) for r in
                 nfdump_records(os.path.join(self.work, "nf-restart-2"))]
        self.assertEqual(before, keys[:50])
        self.assertEqual(after, keys[50:])

    def test_tcp_collector_outage_loses_no_record(self):
        port = free_port(socket.SOCK_STREAM)
        url = "tcp://127.0.0.1:%d" % port
        spool = os.path.join(self.work, "spool-tcp")
        col = TcpCollector(port)
        keys = list(range(20000, 20400))
        p = run_driver([flow(k) for k in keys], url, spool, ["--pace-ms", "8"],
                       background=True, work=self.work)
        time.sleep(1.0)
        col.stop()
        time.sleep(1.0)
        col.start()
        out, _ = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, out)
        time.sleep(0.5)
        col.stop()
        c = json.loads(out.strip().splitlines()[-1])
        self.assertGreaterEqual(c["disconnects"], 1, c)
        self.assertEqual(c["dropped"], 0, c)
        seen = [k for _, ports in col.messages for k in ports]
        self.assertEqual(unique_in_order(seen), keys)
        for (s0, r0), (s1, _) in zip(col.messages, col.messages[1:]):
            self.assertGreaterEqual(s1, s0 + len(r0))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    args, rest = ap.parse_known_args()
    DRIVER = os.path.abspath(args.driver)
    skips.main(argv=[sys.argv[0]] + rest)
