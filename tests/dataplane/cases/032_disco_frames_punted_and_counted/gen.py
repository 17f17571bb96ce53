#!/usr/bin/python3
"""Tailscale disco frames (magic TS💬) on the WireGuard port are punted to control before the WireGuard type dispatch and counted there (no disco key configured: disco_disabled); a frame that only starts like the magic is an unknown WireGuard type."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
import casegen as c  # noqa: E402

# A ping written by Tailscale's own code (tests/support/discogen).
VECTORS = os.path.join(HERE, "..", "..", "..", "unit", "vectors", "disco_vectors.json")


def build():
    with open(VECTORS) as fh:
        cases = {v["name"]: bytes.fromhex(v["frame"]) for v in json.load(fh)["cases"]}
    pkts = [
        c.udp_to(51820, payload=cases["ping_with_node_key"], sport=41641),
        c.udp_to(51820, payload=b"TS\xf0\x9f\x92\xac", sport=41642),  # the magic alone
        c.udp_to(51820, payload=b"TS\xf0\x9f\x92", sport=41643),  # not quite the magic
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())
