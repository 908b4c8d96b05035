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
