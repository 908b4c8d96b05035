#!/usr/bin/env bash
# Randomized fault schedules on the simulator with the invariant checker
# (make chaos), and the checker's self-check against a broken fence.
set -euo pipefail
cd "$(dirname "$0")/../.."
make --no-print-directory chaos
