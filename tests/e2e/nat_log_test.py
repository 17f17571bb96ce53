#!/usr/bin/env python3
"""E2E: the gateway logs NAT port blocks (RFC 8158 IPFIX) to a real collector, and as JSON lines.

  /usr/bin/python3 tests/e2e/nat_log_test.py --exitgw build/control/exitgw [-v]

A wireguard-go client's first packet through the exit gets a port block from the pool; the
block allocation reaches nfcapd in the gateway's namespace (decoded by nfdump) and the JSON
lines file, naming the subscriber and the public address, which is what an abuse desk asks.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

import labutil as L
from export_test import nfdump_records

NAME = L.lab_name("nl")
PORT = 4739


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
            "--gw-flag", "ipfix_collector=udp://127.0.0.1:%d" % PORT,
            "--gw-flag", "flow_log_json=" + cls.json,
            "--gw-flag", "export_spool_dir=" + os.path.join(cls.work, "spool")))
        cls.nfcapd = L.nsspawn(NAME, "gw", "nfcapd", "-p", str(PORT), "-b", "127.0.0.1", "-l",
                               os.path.join(cls.work, "nf"), "-t", "3600",
                               out=os.path.join(cls.work, "nfcapd.log"))
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        try:
            L.down(NAME)
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)

    def test_block_allocation_reaches_the_collector_and_the_json_log(self):
        L.ensure_handshakes(NAME, ("c1",), timeout=25)
        tx, rx, out = L.ping(NAME, "c1", L.SERVER, count=2)
        self.assertGreater(rx, 0, out)
        self.assertTrue(L.wait_until(lambda: L.Metrics(NAME).get(
            "exitgw_export_records_total", fate="exported") >= 1, 10),
            L.Metrics(NAME).nonzero("exitgw_export"))
        L.stop(self.nfcapd)  # nfcapd writes its file when it stops
        recs = nfdump_records(os.path.join(self.work, "nf"))
        blocks = [r for r in recs if r.get("nat event", "").startswith("16")]
        self.assertTrue(blocks, recs)
        self.assertEqual(blocks[0]["src addr"], "100.64.0.11")
        self.assertEqual(blocks[0]["src xlt ip"], "203.0.113.1")
        with open(self.json) as f:
            events = [json.loads(ln)["natEvent"] for ln in f if "natEvent" in ln]
        alloc = [e for e in events if e.get("subscriber") == "100.64.0.11"]
        self.assertTrue(alloc, events)
        self.assertEqual(alloc[0]["public"], "203.0.113.1")
        self.assertLess(alloc[0]["portStart"], alloc[0]["portEnd"])


if __name__ == "__main__":
    sys.argv = L.parse_args_then_unittest()
    L.main(verbosity=2)
