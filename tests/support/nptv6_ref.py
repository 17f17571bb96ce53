"""RFC 6296 (NPTv6) for /48 prefixes, written from the RFC rather than from the gateway's
code, so tests compare the gateway's translation with an independent one: the prefix swapped,
and bits 48-63 plus the one's-complement difference of the two prefixes' sums (a result of
0xFFFF written 0)."""
import ipaddress
import struct


def _words(a):
    return list(struct.unpack("!8H", ipaddress.IPv6Address(a).packed))


def _add(a, b):
    t = a + b
    return (t & 0xFFFF) + (t >> 16)


def _total(ws):
    t = 0
    for w in ws:
        t = _add(t, w)
    return t


def nptv6(addr, inside, outside):
    """addr (inside `inside`/48) as it leaves through `outside`/48."""
    a = _words(addr)
    w3 = _add(a[3], _add(_total(_words(inside)[:3]), ~_total(_words(outside)[:3]) & 0xFFFF))
    out = _words(outside)[:3] + [0 if w3 == 0xFFFF else w3] + a[4:]
    return str(ipaddress.IPv6Address(struct.pack("!8H", *out)))
