"""The tailnet mode of tools/lab: Headscale, real tailscaled clients and exitgw-connector.

Everything stays inside the lab's namespaces; nothing reaches the internet:
  P-ctl: Headscale (https://10.77.0.2, its embedded DERP on the same port, STUN on
         10.77.0.2:3478), eth0 10.77.0.2/24 on the lab bridge and gw0 10.78.0.2/30, a
         point-to-point link to P-gw whose ctl0 (10.78.0.1/30) carries the connector's
         control traffic (exitgw owns tun0 and inet0 with af_packet; the kernel of P-gw has
         no other address)
  P-cN:  tailscaled (tun tsNAME, state and socket in the lab dir), eth0 on the bridge
  P-gw:  exitgw (as in the plain lab) + exitgw-connector (--endpoint 10.77.0.1:51820 and
         --endpoint [2001:db8:77::1]:51820, the outer IPv6 path, which a client added with
         --bridge-ipv6 can reach)

IPv6 through the exit: every client namespace has IPv6 on (no link-local addresses), so
tailscaled gives its TUN the node's fd7a:115c:a1e0::/48 address and routes ::/0 to the exit
node; exitgw translates it with NPTv6 to 2001:db8:100::/48 (gateway 2: 2001:db8:200::/48),
routed back by P-inet, and the policy grants the lab's IPv6 server net (lab-net6).

Why the embedded DERP: Headscale v0.29.2 refuses to start with an empty DERP map
(errEmptyInitialDERPMap in hscontrol/app.go) and a DERP map naming a server that does not run
would be a lie; the embedded DERP is real, local, and gives every client a home region (which
`tailscale exit-node suggest` needs). It needs an https server_url, so the lab makes its own
CA and a certificate for 10.77.0.2; tailscaled and the connector trust it through
SSL_CERT_FILE (Go's x509 reads it; no system store is touched). exitgw itself speaks no
DERP: the connector holds the DERP connection (home region 900, advertised in NetInfo) and
relays peers' packets to exitgw over its exception TUN (exitgw0: 169.254.77.1 the connector's
relay sockets, 169.254.77.2:51820 exitgw), so a client's first packets are answered before
disco finds the direct path, and a client that cannot reach UDP 10.77.0.1:51820 works through
DERP alone. The exception TUN also carries the gateway's tailnet address, where the
connector serves the exit node's DNS (DoH), forwarding to the lab's resolver 198.51.100.10
over a management link of its own (dns0, 10.79.0.1/30 to P-inet).

With --gateways 2 a second gateway joins in a second "region" (tools/lab up --tailnet
--gateways 2):
  P-gw2: exitgw (--region lab2, one worker, DPDK --file-prefix=Pg2) on tun0 10.77.0.3 and
         2001:db8:77::3 on the bridge and inet0 192.0.4.1/24 into P-inet (192.0.4.2 there;
         its NAT pools 203.0.113.2/32 and 2001:db8:200::/48 routed back over that link) + its
         own exitgw-connector (--endpoint 10.77.0.3:51820, [2001:db8:77::3]:51820), whose control traffic goes over ctl0 10.78.0.5/30 to
         P-ctl (gw20 10.78.0.6/30)
Both connectors then advertise a Location and a load-following priority (GATEWAY_LOCATIONS,
LAB_PRIORITY_CURVE; --connector-flag overrides) and serve their own metrics on
127.0.0.1:9552 in their namespace. Why these locations: tailscaled (ipn/ipnlocal
suggestExitNodeUsingDERP, v1.102.5) measures a DERP-less candidate's Location from the
client's home DERP region; Headscale's embedded region has no coordinates (0, 0), so both
gateways sit near (0, 0), 33 and 56 km away, inside tailscaled's 100 km allowance of the
nearest: Location.Priority decides, and gw (priority 100) is suggested until its load or a
withdrawn approval hands the suggestion to gw2 (priority 60).

Policy (HuJSON, rewritten and SIGHUP-reloaded on add-client): group:exit is granted
autogroup:internet (and the lab's documentation ranges by name), group:noexit is not; every
member sees every member and the gateway; tag:exit is owned by group:admin; nodeAttrs give tag:exit suggest-exit-node; with --auto-approve,
autoApprovers.exitNode approves tag:exit's exit routes (otherwise the lab approves them the
admin way: headscale nodes approve-routes).
"""
import json
import os
import re
import shutil
import signal
import sys
import time

BIN_DIR = os.environ.get("EXITGW_LAB_BIN", "/opt/exitgw-lab/bin")
CTL_ADDR = "10.77.0.2"
CTL_P2P_GW = "10.78.0.1"
CTL_P2P_CTL = "10.78.0.2"
SERVER_URL = "https://%s" % CTL_ADDR
STUN_PORT = 3478
DERP_REGION = 900
TS_BASE_PORT = 41640
ADMIN_URL = "http://127.0.0.1:9551"
WG_ENDPOINT = "10.77.0.1:51820"
WG_ENDPOINT6 = "[2001:db8:77::1]:51820"  # tools/lab GW_TUN6: the outer IPv6 path
# The operator's resolver the connector's PeerAPI DNS forwards to: the lab's DNS server in
# P-inet, reached over a management link of its own (dns0 in P-gw, 10.79.0.1/30 for gateway 1,
# 10.79.0.5/30 for gateway 2), never through exitgw's ports.
DNS_UPSTREAM = "198.51.100.10"
DNS_LINKS = {1: ("10.79.0.1", "10.79.0.2", "gwdns"), 2: ("10.79.0.5", "10.79.0.6", "gw2dns")}
NETNS_ETC = "/etc/netns"
GROUPS = ("exit", "noexit")
ADMIN_USER = "labadmin"


