#!/usr/bin/env bash
# Installs the Debian packages the tests need, named in scripts/deps.d/*.pkgs
# (one package a line, '#' comments). Idempotent and quick when all are present.
set -euo pipefail
cd "$(dirname "$0")/.."
# Concurrent runs (parallel test stages, several checkouts) would fight over
# dpkg's lock: serialise them.
exec 9>/tmp/aos-agent-deps.lock
flock 9
wanted=$(cat scripts/deps.d/*.pkgs 2>/dev/null | sed 's/#.*//' | tr -s ' \t' '\n' | sort -u | grep -v '^$' || true)
missing=()
for p in $wanted; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Installing must not start services: tests start their own, on loopback.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null; $sudo chmod +x "$policy"; created_policy=1; fi
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$created_policy" = 1 ]; then $sudo rm -f "$policy"; fi
fi
echo "deps: ok"
