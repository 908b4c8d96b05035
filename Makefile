# aos-agent: see README.md. `make test` is the full test command CI runs.
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: build deb demo demo-cinder test test-fast fuzz lab lab-record lab-scale lab-batching bench-rpc bench-failover bench-scale clean

build:
	$(GO) build -o bin/aos-agent ./cmd/aos-agent

# The Debian packages of the agent and the cinder driver, offline, into
# .out/deb (DEB_OUT=dir elsewhere; AOS_VERSION=x instead of packaging/version.sh's).
deb:
	bash packaging/build-deb.sh

# README command 1: local broker + simulated cluster + the operator story.
demo:
	bash scripts/demo.sh

# The same story through Debian's cinder services and `openstack` commands.
demo-cinder:
	bash scripts/demo-cinder.sh

# Every test: installs missing Debian packages, then runs all stages.
test:
	bash scripts/test.sh

# Quick iteration: Go unit tests only, no installs, no broker, no lab.
test-fast:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# Randomized fault schedules through the real agent code on the simulator,
# checked after every step (agent/chaos_test.go). Ends with the line
# "chaos: N runs, V violations"; CHAOS_SEED picks the first seed.
CHAOS_RUNS ?= 300
chaos:
	CHAOS_RUNS=$(CHAOS_RUNS) $(GO) test -count=1 -timeout 30m -run '^TestChaos' ./agent/ -v 2>&1 | \
		grep -v -e '^=== RUN' | tee .chaos.log | grep -E '^(chaos:|--- FAIL|FAIL|ok)' ; \
		! grep -q -E '^(--- FAIL|FAIL)' .chaos.log

fuzz:
	bash scripts/fuzz.sh 60s

# The real-kernel lab alone (qemu guests; the image is cached outside the clone).
lab:
	bash scripts/lab.sh test

# Refresh the recorded real outputs the parsers and the simulator are tested on.
lab-record:
	bash scripts/lab.sh record

# One compute host's worth of volumes on real lvm2: the fence and recovery of
# 20, 100 and 200 LVs (LAB_SCALE_LVS). Not in CI: tens of minutes under TCG.
lab-scale:
	LAB_TAGS=labbench bash scripts/lab.sh test -run '^TestLabScale$$' -timeout 90m

# Group commit on real lvm2: 100 activations at once vs one by one vs one
# lvchange, and volume wipes vs sanlock renewals. Not in CI (~8 min).
lab-batching:
	LAB_TAGS=labbench bash scripts/lab.sh test -run '^TestLabBatching$$' -timeout 40m

# Go agent vs a real Python oslo server through the real broker, side by side.
bench-rpc:
	bash scripts/bench-rpc.sh

bench-failover:
	bash scripts/bench-failover.sh

bench-scale:
	bash scripts/bench-scale.sh

clean:
	rm -rf bin .out