class TailnetError(Exception):
    pass


def binary(name):
    return os.path.join(BIN_DIR, name)


def check_binaries():
    missing = [n for n in ("headscale", "tailscaled", "tailscale") if not os.access(binary(n), os.X_OK)]
    if missing:
        raise TailnetError("tailnet mode needs %s in %s: run tools/install-tailnet (or set "
                           "EXITGW_LAB_BIN)" % (", ".join(missing), BIN_DIR))


# --------------------------------------------------------------------------- the lab's hooks
# `lab` is tools/lab's Lab, `L` the tools/lab module (its run/spawn/wait_for/... helpers).

def is_tailnet(lab):
    return bool((lab.state or {}).get("tailnet"))


def ctl_ns(lab):
    return lab.name + "-ctl"


def hs_dir(lab):
    return lab.path("headscale")


def hs_config(lab):
    return os.path.join(hs_dir(lab), "config.yaml")


def ts_dir(lab, cname):
    return lab.path("ts-" + cname)


def ts_socket(lab, cname):
    return os.path.join(ts_dir(lab, cname), "tailscaled.sock")


def marker(lab, base):
    """Command-line marker of the processes behind the tailnet pid files."""
    if base == "headscale":
        return "headscale serve -c %s" % hs_config(lab)
    if base in ("connector", "connector2"):
        return "--state-dir %s " % lab.path(base)
    if base == "exitgw2":
        return "--file-prefix=%s " % gw2_prefix(lab)
    if base.startswith("ts-"):
        return "--socket=%s" % ts_socket(lab, base[3:])
    return None


def wanted_namespaces(lab):
    if not is_tailnet(lab):
        return set()
    return {ctl_ns(lab)} | ({gw2_ns(lab)} if gateways(lab) > 1 else set())


def client_problems(lab, L, c):
    pf = lab.path("ts-%s.pid" % c["name"])
    if not L.alive(L.read_pid(pf), marker(lab, "ts-" + c["name"])):
        return ["tailscaled of %s is not running (log %s)" % (c["name"], lab.path("ts-%s.log" % c["name"]))]
    return []


def problems(lab, L):
    out = []
    bases = ["headscale"] + ([] if lab.state["tailnet"]["connector"] == "none" else ["connector"])
    if gateways(lab) > 1:
        bases += ["exitgw2", "connector2"]
    for base in bases:
        pf = lab.path(base + ".pid")
        if not L.alive(L.read_pid(pf), marker(lab, base)):
            out.append("%s is not running (log %s)" % (base, lab.path(base + ".log")))
    return out


def teardown_extra(lab, say):
    """Removes what `ip netns del` leaves: /etc/netns/NS of the lab's namespaces."""
    pat = re.compile(r"^%s-[a-z0-9]+$" % re.escape(lab.name))
    try:
        names = [n for n in os.listdir(NETNS_ETC) if pat.match(n)]
    except OSError:
        names = []
    for n in names:
        shutil.rmtree(os.path.join(NETNS_ETC, n), ignore_errors=True)
    # The second gateway's DPDK runtime dir (the first's is tools/lab's).
    if lab.state and gateways(lab) > 1:
        shutil.rmtree(os.path.join("/var/run/dpdk", gw2_prefix(lab)), ignore_errors=True)
    if names:
        say("removed %s" % " ".join(os.path.join(NETNS_ETC, n) for n in names))
        try:
            os.rmdir(NETNS_ETC)  # only when no other namespace keeps files there
        except OSError:
            pass


def status_lines(lab, L):
    """Headscale's view of the tailnet: every node, its addresses, online, exit routes."""
    try:
        ns = nodes(lab, L)
    except TailnetError as e:
        return ["headscale: %s" % e]
    lines = []
    if gateways(lab) > 1:
        lines.append("second gateway %s: readyz %s, log %s" % (
            gw2_ns(lab), gw2_readyz(lab, L) or "-", lab.path("exitgw2.log")))
    lines.append("headscale %s (%s), %d nodes:" % (SERVER_URL, ctl_ns(lab), len(ns)))
    for n in ns:
        lines.append("  %-12s id %-3s %-15s %-7s user %-9s tags %-9s routes %s approved %s" % (
            n.get("given_name"), n.get("id"), ",".join(a for a in n.get("ip_addresses", [])
                                                       if ":" not in a),
            "online" if n.get("online") else "offline", (n.get("user") or {}).get("name", "-"),
            ",".join(n.get("tags") or []) or "-", ",".join(n.get("available_routes") or []) or "-",
            ",".join(n.get("approved_routes") or []) or "-"))
    return lines


def exec_command(lab, host, command):
    """`tools/lab exec HOST tailscale ...` reaches HOST's own tailscaled; `exec ctl headscale`
    uses the lab's Headscale config."""
    if not is_tailnet(lab) or not command:
        return command
    if command[0] == "tailscale" and lab.client(host):
        return [binary("tailscale"), "--socket=" + ts_socket(lab, host)] + command[1:]
    if command[0] == "headscale":
        return [binary("headscale"), "-c", hs_config(lab)] + command[1:]
    return command


# --------------------------------------------------------------------------- CA and config

def make_ca(lab, L):
    d = hs_dir(lab)
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, pem = (os.path.join(d, f) for f in ("tls.key", "tls.csr", "tls.pem"))
    ext = os.path.join(d, "tls.ext")
    L.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days", "30",
           "-subj", "/CN=exitgw lab %s CA" % lab.name,
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    L.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", key, "-out", csr, "-subj", "/CN=%s" % CTL_ADDR])
    L.write_file(ext, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                 "extendedKeyUsage=serverAuth\nsubjectAltName=IP:%s\n" % CTL_ADDR)
    L.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
           "-CAcreateserial", "-out", pem, "-days", "30", "-extfile", ext])
    return ca_pem


