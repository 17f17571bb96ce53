#!/usr/bin/python3
"""WireGuard over an outer IPv6 path: datagrams to the tunnel port's IPv6 address and the listen port are dispatched as over IPv4 (handshakes punted, also behind a Destination Options header, which local delivery cuts out; a transport message reaches the receiver-index lookup at the IPv6 offsets); the UDP checksum is mandatory (zero and wrong ones dropped as udp_bad_checksum), other ports are unreachable, a UDP length beyond the payload is malformed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import casegen as c  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402


def udp6(payload, dport=51820, sport=40000, ext=None, **udp_fields):
    p = Ether(dst=c.GW_MAC, src=c.PEER_MAC) / IPv6(src=c.PEER_IP6, dst=c.GW_IP6, hlim=64)
    if ext is not None:
        p = p / ext
    return p / UDP(sport=sport, dport=dport, **udp_fields) / Raw(payload)


def build():
    init = b"\x01\x00\x00\x00" + bytes(range(144))  # a handshake initiation's size, 148 bytes
    pkts = [
        udp6(init),  # punted
        udp6(init, sport=40001, ext=IPv6ExtHdrDestOpt()),  # punted, the extension header cut
        udp6(b"\x04\x00\x00\x00" + bytes(12) + bytes(16), sport=40002),  # wg_unknown_index
        udp6(init, sport=40003, chksum=0),  # no checksum: refused over IPv6
        udp6(init, sport=40004, chksum=0x1234),  # wrong checksum
        udp6(b"hello", dport=9999, sport=40005),  # local_port_unreachable
        udp6(init, sport=40006, len=200),  # UDP length beyond the payload: udp_malformed
    ]
    return {"in.pcap": pkts, "expected.pcap": []}


if __name__ == "__main__":
    c.write_case(__file__, build())
