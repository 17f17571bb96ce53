#!/usr/bin/env python3
"""E2E: per-flow accounting on the workers reaches a real IPFIX collector and the JSON log.

  /usr/bin/python3 tests/e2e/flow_log_test.py --exitgw build/control/exitgw [-v]

A wireguard-go client downloads over HTTP and exchanges UDP datagrams through the exit while
tcpdump watches its tunnel interface. The gateway's flow records, as nfcapd stores them
(decoded by nfdump) and as JSON lines, carry the packets and bytes (IP total length) that
crossed the tunnel each way, the subscriber's pre-NAT source and its post-NAT address.
Destination logging is off by default (no destination in either output); turned on through
the admin API (exitgwctl), the next records carry it. IPv6: an HTTP request and ping6 to the
lab's IPv6 server; nfdump shows the client's tailnet IPv6 address and the server's, tshark (in
the gateway's namespace, on the collector's port) the NPTv6 pool address as
postNATSourceIPv6Address, the JSON lines the addresses in RFC 5952 form and the exact counts.
"""
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import unittest

import labutil as L
import nptv6_ref  # noqa: E402 (tests/support, on the path labutil sets)
from export_test import nfdump_records, tshark_messages

NAME = L.lab_name("fl")
PORT = 4741
CLIENT_IP = "100.64.0.11"
POOL_IP = "203.0.113.1"
TCP_PORT, UDP_PORT, UDP_PORT_DST = 45001, 45002, 45003
UDP_SIZES = (100, 200, 300, 400, 500)
SERVER6 = "2001:db8:5::10"  # tools/lab SERVER6
INSIDE6, POOL6 = "fd7a:115c:a1e0::", "2001:db8:100::"  # --nat_inside6, --nat_pool6 (/48)
TCP6_PORT, PING6_COUNT, PING6_SIZE = 45011, 3, 100

# Sends one datagram of each size from a fixed port to the echo server and reads the echoes.
UDP_SCRIPT = r"""
import socket, sys
port, sizes = int(sys.argv[1]), [int(x) for x in sys.argv[2].split(",")]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
s.settimeout(3)
got = 0
for n in sizes:
    s.sendto(bytes(n), ("198.51.100.10", 7))
    try:
        if len(s.recv(65535)) == n:
            got += 1
    except socket.timeout:
        pass
print("echoed", got)
"""


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def ctl(*args):
    binary = os.path.realpath(os.path.join(os.path.dirname(L.EXITGW), "..", "tools", "exitgwctl"))
    token = os.path.join(L.lab_dir(NAME), "admin.token")
    p = L.nsrun(NAME, "gw", binary, "--token-file", token, *args, timeout=20)
    return p.returncode, p.stdout


def pcap_counts(path, client_ip):
    """{(proto, client port): [tx packets, tx bytes, rx packets, rx bytes]} of a raw-IP pcap
    (a tun device), bytes being the IPv4 total length, as the gateway counts them."""
    with open(path, "rb") as f:
        data = f.read()
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    link = struct.unpack(e + "I", data[20:24])[0]
    skip = {101: 0, 228: 0, 12: 0, 1: 14, 113: 16}[link]  # raw, raw IPv4, raw (BSD), eth, sll
    out, off = {}, 24
    client = bytes(int(x) for x in client_ip.split("."))
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        ip = data[off + 16 + skip:off + 16 + incl]
        off += 16 + incl
        if len(ip) < 24 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 0xF) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        tx = ip[12:16] == client
        row = out.setdefault((ip[9], sport if tx else dport), [0, 0, 0, 0])
        row[0 if tx else 2] += 1
        row[1 if tx else 3] += total
    return out


class FlowLogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nfcapd", "nfdump", "tcpdump", "curl"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s not installed (tools/install-deps)" % tool)
        cls.work = tempfile.mkdtemp(prefix="exitgw-flowlog-")
        cls.json = os.path.join(cls.work, "records.json")
        L.down(NAME)
        L.up(NAME, clients=1, extra=(
            "--gw-flag", "ipfix_collector=udp://127.0.0.1:%d" % PORT,
            "--gw-flag", "flow_log_json=" + cls.json,
            "--gw-flag", "export_spool_dir=" + os.path.join(cls.work, "spool"),
            "--gw-flag", "flow_idle_timeout=2"))
        cls.nfcapd = None

    @classmethod
    def tearDownClass(cls):
        try:
            L.stop(cls.nfcapd)
            L.down(NAME)
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)

    def collector(self, tag):
        """Starts nfcapd into a fresh directory; returns the directory."""
        d = os.path.join(self.work, "nf-" + tag)
        os.makedirs(d)
        type(self).nfcapd = L.nsspawn(NAME, "gw", "nfcapd", "-p", str(PORT), "-b", "127.0.0.1",
                                      "-l", d, "-t", "3600",
                                      out=os.path.join(self.work, "nfcapd-%s.log" % tag))
        time.sleep(0.5)
        return d

    def collected(self, d):
        L.stop(self.nfcapd)  # nfcapd writes its file when it stops
        type(self).nfcapd = None
        return nfdump_records(d)

    def flows(self, port):
        """The JSON exitTraffic lines of the client's flows from `port`, with the message."""
        src = "%s:%d" % (CLIENT_IP, port)
        out = []
        if os.path.exists(self.json):
            with open(self.json) as f:
                for ln in f:
                    m = json.loads(ln)
                    for t in m.get("exitTraffic", []):
                        if t["src"] == src:
                            out.append((m, t))
        return out

    def wait_for_flow(self, port, timeout=20):
        self.assertTrue(L.wait_until(lambda: self.flows(port), timeout),
                        "no flow record from port %d\n%s" % (port, L.Metrics(NAME).nonzero("exitgw_flow")))

    def test_flow_records_match_the_tunnel_and_destinations_follow_the_switch(self):
        # One collector for the whole run: nfcapd restarted would know no templates until the
        # exporter's UDP template refresh (60 s), as with any UDP IPFIX exporter.
        nf = self.collector("all")
        tcp, udp, total = self.check_counts_without_destinations()
        self.check_destinations_after_switching_on()
        recs = [r for r in self.collected(nf)
                if r.get("src addr") == CLIENT_IP and "src port" in r]  # flows, not NAT events
        by_port = {}
        for r in recs:
            by_port.setdefault(int(r["src port"]), []).append(r)
        # IPFIX through nfcapd: the same counts, the post-NAT source, a zero-filled destination.
        for port, want, proto in ((UDP_PORT, udp, "17"), (TCP_PORT, total, "6")):
            rows = by_port.get(port)
            self.assertTrue(rows, recs)
            got = [sum(int(r[k]) for r in rows)
                   for k in ("in packets", "in bytes", "out packets", "out bytes")]
            self.assertEqual(got, want, rows)
            for r in rows:
                self.assertEqual(r["proto"].split()[0], proto)
                self.assertEqual(r["src xlt ip"], POOL_IP)
                self.assertNotEqual(r["src xlt port"], "0")
                self.assertEqual((r["dst addr"], r["dst port"]), ("0.0.0.0", "0"))
        self.assertTrue(any(r["tcp flags"] != "0x00" for r in by_port[TCP_PORT]))
        # After the switch: the destination is there.
        rows = by_port.get(UDP_PORT_DST, [])
        self.assertEqual(len(rows), 1, recs)
        self.assertEqual((rows[0]["dst addr"], rows[0]["dst port"]), ("198.51.100.10", "7"))
        self.assertEqual((rows[0]["in packets"], rows[0]["out packets"]), ("1", "1"))
        self.assertEqual((rows[0]["in bytes"], rows[0]["out bytes"]), ("92", "92"))

    def flows6(self, src_prefix, proto):
        """The JSON exitTraffic lines of IPv6 flows of `proto` from `src_prefix` ("[addr]:")."""
        out = []
        if os.path.exists(self.json):
            with open(self.json) as f:
                for ln in f:
                    for t in json.loads(ln).get("exitTraffic", []):
                        if t["src"].startswith(src_prefix) and t["proto"] == proto:
                            out.append(t)
        return out

    def test_ipv6_flows_reach_the_collector_with_their_ipv6_addresses(self):
        self.assertFalse(L.ensure_handshakes(NAME, ("c1",), timeout=25))
        client6 = [x for x in L.state(NAME)["clients"] if x["name"] == "c1"][0]["tailnet6"]
        pool6 = nptv6_ref.nptv6(client6, INSIDE6, POOL6)
        nf = self.collector("v6")
        pcap = os.path.join(self.work, "ipfix6.pcap")
        cap = L.nsspawn(NAME, "gw", "tshark", "-q", "-i", "lo", "-f", "udp port %d" % PORT,
                        "-w", pcap, out=os.path.join(self.work, "tshark6.log"))
        self.assertTrue(L.wait_until(lambda: "Capturing" in read(
            os.path.join(self.work, "tshark6.log")), 15))
        rc, out = ctl("logging", "on")
        self.assertEqual(rc, 0, out)
        exported = L.Metrics(NAME).get("exitgw_export_records_total", fate="exported")
        try:
            p = L.nsrun(NAME, "c1", "curl", "-sS", "-6", "--local-port", str(TCP6_PORT),
                        "--max-time", "10", "http://[%s]/whoami" % SERVER6, timeout=20)
            # The server sees the NPTv6 pool address (tools/lab_servers.py's /whoami).
            self.assertTrue(p.stdout.startswith(pool6 + ":"), (p.stdout, pool6))
            p = L.nsrun(NAME, "c1", "ping", "-6", "-c", str(PING6_COUNT), "-i", "0.2", "-W", "2",
                        "-s", str(PING6_SIZE), SERVER6, timeout=20)
            self.assertIn(" 0% packet loss", p.stdout, p.stdout + L.Metrics(NAME).drops_text())
            tcp_src = "[%s]:%d" % (client6, TCP6_PORT)
            self.assertTrue(L.wait_until(lambda: self.flows6(tcp_src, 6) and
                                         self.flows6("[%s]:" % client6, 58), 20),
                            L.Metrics(NAME).nonzero("exitgw_flow"))
            # Confirmed by the collector (no ICMP error within the UDP confirmation time).
            n = len(self.flows6("[%s]:" % client6, 6)) + len(self.flows6("[%s]:" % client6, 58))
            self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
                "exitgw_export_records_total", fate="exported") >= exported + n, 15),
                L.Metrics(NAME).nonzero("exitgw_export"))
            time.sleep(0.5)
        finally:
            ctl("logging", "off")
            L.stop(cap, sig=2)

        # JSON: RFC 5952 text, bracketed; ping6's counts exact (IPv6 header + payload). NPTv6
        # hands nothing to another worker, so the replies may be counted by the worker RSS gave
        # them (a record of its own, same key): the records of the flow add up.
        echoes = self.flows6("[%s]:" % client6, 58)
        self.assertEqual({(t["src"], t["dst"]) for t in echoes},
                         {(echoes[0]["src"], "[%s]:0" % SERVER6)}, echoes)
        size = 40 + 8 + PING6_SIZE
        self.assertEqual([sum(t[k] for t in echoes)
                          for k in ("txPkts", "txBytes", "rxPkts", "rxBytes")],
                         [PING6_COUNT, PING6_COUNT * size, PING6_COUNT, PING6_COUNT * size],
                         echoes)
        tcp = self.flows6(tcp_src, 6)
        self.assertEqual({t["dst"] for t in tcp}, {"[%s]:80" % SERVER6})
        self.assertGreaterEqual(sum(t["txPkts"] for t in tcp), 4)  # SYN, ACK, GET, ACK, FIN...
        self.assertGreaterEqual(sum(t["rxPkts"] for t in tcp), 3)

        # nfdump: what nfcapd stored, with the IPv6 addresses.
        recs = [r for r in self.collected(nf) if r.get("src addr") == client6]
        by_proto = {}
        for r in recs:
            by_proto.setdefault(r["proto"].split()[0], []).append(r)
        self.assertTrue(by_proto.get("6") and by_proto.get("58"), recs)
        for r in by_proto["6"] + by_proto["58"]:
            self.assertEqual(r["dst addr"], SERVER6, r)
        self.assertEqual({r["src port"] for r in by_proto["6"]}, {str(TCP6_PORT)})
        self.assertEqual([sum(int(r[k]) for r in by_proto["58"])
                          for k in ("in packets", "in bytes", "out packets", "out bytes")],
                         [PING6_COUNT, PING6_COUNT * size, PING6_COUNT, PING6_COUNT * size])

        # tshark: templates 261 with IANA's IPv6 elements, the NPTv6 address as post-NAT source.
        msgs = tshark_messages(pcap, PORT)
        templates, rows = {}, []
        for _, t, r in msgs:
            templates.update(t)
            rows += r
        self.assertEqual(templates.get(261, [])[:8], [152, 153, 27, 28, 7, 11, 4, 281])
        g = lambda r, k: r.get(k, [None])[0]
        mine = [r for r in rows if g(r, "cflow.srcaddrv6") == client6]
        self.assertTrue(mine, rows)
        for r in mine:
            self.assertEqual(g(r, "cflow.dstaddrv6"), SERVER6)
            self.assertEqual(g(r, "cflow.post_nat_source_ipv6_address"), pool6)
        self.assertEqual({g(r, "cflow.srcport") for r in mine if g(r, "cflow.protocol") == "6"},
                         {str(TCP6_PORT)})

        m = L.Metrics(NAME)
        self.assertGreaterEqual(m.get("exitgw_flows_created_total", family="ipv6"), 2)
        self.assertEqual(m.get("exitgw_flow_untracked_packets_total", family="ipv6"), 0)
        self.assertEqual(m.get("exitgw_flow_records_lost_total"), 0)

    def check_counts_without_destinations(self):
        self.assertFalse(L.ensure_handshakes(NAME, ("c1",), timeout=25))
        c = L.client(NAME, "c1")
        lost_before = L.udp_counters(NAME, "c1")["RcvbufErrors"]
        pcap = os.path.join(self.work, "c1.pcap")
        dump = L.nsspawn(NAME, "c1", "tcpdump", "-n", "-i", c["wg"], "-s", "96", "-B", "32768",
                         "-U", "-w", pcap,
                         "host 198.51.100.10 and (tcp port %d or udp port %d)" % (TCP_PORT, UDP_PORT),
                         out=os.path.join(self.work, "tcpdump.log"))
        try:
            self.assertTrue(L.wait_until(lambda: "listening" in read(
                os.path.join(self.work, "tcpdump.log")), 10))
            p = L.nsrun(NAME, "c1", "curl", "-sS", "--local-port", str(TCP_PORT), "-o", "/dev/null",
                        "-w", "%{size_download}", "--max-time", "120",
                        "http://198.51.100.10/64M.bin", timeout=130)
            self.assertEqual(p.stdout.strip(), str(64 << 20), p.stdout)
            p = L.nsrun(NAME, "c1", "/usr/bin/python3", "-c", UDP_SCRIPT, str(UDP_PORT),
                        ",".join(map(str, UDP_SIZES)), timeout=30)
            self.assertIn("echoed %d" % len(UDP_SIZES), p.stdout)
            self.wait_for_flow(UDP_PORT)
            self.wait_for_flow(TCP_PORT)
            time.sleep(0.5)
        finally:
            L.stop(dump, sig=2)
        lost = L.udp_counters(NAME, "c1")["RcvbufErrors"] - lost_before
        log = read(os.path.join(self.work, "tcpdump.log"))
        self.assertRegex(log, r"(?m)^0 packets dropped by kernel")
        seen = pcap_counts(pcap, CLIENT_IP)
        tcp, udp = seen[(6, TCP_PORT)], seen[(17, UDP_PORT)]
        self.assertEqual(udp, [5, sum(UDP_SIZES) + 5 * 28, 5, sum(UDP_SIZES) + 5 * 28])
        self.assertGreater(tcp[3], 64 << 20)

        # JSON: the UDP flow is one record, field by field; no destination.
        [(m, t)] = self.flows(UDP_PORT)
        self.assertEqual(set(t), {"proto", "src", "txPkts", "txBytes", "rxPkts", "rxBytes"}, t)
        self.assertEqual(t["proto"], 17)
        self.assertEqual(t["src"], "%s:%d" % (CLIENT_IP, UDP_PORT))
        self.assertEqual([t["txPkts"], t["txBytes"], t["rxPkts"], t["rxBytes"]], udp)
        self.assertEqual(set(m), {"logged", "nodeId", "start", "end", "exitTraffic"}, m)
        self.assertTrue(m["nodeId"])
        self.assertRegex(m["start"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertLessEqual(m["start"], m["end"])
        self.assertLessEqual(m["end"], m["logged"])
        self.assertLess(abs(time.time() - time.mktime(time.strptime(
            m["end"][:19], "%Y-%m-%dT%H:%M:%S")) + time.timezone), 60)
        # The TCP download: its records add up to what crossed the tunnel.
        total = [0, 0, 0, 0]
        for m, t in self.flows(TCP_PORT):
            self.assertNotIn("dst", t)
            self.assertEqual(t["proto"], 6)
            for i, k in enumerate(("txPkts", "txBytes", "rxPkts", "rxBytes")):
                total[i] += t[k]
        # What the client sent, exactly. What came back: the gateway counts a packet before
        # sealing it; wireguard-go on these shared CPUs lets its UDP socket overflow during a
        # bulk download, so the packets it lost (RcvbufErrors, each a sealed TCP segment of at
        # most the tunnel MTU) are in the record and not in the tunnel capture.
        sys.stderr.write("\nTCP flow: gateway %s, client tunnel capture %s, lost in the "
                         "client's UDP socket %d\n" % (total, tcp, lost))
        self.assertEqual(total[:2], tcp[:2])
        self.assertEqual(total[2], tcp[2] + lost,
                         (total, tcp, lost, L.Metrics(NAME).nonzero("exitgw_drops")))
        self.assertGreaterEqual(total[3] - tcp[3], 40 * lost)
        self.assertLessEqual(total[3] - tcp[3], 1420 * lost)

        m = L.Metrics(NAME)
        self.assertGreaterEqual(m.get("exitgw_flows_created_total"), 2)
        self.assertGreaterEqual(m.get("exitgw_flow_records_emitted_total"), 2)
        self.assertEqual(m.get("exitgw_flow_records_lost_total"), 0)
        self.assertEqual(m.get("exitgw_flow_untracked_packets_total"), 0)
        return tcp, udp, total

    def check_destinations_after_switching_on(self):
        exported = L.Metrics(NAME).get("exitgw_export_records_total", fate="exported")
        rc, out = ctl("logging", "on")
        self.assertEqual(rc, 0, out)
        p = L.nsrun(NAME, "c1", "/usr/bin/python3", "-c", UDP_SCRIPT, str(UDP_PORT_DST), "64",
                    timeout=30)
        self.assertIn("echoed 1", p.stdout)
        self.wait_for_flow(UDP_PORT_DST)
        [(m, t)] = self.flows(UDP_PORT_DST)
        self.assertEqual(t["dst"], "198.51.100.10:7")
        self.assertEqual([t["txPkts"], t["txBytes"], t["rxPkts"], t["rxBytes"]], [1, 92, 1, 92])
        def delivered():
            m = L.Metrics(NAME)
            return (m.get("exitgw_export_records_total", fate="exported") > exported and
                    m.get("exitgw_export_spool_bytes") == 0)
        self.assertTrue(L.wait_until(delivered, 30), L.Metrics(NAME).nonzero("exitgw_export"))
        time.sleep(0.5)
        rc, out = ctl("logging", "off")
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
