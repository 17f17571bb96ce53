#!/usr/bin/env python3
"""E2E: exitgw on a real tailnet: Headscale, real tailscaled clients, exitgw-connector.

  /usr/bin/python3 tests/e2e/tailnet_test.py --exitgw build/control/exitgw
      [--connector build/connector/exitgw-connector] [-v]

`tools/lab up --tailnet` runs Headscale (embedded DERP + STUN, lab CA, no DERP map from
outside) in P-ctl, two tailscaled clients of group:exit (granted autogroup:internet) and
adds one of group:noexit; the gateway is exitgw + exitgw-connector. Binaries come from
tools/install-tailnet (/opt/exitgw-lab/bin).

What it proves (the connector must be built: a missing one fails the suite, it is no skip):
  Headscale offline, clients registered and seeing each other, direct paths between
  clients, the machine's /etc/resolv.conf untouched; a real tailscaled exit node (x1):
  usable by group:exit only, approval revoked/restored, Headscale stopped 60 s; down cleans
  everything. The gateway node registered with tag:exit, exit routes announced and approved
  (by approve-routes, and by autoApprovers.exitNode), `tailscale exit-node list` shows it, a
  node deleted in Headscale leaves exitgw; traffic through the gateway (NAT pool address),
  direct `tailscale ping` (exitgw --disco_private_key_file), noexit reaches nothing,
  approval revoked/restored, Headscale stopped 60 s (the connector's admin API updates:
  peers, approval, filter).
"""
import base64
import hashlib
import json
import os
import struct
import sys
import time
import unittest

import labutil as L
import nptv6_ref  # tests/support, on the path labutil sets

NAME = L.lab_name("tn")
BIN = os.environ.get("EXITGW_LAB_BIN", "/opt/exitgw-lab/bin")
CONNECTOR = os.path.join(L.REPO, "build", "connector", "exitgw-connector")
NAT_POOL_ADDR = "203.0.113.1"
SERVER6 = "2001:db8:5::10"  # tools/lab SERVER6, in the policy's lab-net6
INSIDE6, POOL6 = "fd7a:115c:a1e0::", "2001:db8:100::"  # NPTv6: the tailnet /48 to the lab's pool
GW_ENDPOINT6 = "[2001:db8:77::1]:51820"  # the outer IPv6 path the connector advertises
RESOLV = "/etc/resolv.conf"


def parse_args():
    global CONNECTOR
    argv, CONNECTOR = L.parse_args_with_connector(CONNECTOR)
    return argv


def file_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ts(host, *args, timeout=30):
    """`tools/lab exec HOST tailscale ARGS`: the lab injects HOST's own --socket."""
    return L.lab_exec(NAME, host, "tailscale", *args, timeout=timeout)


def ts_json(host, *args):
    p = ts(host, *args, "--json")
    if p.returncode != 0:
        raise AssertionError("tailscale %s on %s failed:\n%s" % (" ".join(args), host, p.stdout))
    return json.loads(p.stdout)


def headscale(*args, timeout=30):
    return L.lab_exec(NAME, "ctl", "headscale", *args, timeout=timeout)


def hs_nodes():
    p = headscale("nodes", "list", "-o", "json")
    if p.returncode != 0:
        raise AssertionError("headscale nodes list:\n" + p.stdout)
    return json.loads(p.stdout or "[]") or []


def hs_node(name):
    for n in hs_nodes():
        if name in (n.get("name"), n.get("given_name")):
            return n
    return None


def fetch_whoami(host, timeout=4, server=L.SERVER):
    """The inet server's view of our source address ("addr:port"), or None."""
    p = L.nsrun(NAME, host, "curl", "-sS", "-m", str(timeout), "http://%s/whoami" % server,
                timeout=timeout + 5)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


def fetch_whoami6(host, timeout=4):
    """The IPv6 server's view of our source address (without the port), or None."""
    seen = fetch_whoami(host, timeout, "[%s]" % SERVER6)
    return seen.rsplit(":", 1)[0] if seen else None


def tailnet_ip(host, ipv6=False):
    """The client's tailnet address of the family, as tailscaled reports it, or None."""
    ips = [a for a in ts_json(host, "status")["Self"]["TailscaleIPs"] if (":" in a) == ipv6]
    return ips[0] if ips else None


