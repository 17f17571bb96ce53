"""Shared by every case's gen.py: the fixed addresses of the test network, builders for the
packets the gateway is expected to send, and a deterministic pcap writer (fixed timestamps,
so regenerating a case gives byte-identical files and run_case.py can check that).

The gateway's MAC is not configurable: DPDK's pcap PMD gives its n-th port (in probe order)
the fixed address 02:70:63:61:70:0n ("\x02pcap" + n), which exitgw logs at start as
"port net_pcap0 (...) mac 02:70:63:61:70:00".
"""

import os
import struct
import sys

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Padding, Raw

# The gateway's WireGuard private key in every case (a test key, never used elsewhere).
GATEWAY_PRIVATE_KEY = "eCynIjb618cbuEYxxBZOT+l8A8SsUf05cKUPOUpUkn8="

GW_MAC = "02:70:63:61:70:00"  # net_pcap0: the tunnel port (or the only port)
GW1_MAC = "02:70:63:61:70:01"  # net_pcap1: the internet port in two-port cases
TUNNEL_IP = "10.77.0.1"
INTERNET_IP = "192.0.2.1"
PEER_MAC = "02:00:00:00:00:0a"  # a host on the tunnel subnet
PEER_IP = "10.77.0.2"
ROUTER_MAC = "02:00:00:00:00:0b"  # the upstream router on the internet subnet
ROUTER_IP = "192.0.2.2"
OTHER_MAC = "02:00:00:00:00:99"  # some other host's MAC: frames for it are not ours

# The flags every single-port case passes (the daemon's defaults, spelled out so a change
# of default does not silently change what a case proves).
BASE_FLAGS = [
    "--tunnel_addr=10.77.0.1/24",
    "--internet_addr=192.0.2.1/24",
    "--internet_gateway=192.0.2.2",
    "--wg_listen_port=51820",
]

_PCAP_MAGIC_US = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1


def pcap_bytes(frames):
    """A classic microsecond pcap of `frames` (bytes or scapy packets), timestamps 1 s + i us."""
    out = [struct.pack("<IHHiIII", _PCAP_MAGIC_US, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for i, f in enumerate(frames):
        b = bytes(f)
        out.append(struct.pack("<IIII", 1, i, len(b), len(b)))
        out.append(b)
    return b"".join(out)


def write_case(gen_file, files):
    """Writes {name: [frames]} next to gen_file (or into argv[1] if given)."""
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(gen_file))
    for name, frames in files.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(pcap_bytes(frames))
        print(f"{name}: {len(frames)} packets")


def arp_request(tip, sip=PEER_IP, smac=PEER_MAC, dst="ff:ff:ff:ff:ff:ff", pad=0):
    p = Ether(dst=dst, src=smac) / ARP(
        op=1, hwsrc=smac, psrc=sip, hwdst="00:00:00:00:00:00", pdst=tip
    )
    if pad:
        p = p / Padding(load=bytes(range(pad)))
    return p


def arp_reply_from_gw(tip, sip=PEER_IP, smac=PEER_MAC, gw_mac=GW_MAC, pad=0):
    """What the gateway must send for arp_request(tip, sip, smac, pad=pad): built from RFC 826,
    not from the request, with the request's Ethernet padding carried over unchanged."""
    p = Ether(dst=smac, src=gw_mac) / ARP(op=2, hwsrc=gw_mac, psrc=tip, hwdst=smac, pdst=sip)
    if pad:
        p = p / Padding(load=bytes(range(pad)))
    return p


def echo_request(dst=TUNNEL_IP, src=PEER_IP, smac=PEER_MAC, dmac=GW_MAC, ident=0x1234, seq=1,
                 payload=b"", ip_id=1, tos=0, ttl=64):
    return (
        Ether(dst=dmac, src=smac)
        / IP(src=src, dst=dst, id=ip_id, tos=tos, ttl=ttl)
        / ICMP(type=8, code=0, id=ident, seq=seq)
        / Raw(load=payload)
    )


def echo_reply_from_gw(dst=TUNNEL_IP, src=PEER_IP, smac=PEER_MAC, dmac=GW_MAC, ident=0x1234,
                       seq=1, payload=b"", ip_id=1, tos=0):
    """The reply to echo_request(...) with the same arguments: addresses swapped, TTL 64, no
    fragment flags, identifier/sequence/data echoed, both checksums computed afresh."""
    return (
        Ether(dst=smac, src=dmac)
        / IP(src=dst, dst=src, id=ip_id, tos=tos, ttl=64, flags=0)
        / ICMP(type=0, code=0, id=ident, seq=seq)
        / Raw(load=payload)
    )


def udp_to(dport, dst=TUNNEL_IP, payload=b"hello", sport=40000, src=PEER_IP, smac=PEER_MAC,
           dmac=GW_MAC, chksum=None):
    u = UDP(sport=sport, dport=dport)
    if chksum is not None:
        u.chksum = chksum
    return Ether(dst=dmac, src=smac) / IP(src=src, dst=dst) / u / Raw(load=payload)


def with_ip_checksum(frame):
    """Rebuilds frame's IPv4 header checksum after raw edits (frame: bytes, IP at offset 14)."""
    b = bytearray(frame)
    ihl = (b[14] & 0xF) * 4
    b[24:26] = b"\0\0"
    s = 0
    for i in range(14, 14 + ihl, 2):
        s += (b[i] << 8) | b[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    b[24:26] = struct.pack("!H", ~s & 0xFFFF)
    return bytes(b)


def pad60(frame):
    """Ethernet minimum-size padding (zeros) as a NIC adds it on the wire."""
    b = bytes(frame)
    return b + b"\0" * max(0, 60 - len(b))


# IPv6 on the port (--tunnel_addr6): the configured address and the link-local one the gateway
# derives from its MAC (RFC 4291 appendix A: 02:70:63:61:70:00 -> fe80::70:63ff:fe61:7000).
GW_IP6 = "2001:db8:77::1"
GW_LL6 = "fe80::70:63ff:fe61:7000"
PEER_IP6 = "2001:db8:77::2"
PEER_LL6 = "fe80::a"
IPV6_FLAGS = BASE_FLAGS + ["--tunnel_addr6=2001:db8:77::1/64"]


def solicited_node(addr):
    """The solicited-node group of addr and its Ethernet group (RFC 4291 2.7.1, RFC 2464 7)."""
    import ipaddress
    low = ipaddress.IPv6Address(addr).packed[13:]
    group = ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + low)
    return str(group), "33:33:ff:%02x:%02x:%02x" % tuple(low)