HEADSCALE_CONFIG = """\
# Headscale for exitgw lab {name}, written by tools/lab_tailnet.py: offline, in {ns}.
server_url: {server_url}
listen_addr: {ctl}:443
metrics_listen_addr: 127.0.0.1:9090
grpc_listen_addr: 127.0.0.1:50443
grpc_allow_insecure: false
noise:
  private_key_path: {dir}/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: {region}
    region_code: lab
    region_name: exitgw lab {name}
    verify_clients: true
    stun_listen_addr: {ctl}:{stun}
    private_key_path: {dir}/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: {ctl}
  urls: []
  paths: []
  auto_update_enabled: false
disable_check_updates: true
node:
  expiry: 0
database:
  type: sqlite
  sqlite:
    path: {dir}/db.sqlite
    write_ahead_log: true
tls_cert_path: {dir}/tls.pem
tls_key_path: {dir}/tls.key
log:
  level: info
  format: text
policy:
  mode: file
  path: {dir}/policy.hujson
dns:
  magic_dns: true
  base_domain: tailnet.lab.test
  override_local_dns: false
  nameservers:
    global: []
unix_socket: {dir}/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
taildrop:
  enabled: false
"""


def policy_text(lab):
    """The tailnet policy from the lab state: client users by group, the exit tag's owner."""
    t = lab.state["tailnet"]
    groups = {"group:%s" % g: sorted(c["name"] + "@" for c in lab.clients if c.get("group") == g)
              for g in GROUPS}
    groups["group:admin"] = [ADMIN_USER + "@"]
    pol = {
        "groups": groups,
        "tagOwners": {"tag:exit": ["group:admin"]},
        # The lab's "internet" lives in documentation ranges, which exitgw's built-in egress
        # safety list blocks unless a grant names them (autogroup:internet never lifts it).
        "hosts": {"lab-net-2": "198.51.100.0/24", "lab-net-3": "203.0.113.0/24",
                  "lab-net6": "2001:db8:5::/64"},
        "grants": [
            # The exit users may use exit nodes (autogroup:internet); noexit users may not.
            {"src": ["group:exit"], "dst": ["autogroup:internet"], "ip": ["*"]},
            {"src": ["group:exit"], "dst": ["lab-net-2", "lab-net-3", "lab-net6"], "ip": ["*"]},
            # Members see each other (tailscale status, tailscale ping between clients).
            {"src": ["autogroup:member"], "dst": ["autogroup:member"], "ip": ["*"]},
            # Every member sees the gateway (tailscale ping it); whether it may exit through
            # it is the filter's call, so a noexit user's packets reach exitgw and are
            # counted as denied there instead of never being sent.
            {"src": ["autogroup:member"], "dst": ["tag:exit"], "ip": ["*"]},
        ],
        "nodeAttrs": [{"target": ["tag:exit"], "attr": ["suggest-exit-node"]}],
        "autoApprovers": {"exitNode": ["tag:exit"]} if t.get("auto_approve") else {},
    }
    head = ("// Tailnet policy of exitgw lab %s, written by tools/lab_tailnet.py (HuJSON).\n"
            "// autoApprovers.exitNode is %s.\n"
            % (lab.name, "on (--auto-approve)" if t.get("auto_approve") else
               "off: the lab approves exit routes with headscale nodes approve-routes"))
    return head + json.dumps(pol, indent=2) + "\n"


def write_policy(lab, L):
    path = os.path.join(hs_dir(lab), "policy.hujson")
    L.write_file(path + ".tmp", policy_text(lab), 0o600)
    os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------- headscale

