#!/usr/bin/env bash
# Install everything the test suite needs and run all of it.
# Usage: bash scripts/test.sh [pytest args...]
#
# System packages: Chromium (browser tests and report screenshots),
# Prometheus (promtool rule tests, a real scrape), and rclone and s3cmd (S3
# clients not built on botocore, against the S3 front). They are installed with
# apt-get when missing and this runs as root; otherwise the tests that need
# them say so and are skipped (under CI=true they fail instead).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v rclone >/dev/null 2>&1 || need+=(rclone)
command -v s3cmd >/dev/null 2>&1 || need+=(s3cmd)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the Debian package starts a Prometheus service; the tests start their own
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
  pkill -x prometheus >/dev/null 2>&1 || true
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test]'

"$VENV/bin/ruff" check --quiet .
# One worker per core, each test file on one worker (its module fixtures start once);
# `-n 0` in the arguments runs everything in this process.
exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
