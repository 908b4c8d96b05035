#!/usr/bin/env bash
# Formatting, vet, staticcheck, and every Go test with the race detector and coverage floors.
set -euo pipefail
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
# staticcheck (pinned in go.mod's tool block): unused code, deprecated calls,
# simple bugs; every build tag, so the lab and broker tests are checked too.
go tool staticcheck -tags lab,integration ./...
mkdir -p .out
go test -race -count=1 -coverprofile=.out/cover.out ./... 2>&1 | tee .out/go-test.log
bash scripts/coverage-floor.sh .out/go-test.log