def hs(lab, L, *args, timeout=20, check=True):
    """Runs the headscale CLI against the lab's server (unix socket named in its config)."""
    p = L.run([binary("headscale"), "-c", hs_config(lab)] + list(args), check=False,
              timeout=timeout)
    if check and p.returncode != 0:
        raise TailnetError("headscale %s failed (exit %d): %s"
                           % (" ".join(args), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def hs_json(lab, L, *args):
    p = hs(lab, L, *(list(args) + ["-o", "json"]))
    try:
        return json.loads(p.stdout or "null")
    except ValueError:
        raise TailnetError("headscale %s: not JSON: %s" % (" ".join(args), p.stdout[:200]))


def user_id(lab, L, name):
    for u in hs_json(lab, L, "users", "list") or []:
        if u.get("name") == name:
            return int(u["id"])
    return None


def ensure_user(lab, L, name):
    uid = user_id(lab, L, name)
    if uid is None:
        hs(lab, L, "users", "create", name)
        uid = user_id(lab, L, name)
    if uid is None:
        raise TailnetError("headscale users create %s: the user does not appear in users list" % name)
    return uid


def preauth_key(lab, L, user, tags=()):
    args = ["preauthkeys", "create", "--user", str(ensure_user(lab, L, user)), "--expiration", "1h"]
    if tags:
        args += ["--tags", ",".join(tags)]
    key = hs(lab, L, *args).stdout.strip().splitlines()
    if not key:
        raise TailnetError("headscale preauthkeys create: no key printed")
    return key[-1].strip()


def nodes(lab, L):
    return hs_json(lab, L, "nodes", "list") or []


def node_by_name(lab, L, name):
    for n in nodes(lab, L):
        if name in (n.get("name"), n.get("given_name")):
            return n
    return None


def start_headscale(lab, L):
    ns = ctl_ns(lab)
    d = hs_dir(lab)
    os.makedirs(d, mode=0o700, exist_ok=True)
    L.write_file(hs_config(lab), HEADSCALE_CONFIG.format(
        name=lab.name, ns=ns, server_url=SERVER_URL, ctl=CTL_ADDR, dir=d, region=DERP_REGION,
        stun=STUN_PORT), 0o600)
    write_policy(lab, L)
    logf = lab.path("headscale.log")
    pid = L.spawn([binary("headscale"), "serve", "-c", hs_config(lab)], ns, logf)
    L.write_file(lab.path("headscale.pid"), "%d\n" % pid)
    sock = os.path.join(d, "headscale.sock")

    def ready():
        return os.path.exists(sock) and hs(lab, L, "users", "list", check=False,
                                           timeout=5).returncode == 0

    if not L.wait_for(lambda: not L.alive(pid) or ready(), 30, step=0.3) or not L.alive(pid):
        raise TailnetError("headscale did not come up; last lines of %s:\n%s" % (logf, L.log_tail(logf)))
    return pid


def stop_headscale(lab, L):
    pid = L.read_pid(lab.path("headscale.pid"))
    if L.alive(pid, marker(lab, "headscale")):
        L.kill_pids([pid], {pid: "headscale"}, grace=5.0)


def reload_policy(lab, L):
    write_policy(lab, L)
    pid = L.read_pid(lab.path("headscale.pid"))
    if L.alive(pid, marker(lab, "headscale")):
        os.kill(pid, signal.SIGHUP)


# --------------------------------------------------------------------------- network

def create_ctl_net(lab, L):
    ns = ctl_ns(lab)
    L.ns_add(ns)
    L.veth(ns, "eth0", lab.sw, "ctl")
    L.bridge_port(lab, "ctl")
    L.run(["ip", "-n", ns, "addr", "add", CTL_ADDR + "/24", "dev", "eth0"])
    L.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    # The connector's way to Headscale: a kernel link of its own beside exitgw's ports.
    L.veth(lab.gw, "ctl0", ns, "gw0")
    L.run(["ip", "-n", lab.gw, "addr", "add", CTL_P2P_GW + "/30", "dev", "ctl0"])
    L.run(["ip", "-n", ns, "addr", "add", CTL_P2P_CTL + "/30", "dev", "gw0"])
    L.run(["ip", "-n", lab.gw, "link", "set", "ctl0", "up"])
    L.run(["ip", "-n", ns, "link", "set", "gw0", "up"])
    L.run(["ip", "-n", lab.gw, "route", "add", CTL_ADDR + "/32", "via", CTL_P2P_CTL])


def create_dns_link(lab, L, idx):
    """Gateway idx's management link to the lab's resolver (DNS_LINKS)."""
    ns = lab.gw if idx == 1 else gw2_ns(lab)
    gw_addr, inet_addr, inet_dev = DNS_LINKS[idx]
    L.veth(ns, "dns0", lab.inet, inet_dev)
    L.run(["ip", "-n", ns, "addr", "add", gw_addr + "/30", "dev", "dns0"])
    L.run(["ip", "-n", lab.inet, "addr", "add", inet_addr + "/30", "dev", inet_dev])
    L.run(["ip", "-n", ns, "link", "set", "dns0", "up"])
    L.run(["ip", "-n", lab.inet, "link", "set", inet_dev, "up"])
    L.run(["ip", "-n", ns, "route", "add", DNS_UPSTREAM + "/32", "via", inet_addr])


def write_resolv(ns, text="nameserver 198.51.100.10\nsearch lab.test\n"):
    """The namespace's own resolv.conf (bind-mounted by ip netns exec over /etc/resolv.conf),
    written before tailscaled starts so nothing there can rewrite the machine's."""
    d = os.path.join(NETNS_ETC, ns)
    os.makedirs(d, mode=0o755, exist_ok=True)
    with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write(text)


def enable_ipv6(L, ns):
    """IPv6 on in a client's namespace (the lab starts every one with it off): tailscaled
    configures its tailnet IPv6 address and routes ::/0 to an exit node only when
    net.ipv6.conf.all.disable_ipv6 is 0 (wgengine/router checkIPv6). No interface makes a
    link-local address (addr_gen_mode 1): the kernel then sends no router or MLD solicitations
    of its own onto the bridge or into the tunnel."""
    for dev in ("default", "eth0"):
        L.run(["sysctl", "-qw", "net.ipv6.conf.%s.addr_gen_mode=1" % dev], ns=ns)
    L.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0",
           "net.ipv6.conf.default.disable_ipv6=0"], ns=ns)


def ts_env(lab):
    env = dict(os.environ)
    env["SSL_CERT_FILE"] = os.path.join(hs_dir(lab), "ca.pem")
    env["TS_DEBUG_FIREWALL_MODE"] = "nftables"  # no iptables binary here; nftables via netlink
    return env


# --------------------------------------------------------------------------- clients

