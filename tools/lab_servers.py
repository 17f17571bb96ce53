#!/usr/bin/env python3
"""The lab's "internet" servers and the small probes that talk to them (stdlib only).

  lab_servers.py serve --addr 198.51.100.10 [--addr6 2001:db8:5::10] [--ready-file F]
      HTTP on :80 (/ is a fixed page, /64M.bin a 64 MiB download), UDP echo on :7 and a
      DNS responder on UDP :53 that answers A queries for *.lab.test with --dns-answer.
      Runs until SIGTERM/SIGINT. tools/lab starts it inside PREFIX-inet.
  lab_servers.py udp-probe HOST [--port 7] [--count 3] [--timeout 2]
      Sends datagrams to a UDP echo server, prints the round trip; exit 0 when all came back.
  lab_servers.py dns-query SERVER NAME [--timeout 2]
      Asks SERVER for NAME's A records, prints them; exit 0 when at least one came back.

Never reads standard input.
"""
import argparse
import http.server
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

PAGE = b"exitgw lab: hello from the internet (198.51.100.10)\n"
BIG_PATH = "/64M.bin"
BIG_SIZE = 64 * 1024 * 1024
CHUNK = bytes(range(256)) * 1024  # 256 KiB, a recognisable pattern

QTYPE_A = 1
QCLASS_IN = 1
RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 1, 3, 4, 5


# --------------------------------------------------------------------------- HTTP

