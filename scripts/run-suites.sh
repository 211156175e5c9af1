#!/usr/bin/env bash
# The main job: set up (idempotent), then run the conformance suites on the virtual devices.
# Ends with the "N passed, N failed" line and the path of report.html; exit status is Robot's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Two parts at a time (HIL_PROCESSES): on a 2-core machine 1.67x faster than in series, with the same report
# (benchmarks/bench_parallel_plan.py); a later --processes among "$@" wins.
exec .venv/bin/hil run --plan fixtures/lab/virtual-plan.toml --outputdir "${HIL_RESULTS:-results}" \
    --processes "${HIL_PROCESSES:-2}" "$@"