def tailscale(lab, L, cname, *args, timeout=30, check=True):
    c = lab.client(cname)
    p = L.run([binary("tailscale"), "--socket=" + ts_socket(lab, cname)] + list(args), ns=c["ns"],
              check=False, timeout=timeout)
    if check and p.returncode != 0:
        raise TailnetError("%s: tailscale %s failed (exit %d): %s"
                           % (cname, " ".join(args), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def start_client(lab, L, c):
    """tailscaled in the client's namespace, registered with a pre-auth key of its own user."""
    name = c["name"]
    d = ts_dir(lab, name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    write_resolv(c["ns"])
    enable_ipv6(L, c["ns"])
    sock = ts_socket(lab, name)
    logf = lab.path("ts-%s.log" % name)
    pid = L.spawn([binary("tailscaled"), "--state=%s" % os.path.join(d, "tailscaled.state"),
                   "--statedir=%s" % d, "--socket=%s" % sock, "--tun=ts%s" % name,
                   "--port=%d" % (TS_BASE_PORT + c["slot"]), "--no-logs-no-support"],
                  c["ns"], logf, env=ts_env(lab))
    L.write_file(lab.path("ts-%s.pid" % name), "%d\n" % pid)
    if not L.wait_for(lambda: not L.alive(pid) or os.path.exists(sock), 15) or not L.alive(pid):
        raise TailnetError("tailscaled of %s did not start; last lines of %s:\n%s"
                           % (name, logf, L.log_tail(logf)))
    key = preauth_key(lab, L, name)
    extra = ["--advertise-exit-node"] if c.get("exit_node") else []
    tailscale(lab, L, name, "up", "--login-server=" + SERVER_URL, "--auth-key=" + key,
              "--hostname=" + name, "--accept-dns=false", "--timeout=60s", *extra, timeout=75)
    st = json.loads(tailscale(lab, L, name, "status", "--json").stdout)
    c["ts_ips"] = (st.get("Self") or {}).get("TailscaleIPs") or []
    c["ts_user"] = name


def add_client(lab, L, c, group, exit_node=False):
    if group not in GROUPS:
        raise TailnetError("--group %r: one of %s" % (group, ", ".join(GROUPS)))
    c["group"] = group
    if exit_node:
        c["exit_node"] = True
        create_reference_exit_net(lab, L, c)
    ensure_user(lab, L, c["name"])
    reload_policy(lab, L)
    start_client(lab, L, c)
    if exit_node:
        n = node_by_name(lab, L, c["name"])
        if not n or not L.wait_for(lambda: all(r in route_state(lab, L, n["id"])[0]
                                               for r in EXIT_ROUTES), 20, step=0.5):
            raise TailnetError("%s did not announce the exit routes" % c["name"])
        approve_exit(lab, L, n["id"], True)


def exit_net_addrs(c):
    """(inet side, exit node side) of a reference exit node's /30 into P-inet."""
    if c["slot"] > 63:
        raise TailnetError("a reference exit node needs a client slot below 64 (192.0.3.0/24)")
    base = 4 * c["slot"]
    return "192.0.3.%d" % (base + 1), "192.0.3.%d" % (base + 2)


def create_reference_exit_net(lab, L, c):
    """A tailscaled exit node to compare exitgw with: its own link into P-inet (kernel
    forwarding, tailscaled's own SNAT) beside its bridge port."""
    inet_side, exit_side = exit_net_addrs(c)
    dev = "x" + c["name"][:14]
    L.veth(c["ns"], "inet0", lab.inet, dev)
    L.run(["ip", "-n", lab.inet, "addr", "add", inet_side + "/30", "dev", dev])
    L.run(["ip", "-n", c["ns"], "addr", "add", exit_side + "/30", "dev", "inet0"])
    L.run(["ip", "-n", lab.inet, "link", "set", dev, "up"])
    L.run(["ip", "-n", c["ns"], "link", "set", "inet0", "up"])
    L.run(["ip", "-n", c["ns"], "route", "add", "default", "via", inet_side])
    L.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=c["ns"])


# --------------------------------------------------------------------------- gateway

def default_connector(repo):
    return os.path.join(repo, "build", "connector", "exitgw-connector")


# The two gateways' places (--gateways 2; the module docstring says why near 0, 0): the first
# the nearer and preferred, the second in another region with a lower base priority.
GATEWAY_LOCATIONS = (
    {"country": "Labland", "country-code": "LL", "city": "North", "city-code": "LNO",
     "latitude": "0.3", "longitude": "0", "priority": "100"},
    {"country": "Labland", "country-code": "LL", "city": "South", "city-code": "LSO",
     "latitude": "-0.5", "longitude": "0", "priority": "60"},
)
# The load curve both connectors run with in the two-gateway lab: from a busiest-worker busy
# ratio of 0.1 (the connector's 10 s moving average) the priority drops by 50: 100 -> 50, below
# the other's 60; it comes back once the average falls below 0.05. One tailscaled client's
# iperf3 -P 2 through exitgw on this shared 2-CPU machine gives single 100 ms samples of
# 0.11-1.0 on the worker it lands on (an average of 0.2-0.4, lower while other work shares the
# CPUs) at about 520 Mbit/s; idle gives 0. 0.2 was reached, but with too thin a margin on a busy
# machine; a second step at 0.5 sat on the average's edge and changed the priority (and every
# client's netmap) every few seconds.
LAB_PRIORITY_CURVE = "0.1:-50"
LAB_PRIORITY_HYSTERESIS = "0.05"
CONNECTOR_METRICS = "127.0.0.1:9552"


def gateways(lab):
    return int(((lab.state or {}).get("tailnet") or {}).get("gateways", 1))


def connector_extra(lab, idx):
    """The connector flags beyond the contract's: location and load priority when the lab has
    two gateways, its metrics listener, then --connector-flag (later flags win)."""
    t = lab.state["tailnet"]
    out = []
    if gateways(lab) > 1:
        for k, v in sorted(GATEWAY_LOCATIONS[idx - 1].items()):
            out += ["--location-" + k, v]
        out += ["--priority-load-curve", LAB_PRIORITY_CURVE,
                "--priority-hysteresis", LAB_PRIORITY_HYSTERESIS,
                "--load-poll-interval", "1s",
                # With a home DERP, tailscaled suggests by DERP region latency and then at
                # random within the region (ipn/ipnlocal randomNode): Location.Priority
                # decides only among DERP-less exit nodes, so these two advertise none.
                "--derp-region", "0"]
    out += ["--metrics-listen", CONNECTOR_METRICS]  # its own metrics, DoH's included
    for item in t.get("connector_flags") or []:
        k, _, v = item.partition("=")
        out += ["--" + k, v]
    return out


def start_connector(lab, L, connector, idx=1):
    """exitgw-connector of gateway idx (1: P-gw, 2: P-gw2) with the contract's flags; returns
    its pid."""
    if not os.access(connector, os.X_OK):
        raise TailnetError("no exitgw-connector at %s: build it (connector/) or pass --connector "
                           "PATH; tailnet mode cannot register the gateway without it" % connector)
    sfx = "" if idx == 1 else str(idx)
    key = preauth_key(lab, L, ADMIN_USER, tags=("tag:exit",))
    kf = lab.path("gateway%s.authkey" % sfx)
    L.write_file(kf, key + "\n", 0o600)
    state = lab.path("connector" + sfx)
    os.makedirs(state, mode=0o700, exist_ok=True)
    ns = lab.gw if idx == 1 else gw2_ns(lab)
    args = [connector, "--login-server", SERVER_URL, "--auth-key-file", kf,
            "--state-dir", state, "--wg-key-file", lab.path("gateway%s.key" % sfx),
            "--disco-key-file", lab.path("disco%s.key" % sfx),
            "--endpoint", WG_ENDPOINT if idx == 1 else GW2_WG_ENDPOINT,
            "--endpoint", WG_ENDPOINT6 if idx == 1 else GW2_WG_ENDPOINT6,
            "--admin-url", ADMIN_URL, "--admin-token-file", lab.path("admin.token"),
            "--hostname", ns, "--dns-upstream", DNS_UPSTREAM + ":53"] + connector_extra(lab, idx)
    L.write_file(lab.path("connector%s.cmd" % sfx), " ".join(args) + "\n")
    logf = lab.path("connector%s.log" % sfx)
    pid = L.spawn(args, ns, logf, env=ts_env(lab))
    L.write_file(lab.path("connector%s.pid" % sfx), "%d\n" % pid)
    return pid


# --------------------------------------------------------------------------- second gateway

GW2_TUN = "10.77.0.3"
GW2_WG_ENDPOINT = GW2_TUN + ":51820"
GW2_TUN6 = "2001:db8:77::3"
GW2_WG_ENDPOINT6 = "[%s]:51820" % GW2_TUN6
GW2_INET_GW = "192.0.4.1"   # exitgw's internet port
GW2_INET = "192.0.4.2"      # P-inet's end of the link
GW2_INET_GW6 = "2001:db8:4::1"
GW2_INET6 = "2001:db8:4::2"
GW2_NAT_POOL = "203.0.113.2/32"
GW2_NAT_POOL6 = "2001:db8:200::/48"  # NPTv6, as gateway 1's 2001:db8:100::/48
GW2_P2P_GW = "10.78.0.5"
GW2_P2P_CTL = "10.78.0.6"
GW2_WORKERS = 1


def gw2_ns(lab):
    return lab.name + "-gw2"


def gw2_prefix(lab):
    return lab.name + "g2"


def gw2_flags(lab, L):
    """The first gateway's flags with the second's addresses, keys, files and region."""
    own = {"tunnel_addr": GW2_TUN + "/24", "internet_addr": GW2_INET_GW + "/24",
           "internet_gateway": GW2_INET, "internet_addr6": GW2_INET_GW6 + "/64",
           "internet_gateway6": GW2_INET6, "tunnel_addr6": GW2_TUN6 + "/64",
           "nat_pool6": GW2_NAT_POOL6, "region": "lab2", "node": gw2_ns(lab),
           "private_key_file": lab.path("gateway2.key"), "peers_file": lab.path("peers2.conf"),
           "nat_pool": GW2_NAT_POOL, "approvals_file": lab.path("approvals2.conf")}
    flags = [(f, own.get(f, v)) for f, v in L.gateway_flags(lab)]
    flags.append(("disco_private_key_file", lab.path("disco2.key")))
    flags += [tuple(item.split("=", 1)) for item in lab.state.get("gw_flags") or []]
    return flags


def create_gw2_net(lab, L):
    ns = gw2_ns(lab)
    L.ns_add(ns)
    L.veth(ns, "tun0", lab.sw, "gw2")
    L.bridge_port(lab, "gw2")
    L.veth(ns, "inet0", lab.inet, "gw2")
    for dev in ("tun0", "inet0"):
        L.run(["ip", "-n", ns, "link", "set", dev, "up"])
    L.run(["ip", "-n", lab.inet, "addr", "add", GW2_INET + "/24", "dev", "gw2"])
    L.run(["sysctl", "-qw", "net.ipv6.conf.gw2.disable_ipv6=0"], ns=lab.inet)
    L.run(["ip", "-n", lab.inet, "addr", "add", GW2_INET6 + "/64", "dev", "gw2", "nodad"])
    L.run(["ip", "-n", lab.inet, "link", "set", "gw2", "up"])
    L.run(["ip", "-n", lab.inet, "route", "add", GW2_NAT_POOL, "via", GW2_INET_GW])
    L.run(["ip", "-n", lab.inet, "-6", "route", "add", GW2_NAT_POOL6, "via", GW2_INET_GW6])
    L.veth(ns, "ctl0", ctl_ns(lab), "gw20")
    L.run(["ip", "-n", ns, "addr", "add", GW2_P2P_GW + "/30", "dev", "ctl0"])
    L.run(["ip", "-n", ctl_ns(lab), "addr", "add", GW2_P2P_CTL + "/30", "dev", "gw20"])
    L.run(["ip", "-n", ns, "link", "set", "ctl0", "up"])
    L.run(["ip", "-n", ctl_ns(lab), "link", "set", "gw20", "up"])
    L.run(["ip", "-n", ns, "route", "add", CTL_ADDR + "/32", "via", GW2_P2P_CTL])


def gw2_readyz(lab, L, timeout=2):
    p = L.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", str(timeout),
               "http://%s/readyz" % L.METRICS], ns=gw2_ns(lab), check=False, timeout=timeout + 3)
    return p.stdout.strip()