class HttpHandler(http.server.BaseHTTPRequestHandler):
    server_version = "exitgw-lab/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the log quiet: one line per request
        sys.stderr.write("http %s %s\n" % (self.client_address[0], fmt % args))

    def _headers(self, code, length, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _serve(self, body):
        if self.path in ("/", "/index.html"):
            self._headers(200, len(PAGE), "text/plain")
            if body:
                self.wfile.write(PAGE)
        elif self.path == "/whoami":
            # The source address as this server sees it: the NAT pool address, not the client's.
            me = ("%s:%d\n" % self.client_address[:2]).encode()
            self._headers(200, len(me), "text/plain")
            if body:
                self.wfile.write(me)
        elif self.path == BIG_PATH:
            self._headers(200, BIG_SIZE, "application/octet-stream")
            if body:
                left = BIG_SIZE
                while left > 0:
                    n = min(left, len(CHUNK))
                    self.wfile.write(CHUNK[:n])
                    left -= n
        else:
            msg = b"not found\n"
            self._headers(404, len(msg), "text/plain")
            if body:
                self.wfile.write(msg)

    def do_GET(self):
        try:
            self._serve(True)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass

    def do_HEAD(self):
        self._serve(False)


class HttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpServer6(HttpServer):
    address_family = socket.AF_INET6


# --------------------------------------------------------------------------- DNS

def parse_qname(msg, off):
    """Returns (name, offset after it); no compression in questions."""
    labels = []
    while True:
        if off >= len(msg):
            raise ValueError("truncated name")
        n = msg[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels), off


def encode_qname(name):
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not raw or len(raw) > 63:
            raise ValueError("bad label in %r" % name)
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def dns_answer(query, answer_ip, zone="lab.test"):
    """Builds the response to one query, or None to ignore it."""
    if len(query) < 12:
        return None
    qid, flags, qd, _an, _ns, _ar = struct.unpack("!6H", query[:12])
    if flags & 0x8000:  # a response: never answer those
        return None
    rd = flags & 0x0100
    opcode = (flags >> 11) & 0xF

    def reply(rcode, question=b"", answers=b"", an=0):
        hdr = struct.pack("!6H", qid, 0x8000 | 0x0400 | rd | (opcode << 11) | rcode,
                          1 if question else 0, an, 0, 0)
        return hdr + question + answers

    if opcode != 0:
        return reply(RCODE_NOTIMP)
    if qd != 1:
        return reply(RCODE_FORMERR)
    try:
        name, off = parse_qname(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    except (ValueError, struct.error):
        return reply(RCODE_FORMERR)
    question = query[12:off + 4]
    lname = name.lower().rstrip(".")
    if not lname.endswith("." + zone):
        return reply(RCODE_REFUSED, question)  # not our zone: we are no resolver
    if qclass != QCLASS_IN or qtype != QTYPE_A:
        return reply(0, question)  # the name exists, no data of that type
    rr = b"\xc0\x0c" + struct.pack("!HHIH", QTYPE_A, QCLASS_IN, 60, 4) + socket.inet_aton(answer_ip)
    return reply(0, question, rr, 1)


def udp_loop(sock, handler, stop):
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65535)
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                return
            continue
        out = handler(data)
        if out is not None:
            try:
                sock.sendto(out, peer)
            except OSError:
                pass


def udp_socket(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    return s


def cmd_serve(a):
    stop = threading.Event()

    def on_signal(_sig, _frm):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    httpd = HttpServer((a.addr, a.http_port), HttpHandler)
    servers = [httpd] + ([HttpServer6((a.addr6, a.http_port), HttpHandler)] if a.addr6 else [])
    echo = udp_socket(a.addr, a.udp_echo_port)
    dns = udp_socket(a.addr, a.dns_port)
    answer_ip = a.dns_answer or a.addr
    threads = [
        threading.Thread(target=h.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
        for h in servers] + [
        threading.Thread(target=udp_loop, args=(echo, lambda d: d, stop), daemon=True),
        threading.Thread(target=udp_loop, args=(dns, lambda d: dns_answer(d, answer_ip), stop),
                         daemon=True),
    ]
    for t in threads:
        t.start()
    sys.stderr.write("lab servers on %s: http :%d (%s, %s), udp echo :%d, dns :%d (*.lab.test A %s)\n"
                     % (a.addr, a.http_port, "/", BIG_PATH, a.udp_echo_port, a.dns_port, answer_ip))
    sys.stderr.flush()
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write("%d\n" % os.getpid())
    while not stop.wait(1.0):
        pass
    for h in servers:
        h.shutdown()
    echo.close()
    dns.close()
    return 0


# --------------------------------------------------------------------------- probes

def cmd_udp_probe(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    rtts, lost = [], 0
    for i in range(a.count):
        payload = b"exitgw-lab-echo %d %d %s" % (os.getpid(), i, os.urandom(8).hex().encode())
        t0 = time.monotonic()
        try:
            s.sendto(payload, (a.host, a.port))
            while True:
                data, _ = s.recvfrom(65535)
                if data == payload:
                    rtts.append((time.monotonic() - t0) * 1000.0)
                    break
        except (socket.timeout, OSError):
            lost += 1
    if rtts:
        print("udp echo %s:%d: %d/%d back, rtt avg %.2f ms"
              % (a.host, a.port, len(rtts), a.count, sum(rtts) / len(rtts)))
    else:
        print("udp echo %s:%d: 0/%d back (timeout %.1fs)" % (a.host, a.port, a.count, a.timeout))
    return 0 if lost == 0 else 1


def cmd_dns_query(a):
    qid = int.from_bytes(os.urandom(2), "big")
    query = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + encode_qname(a.name) + \
        struct.pack("!HH", QTYPE_A, QCLASS_IN)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    t0 = time.monotonic()
    try:
        s.sendto(query, (a.server, a.port))
        while True:
            resp, _ = s.recvfrom(65535)
            if len(resp) >= 12 and struct.unpack("!H", resp[:2])[0] == qid:
                break
    except (socket.timeout, OSError) as e:
        print("dns %s @%s: no answer (%s)" % (a.name, a.server, e or "timeout"))
        return 1
    ms = (time.monotonic() - t0) * 1000.0
    _id, flags, qd, an, _ns, _ar = struct.unpack("!6H", resp[:12])
    rcode = flags & 0xF
    off = 12
    try:
        for _ in range(qd):
            _n, off = parse_qname(resp, off)
            off += 4
        addrs = []
        for _ in range(an):
            if resp[off] & 0xC0 == 0xC0:
                off += 2
            else:
                _n, off = parse_qname(resp, off)
            rtype, _rclass, _ttl, rdlen = struct.unpack("!HHIH", resp[off:off + 10])
            off += 10
            if rtype == QTYPE_A and rdlen == 4:
                addrs.append(socket.inet_ntoa(resp[off:off + 4]))
            off += rdlen
    except (ValueError, struct.error, IndexError):
        print("dns %s @%s: malformed answer" % (a.name, a.server))
        return 1
    print("dns %s @%s: rcode %d, A %s (%.2f ms)"
          % (a.name, a.server, rcode, ",".join(addrs) or "none", ms))
    return 0 if rcode == 0 and addrs else 1


def main(argv=None):
    p = argparse.ArgumentParser(description="exitgw lab servers and probes")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run HTTP, UDP echo and DNS servers")
    s.add_argument("--addr", default="198.51.100.10")
    s.add_argument("--addr6", default="", help="an IPv6 address to serve HTTP on too")
    s.add_argument("--http-port", type=int, default=80)
    s.add_argument("--udp-echo-port", type=int, default=7)
    s.add_argument("--dns-port", type=int, default=53)
    s.add_argument("--dns-answer", default="", help="A record for *.lab.test (default --addr)")
    s.add_argument("--ready-file", default="")
    u = sub.add_parser("udp-probe", help="round trip to a UDP echo server")
    u.add_argument("host")
    u.add_argument("--port", type=int, default=7)
    u.add_argument("--count", type=int, default=3)
    u.add_argument("--timeout", type=float, default=2.0)
    d = sub.add_parser("dns-query", help="ask a DNS server for A records")
    d.add_argument("server")
    d.add_argument("name")
    d.add_argument("--port", type=int, default=53)
    d.add_argument("--timeout", type=float, default=2.0)
    a = p.parse_args(argv)
    return {"serve": cmd_serve, "udp-probe": cmd_udp_probe, "dns-query": cmd_dns_query}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
