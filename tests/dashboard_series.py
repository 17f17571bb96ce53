#!/usr/bin/python3
"""Every series the Grafana dashboard and the alert rules select is on a running gateway's
/metrics, with the labels they select on and group by, before any traffic.

  tests/dashboard_series.py --exitgw PATH --dashboard conf/grafana-dashboard.json
                            --alerts conf/alerts.yml

A renamed metric or label, or a series that appears only after its first event (Prometheus
wants it at zero from the start, or rate() and absent-series alerts lie), would blank a
panel or silence an alert; this fails instead. The gateway runs on net_null ports (no-rx)
with peers, a NAT pool, the repository's policy and an IPFIX collector configured
(tests/support/gateway_process.py). Root only (DPDK).
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from gateway_process import Gateway  # noqa: E402

METRIC_RE = re.compile(r"\b(exitgw_[a-z0-9_]+)(\{[^}]*\})?")
MATCHER_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
BY_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_VALUES_RE = re.compile(r"label_values\(\s*(exitgw_[a-z0-9_]+)(\{[^}]*\})?\s*,\s*(\w+)\s*\)")
LEGEND_LABEL_RE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
ANNOTATION_LABEL_RE = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+')
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Labels Prometheus adds at scrape time, not the gateway.
SCRAPE_LABELS = {"job", "instance"}


def dashboard_queries(path):
    """(where, expression, labels its legend shows) of every panel target and templating
    query; the file must be JSON."""
    with open(path) as f:
        doc = json.load(f)
    out = []

    def walk(o, where):
        if isinstance(o, dict):
            title = o.get("title") or o.get("name") or where
            for k, v in o.items():
                if k in ("expr", "query", "definition") and isinstance(v, str) and "exitgw_" in v:
                    legend = set(LEGEND_LABEL_RE.findall(o.get("legendFormat", "")))
                    out.append(("dashboard %s" % title, v, legend))
                else:
                    walk(v, title)
        elif isinstance(o, list):
            for x in o:
                walk(x, where)

    walk(doc, "dashboard")
    return out


def alert_queries(path):
    """(where, expression, labels its annotations use) of every rule in a Prometheus rules file:
    `expr:` on one line or as a `|` block (the file's two forms; promtool checks the rest)."""
    out, lines = [], open(path).read().splitlines()
    i, alert = 0, "?"
    while i < len(lines):
        m = re.match(r"^\s*-?\s*alert:\s*(\S+)", lines[i])
        if m:
            alert = m.group(1)
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if m:
            indent, text = len(m.group(1)), m.group(2).strip()
            if text in ("|", ">", "|-", ">-"):
                block = []
                while i + 1 < len(lines) and (not lines[i + 1].strip() or
                                              len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent):
                    i += 1
                    block.append(lines[i].strip())
                text = " ".join(block)
            # The rule's annotations follow its expr, up to the next rule.
            j, annotations = i + 1, []
            while j < len(lines) and not re.match(r"^\s*-\s*(alert|record):", lines[j]):
                annotations.append(lines[j])
                j += 1
            out.append(("alert %s" % alert, text,
                        set(ANNOTATION_LABEL_RE.findall("\n".join(annotations)))))
        i += 1
    return out


def parse_samples(text):
    out = []
    for ln in text.splitlines():
        m = SAMPLE_RE.match(ln)
        if m and not ln.startswith("#"):
            out.append((m.group(1), dict(LABEL_RE.findall(m.group(2) or ""))))
    return out


def matchers(selector):
    """[(label, op, value)] of a {...} selector; values naming a Grafana variable are dropped."""
    if not selector:
        return []
    body = selector[1:-1]
    found = MATCHER_RE.findall(body)
    if MATCHER_RE.sub("", body).strip():
        raise ValueError("cannot parse selector %s" % selector)
    return [(l, op, v) for l, op, v in found if "$" not in v]


def matches(labels, sel):
    for name, op, value in sel:
        have = labels.get(name, "")
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have):
            return False
        if op == "!~" and re.fullmatch(value, have):
            return False
    return True


def requirements(where, expr, extra_labels=()):
    """(where, metric, matchers, labels every matching series must carry) the expression needs."""
    grouped = set()
    for m in BY_RE.finditer(expr):
        grouped |= {l.strip() for l in m.group(1).split(",") if l.strip()}
    reqs = []
    for m in LABEL_VALUES_RE.finditer(expr):
        reqs.append((where, m.group(1), matchers(m.group(2)), {m.group(3)}))
    if not reqs:
        for m in METRIC_RE.finditer(expr):
            reqs.append((where, m.group(1), matchers(m.group(2)),
                         (grouped | set(extra_labels)) - SCRAPE_LABELS))
    return reqs


def check(samples, reqs):
    """Problems: a required series absent, or present without a label the query uses."""
    problems = []
    for where, metric, sel, labels in reqs:
        found = [l for n, l in samples if n == metric and matches(l, sel)]
        if not found:
            problems.append("%s: no series %s%s on /metrics" % (
                where, metric, "{%s}" % ", ".join('%s%s"%s"' % s for s in sel) if sel else ""))
            continue
        lacking = sorted(l for l in labels if not all(l in s for s in found))
        if lacking:
            problems.append("%s: %s has no label %s on some series (it groups or "
                            "templates by it)" % (where, metric, ", ".join(lacking)))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exitgw", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--alerts", required=True)
    a = ap.parse_args()
    reqs = []
    for where, expr, labels in dashboard_queries(a.dashboard) + alert_queries(a.alerts):
        reqs += requirements(where, expr, labels)
    if not reqs:
        sys.exit("no exitgw_ series found in %s or %s: the parser is broken" % (a.dashboard, a.alerts))
    with Gateway(a.exitgw, ["net_null0,no-rx=1", "net_null1,no-rx=1"]) as gw:
        status, text = gw.get("/metrics")
        if status != 200:
            sys.exit("/metrics answered %d:\n%s" % (status, gw.log_tail()))
    samples = parse_samples(text)
    problems = check(samples, reqs)
    for p in problems:
        print("MISSING " + p)
    names = sorted({r[1] for r in reqs})
    print("%d selections of %d metrics in the dashboard and alert rules; %d of them absent from a "
          "fresh gateway's /metrics (%d series)" % (len(reqs), len(names), len(problems), len(samples)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