def gw2_metrics_text(lab, L):
    p = L.run(["curl", "-sS", "--max-time", "3", "http://%s/metrics" % L.METRICS],
              ns=gw2_ns(lab), check=False, timeout=6)
    return p.stdout if p.returncode == 0 else None


def start_gateway2(lab, L):
    """exitgw in P-gw2: one worker, its own DPDK file prefix, approval off until Headscale's."""
    ns = gw2_ns(lab)
    L.gen_keypair(lab.dir, "gateway2")
    L.gen_keypair(lab.dir, "disco2")
    L.write_file(lab.path("peers2.conf"), "# exitgw peers of the second gateway: the connector's\n")
    L.write_file(lab.path("approvals2.conf"), "# written by tools/lab\nexit-node unapproved\n")
    lines = ["# exitgw flags for the second gateway of lab %s, written by tools/lab_tailnet.py"
             % lab.name] + ["--%s=%s" % fv for fv in gw2_flags(lab, L)]
    L.write_file(lab.path("exitgw2.flags"), "\n".join(lines) + "\n")
    cpu = "1" if (os.cpu_count() or 1) > 1 else "0"
    lcores = ",".join(["0@0"] + ["%d@%s" % (w, cpu) for w in range(1, GW2_WORKERS + 1)])
    qpairs = GW2_WORKERS + 1
    mem = [] if L.hugepages_usable() else ["--no-huge", "-m", "512"]
    args = [lab.state["exitgw"], "--lcores=" + lcores, "--file-prefix=" + gw2_prefix(lab),
            "--no-pci", "--vdev=net_af_packet0,iface=tun0,qpairs=%d" % qpairs,
            "--vdev=net_af_packet1,iface=inet0,qpairs=%d" % qpairs,
            "--vdev=%s,iface=%s" % (L.EXCEPTION_VDEV, L.EXCEPTION_IFACE)] + mem + \
        ["--", "--flagfile=" + lab.path("exitgw2.flags")]
    L.write_file(lab.path("exitgw2.cmd"), " ".join(["ip", "netns", "exec", ns] + args) + "\n")
    logf = lab.path("exitgw2.log")
    pid = L.spawn(args, ns, logf)
    L.write_file(lab.path("exitgw2.pid"), "%d\n" % pid)
    ok = L.wait_for(lambda: not L.alive(pid) or gw2_readyz(lab, L, 1) == "200", 20, step=0.2)
    if not ok or not L.alive(pid):
        why = "exited" if not L.alive(pid) else "did not answer /readyz with 200 within 20 s"
        raise TailnetError("the second exitgw %s; last lines of %s:\n%s"
                           % (why, logf, L.log_tail(logf)))
    return pid


