#!/usr/bin/env bash
# lvm.Client against the real lvm2 binary on a loop device (metadata operations;
# activation and lvmlockd locking are exercised by the lab's guests).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "40-lvm-real: needs root for losetup" >&2; exit 1; fi
go test -count=1 -tags lvmreal -run '^TestRealLVM$' ./lvm/