def tailnet6(host):
    return tailnet_ip(host, ipv6=True)


def read_text(path):
    with open(path) as f:
        return f.read()


def dns_query(name, qid=0x4242):
    """A DNS query for name's A record (RFC 1035 wire format)."""
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def connector_metric(metric, **labels):
    """The sum of a metric of the connector beside the gateway (its --metrics-listen)."""
    p = L.nsrun(NAME, "gw", "curl", "-sS", "--max-time", "3", "http://127.0.0.1:9552/metrics",
                timeout=10)
    return sum(v for n, l, v in L.parse_metrics(p.stdout)
               if n == metric and all(l.get(k) == w for k, w in labels.items()))


def require_connector():
    """The connector is part of exitgw: a missing binary fails the suite, it never skips."""
    if not os.access(CONNECTOR, os.X_OK):
        raise AssertionError("exitgw-connector missing at %s: build it (ninja -C build "
                             "exitgw_connector)" % CONNECTOR)


class TailnetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for b in ("headscale", "tailscaled", "tailscale"):
            if not os.access(os.path.join(BIN, b), os.X_OK):
                raise AssertionError("%s/%s missing: run tools/install-tailnet (install-deps runs "
                                     "it)" % (BIN, b))
        require_connector()
        cls.resolv_before = file_hash(RESOLV)
        L.down(NAME)
        t0 = time.monotonic()
        L.up(NAME, clients=2, extra=("--tailnet", "--connector", CONNECTOR))
        cls.up_s = time.monotonic() - t0
        L.lab("add-client", "--name", NAME, "n1", "--group", "noexit", check=True, timeout=120)
        # A real tailscaled exit node beside exitgw: proves the policy and approval wiring
        # with Tailscale's own exit node, and is the baseline exitgw is compared with.
        L.lab("add-client", "--name", NAME, "x1", "--exit-node", check=True, timeout=120)
        with open(os.path.join(L.lab_dir(NAME), "exitgw.flags")) as f:
            assert "--disco_private_key_file=" in f.read(), "the lab ran exitgw without disco"
        print("\ntailnet lab %s up in %.1f s (connector: %s)" % (NAME, cls.up_s, CONNECTOR),
              file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        L.down(NAME)

    def gw_ip(self):
        n = hs_node(NAME + "-gw")
        self.assertIsNotNone(n, "the gateway node is not in headscale nodes list")
        return [a for a in n["ip_addresses"] if ":" not in a][0]

    # ------------------------------------------------------------- Headscale and clients
    def test_a_headscale_is_offline_with_its_own_derp(self):
        for c in ("c1", "c2", "n1"):
            p = ts(c, "debug", "derp-map")
            self.assertEqual(p.returncode, 0, p.stdout)
            dm = json.loads(p.stdout)
            self.assertEqual(sorted(dm.get("Regions", {}).keys()), ["900"], dm)
            node = dm["Regions"]["900"]["Nodes"][0]
            self.assertEqual((node["HostName"], node.get("STUNPort")), ("10.77.0.2", 3478))
        with open(os.path.join(L.lab_dir(NAME), "headscale", "config.yaml")) as f:
            conf = f.read()
        self.assertIn("urls: []", conf)  # no DERP map fetched from anywhere

    def test_b_clients_registered_and_see_each_other(self):
        names = {n.get("given_name"): n for n in hs_nodes()}
        for c in ("c1", "c2", "n1"):
            self.assertIn(c, names)
            self.assertEqual(names[c]["user"]["name"], c)
        st = ts_json("c1", "status")
        self.assertEqual(st["BackendState"], "Running")
        peers = {p["HostName"]: p for p in (st.get("Peer") or {}).values()}
        self.assertIn("c2", peers)
        self.assertIn("n1", peers)
        self.assertTrue(L.wait_until(
            lambda: ts_json("c1", "status")["Peer"] and all(
                p.get("Online") for p in ts_json("c1", "status")["Peer"].values()
                if p["HostName"] in ("c2", "n1")), 20, step=1))

    def test_c_client_to_client_path_is_direct(self):
        ip = tailnet_ip("c2")
        p = ts("c1", "ping", "--c", "10", "--until-direct", ip, timeout=40)
        self.assertEqual(p.returncode, 0, p.stdout)
        last = p.stdout.strip().splitlines()[-1]
        self.assertIn("via 10.77.0.", last)
        self.assertNotIn("DERP", last)

    def test_d_netns_resolv_conf_and_machine_resolv_untouched(self):
        for c in ("c1", "c2", "n1"):
            ns = L.client(NAME, c)["ns"]
            self.assertTrue(os.path.exists("/etc/netns/%s/resolv.conf" % ns))
        self.assertEqual(file_hash(RESOLV), self.resolv_before)

    # ------------------------------------------------------------- the reference exit node
    def x1_ip(self):
        n = hs_node("x1")
        return [a for a in n["ip_addresses"] if ":" not in a][0]

    def x1_source(self):
        c = L.client(NAME, "x1")
        return "192.0.3.%d" % (4 * c["slot"] + 2)

    def test_e0_reference_exit_node_is_for_granted_users_only(self):
        x1 = self.x1_ip()
        self.assertTrue(L.wait_until(lambda: x1 in ts("c2", "exit-node", "list").stdout, 20, 1),
                        ts("c2", "exit-node", "list").stdout)
        p = ts("c2", "set", "--exit-node=" + x1)
        self.assertEqual(p.returncode, 0, p.stdout)
        try:
            self.assertTrue(L.wait_until(lambda: fetch_whoami("c2", 2) is not None, 20, 0.3))
            self.assertIn(self.x1_source(), fetch_whoami("c2"))
            # n1 (group:noexit) sees x1 as a peer with 0.0.0.0/0 (members see members) and
            # may select it, but x1's packet filter from Headscale has no internet rule for
            # n1: nothing gets through.
            p = ts("n1", "set", "--exit-node=" + x1)
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertIsNone(fetch_whoami("n1", 4))
        finally:
            ts("c2", "set", "--exit-node=")
            ts("n1", "set", "--exit-node=")

    def test_e1_reference_exit_node_approval_revoked_and_restored(self):
        x1 = self.x1_ip()
        node_id = str(hs_node("x1")["id"])
        self.assertEqual(ts("c2", "set", "--exit-node=" + x1).returncode, 0)
        try:
            self.assertTrue(L.wait_until(lambda: fetch_whoami("c2", 2) is not None, 20, 0.3))
            p = headscale("nodes", "approve-routes", "--identifier", node_id, "--routes", "")
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertTrue(L.wait_until(lambda: fetch_whoami("c2", 1) is None, 15, 0.5),
                            "still forwarding 15 s after the approval was revoked")
            p = headscale("nodes", "approve-routes", "--identifier", node_id,
                          "--routes", "0.0.0.0/0,::/0")
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertTrue(L.wait_until(lambda: fetch_whoami("c2", 2) is not None, 20, 0.5),
                            "not forwarding 20 s after the approval was restored")
        finally:
            headscale("nodes", "approve-routes", "--identifier", node_id,
                      "--routes", "0.0.0.0/0,::/0")
            ts("c2", "set", "--exit-node=")

    # ------------------------------------------------------------- the gateway node
    def test_e_gateway_registered_tagged_with_exit_routes_approved(self):
        n = hs_node(NAME + "-gw")
        self.assertIsNotNone(n)
        self.assertIn("tag:exit", n.get("tags") or [])
        for r in ("0.0.0.0/0", "::/0"):
            self.assertIn(r, n.get("available_routes") or [])
            self.assertIn(r, n.get("approved_routes") or [])

    def test_f_exit_node_list_shows_gateway(self):
        gw = self.gw_ip()
        self.assertTrue(L.wait_until(lambda: gw in ts("c1", "exit-node", "list").stdout, 20, 1),
                        ts("c1", "exit-node", "list").stdout)

    # ------------------------------------------------------------- traffic (disco too)
    def use_exit(self, host, ip=None):
        """Selects the exit node, retrying while the client's netmap does not yet show it
        advertising one (an approval restored a moment ago takes a netmap to arrive)."""
        ip = ip or self.gw_ip()
        tries = []

        def selected():
            tries.append(ts(host, "set", "--exit-node=" + ip))
            return tries[-1].returncode == 0

        if not L.wait_until(selected, 20, 0.5):
            self.fail("%s could not select %s within 20 s: %s" % (host, ip, tries[-1].stdout))

    def test_g_exit_traffic_shows_nat_pool_and_direct_ping(self):
        t0 = time.monotonic()
        self.use_exit("c1")
        self.assertTrue(L.wait_until(lambda: fetch_whoami("c1", 2) is not None, 20, 0.2))
        print("\ntime from tailscale set --exit-node to the first HTTP answer: %.2f s"
              % (time.monotonic() - t0), file=sys.stderr)
        self.assertIn(NAT_POOL_ADDR, fetch_whoami("c1"))
        p = ts("c1", "ping", "--c", "10", "--until-direct", self.gw_ip(), timeout=40)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("via 10.77.0.1:51820", p.stdout.strip().splitlines()[-1])

    def test_g1_dns_through_the_exit_node(self):
        """The client's DNS goes to the exit node: tailscaled's DoH to the gateway's tailnet
        address, through exitgw's exception port to the connector, which asks the lab's
        resolver; a member without the exit grant is refused."""
        gw = self.gw_ip()
        # The host behind the exception port answers ping on the gateway's tailnet address.
        self.assertTrue(L.wait_until(lambda: L.ping(NAME, "c1", gw, count=1)[1] == 1, 20, 0.5),
                        "c1 gets no ping answer from the gateway's tailnet address %s" % gw)
        tx, rx, out = L.ping(NAME, "c1", gw, count=3)
        self.assertEqual((tx, rx), (3, 3), out)
        to_host = L.metric_sum(NAME, "exitgw_exception_packets_total", direction="to_host")
        doh_before = connector_metric("exitgw_connector_doh_requests_total", result="answered")
        self.use_exit("c1")
        try:
            p = ts("c1", "set", "--accept-dns=true")
            self.assertEqual(p.returncode, 0, p.stdout)
            # tailscaled now owns c1's resolv.conf: its resolver (100.100.100.100) forwards
            # to the exit node's DoH, with no fallback to the lab's resolver.
            resolv = "/etc/netns/%s/resolv.conf" % L.ns_of(NAME, "c1")
            self.assertTrue(L.wait_until(lambda: "100.100.100.100" in read_text(resolv), 20, 0.3),
                            "tailscaled did not take c1's DNS: " + read_text(resolv))
            answers = []

            def resolved():
                r = L.nsrun(NAME, "c1", "getent", "hosts", "dns-exit.lab.test", timeout=10)
                answers.append(r.stdout.strip() or "rc=%d" % r.returncode)
                return r.returncode == 0 and r.stdout.split()[0] == L.SERVER

            t0 = time.monotonic()
            self.assertTrue(L.wait_until(resolved, 30, 0.5),
                            "getent hosts through the exit node never answered %s: %s"
                            % (L.SERVER, answers[-5:]))
            print("\nfirst getent answer through the exit node's DNS after %.2f s"
                  % (time.monotonic() - t0), file=sys.stderr)
            d = L.nsrun(NAME, "c1", "dig", "+short", "+time=5", "+tries=1", "@100.100.100.100",
                        "dig-exit.lab.test", "A", timeout=15)
            self.assertEqual(d.stdout.split(), [L.SERVER], d.stdout)
            # Both answers came from the connector's DoH, through exitgw's exception port.
            self.assertGreaterEqual(
                connector_metric("exitgw_connector_doh_requests_total", result="answered"),
                doh_before + 2)
            self.assertGreater(
                L.metric_sum(NAME, "exitgw_exception_packets_total", direction="to_host"),
                to_host + 4, "the answers did not come through exitgw's exception port")
        finally:
            ts("c1", "set", "--accept-dns=false")
            ts("c1", "set", "--exit-node=")
        # n1 (group:noexit) sees the gateway but may not use the exit node: refused.
        query = base64.urlsafe_b64encode(dns_query("refused.lab.test")).rstrip(b"=").decode()
        codes = []

        def refused():
            r = L.nsrun(NAME, "n1", "curl", "-sS", "-m", "3", "-o", "/dev/null", "-w",
                        "%{http_code}", "http://%s:5380/dns-query?dns=%s" % (gw, query),
                        timeout=8)
            codes.append(r.stdout.strip())
            return r.stdout.strip() == "403"

        forbidden = connector_metric("exitgw_connector_doh_requests_total", result="forbidden")
        self.assertTrue(L.wait_until(refused, 20, 0.5), "n1 was not refused: %s" % codes[-5:])
        self.assertNotIn("200", codes)
        self.assertGreater(
            connector_metric("exitgw_connector_doh_requests_total", result="forbidden"), forbidden)

    def test_g1a_gateway_tailnet_ipv6_address_answers_ping(self):
        """The gateway node's own tailnet IPv6 address (fd7a:115c:a1e0::/48, as Headscale and
        tailscaled list it): c1's ping goes through exitgw's tailnet_local6 to the exception
        TUN, whose kernel answers (IPv6 on, no link-local address), and the reply is sealed
        back to c1 through its IPv6 allowed IP."""
        n = hs_node(NAME + "-gw")
        self.assertIsNotNone(n, "the gateway node is not in headscale nodes list")
        v6 = [a for a in n["ip_addresses"] if ":" in a]
        self.assertEqual(len(v6), 1, "Headscale gave the gateway no IPv6 address: %s" % n)
        gw6 = v6[0]
        self.assertTrue(gw6.startswith(INSIDE6), gw6)
        mine = tailnet6("c1")
        self.assertTrue(mine and mine.startswith(INSIDE6), "c1 has no tailnet IPv6 address")
        # c1's tailscaled knows the gateway peer by that address too.
        peers = [p for p in ts_json("c1", "status")["Peer"].values()
                 if gw6 in (p.get("TailscaleIPs") or [])]
        self.assertEqual(len(peers), 1, "c1 sees no peer with the address %s" % gw6)
        # exitgw put it on its exception TUN with the tailnet's /48, and no link-local address.
        self.assertTrue(L.wait_until(
            lambda: gw6 + "/48" in L.nsrun(NAME, "gw", "ip", "-6", "addr", "show", "dev",
                                           "exitgw0").stdout, 20, 0.3),
            "exitgw0 lacks %s/48: %s" % (gw6, L.nsrun(NAME, "gw", "ip", "-6", "addr").stdout))
        addrs = L.nsrun(NAME, "gw", "ip", "-6", "addr", "show", "dev", "exitgw0").stdout
        self.assertNotIn("fe80:", addrs)
        to_host = L.metric_sum(NAME, "exitgw_exception_packets_total", direction="to_host")
        from_host = L.metric_sum(NAME, "exitgw_exception_packets_total", direction="from_host")
        self.assertTrue(L.wait_until(lambda: L.ping(NAME, "c1", gw6, count=1)[1] == 1, 20, 0.5),
                        "c1 gets no ping answer from the gateway's tailnet address %s" % gw6)
        tx, rx, out = L.ping(NAME, "c1", gw6, count=3)
        self.assertEqual((tx, rx), (3, 3), out)
        self.assertGreaterEqual(
            L.metric_sum(NAME, "exitgw_exception_packets_total", direction="to_host"),
            to_host + 4, "the pings did not go through exitgw's exception port")
        self.assertGreaterEqual(
            L.metric_sum(NAME, "exitgw_exception_packets_total", direction="from_host"),
            from_host + 4, "the answers were not sealed back from the exception port")

    def first_byte_after_exit_node(self, host):
        """Seconds from `tailscale set --exit-node` to the first HTTP answer through it."""
        t0 = time.monotonic()
        self.use_exit(host)
        self.assertTrue(L.wait_until(lambda: fetch_whoami(host, 2) is not None, 30, 0.05),
                        "%s got no answer through the gateway within 30 s" % host)
        return time.monotonic() - t0

    def block_gateway_udp4(self, host):
        """nftables in host's namespace drops its UDP to the gateway's 10.77.0.1:51820."""
        for cmd in (["add", "table", "inet", "blockgw"],
                    ["add", "chain", "inet", "blockgw", "out",
                     "{ type filter hook output priority 0; }"],
                    ["add", "rule", "inet", "blockgw", "out", "ip", "daddr", "10.77.0.1", "udp",
                     "dport", "51820", "drop"]):
            p = L.nsrun(NAME, host, "nft", *cmd, timeout=10)
            self.assertEqual(p.returncode, 0, p.stdout)

    def test_g2_derp_fallback_first_byte_with_and_without_the_udp_port(self):
        """A fresh client's first packets reach the gateway through the connector's DERP
        relay, so its first byte does not wait for disco; one whose UDP to the gateway is
        blocked works through the relay alone, counted as relayed."""
        for c in ("r1", "r2"):
            L.lab("add-client", "--name", NAME, c, "--group", "exit", check=True, timeout=120)
        gw_ns_relay = lambda: L.metric_sum(NAME, "exitgw_derp_relay_packets_total",
                                           direction="from_peers")
        # r2 can never reach the gateway's UDP port (WireGuard and disco alike).
        self.block_gateway_udp4("r2")
        try:
            self.assertGreater(connector_metric("exitgw_connector_derp_connected"), 0,
                               "the connector holds no DERP connection")
            direct = self.first_byte_after_exit_node("r1")
            relayed_before = gw_ns_relay()
            blocked = self.first_byte_after_exit_node("r2")
            self.assertIn(NAT_POOL_ADDR, fetch_whoami("r2"))
            self.assertGreater(gw_ns_relay(), relayed_before,
                               "r2's packets did not come through the DERP relay")
            self.assertGreater(
                L.metric_sum(NAME, "exitgw_derp_relay_packets_total", direction="to_peers"), 0)
            # r1 found the direct path: its ping ends "via 10.77.0.1:51820"; r2 never does.
            p = ts("r1", "ping", "--c", "10", "--until-direct", self.gw_ip(), timeout=40)
            self.assertIn("via 10.77.0.1:51820", p.stdout.strip().splitlines()[-1], p.stdout)
            p = ts("r2", "ping", "--c", "3", self.gw_ip(), timeout=40)
            self.assertIn("via DERP", p.stdout, p.stdout)
            print("\ntime to first byte after --exit-node: %.2f s with the UDP port open, %.2f s "
                  "with it blocked (DERP relay only)" % (direct, blocked), file=sys.stderr)
        finally:
            for c in ("r1", "r2"):
                ts(c, "set", "--exit-node=")

    def test_g3_ipv6_through_the_exit_node_and_over_an_ipv6_outer_path(self):
        """IPv6 inside the tunnel: a tailscaled client's fd7a:115c:a1e0::/48 address leaves
        through exitgw translated by NPTv6 (RFC 6296, checked against tests/support's own
        implementation), for c1 over the IPv4 outer path and for v6 over the IPv6 one: v6 has
        an IPv6 address on the bridge and its UDP to 10.77.0.1:51820 dropped, so tailscaled
        must find the gateway's advertised [2001:db8:77::1]:51820 (with both open it takes
        the private IPv4 address: magicsock's betterAddr scores private +20, IPv6 +10). v6 then
        runs an iperf3 TCP stream to the IPv6 server, IPv6 inside and outside."""
        L.lab("add-client", "--name", NAME, "v6", "--group", "exit", "--bridge-ipv6",
              check=True, timeout=120)
        self.block_gateway_udp4("v6")
        try:
            for host in ("c1", "v6"):
                mine = tailnet6(host)
                self.assertTrue(mine and mine.startswith(INSIDE6), "%s has no tailnet IPv6 "
                                "address (IPv6 off in its namespace?)" % host)
                self.use_exit(host)
                want = nptv6_ref.nptv6(mine, INSIDE6, POOL6)
                self.assertTrue(L.wait_until(lambda: fetch_whoami6(host, 2) is not None, 30, 0.2),
                                "%s gets no HTTP answer from %s through the gateway" % (host, SERVER6))
                self.assertEqual(fetch_whoami6(host), want,
                                 "the IPv6 server did not see %s's address translated by NPTv6"
                                 % host)
                tx, rx, out = L.ping(NAME, host, SERVER6, count=3)
                self.assertEqual((tx, rx), (3, 3), out)
                self.assertIn(NAT_POOL_ADDR, fetch_whoami(host))  # IPv4 beside it
            # A TCP stream over IPv6 through the exit (the lab's iperf3 on the IPv6 server).
            p = L.nsrun(NAME, "v6", "iperf3", "-6", "-c", SERVER6, "-t", "2", "-J",
                        "--connect-timeout", "4000", timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout[-400:])
            mbit = json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
            print("\niperf3 TCP over IPv6 (inner and outer) through exitgw, 2 s: %.0f Mbit/s" % mbit,
                  file=sys.stderr)
            self.assertGreater(mbit, 0)
            # v6's direct path is the IPv6 one, as tailscaled and the gateway both see it.
            p = ts("v6", "ping", "--c", "10", "--until-direct", self.gw_ip(), timeout=40)
            self.assertIn("via " + GW_ENDPOINT6, p.stdout.strip().splitlines()[-1], p.stdout)
            v4 = tailnet_ip("v6")
            peer = [x for x in L.admin_json(NAME, "/v1/peers")["peers"]
                    if v4 + "/32" in x["allowed_ips"]]
            self.assertEqual(len(peer), 1, "the gateway has no peer holding %s" % v4)
            self.assertIn(tailnet6("v6") + "/128", peer[0]["allowed_ips"])
            self.assertTrue((peer[0].get("current_endpoint") or "").startswith("[2001:db8:77::"),
                            "the gateway does not send to v6 over IPv6: %s" % peer[0])
        finally:
            for host in ("c1", "v6"):
                ts(host, "set", "--exit-node=")

    def test_h_ungranted_user_reaches_nothing(self):
        before = L.metric_sum(NAME, "exitgw_drops_total", reason="policy_denied")
        p = ts("n1", "set", "--exit-node=" + self.gw_ip())
        answers = []

        def denied():
            answers.append(fetch_whoami("n1", 2))
            return L.metric_sum(NAME, "exitgw_drops_total", reason="policy_denied") > before

        try:
            # n1 sees the gateway (members see tag:exit) and may select it; its packets
            # reach exitgw (once disco found the direct path) and the filter drops them.
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertTrue(L.wait_until(denied, 20, 0.2),
                            "the gateway did not count n1's packets as policy_denied")
            self.assertIsNone(fetch_whoami("n1", 3))
            self.assertEqual([a for a in answers if a is not None], [])
            # IPv6 too: n1 has its tailnet IPv6 address and routes ::/0 to the exit node, so
            # its request reaches exitgw, which drops it as denied.
            self.assertTrue((tailnet6("n1") or "").startswith(INSIDE6), "n1 has no tailnet IPv6")
            before6 = L.metric_sum(NAME, "exitgw_drops_total", reason="policy_denied")
            self.assertIsNone(fetch_whoami6("n1", 3))
            self.assertTrue(L.wait_until(lambda: L.metric_sum(
                NAME, "exitgw_drops_total", reason="policy_denied") > before6, 5),
                "n1's IPv6 request did not reach the gateway to be denied")
        finally:
            ts("n1", "set", "--exit-node=")

    def test_i_revoked_approval_stops_forwarding_and_restored_restores(self):
        self.use_exit("c2")
        self.assertTrue(L.wait_until(lambda: fetch_whoami("c2", 2) is not None, 20, 0.2))
        node_id = str(hs_node(NAME + "-gw")["id"])
        try:
            p = headscale("nodes", "approve-routes", "--identifier", node_id, "--routes", "")
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertTrue(L.wait_until(lambda: fetch_whoami("c2", 1) is None, 15, 0.5),
                            "still forwarding 15 s after the approval was revoked")
        finally:
            p = headscale("nodes", "approve-routes", "--identifier", node_id,
                          "--routes", "0.0.0.0/0,::/0")
            self.assertEqual(p.returncode, 0, p.stdout)
        self.use_exit("c2")
        self.assertTrue(L.wait_until(lambda: fetch_whoami("c2", 2) is not None, 20, 0.5),
                        "not forwarding 20 s after the approval was restored")

    def test_j_headscale_stopped_60s_clients_keep_working(self):
        """Through the reference exit node (c2) and through exitgw (c1)."""
        users = {"c2": self.x1_ip(), "c1": self.gw_ip()}
        for c, ip in users.items():
            self.use_exit(c, ip)
        try:
            for c in users:
                self.assertTrue(L.wait_until(lambda: fetch_whoami(c, 2) is not None, 20, 0.3), c)
            pid = L.pids(NAME)["headscale"]
            L.lab("headscale", "--name", NAME, "stop", check=True)
            self.assertFalse(L.pid_running(pid))
            failures, t_end = [], time.monotonic() + 60
            while time.monotonic() < t_end:
                failures += [c for c in users if fetch_whoami(c, 3) is None]
                time.sleep(5)
            self.assertEqual(failures, [], "fetches failed while Headscale was down")
            p = L.lab("headscale", "--name", NAME, "start", timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout)
            names = ["c2", "x1"] + (["c1", NAME + "-gw"] if "c1" in users else [])
            self.assertTrue(L.wait_until(
                lambda: all((hs_node(n) or {}).get("online") for n in names), 60, 2),
                "not every node back online 60 s after Headscale restarted")
            for c in users:
                self.assertIsNotNone(fetch_whoami(c), c)
        finally:
            for c in users:
                ts(c, "set", "--exit-node=")

    def test_k_throughput_exitgw_beside_tailscaled_exit_node(self):
        """Reported, not asserted beyond "it flows": iperf3 from c1 through exitgw and from
        c2 through the tailscaled exit node x1, one after the other in the same run."""
        rates = {}
        for c, ip in (("c1", self.gw_ip()), ("c2", self.x1_ip())):
            self.assertEqual(ts(c, "set", "--exit-node=" + ip).returncode, 0)
            try:
                self.assertTrue(L.wait_until(lambda: fetch_whoami(c, 2) is not None, 20, 0.3))
                p = L.nsrun(NAME, c, "iperf3", "-c", L.SERVER, "-t", "5", "-J",
                            "--connect-timeout", "4000", timeout=30)
                rates[c] = json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
            finally:
                ts(c, "set", "--exit-node=")
        print("\niperf3 TCP 5 s: through exitgw %.0f Mbit/s, through a tailscaled exit node "
              "%.0f Mbit/s" % (rates["c1"], rates["c2"]), file=sys.stderr)
        self.assertGreater(rates["c1"], 0)

    def test_l_node_deleted_in_headscale_leaves_the_gateway(self):

        def peers():
            return L.metric_sum(NAME, "exitgw_wg_peers")

        before = peers()
        L.lab("add-client", "--name", NAME, "d1", check=True, timeout=120)
        self.assertTrue(L.wait_until(lambda: peers() == before + 1, 20, 0.5),
                        "exitgw_wg_peers %s, not %s + 1, after d1 joined" % (peers(), before))
        p = headscale("nodes", "delete", "--identifier", str(hs_node("d1")["id"]), "--force")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertTrue(L.wait_until(lambda: peers() == before, 20, 0.5),
                        "exitgw_wg_peers %s, not %s, after d1 was deleted" % (peers(), before))

    # ------------------------------------------------------------- last: down cleans up
    def test_z_down_removes_everything(self):
        d = L.lab_dir(NAME)
        pids = L.pids(NAME)
        p = L.down(NAME)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(L.namespaces(NAME), [])
        self.assertEqual([n for n in os.listdir("/etc/netns") if n.startswith(NAME + "-")]
                         if os.path.isdir("/etc/netns") else [], [])
        self.assertFalse(os.path.exists(d))
        self.assertEqual([k for k, v in pids.items() if L.pid_running(v)], [])
        self.assertEqual(file_hash(RESOLV), self.resolv_before)


class AutoApproveTest(unittest.TestCase):
    """The second approval variant: autoApprovers.exitNode approves tag:exit's routes, the
    lab never runs approve-routes."""

    def test_auto_approved_exit_routes(self):
        require_connector()
        name = L.lab_name("ta")
        L.down(name)
        try:
            p = L.up(name, clients=1, extra=("--tailnet", "--auto-approve", "--connector",
                                              CONNECTOR))
            self.assertIn("approved by autoApprovers.exitNode", p.stdout)
            with open(os.path.join(L.lab_dir(name), "headscale", "policy.hujson")) as f:
                self.assertIn('"exitNode"', f.read())
            p = L.lab_exec(name, "ctl", "headscale", "nodes", "list", "-o", "json")
            gw = [n for n in json.loads(p.stdout) if n.get("given_name") == name + "-gw"][0]
            self.assertIn("0.0.0.0/0", gw.get("approved_routes") or [])
        finally:
            L.down(name)


if __name__ == "__main__":
    unittest.main(argv=parse_args(), verbosity=2)