def gateway_node(lab, L, idx=1):
    return node_by_name(lab, L, lab.gw if idx == 1 else gw2_ns(lab))


def route_state(lab, L, node_id):
    """(announced, approved) routes of a node, from headscale nodes list."""
    for n in nodes(lab, L):
        if int(n["id"]) == int(node_id):
            return sorted(n.get("available_routes") or []), sorted(n.get("approved_routes") or [])
    raise TailnetError("headscale has no node %s" % node_id)


EXIT_ROUTES = ["0.0.0.0/0", "::/0"]


def approve_exit(lab, L, node_id, approved=True):
    """The admin's way: headscale nodes approve-routes (empty list revokes)."""
    hs(lab, L, "nodes", "approve-routes", "--identifier", str(node_id),
       "--routes", ",".join(EXIT_ROUTES) if approved else "")


def wait_gateway(lab, L, pid, timeout=60, idx=1):
    """Waits for the connector's node with both exit routes announced; returns the node."""
    logf = lab.path("connector%s.log" % ("" if idx == 1 else idx))
    name = lab.gw if idx == 1 else gw2_ns(lab)
    found = {}

    def registered():
        if not L.alive(pid):
            return True
        n = gateway_node(lab, L, idx)
        if n:
            avail, _ = route_state(lab, L, n["id"])
            if all(r in avail for r in EXIT_ROUTES):
                found["node"] = n
                return True
        return False

    L.wait_for(registered, timeout, step=1.0)
    if not L.alive(pid):
        raise TailnetError("exitgw-connector exited; last lines of %s:\n%s" % (logf, L.log_tail(logf)))
    if "node" not in found:
        raise TailnetError("the gateway node %s did not register with the exit routes announced "
                           "within %d s; last lines of %s:\n%s" % (name, timeout, logf, L.log_tail(logf)))
    return found["node"]


