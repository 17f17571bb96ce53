"""A LabCase whose gateway has an IPv6 internet side (shared by ipv6_test.py and nat66_test.py):
the router answers the gateway's neighbor solicitation and the peers handshake before the cases
run; outer_ipv6() reads what the gateway sent to the router."""
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6

import harness

INTERNET6 = "2001:db8:1::1"
ROUTER_LL6 = "fe80::2"
INSIDE = "fd7a:115c:a1e0::"  # the tailnet's prefix; peer i is INSIDE::(10 + i)
FLAGS = ("--internet_addr6=%s/64" % INTERNET6, "--internet_gateway6=" + ROUTER_LL6)


def canonical(p):
    """Scapy packet -> bytes with every length and checksum computed by scapy."""
    return bytes(p.__class__(bytes(p)))


class Ipv6LabCase(harness.LabCase):
    peers = 2
    flags = FLAGS

    @classmethod
    def configure(cls, lab):
        for i, p in enumerate(lab.peers):
            p.inner_ip6 = "%s%x" % (INSIDE, 0x10 + i)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        lab = cls.lab
        # The router answers the gateway's solicitation (it asks every --arp_retry_ms until
        # then): an advertisement with its MAC, override set.
        na = (IPv6(src=ROUTER_LL6, dst="ff02::1", hlim=255) /
              ICMPv6ND_NA(R=1, S=0, O=1, tgt=ROUTER_LL6) / ICMPv6NDOptDstLLAddr(lladdr=lab.inetp_mac))
        lab.send_internet(bytes(na))
        lab.wait_metric(lambda m: m.sum("exitgw_ipv6_neighbors") >= 1, 10)
        for p in lab.peers:
            p.handshake()

    def outer_ipv6(self, timeout=2.0):
        """The next IPv6 packet the gateway sent on the internet side (router's MAC), or None;
        neighbor solicitations skipped."""
        while True:
            f = self.lab.recv_outer_internet(timeout)
            if f is None:
                return None
            if f[12:14] != b"\x86\xdd":
                continue
            pkt = IPv6(f[14:])
            if pkt.nh == 58 and bytes(pkt.payload)[:1] == b"\x87":  # NS
                continue
            self.assertEqual(f[0:6], harness.mac_bytes(self.lab.inetp_mac), "not to the router")
            return f[14:]
