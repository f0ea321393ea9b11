#!/usr/bin/env bash
# Install what the benchmarks need and run all of them; prints one Markdown table per benchmark.
# Usage: bash scripts/bench.sh [python -m bench args, e.g. --quick or --only engine]
#
# System package: wrk (the load generator of the data-plane benchmarks), installed
# with apt-get when missing and this runs as root; without it a Python client is used.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing wrk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test,bench]'
# Byte-compile the package, as installing a wheel does, so start-up is measured as deployed
# (an editable install under PYTHONDONTWRITEBYTECODE would compile every module on every start).
"$VENV/bin/python" -m compileall -q gateway

exec "$VENV/bin/python" -m bench "$@"
