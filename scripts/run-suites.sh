#!/usr/bin/env bash
# The main job: set up (idempotent), then run the conformance suites on the virtual devices.
# Ends with the "N passed, N failed" line and the path of report.html; exit status is Robot's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Four parts at a time (HIL_PROCESSES): the parts mostly wait (serial timeouts, pcscd, the nfcpy link), so on a
# 2-core machine four keep both cores busy: 26 s against 80 s in series and 40 s with two, with the same
# report (benchmarks/bench_parallel_plan.py); a later --processes among "$@" wins.
exec .venv/bin/hil run --plan fixtures/lab/virtual-plan.toml --outputdir "${HIL_RESULTS:-results}" \
    --processes "${HIL_PROCESSES:-4}" "$@"
