#!/usr/bin/env bash
# sanlock/ and multipath/ against the real Debian binaries (scripts/deps.d/hostcli.pkgs):
# a private sanlock daemon with file-backed leases, and lvmlockctl/multipathd with no daemon.
set -euo pipefail
go test -race -count=1 -tags realsanlock -run '^TestReal' ./sanlock/ ./multipath/
