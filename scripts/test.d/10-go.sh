#!/usr/bin/env bash
# Formatting, vet, staticcheck, the production binary's imports, and every Go test with the race detector and coverage floors.
set -euo pipefail
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
# staticcheck (pinned in go.mod's tool block): unused code, deprecated calls,
# simple bugs; every build tag, so the lab and broker tests are checked too.
go tool staticcheck -tags lab,labbench,integration,lvmreal,realsanlock ./...
# What a host runs links none of the test rigs (they are cmd/aos-lab's).
module=$(go list -m)
rigs=$(go list -deps ./cmd/aos-agent | grep -E "^$module/(sim|scenario|lab|internal/demo|internal/rpctestserver|bench)(/|$)" || true)
if [ -n "$rigs" ]; then echo "aos-agent links test rigs:"; echo "$rigs"; exit 1; fi
mkdir -p .out
go test -race -count=1 -coverprofile=.out/cover.out ./... 2>&1 | tee .out/go-test.log
bash scripts/coverage-floor.sh .out/go-test.log
