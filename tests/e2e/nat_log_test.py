#!/usr/bin/env python3
"""E2E: the gateway logs NAT port blocks (RFC 8158 IPFIX) to a real collector, and as JSON lines.

  /usr/bin/python3 tests/e2e/nat_log_test.py --exitgw build/control/exitgw [-v]

A wireguard-go client's first packet through the exit gets a port block from the pool; the
block allocation reaches nfcapd in the gateway's namespace (decoded by nfdump) and the JSON
lines file, naming the subscriber and the public address, which is what an abuse desk asks.
The same for IPv6 through stateful NAT66: the block's record carries the client's tailnet
IPv6 address and the NAT66 pool address (RFC 8158's IPv6 elements).
"""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

import labutil as L
from export_test import nfdump_records, tshark_messages

NAME = L.lab_name("nl")
PORT = 4739
SERVER6 = "2001:db8:5::10"  # tools/lab SERVER6
POOL6 = "2001:db8:100::1"  # one address of the /48 tools/lab routes to the gateway


class NatLogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("nfcapd", "nfdump"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s not installed (tools/install-deps)" % tool)
        cls.work = tempfile.mkdtemp(prefix="exitgw-natlog-")
        os.makedirs(os.path.join(cls.work, "nf"))
        cls.json = os.path.join(cls.work, "records.json")
        L.down(NAME)
        L.up(NAME, clients=1, extra=(
            "--gw-flag", "nat6_mode=stateful", "--gw-flag", "nat_pool6=" + POOL6,
            "--gw-flag", "ipfix_collector=udp://127.0.0.1:%d" % PORT,
            "--gw-flag", "flow_log_json=" + cls.json,
            "--gw-flag", "export_spool_dir=" + os.path.join(cls.work, "spool")))
        # tshark first: the exporter sends its templates with the first probe nfcapd answers
        # (then every 10 s), and the IPv6 records decode only with them in the capture.
        cls.pcap = os.path.join(cls.work, "ipfix.pcap")
        cls.tshark_log = os.path.join(cls.work, "tshark.log")
        cls.tshark = L.nsspawn(NAME, "gw", "tshark", "-q", "-i", "lo", "-f", "udp port %d" % PORT,
                               "-w", cls.pcap, out=cls.tshark_log)

        def capturing():
            with open(cls.tshark_log) as f:
                return "Capturing" in f.read()
        if not L.wait_until(capturing, 15):
            raise AssertionError("tshark did not start")
        cls.nfcapd = L.nsspawn(NAME, "gw", "nfcapd", "-p", str(PORT), "-b", "127.0.0.1", "-l",
                               os.path.join(cls.work, "nf"), "-t", "3600",
                               out=os.path.join(cls.work, "nfcapd.log"))
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        try:
            L.stop(cls.tshark, sig=2)
            L.down(NAME)
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)

    def test_block_allocations_of_both_families_reach_the_collector_and_the_json_log(self):
        L.ensure_handshakes(NAME, ("c1",), timeout=25)
        tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=2)
        self.assertGreater(rx, 0, out)
        tx, rx, out = L.ping(NAME, "c1", SERVER6, count=2)
        self.assertGreater(rx, 0, out)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
            "exitgw_export_records_total", fate="exported") >= 2, 10),
            L.Metrics(NAME).nonzero("exitgw_export"))
        L.stop(self.nfcapd)  # nfcapd writes its file when it stops
        L.stop(self.tshark, sig=2)  # SIGINT: tshark finishes its file
        recs = nfdump_records(os.path.join(self.work, "nf"))
        rows = [r for _, _, rs in tshark_messages(self.pcap, PORT) for r in rs]
        blocks = [r for r in recs if r.get("nat event", "").startswith("16")]
        blocks4 = [r for r in blocks if r.get("src addr") == "100.64.0.11"]
        self.assertTrue(blocks4, recs)
        self.assertEqual(blocks4[0]["src xlt ip"], "203.0.113.1")
        with open(self.json) as f:
            events = [json.loads(ln)["natEvent"] for ln in f if "natEvent" in ln]
        alloc = [e for e in events if e.get("subscriber") == "100.64.0.11"]
        self.assertTrue(alloc, events)
        self.assertEqual(alloc[0]["public"], "203.0.113.1")
        self.assertLess(alloc[0]["portStart"], alloc[0]["portEnd"])

        # IPv6 (stateful NAT66): RFC 8158's record with sourceIPv6Address (27) and
        # postNATSourceIPv6Address (282), as Wireshark decodes it; nfdump shows the subscriber.
        client6 = [x for x in L.state(NAME)["clients"] if x["name"] == "c1"][0]["tailnet6"]
        blocks6 = [r for r in blocks if r.get("src addr") == client6]
        self.assertTrue(blocks6, recs)
        g = lambda r, k: r.get(k, [None])[0]
        rows6 = [r for r in rows if g(r, "cflow.srcaddrv6") == client6]
        self.assertEqual(len(rows6), 1, rows)
        self.assertEqual(g(rows6[0], "cflow.nat_event"), "16")
        self.assertEqual(g(rows6[0], "cflow.post_nat_source_ipv6_address"), POOL6)
        start, end = (int(g(rows6[0], "cflow.port_range_" + k)) for k in ("start", "end"))
        self.assertEqual(end - start + 1, 512)  # --nat_block_size
        alloc6 = [e for e in events if e.get("subscriber") == client6]
        self.assertTrue(alloc6, events)
        self.assertEqual(alloc6[0]["public"], POOL6)
        self.assertEqual((alloc6[0]["portStart"], alloc6[0]["portEnd"]), (start, end))


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
