#!/usr/bin/env bash
# Set up everything on a fresh Debian machine and run the whole test suite.
# This is the README's test command; .ci/run calls it. Extra arguments go to pytest.
#   CLAPBOARD_SOAK=SECONDS  also run the long stress modes for that long
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

# -- system packages: PostgreSQL server, Chromium, strace, libfiu --------------------------
need=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v fiu-run >/dev/null 2>&1 || need+=(fiu-utils)
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# -- Python environment ------------------------------------------------------------------
py=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
# pip's output goes to a log, shown only when the install fails.
pip_log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e '.[dev]'; } >"$pip_log" 2>&1; then
  grep -v "is ignored: it is neither" "$pip_log"; exit 1
fi

# -- PostgreSQL: a throwaway cluster on a loopback port ------------------------------------
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
pg_start
trap pg_stop EXIT

# -- lint and types (reported now, failing the run at the end) ---------------------------
lint=0
echo "== ruff"; .venv/bin/ruff check src tests bench || lint=1
echo "== mypy --strict"; .venv/bin/mypy || lint=1

# -- tests -------------------------------------------------------------------------------
echo "== pytest"
args=(-q -p no:cacheprovider)
if [ -n "${CLAPBOARD_SOAK:-}" ]; then args+=(--soak "$CLAPBOARD_SOAK"); fi
if [ $# -eq 0 ]; then  # the whole suite: hold the line on coverage (93% when set)
  args+=(--cov=clapboard --cov-report=term:skip-covered --cov-fail-under=90)
fi
status=0
.venv/bin/python -m pytest "${args[@]}" "$@" || status=$?
if [ "$lint" != 0 ]; then echo "== ruff or mypy failed (see above)"; fi
if [ "$status" = 0 ] && [ "$lint" != 0 ]; then status=1; fi
exit "$status"
