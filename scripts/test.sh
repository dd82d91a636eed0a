#!/usr/bin/env bash
# Installs what is missing, builds, starts a throwaway PostgreSQL and runs
# every test through CTest. Exits non-zero on any failure.
set -euo pipefail
REKEY_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$REKEY_ROOT/scripts/lib/deps.sh"
source "$REKEY_ROOT/scripts/lib/pg.sh"

rekey_install_deps clang libclang-rt-14-dev
BUILD_DIR=${REKEY_BUILD_DIR:-$REKEY_ROOT/build}
rekey_build "$BUILD_DIR" -DREKEY_WERROR=ON

trap pg_stop EXIT
trap 'exit 130' INT TERM
pg_start
echo "rekey: test database on port $PG_PORT" >&2

# The libFuzzer target runs briefly when clang is there (scripts/fuzz.sh for longer runs).
if command -v clang++ >/dev/null 2>&1 && [ -x "$REKEY_ROOT/scripts/fuzz.sh" ]; then
  REKEY_FUZZ_SECONDS=${REKEY_FUZZ_SECONDS:-20} "$REKEY_ROOT/scripts/fuzz.sh"
fi

cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 "$@"
