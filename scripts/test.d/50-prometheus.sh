#!/usr/bin/env bash
# Alert rules: syntax, unit tests on both sides of every `for:`, that each
# alert carries severity/summary/description/runbook_url with an existing
# runbook, and that it only uses metrics the agent defines.
set -euo pipefail
promtool check rules configs/prometheus/aos_alerts.yml
(cd configs/prometheus/tests && promtool test rules aos_alerts_test.yml)
/usr/bin/python3 - <<'PY'
import os, sys, yaml
rules = yaml.safe_load(open("configs/prometheus/aos_alerts.yml"))
bad = []
for g in rules["groups"]:
    for r in g["rules"]:
        a = r.get("annotations", {})
        for k in ("summary", "description", "runbook_url"):
            if not a.get(k):
                bad.append(f"{r['alert']}: missing {k}")
        if r.get("labels", {}).get("severity") not in ("warning", "critical"):
            bad.append(f"{r['alert']}: severity must be warning or critical")
        rb = f"docs/runbooks/{r['alert'].lower()}.md"
        if a.get("runbook_url") != rb or not os.path.exists(rb):
            bad.append(f"{r['alert']}: runbook {rb} missing or not linked")
import re
defined = {line.split("{", 1)[0] for line in open("agent/testdata/metrics.golden") if line.strip()}
for g in rules["groups"]:
    for r in g["rules"]:
        for m in re.findall(r"\baos_[a-z_]+", r["expr"]):
            if re.sub(r"_(bucket|sum|count)$", "", m) not in defined:
                bad.append(f"{r['alert']}: {m} is not a metric the agent defines (agent/testdata/metrics.golden)")
tested = open("configs/prometheus/tests/aos_alerts_test.yml").read()
for g in rules["groups"]:
    for r in g["rules"]:
        if f"alertname: {r['alert']}" not in tested:
            bad.append(f"{r['alert']}: no promtool test")
print("\n".join(bad) or "alert metadata: ok")
sys.exit(1 if bad else 0)
PY

# The metrics the agent defines are agent/testdata/metrics.golden, which
# agent.TestMetricsGolden keeps equal to what the daemon registers; that test
# also writes a real scrape, which promtool lints.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
AOS_SCRAPE_OUT=$work/scrape.txt go test -count=1 -run '^TestMetricsGolden$' ./agent/ >/dev/null
promtool check metrics <"$work/scrape.txt"
echo "promtool check metrics: a real scrape of $(grep -c '^# TYPE' "$work/scrape.txt") families: ok"

# Grafana dashboard: every panel query is valid PromQL (checked by promtool as
# a recording rule, Grafana's variables replaced), uses only metrics the agent
# defines, and every metric the agent defines is on some panel.
/usr/bin/python3 - "$work/dashboard-rules.yml" <<'PY'
import json, re, sys, yaml
dash = json.load(open("configs/grafana/aos-agent.json"))
defined = {line.split("{", 1)[0] for line in open("agent/testdata/metrics.golden") if line.strip()}
exprs, bad = [], []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
walk(dash["panels"])
used = set()
for title, e in exprs:
    for m in re.findall(r"\baos_[a-z_]+", e):
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        used.add(base)
        if base not in defined:
            bad.append(f"panel {title!r}: {m} is not a metric the agent defines")
for m in sorted(defined - used):
    bad.append(f"metric {m} is on no dashboard panel")
rules = [{"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "5m").replace('"$instance"', '".*"')}
         for i, (_, e) in enumerate(exprs)]
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[1], "w"))
print("\n".join(bad) or f"dashboard: {len(exprs)} queries over {len(used)} metrics: ok")
sys.exit(1 if bad else 0)
PY
promtool check rules "$work/dashboard-rules.yml"
