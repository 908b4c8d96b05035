#!/usr/bin/env bash
# Every parser's fuzz target, briefly (make fuzz runs them longer).
set -euo pipefail
bash scripts/fuzz.sh "${AOS_FUZZ_TIME:-4s}"
