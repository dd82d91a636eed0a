#!/usr/bin/env bash
# Installs what is missing, builds, starts a throwaway PostgreSQL and runs
# every test through CTest. Exits non-zero on any failure.
#
#   scripts/test.sh --tsan [DOCTEST ARGS...]   the unit tests only (no database),
#       built with ThreadSanitizer in build-tsan (REKEY_TSAN_BUILD_DIR); any
#       report fails the run
set -euo pipefail
REKEY_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$REKEY_ROOT/scripts/lib/deps.sh"
source "$REKEY_ROOT/scripts/lib/pg.sh"

rekey_install_deps clang libclang-rt-14-dev

if [ "${1:-}" = "--tsan" ]; then
  shift
  TSAN_DIR=${REKEY_TSAN_BUILD_DIR:-$REKEY_ROOT/build-tsan}
  cmake -S "$REKEY_ROOT" -B "$TSAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREKEY_WERROR=ON -DREKEY_TSAN=ON >/dev/null
  cmake --build "$TSAN_DIR" -j"$(nproc)" --target rekey_unit_tests
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$REKEY_ROOT/scripts/tsan.supp"
  # First the canary: a race between two pipeline stages must be reported, or
  # a clean run below would prove nothing.
  canary_log=$(mktemp)
  if "$TSAN_DIR/rekey_unit_tests" --test-case='race canary*' --no-skip >"$canary_log" 2>&1 ||
    ! grep -q 'WARNING: ThreadSanitizer: data race' "$canary_log"; then
    cat "$canary_log" >&2
    echo "rekey: ThreadSanitizer did not report the canary's race: the --tsan run proves nothing" >&2
    exit 1
  fi
  rm -f "$canary_log"
  echo "rekey: ThreadSanitizer reported the canary's race; now every unit test" >&2
  exec "$TSAN_DIR/rekey_unit_tests" "$@"
fi
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
