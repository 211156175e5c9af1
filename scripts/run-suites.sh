#!/usr/bin/env bash
# The main job: set up (idempotent), then run the conformance suites on the virtual devices.
# Ends with the "N passed, N failed" line and the path of report.html; exit status is Robot's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Six parts at a time (HIL_PROCESSES): many parts mostly wait (serial timeouts, the nfcpy link), so on a
# 2-core machine six keep both cores busy: ~16.5 s against 80 s in series, ~21 s with four, with the same
# report (benchmarks/bench_parallel_plan.py); a later --processes among "$@" wins.
exec .venv/bin/hil run --plan fixtures/lab/virtual-plan.toml --outputdir "${HIL_RESULTS:-results}" \
    --processes "${HIL_PROCESSES:-6}" "$@"
