#!/usr/bin/env bash
# Formatting, vet, and every Go test with the race detector and coverage floors.
set -euo pipefail
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
mkdir -p .out
go test -race -count=1 -coverprofile=.out/cover.out ./... 2>&1 | tee .out/go-test.log
bash scripts/coverage-floor.sh .out/go-test.log
