#!/usr/bin/python3
"""Runs one data-plane case through the real exitgw binary on DPDK pcap virtual devices.

  run_case.py CASE_DIR --exitgw PATH [--keep] [--timeout SECONDS]

A case folder holds case.json, gen.py and the pcaps gen.py wrote. The harness
  1. checks the committed pcaps are exactly what gen.py generates;
  2. splits each port's input over the workers' RX queues (one rx_pcap each) and gives
     the port workers+1 tx_pcap files (the last TX queue is control's);
  3. starts exitgw with its metrics on a free loopback port, waits until the metrics
     show every input packet received and then until the counters stop moving;
  4. scrapes /metrics, sends SIGTERM and requires exit code 0 (the pcap PMD writes its
     TX files completely only when the port is closed, so they are read after exit);
  5. compares every port's transmitted frames with its expected pcap as a multiset of
     exact bytes (order across queues is not defined), and checks the counters.

case.json keys (all optional except flags):
  description  what the case proves
  flags        daemon flags after "--" (the harness adds --tunnel_port, --internet_port,
               --metrics_listen and --node)
  workers      worker lcores (default 1); lcores: EAL --lcores value (default 0@0,1@1,...)
  ports        [{"name": "net_pcap0", "in": "in.pcap", "expected": "expected.pcap"}, ...];
               the first is the tunnel port, a second one the internet port
  split        "round_robin" (packet i to RX queue i % workers, default) or "blocks"
  drops        {"reason": count} summed over ports and queues; every other reason must be 0
  allow_drops  reasons whose count is not checked
  counters     {"name" or "name{label=value,...}": value} summed over the matching series
Needs root (DPDK) and no network: the only socket is the daemon's loopback metrics port.
"""

import argparse
import collections
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CASE_KEYS = {"description", "flags", "workers", "lcores", "ports", "split", "drops",
             "allow_drops", "counters"}
# Counters that move while idle; everything else must be still before the final scrape.
# Series that move with time or with the scrape itself, not with the packets: worker cycles,
# ages (the control heartbeat, the tailnet netmap) and the metrics listener's own requests.
VOLATILE = re.compile(r"cycles|busy_ratio|_age_seconds|^exitgw_http_|^exitgw_control_loop_gap_seconds")


class CaseError(Exception):
    pass


# --- pcap ----------------------------------------------------------------------------------

