#!/usr/bin/env bash
# Alert rules: syntax, unit tests on both sides of every `for:`, and that each
# alert carries severity/summary/description/runbook_url with an existing runbook.
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
tested = open("configs/prometheus/tests/aos_alerts_test.yml").read()
for g in rules["groups"]:
    for r in g["rules"]:
        if f"alertname: {r['alert']}" not in tested:
            bad.append(f"{r['alert']}: no promtool test")
print("\n".join(bad) or "alert metadata: ok")
sys.exit(1 if bad else 0)
PY

# Grafana dashboard: every panel query is valid PromQL (checked by promtool as
# a recording rule, Grafana's variables replaced), uses only metrics the agent
# defines, and every metric the agent defines is on some panel.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$work/dashboard-rules.yml" <<'PY'
import json, re, subprocess, sys, yaml
dash = json.load(open("configs/grafana/aos-agent.json"))
src = subprocess.run(["grep", "-rhoE", "--include=*.go", "--exclude=*_test.go", r'Name: *"aos_[a-z_]+"', "."],
                     capture_output=True, text=True, check=True).stdout
defined = set(re.findall(r'"(aos_[a-z_]+)"', src))
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
