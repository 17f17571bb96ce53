#!/usr/bin/python3
"""WireGuard seeds for the fuzz targets that take whole packets, sealed under known keys.

The keys are the reference handshake's (tests/unit/vectors/gen_wg_handshake.py, built on the
independent Python WireGuard in tests/support/wgpy.py); the targets install the same session
and identity, so these seeds pass the checks a fuzzer cannot pass by mutation (AEAD tags,
mac1, Noise) and mutations start behind them.

  dataplane_fuzz/wg_*: byte 0 = 0x04 (an IPv4 packet on the tunnel port), then IPv4 + UDP to
    the gateway's WireGuard port + a transport message for the reference session (receiver
    index kResponderIndex, sealed with the initiator's sending key): inner packets the gateway
    forwards, answers or drops for each inner-packet reason, a keepalive, a bad tag, an
    unknown index and an exhausted counter.
  dataplane_fuzz/ipv6_exit_*: inner IPv6 and internet IPv6 for the IPv6 exit chain (below).
  dataplane_fuzz/exception6_*: the node's tailnet IPv6 address on the exception path (below).
  control_punt_fuzz/*: byte 0 = flags (bit 0: under load, bit 1: the target recomputes mac1),
    then the UDP payload: valid initiations for the gateway's key (the reference responder),
    initiations from an unknown key, responses and cookie replies nobody asked for,
    truncated and garbage messages.

Run: /usr/bin/python3 tests/fuzz/corpus/gen_wg_seeds.py (rewrites the files it owns only).
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "live"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "unit", "vectors"))
from gen_wg_handshake import fixed, reference_handshake  # noqa: E402
from harness import checksum, ipv4, udp4  # noqa: E402
from wgpy import AEAD, MSG_TRANSPORT, initiation, padded, tai64n  # noqa: E402

# tests/support/dataplane_bed.h: the tunnel address, WireGuard port and peer 0's endpoint and
# allowed IP (the reference session is installed for peer 0).
TUNNEL_IP, WG_PORT = "10.77.0.1", 51820
PEER_ENDPOINT, PEER_PORT = "203.0.113.0", 30000
PEER_INNER = "100.64.0.0"
INTERNET_HOST = "1.0.0.1"

# control_punt_fuzz flags (byte 0)
UNDER_LOAD, RECOMPUTE_MAC1 = 1, 2


def icmp_echo(src, dst, ttl=64, data=b"ping"):
    body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + data
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ipv4(src, dst, 1, body, ttl=ttl)


def tcp_syn(src, dst, sport, dport):
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = bytes(map(int, src.split("."))) + bytes(map(int, dst.split("."))) + struct.pack(
        "!BBH", 0, 6, len(seg))
    seg = seg[:16] + struct.pack("!H", checksum(pseudo + seg)) + seg[18:]
    return ipv4(src, dst, 6, seg)


def transport(key, receiver, counter, inner):
    return struct.pack("<IIQ", MSG_TRANSPORT, receiver, counter) + AEAD(
        key, counter, padded(inner), b"")


def on_tunnel(wg_message):
    """dataplane_fuzz input: an IPv4/UDP packet to the gateway's WireGuard port (UDP checksum
    0, as WireGuard peers commonly send) on the tunnel port."""
    length = 8 + len(wg_message)
    udp = struct.pack("!HHHH", PEER_PORT, WG_PORT, length, 0) + wg_message
    return b"\x04" + ipv4(PEER_ENDPOINT, TUNNEL_IP, 17, udp)


def dataplane_seeds(r):
    key, index = r["t1"], r["sender_r"]
    inner_udp = udp4(PEER_INNER, INTERNET_HOST, 40000, 53, b"abcd")
    bad_checksum = bytearray(inner_udp)
    bad_checksum[10] ^= 0xFF  # the IPv4 header checksum
    truncated = bytearray(inner_udp)
    truncated[2:4] = struct.pack("!H", len(inner_udp) + 40)  # total length beyond the payload
    seeds = {
        "wg_sealed_udp": transport(key, index, 0, inner_udp),
        "wg_sealed_icmp": transport(key, index, 1, icmp_echo(PEER_INNER, INTERNET_HOST)),
        "wg_sealed_tcp_syn": transport(key, index, 2, tcp_syn(PEER_INNER, INTERNET_HOST, 40001, 80)),
        "wg_sealed_ttl1": transport(key, index, 3, icmp_echo(PEER_INNER, INTERNET_HOST, ttl=1)),
        "wg_sealed_keepalive": transport(key, index, 4, b""),
        "wg_sealed_high_counter": transport(key, index, 100000, inner_udp),
        "wg_sealed_bad_inner_checksum": transport(key, index, 5, bytes(bad_checksum)),
        "wg_sealed_inner_malformed": transport(key, index, 6, bytes(truncated)),
        "wg_sealed_inner_not_ipv4": transport(key, index, 7, b"\x60" + bytes(39)),
        "wg_sealed_bad_source": transport(key, index, 8,
                                          udp4("100.64.9.9", INTERNET_HOST, 40000, 53, b"x")),
        "wg_sealed_to_gateway": transport(key, index, 9, icmp_echo(PEER_INNER, TUNNEL_IP)),
        "wg_sealed_counter_exhausted": transport(key, index, 2**64 - 1, inner_udp),
    }
    bad_tag = bytearray(seeds["wg_sealed_udp"])
    bad_tag[-1] ^= 1
    seeds["wg_sealed_bad_tag"] = bytes(bad_tag)
    seeds["wg_sealed_unknown_index"] = transport(key, index ^ 0xFFFF, 0, inner_udp)
    return {name: on_tunnel(msg) for name, msg in seeds.items()}


def punt_seeds(r):
    s_r_pub = r["s_r_pub"]
    later, _, _ = initiation(r["s_i_priv"], s_r_pub, fixed(b"seed ephemeral"), 0x55667788,
                             tai64n(r["secs"] + 3600, 0))
    stranger, _, _ = initiation(fixed(b"unknown peer static"), s_r_pub, r["e_i_priv"], 0x99AABBCC,
                                r["ts"])
    init = r["init_msg"]
    seeds = {
        "initiation": (0, init),
        "initiation_later": (0, later),
        "initiation_under_load": (UNDER_LOAD, init),
        "initiation_mac2_under_load": (UNDER_LOAD, r["init_mac2_msg"]),
        "initiation_unknown_peer": (0, stranger),
        "initiation_garbage_body": (RECOMPUTE_MAC1, init[:8] + bytes(140)),
        "initiation_truncated": (0, init[:100]),
        "response_unexpected": (RECOMPUTE_MAC1, r["resp_msg"]),
        "cookie_reply": (0, r["cookie_reply"]),
        "cookie_reply_truncated": (0, r["cookie_reply"][:40]),
        "transport": (0, transport(r["t1"], r["sender_r"], 0, b"")),
        "garbage_type": (0, b"\x05\x00\x00\x00" + bytes(60)),
        "garbage_short": (0, b"\x01\x00"),
    }
    return {name: bytes([flags]) + msg for name, (flags, msg) in seeds.items()}


def ipv6_seeds():
    """dataplane_fuzz/ipv6_exit_*: inner IPv6 sealed from peer 0 (byte 0 = 0x02; its address
    fd7a:115c:a1e0:: is an IPv6 allowed IP and NPTv6 maps its /48 to 2001:db8:100::/48), and
    internet IPv6 for the pool (byte 0 = 0x25: the internet port, an Ethernet header, IPv6)."""
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6,
                                    IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)
    from scapy.packet import Raw
    peer, pool, remote = "fd7a:115c:a1e0::", "2001:db8:100:81fe::", "2a00:1450:4001::5"
    inner = {
        "udp": IPv6(src=peer, dst=remote) / UDP(sport=40000, dport=443) / Raw(b"q" * 24),
        "echo": IPv6(src=peer, dst=remote) / ICMPv6EchoRequest(id=1, seq=1, data=b"ping6"),
        "hop_limit_1": IPv6(src=peer, dst=remote, hlim=1) / UDP(sport=1, dport=33434),
        "dest_opts": IPv6(src=peer, dst=remote) / IPv6ExtHdrDestOpt() / UDP(sport=2, dport=53),
        "fragment": IPv6(src=peer, dst=remote) / IPv6ExtHdrFragment(m=1, id=7) /
        UDP(sport=3, dport=53) / Raw(b"f" * 16),
        "ula_destination": IPv6(src=peer, dst="fd00::1") / UDP(sport=4, dport=53),
    }
    quoted = bytes(IPv6(src=pool, dst=remote) / UDP(sport=40000, dport=443) / Raw(b"q" * 24))
    internet = {
        "reply": IPv6(src=remote, dst=pool) / UDP(sport=443, dport=40000) / Raw(b"r" * 24),
        "packet_too_big": IPv6(src=remote, dst=pool) / ICMPv6PacketTooBig(mtu=1280) / Raw(quoted),
        "not_in_pool": IPv6(src=remote, dst="2001:db8:101::1") / UDP(sport=443, dport=1),
        "too_big_for_tunnel": IPv6(src=remote, dst=pool) / UDP(sport=443, dport=2) /
        Raw(b"B" * 1440),
    }
    seeds = {"ipv6_exit_inner_" + k: b"\x02" + bytes(v) for k, v in inner.items()}
    seeds.update({"ipv6_exit_internet_" + k: b"\x25" + bytes(v) for k, v in internet.items()})
    return seeds


def outer6_seeds(r):
    """dataplane_fuzz/wg_outer6_*: WireGuard over the tunnel port's IPv6 address (byte 0 = 0x24:
    the tunnel port, an Ethernet header, IPv6): sealed transport from peer 0, a handshake
    initiation's shape for the punt, one behind a Destination Options header (cut out by local
    delivery), one with the zero UDP checksum IPv6 refuses."""
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt
    from scapy.packet import Raw
    key, index = r["t1"], r["sender_r"]
    peer6, gw6 = "2001:db8:77::2", "2001:db8:77::1"
    sealed = transport(key, index, 30, udp4(PEER_INNER, INTERNET_HOST, 40000, 53, b"six"))
    initiation = struct.pack("<I", 1) + bytes(range(144))

    def udp6(msg, ext=None, **kw):
        p = IPv6(src=peer6, dst=gw6)
        if ext is not None:
            p = p / ext
        return b"\x24" + bytes(p / UDP(sport=PEER_PORT, dport=WG_PORT, **kw) / Raw(msg))
    return {
        "wg_outer6_sealed_udp": udp6(sealed),
        "wg_outer6_initiation": udp6(initiation),
        "wg_outer6_dest_opts": udp6(sealed, ext=IPv6ExtHdrDestOpt()),
        "wg_outer6_zero_checksum": udp6(sealed, chksum=0),
    }


def exception6_seeds():
    """dataplane_fuzz/exception6_*: the node's tailnet IPv6 address fd7a:115c:a1e0::1 (the
    target sets it) on the exception path: inner IPv6 sealed from peer 0 to it (byte 0 = 0x02:
    ping, UDP, TSMP), and the host's IPv6 from the exception port (byte 0 = 0x08, no Ethernet):
    replies to peer 0, and each drop (another source, too large, malformed, nobody's)."""
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
    from scapy.packet import Raw
    peer, own = "fd7a:115c:a1e0::", "fd7a:115c:a1e0::1"
    to_node = {
        "echo": IPv6(src=peer, dst=own) / ICMPv6EchoRequest(id=2, seq=1, data=b"own6"),
        "udp": IPv6(src=peer, dst=own) / UDP(sport=40000, dport=5380) / Raw(b"d" * 16),
        "tsmp": IPv6(src=peer, dst=own, nh=99) / Raw(b"\x01" + b"t" * 32),
    }
    echo_reply = bytes(IPv6(src=own, dst=peer) / ICMPv6EchoReply(id=2, seq=1, data=b"own6"))
    long_payload = bytearray(echo_reply)
    long_payload[4:6] = struct.pack("!H", len(echo_reply))  # beyond what arrived
    from_host = {
        "echo_reply": echo_reply,
        "udp_reply": bytes(IPv6(src=own, dst=peer) / UDP(sport=5380, dport=40000) / Raw(b"a" * 40)),
        "trailing_bytes": echo_reply + bytes(7),
        "other_source": bytes(IPv6(src="fe80::1", dst=peer) / UDP(sport=1, dport=2)),
        "too_large": bytes(IPv6(src=own, dst=peer) / UDP(sport=5380, dport=1) / Raw(b"B" * 1420)),
        "truncated": echo_reply[:36],
        "payload_beyond": bytes(long_payload),
        "to_nobody": bytes(IPv6(src=own, dst="fd7a:115c:a1e0::99") / UDP(sport=5380, dport=1)),
    }
    seeds = {"exception6_to_node_" + k: b"\x02" + bytes(v) for k, v in to_node.items()}
    seeds.update({"exception6_from_host_" + k: b"\x08" + v for k, v in from_host.items()})
    return seeds


def write(target, seeds):
    corpus = os.path.join(HERE, target)
    os.makedirs(corpus, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds in %s" % (len(seeds), os.path.relpath(corpus)))


def main():
    r = reference_handshake()
    write("dataplane_fuzz", dict(dataplane_seeds(r), **ipv6_seeds(), **outer6_seeds(r),
                                 **exception6_seeds()))
    write("control_punt_fuzz", punt_seeds(r))


if __name__ == "__main__":
    main()