def join_gateway(lab, L, idx):
    """Starts gateway idx's connector, waits for its node, approves its exit routes (unless
    autoApprovers does) and waits until exitgw itself reports approval."""
    t = lab.state["tailnet"]
    timings = t.setdefault("timings", {})
    sfx = "" if idx == 1 else str(idx)
    name = lab.gw if idx == 1 else gw2_ns(lab)
    metrics = lab.metrics_text if idx == 1 else (lambda: gw2_metrics_text(lab, L))
    t0 = time.monotonic()
    pid = start_connector(lab, L, t["connector"], idx)
    node = wait_gateway(lab, L, pid, idx=idx)
    t["gw%s_node_id" % sfx] = int(node["id"])
    timings["gateway%s_registered_s" % sfx] = round(time.monotonic() - t0, 2)
    if not t.get("auto_approve"):
        approve_exit(lab, L, node["id"], True)
    ok = L.wait_for(lambda: all(r in route_state(lab, L, node["id"])[1] for r in EXIT_ROUTES),
                    20, step=0.5)
    if not ok:
        raise TailnetError("the exit routes of node %s were not approved within 20 s (%s)"
                           % (node["id"], "autoApprovers" if t.get("auto_approve") else "approve-routes"))
    # Headscale's word is not the gateway's: the connector applies approval from its own
    # netmap (the self node's exit route), so wait until exitgw says approved.
    def gw_approved():
        return any(n == "exitgw_exit_approved" and v == 1
                   for n, _l, v in L.parse_metrics(metrics()))

    if not L.wait_for(gw_approved, 20, step=0.5):
        raise TailnetError("Headscale lists the exit routes of node %s approved, yet exitgw "
                           "does not report approval (exitgw_exit_approved) 20 s later: the "
                           "connector's netmap did not carry it (see %s)"
                           % (node["id"], lab.path("connector%s.log" % sfx)))
    timings["gateway%s_approved_s" % sfx] = round(time.monotonic() - t0, 2)
    L.log("gateway node %s (id %s) registered by the connector, exit routes approved by %s "
          "(%.1f s)" % (name, node["id"], "autoApprovers.exitNode" if t.get("auto_approve")
                        else "headscale nodes approve-routes", timings["gateway%s_approved_s" % sfx]))
    lab.save()


def up(lab, L):
    """The tailnet part of `tools/lab up --tailnet`, after the plain lab's namespaces, servers
    and exitgw exist (exitgw with no WireGuard peers of its own and approval off)."""
    t = lab.state["tailnet"]
    timings = t.setdefault("timings", {})
    create_ctl_net(lab, L)
    create_dns_link(lab, L, 1)
    write_resolv(ctl_ns(lab))
    os.makedirs(hs_dir(lab), mode=0o700, exist_ok=True)
    make_ca(lab, L)
    t0 = time.monotonic()
    start_headscale(lab, L)
    ensure_user(lab, L, ADMIN_USER)
    for c in lab.clients:
        ensure_user(lab, L, c["name"])
    reload_policy(lab, L)
    timings["headscale_s"] = round(time.monotonic() - t0, 2)
    L.log("headscale up at %s in %s (%.1f s)" % (SERVER_URL, ctl_ns(lab), timings["headscale_s"]))
    lab.save()
    t0 = time.monotonic()
    for c in lab.clients:
        start_client(lab, L, c)
        lab.save()
    timings["clients_s"] = round(time.monotonic() - t0, 2)
    L.log("%d tailscaled clients registered in %.1f s" % (len(lab.clients), timings["clients_s"]))
    if t["connector"] == "none":
        return
    join_gateway(lab, L, 1)
    if gateways(lab) > 1:
        t0 = time.monotonic()
        create_gw2_net(lab, L)
        create_dns_link(lab, L, 2)
        start_gateway2(lab, L)
        L.log("second gateway %s ready in %.1f s" % (gw2_ns(lab), time.monotonic() - t0))
        join_gateway(lab, L, 2)


# --------------------------------------------------------------------------- the demo's views

def gateway_ipv4(lab, L):
    """The gateway node's tailnet IPv4 address (what a client passes to --exit-node)."""
    n = gateway_node(lab, L)
    ips = [a for a in (n or {}).get("ip_addresses") or [] if ":" not in a]
    if not ips:
        raise TailnetError("headscale lists no node %s with an IPv4 address" % lab.gw)
    return ips[0]


# Reads the admin token from its file inside P-gw, so it never shows on a command line.
_PEERS_SCRIPT = """
import sys, urllib.request
tok = open(sys.argv[2]).read().strip()
req = urllib.request.Request(sys.argv[1] + "/v1/peers", headers={"Authorization": "Bearer " + tok})
sys.stdout.write(urllib.request.urlopen(req, timeout=5).read().decode())
"""


def gateway_peers(lab, L):
    """exitgw's peers as its admin API reports them (GET /v1/peers), or raises TailnetError."""
    p = L.run([sys.executable, "-c", _PEERS_SCRIPT, ADMIN_URL, lab.path("admin.token")],
              ns=lab.gw, check=False, timeout=10)
    if p.returncode != 0:
        raise TailnetError("GET %s/v1/peers in %s failed: %s"
                           % (ADMIN_URL, lab.gw, (p.stderr or p.stdout).strip()[-200:]))
    try:
        return json.loads(p.stdout).get("peers") or []
    except ValueError:
        raise TailnetError("GET %s/v1/peers: not JSON: %s" % (ADMIN_URL, p.stdout[:200]))


def gateway_peer_of(lab, L, c):
    """The gateway's peer for client c: the one whose allowed IPs hold c's tailnet IPv4."""
    want = {ip + "/32" for ip in c.get("ts_ips") or [] if ":" not in ip}
    for peer in gateway_peers(lab, L):
        if want & set(peer.get("allowed_ips") or []):
            return peer
    return None