def read_pcap(path, what):
    """Frames of a pcap (µs or ns, either byte order); refuses truncated files."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CaseError(f"{what}: cannot read {path}: {e}")
    if len(data) < 24:
        raise CaseError(f"{what}: {path} has no complete pcap header ({len(data)} bytes)")
    magic_le = struct.unpack("<I", data[:4])[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    elif magic_le in (0xD4C3B2A1, 0x4D3CB2A1):
        end = ">"
    else:
        raise CaseError(f"{what}: {path} is not a pcap file (magic {data[:4].hex()})")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        raise CaseError(f"{what}: {path} has link type {linktype}, not Ethernet")
    frames, off = [], 24
    while off < len(data):
        if off + 16 > len(data):
            raise CaseError(f"{what}: {path} ends inside a record header at byte {off} "
                            "(file not completely flushed?)")
        _, _, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        if off + incl > len(data):
            raise CaseError(f"{what}: {path} ends inside packet {len(frames)} "
                            f"(needs {incl} bytes, {len(data) - off} left; not flushed?)")
        if incl != orig:
            raise CaseError(f"{what}: {path} packet {len(frames)} captured {incl} of {orig} bytes")
        frames.append(data[off:off + incl])
        off += incl
    return frames


def load_gen(case_dir):
    spec = importlib.util.spec_from_file_location("case_gen", os.path.join(case_dir, "gen.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, HERE)
    spec.loader.exec_module(mod)
    if not hasattr(mod, "build"):
        raise CaseError(f"{case_dir}/gen.py has no build() returning {{file: [frames]}}")
    return mod.build()


def check_generated(case_dir):
    """The committed pcaps must be byte-identical to what gen.py generates now."""
    import casegen  # noqa: E402 (after load_gen put HERE on sys.path)

    for name, frames in load_gen(case_dir).items():
        want = casegen.pcap_bytes(frames)
        path = os.path.join(case_dir, name)
        try:
            with open(path, "rb") as f:
                have = f.read()
        except OSError:
            raise CaseError(f"{path} is missing: run {case_dir}/gen.py and commit its output")
        if have != want:
            raise CaseError(f"{path} differs from what gen.py generates: run "
                            f"{case_dir}/gen.py and commit its output")


# --- metrics -------------------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise CaseError(f"unparsable metrics line: {line!r}")
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def metric_sum(samples, name, **labels):
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == want for k, want in labels.items()))


def parse_selector(sel):
    m = re.fullmatch(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*", sel)
    if not m:
        raise CaseError(f"bad counter selector {sel!r} (use name or name{{label=value,...}})")
    labels = {}
    for part in filter(None, (p.strip() for p in (m.group(2) or "").split(","))):
        k, eq, v = part.partition("=")
        if not eq:
            raise CaseError(f"bad label matcher {part!r} in {sel!r}")
        labels[k.strip()] = v.strip().strip('"')
    return m.group(1), labels


class Metrics:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}/metrics"
        # No proxies: the environment's http_proxy must not capture loopback requests.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def scrape(self):
        with self.opener.open(self.url, timeout=2) as r:
            return parse_metrics(r.read().decode())


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the run -------------------------------------------------------------------------------

def load_case(case_dir):
    path = os.path.join(case_dir, "case.json")
    try:
        with open(path) as f:
            case = json.load(f)
    except (OSError, ValueError) as e:
        raise CaseError(f"{path}: {e}")
    unknown = set(case) - CASE_KEYS
    if unknown:
        raise CaseError(f"{path}: unknown keys {sorted(unknown)}")
    case.setdefault("flags", [])
    case.setdefault("workers", 1)
    w = case["workers"]
    case.setdefault("lcores", ",".join(f"{i}@{min(i, 1)}" for i in range(w + 1)))
    case.setdefault("ports", [{"name": "net_pcap0", "in": "in.pcap",
                               "expected": "expected.pcap"}])
    case.setdefault("split", "round_robin")
    case.setdefault("drops", {})
    case.setdefault("allow_drops", [])
    case.setdefault("counters", {})
    if not 1 <= len(case["ports"]) <= 2:
        raise CaseError(f"{path}: ports must list one or two ports")
    if case["split"] not in ("round_robin", "blocks"):
        raise CaseError(f"{path}: split must be round_robin or blocks")
    return case


def port_labels(case):
    return ["tunnel+internet"] if len(case["ports"]) == 1 else ["tunnel", "internet"]


def split(frames, n, how):
    if how == "round_robin":
        return [frames[q::n] for q in range(n)]
    per = -(-len(frames) // n) if frames else 0
    return [frames[q * per:(q + 1) * per] for q in range(n)]


def summary(frame):
    try:
        from scapy.layers.l2 import Ether

        return Ether(frame).summary()
    except Exception as e:  # a summary is a courtesy; never hide the real failure
        return f"(no summary: {e})"


def diff_report(port, expected, seen):
    exp_c, seen_c = collections.Counter(expected), collections.Counter(seen)
    missing = list((exp_c - seen_c).elements())
    extra = list((seen_c - exp_c).elements())
    lines = [f"port {port}: {len(seen)} frames sent, {len(expected)} expected; "
             f"{len(missing)} expected frames not sent, {len(extra)} unexpected frames sent"]
    for title, frames, others in (("MISSING (expected, not sent)", missing, extra),
                                  ("UNEXPECTED (sent, not expected)", extra, missing)):
        for i, f in enumerate(frames[:10]):
            lines.append(f"  {title} #{i}: {len(f)} bytes  {summary(f)}")
            lines.append(f"    {f.hex()}")
            # Point at the bytes that differ from the closest frame on the other side.
            near = [o for o in others if len(o) == len(f)]
            if near:
                o = min(near, key=lambda o: sum(a != b for a, b in zip(f, o)))
                offs = [k for k in range(len(f)) if f[k] != o[k]]
                lines.append(f"    closest counterpart differs at byte offsets {offs[:16]}"
                             + (" ..." if len(offs) > 16 else ""))
            elif others:
                lines.append(f"    no counterpart of the same length "
                             f"(lengths there: {sorted({len(o) for o in others})[:8]})")
        if len(frames) > 10:
            lines.append(f"  ... and {len(frames) - 10} more {title.split()[0].lower()}")
    return "\n".join(lines)


def run(case_dir, exitgw, timeout, keep):
    t0 = time.monotonic()
    case_dir = os.path.abspath(case_dir)
    name = os.path.basename(case_dir.rstrip("/"))
    case = load_case(case_dir)
    if os.geteuid() != 0:
        raise CaseError("must run as root: exitgw needs root for DPDK memory and devices")
    if not os.access(exitgw, os.X_OK):
        raise CaseError(f"--exitgw {exitgw} is not an executable")
    check_generated(case_dir)

    workers = case["workers"]
    labels = port_labels(case)
    inputs, expected = [], []
    for p in case["ports"]:
        inputs.append(read_pcap(os.path.join(case_dir, p["in"]), "input"))
        expected.append(read_pcap(os.path.join(case_dir, p["expected"]), "expected"))

    work = tempfile.mkdtemp(prefix=f"exitgw-dp-{name}-")
    prefix = f"exitgw_dp_{os.getpid()}_{name}"[:60]
    mport = free_port()
    eal = ["--no-huge", "-m", "256", f"--file-prefix={prefix}", "--no-pci",
           f"--lcores={case['lcores']}", "--log-level=pmd.net.pcap:notice"]
    tx_files = []
    import casegen

    for i, p in enumerate(case["ports"]):
        args = [p["name"]]
        for q, chunk in enumerate(split(inputs[i], workers, case["split"])):
            f = os.path.join(work, f"rx{i}_{q}.pcap")
            with open(f, "wb") as fh:
                fh.write(casegen.pcap_bytes(chunk))
            args.append(f"rx_pcap={f}")
        tx_files.append([os.path.join(work, f"tx{i}_{q}.pcap") for q in range(workers + 1)])
        args += [f"tx_pcap={f}" for f in tx_files[i]]
        eal.append("--vdev=" + ",".join(args))
    flags = list(case["flags"])
    if not any(f.startswith("--private_key_file=") for f in flags):
        # The daemon refuses to start without a WireGuard identity; cases that do not speak
        # WireGuard get the fixed test key (casegen.GATEWAY_PRIVATE_KEY), mode 0600.
        key_path = os.path.join(work, "gateway.key")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(casegen.GATEWAY_PRIVATE_KEY + "\n")
        flags.append(f"--private_key_file={key_path}")
    flags += [f"--tunnel_port={case['ports'][0]['name']}",
                                   f"--metrics_listen=127.0.0.1:{mport}", "--node=dataplane-test"]
    if len(case["ports"]) == 2:
        flags.append(f"--internet_port={case['ports'][1]['name']}")
    cmd = [exitgw] + eal + ["--"] + flags
    log_path = os.path.join(work, "exitgw.log")
    ok = False
    proc = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)

        def fail(msg):
            with open(log_path, errors="replace") as f:
                tail = "".join(f.readlines()[-25:])
            return CaseError(f"{msg}\ncommand: {' '.join(cmd)}\n--- exitgw log (tail) ---\n{tail}")

        metrics = Metrics(mport)
        deadline = time.monotonic() + timeout
        samples = None
        want_rx = [len(x) for x in inputs]
        # 1. every input packet received, per port
        while True:
            if proc.poll() is not None:
                raise fail(f"exitgw exited early with code {proc.returncode}")
            try:
                samples = metrics.scrape()
                rx = [metric_sum(samples, "exitgw_port_rx_packets_total", port=l) for l in labels]
                if rx == want_rx:
                    break
                if any(r > w for r, w in zip(rx, want_rx)):
                    raise fail(f"received more packets than the input holds: {rx} > {want_rx}")
            except OSError:
                rx = None  # not listening yet
            if time.monotonic() > deadline:
                raise fail(f"timeout: exitgw received {rx} packets, input has {want_rx}")
            time.sleep(0.05)
        # 2. the pipeline drained: counters unchanged across consecutive scrapes
        time.sleep(0.2)
        prev = None
        while True:
            samples = metrics.scrape()
            still = sorted((n, sorted(l.items()), v) for n, l, v in samples if not VOLATILE.search(n))
            if still == prev:
                break
            prev = still
            if time.monotonic() > deadline:
                raise fail("timeout: counters kept changing after all input was received")
            time.sleep(0.3)
        # 3. clean exit
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise fail("exitgw did not exit within 20 s of SIGTERM (killed)")
        if rc != 0:
            raise fail(f"exitgw exited with code {rc} after SIGTERM, want 0")

        problems = []
        # 4. output frames, per port, as multisets of exact bytes
        for i, p in enumerate(case["ports"]):
            seen = []
            for f in tx_files[i]:
                seen += read_pcap(f, f"TX of {p['name']}")
            tx_metric = metric_sum(samples, "exitgw_port_tx_packets_total", port=labels[i])
            if tx_metric != len(seen):
                problems.append(f"port {p['name']}: metrics count {tx_metric:.0f} frames sent, "
                                f"the TX pcaps hold {len(seen)} (lost in the PMD or the flush?)")
            if collections.Counter(seen) != collections.Counter(expected[i]):
                problems.append(diff_report(p["name"], expected[i], seen))
        # 5. counters
        reasons = {l["reason"] for n, l, _ in samples if n == "exitgw_drops_total"}
        for r in list(case["drops"]) + list(case["allow_drops"]):
            if r not in reasons:
                problems.append(f"case names drop reason {r!r}, which the daemon does not export")
        for r in sorted(reasons):
            got = metric_sum(samples, "exitgw_drops_total", reason=r)
            if r in case["drops"]:
                if got != case["drops"][r]:
                    problems.append(f'exitgw_drops_total{{reason="{r}"}} = {got:.0f}, '
                                    f"want {case['drops'][r]}")
            elif r not in case["allow_drops"] and got != 0:
                problems.append(f'exitgw_drops_total{{reason="{r}"}} = {got:.0f}, want 0 '
                                "(not expected by the case)")
        for sel, want in case["counters"].items():
            n, lab = parse_selector(sel)
            if not any(sn == n for sn, _, _ in samples):
                problems.append(f"metric {n} is not exported")
                continue
            got = metric_sum(samples, n, **lab)
            if got != want:
                problems.append(f"{sel} = {got:g}, want {want}")
        if problems:
            raise fail("\n".join(problems))
        ok = True
        n_out = sum(len(e) for e in expected)
        print(f"PASS {name}: {sum(want_rx)} frames in, {n_out} out, "
              f"{time.monotonic() - t0:.1f} s")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
        if ok and not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work files kept in {work}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case_dir")
    ap.add_argument("--exitgw", required=True, help="path to the exitgw binary")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds for start and drain")
    ap.add_argument("--keep", action="store_true", help="keep the work folder on success")
    a = ap.parse_args()
    try:
        import scapy  # noqa: F401  (gen.py and the diff summaries need it)
    except ImportError:
        print("FAIL: scapy is missing: apt-get install python3-scapy (run by /usr/bin/python3)",
              file=sys.stderr)
        sys.exit(1)
    try:
        run(a.case_dir, a.exitgw, a.timeout, a.keep)
    except CaseError as e:
        print(f"FAIL {os.path.basename(os.path.abspath(a.case_dir))}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
