#!/usr/bin/env bash
# Installs everything the harness needs on a fresh Debian machine (run as root, idempotent):
# Debian packages for PC/SC (pcscd, vpcd, OpenSC, pyscard's build deps), Chromium (the summary page is
# opened headless in a test) and a venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(pcscd libpcsclite-dev swig gcc python3-dev vsmartcard-vpcd opensc pcsc-tools gnutls-bin libopenjp2-tools
                 chromium)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the harness and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
# Bytecode for the checkout's own modules: with PYTHONDONTWRITEBYTECODE set (as on our machines) Python never
# writes it, and every process (each Robot part, pre-flight, served card) compiled ~110 modules anew.
# compileall writes it whatever that variable says, and only for files changed since (a second or less).
.venv/bin/python -m compileall -q -j 0 harness devices tests benchmarks >/dev/null
