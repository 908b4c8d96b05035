#!/usr/bin/env bash
# Installs the Debian packages the tests need, named in scripts/deps.d/*.pkgs
# (one package a line, '#' comments). Idempotent and quick when all are present.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && $sudo rm -f "$policy"
fi
echo "deps: ok"
