#!/usr/bin/env bash
# The main job: set up (idempotent), then run the conformance suites on the virtual devices.
# Ends with the "N passed, N failed" line and the path of report.html; exit status is Robot's.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/hil run --plan fixtures/lab/virtual-plan.toml --outputdir "${HIL_RESULTS:-results}" "$@"
