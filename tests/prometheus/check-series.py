#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Checks the Prometheus rules and the Grafana dashboard against docs/metrics.md (suite 'docs').

    check-series.py METRICS_MD RULES_YML ALERTS_YML DASHBOARD_JSON TEST_YML...

- the dashboard is valid JSON;
- every PromQL expression in the rules, the alerts and the dashboard (panel targets and template variable
  queries) names only series that docs/metrics.md documents, recording rules of RULES_YML, or the
  series Prometheus adds to every target (up, scrape_*);
- every alert has a severity label and summary and description annotations, and an alert about guests
  names the guest ({{ $labels.vm }}) in its summary;
- the promtool unit tests (TEST_YML) evaluate every recording rule, test every alert both firing and not
  firing, and feed only documented series.

Python standard library only: the YAML files are read line by line, in the layout these files use.
"""

import json
import re
import sys

# Series Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
                     "scrape_samples_post_metric_relabeling"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
            "unless", "inf", "nan", "start", "end"}
errors = []


def error(msg):
    errors.append(msg)


def documented_patterns(path):
    """Each documented name as a regular expression (<stat> stands for a KVM statistic)."""
    pats = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| `(memvisor_[^`]+)` \|", line)
            if m:
                pats.append(re.compile("^" + re.escape(m.group(1)).replace(re.escape("<stat>"), "[a-z0-9_]+")
                                       + "$"))
    if len(pats) < 20:
        error("%s: only %d documented series found; is it the generated list?" % (path, len(pats)))
    return pats


def series_names(expr):
    """The metric names an expression selects (not functions, keywords, labels or durations)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", e)
    names = []
    for m in re.finditer(r"(?<![\w:.$])[a-zA-Z_:][\w:]*", e):
        if re.match(r"\s*\(", e[m.end():]) or m.group(0).lower() in KEYWORDS:
            continue
        names.append(m.group(0))
    return names


def read_rules(path):
    """[(kind, name, expr, block)] for each rule; block is the rule's text (for labels and annotations)."""
    rules = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)- (record|alert): *(\S+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, kind, name = len(m.group(1)), m.group(2), m.group(3)
        block = [lines[i]]
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i])
            i += 1
        expr = None
        for j, line in enumerate(block):
            em = re.match(r"^(\s*)expr: *(.*)$", line)
            if not em:
                continue
            value = em.group(2).strip()
            if value in ("|", "|-", ">", ">-"):
                ind = len(em.group(1))
                cont = []
                for line2 in block[j + 1:]:
                    if line2.strip() and len(line2) - len(line2.lstrip()) <= ind:
                        break
                    cont.append(line2.strip())
                value = " ".join(cont)
            elif value[:1] in "'\"":
                value = value[1:-1]
            expr = value
            break
        if not expr:
            error("%s: %s %s has no expr" % (path, kind, name))
            expr = ""
        rules.append((kind, name, expr, "\n".join(block)))
    return rules


def check_expr(where, expr, pats, records):
    for name in series_names(expr):
        if name in records or name in PROMETHEUS_SERIES or any(p.match(name) for p in pats):
            continue
        error("%s: %r names %s, which docs/metrics.md does not document (and no recording rule defines)"
              % (where, expr, name))


def walk_dashboard(node, path, out):
    if isinstance(node, dict):
        for k, v in node.items():
            p = path + "." + k
            if k == "expr" and isinstance(v, str):
                out.append((p, v))
            elif k in ("query", "definition") and isinstance(v, str) and ".templating" in path:
                m = re.match(r"^\s*(?:label_values|query_result)\((.*)\)\s*$", v)
                if m:
                    arg = m.group(1)
                    if v.lstrip().startswith("label_values"):
                        if "," not in arg:
                            continue
                        arg = arg.rsplit(",", 1)[0]
                    out.append((p, arg))
                elif v.strip() and not v.startswith("prometheus"):
                    out.append((p, v))
            else:
                walk_dashboard(v, p, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_dashboard(v, "%s[%d]" % (path, i), out)


def main():
    if len(sys.argv) < 6:
        print(__doc__)
        return 2
    metrics_md, rules_yml, alerts_yml, dashboard, tests = sys.argv[1], sys.argv[2], sys.argv[3], \
        sys.argv[4], sys.argv[5:]
    pats = documented_patterns(metrics_md)

    recs = read_rules(rules_yml)
    alerts = read_rules(alerts_yml)
    records = {name for kind, name, _, _ in recs if kind == "record"}
    if not records:
        error("%s: no recording rules found" % rules_yml)
    if not [a for a in alerts if a[0] == "alert"]:
        error("%s: no alerts found" % alerts_yml)
    for path, rules in ((rules_yml, recs), (alerts_yml, alerts)):
        for kind, name, expr, block in rules:
            check_expr("%s: %s %s" % (path, kind, name), expr, pats, records)
            if kind != "alert":
                continue
            for need in (r"^\s*severity: *\S", r"^\s*summary: *\S", r"^\s*description: *\S"):
                if not re.search(need, block, re.M):
                    error("%s: alert %s lacks %s" % (path, name, need.split(":")[0].split("*")[-1]))
            names = series_names(expr)
            about_guests = any(n.startswith("memvisor_guest") for n in names)
            summary = re.search(r"^\s*summary: *(.*)$", block, re.M)
            if about_guests and not (summary and "$labels.vm" in summary.group(1)):
                error("%s: alert %s is about guests but its summary does not name the guest "
                      "({{ $labels.vm }})" % (path, name))

    try:
        with open(dashboard, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        error("%s: %s" % (dashboard, e))
        dash = None
    if dash is not None:
        exprs = []
        walk_dashboard(dash, "", exprs)
        if len(exprs) < 10:
            error("%s: only %d PromQL expressions found" % (dashboard, len(exprs)))
        for where, expr in exprs:
            check_expr("%s%s" % (dashboard, where), expr, pats, records)

    # The unit tests: coverage and input series.
    tested_exprs = []
    firing, quiet = set(), set()
    for path in tests:
        current = None
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            m = re.match(r"^\s*- series: *'([^']*)'", line) or re.match(r'^\s*- series: *"([^"]*)"', line)
            if m:
                check_expr("%s:%d: input series" % (path, n), m.group(1), pats, set())
            m = re.match(r"^\s*- expr: *(.*)$", line)
            if m:
                tested_exprs.append(m.group(1))
            m = re.match(r"^\s*alertname: *(\S+)", line)
            if m:
                current = m.group(1)
            m = re.match(r"^\s*exp_alerts: *(.*)$", line)
            if m and current:
                (quiet if m.group(1).strip() == "[]" else firing).add(current)
                current = None
    for r in sorted(records):
        if not any(r in series_names(e) for e in tested_exprs):
            error("recording rule %s is not evaluated by any promql_expr_test" % r)
    for kind, name, _, _ in alerts:
        if kind != "alert":
            continue
        if name not in firing:
            error("alert %s has no unit test where it fires" % name)
        if name not in quiet:
            error("alert %s has no unit test where it does not fire" % name)

    for e in errors:
        print(e)
    if errors:
        print("%d problem(s)" % len(errors))
        return 1
    print("%d recording rules, %d alerts, dashboard and %d test file(s): every series documented, every rule tested"
          % (len(records), len([a for a in alerts if a[0] == "alert"]), len(tests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
