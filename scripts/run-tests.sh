#!/usr/bin/env bash
# The tests: set up (idempotent: Debian packages, .venv), lint (ruff, robocop), import contracts, then pytest.
# Integration tests start pcscd themselves (by PID) and stop it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# pytest's rewritten test modules, cached once while the linters run (each shard would rewrite them all: 3 s of
# CPU a shard); PYTHONDONTWRITEBYTECODE, as on our machines, would keep pytest from writing that cache
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m pytest --collect-only -q -p no:cacheprovider >/dev/null 2>&1 &
warm=$!
.venv/bin/ruff check --quiet . || { echo "ruff found problems (ruff check .)"; exit 1; }
.venv/bin/robocop check --silent robot || { echo "robocop found problems in the suites (robocop check robot)"; exit 1; }
.venv/bin/lint-imports --no-logo || { echo "import contracts broken (lint-imports, see pyproject.toml)"; exit 1; }
wait "$warm" || true   # a collection error is the shards' to report
exec .venv/bin/python tests/run_shards.py "$@"   # pytest in HIL_TEST_SHARDS (default 5) shards side by side
