#!/usr/bin/env bash
# Builds the libFuzzer target tests/fuzz/fuzz_token.cc with clang++ and runs it
# for REKEY_FUZZ_SECONDS (default 60) on a seed corpus of valid tokens under
# the target's fixed keys. Exits non-zero if the build fails or the fuzzer
# finds a crash (the reproducer is left in $BUILD_DIR/fuzz-artifacts/).
#
#   REKEY_FUZZ_SECONDS=600 scripts/fuzz.sh
#   scripts/fuzz.sh ARGS...   # extra libFuzzer flags, e.g. -jobs=2 -workers=2
set -euo pipefail
REKEY_ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ_SECONDS=${REKEY_FUZZ_SECONDS:-60}
BUILD_DIR=${REKEY_FUZZ_BUILD_DIR:-$REKEY_ROOT/build-fuzz}
PYTHON=${REKEY_PYTHON:-/usr/bin/python3}

echo "rekey: building fuzz_token in $BUILD_DIR" >&2
if ! CXX=clang++ cmake -S "$REKEY_ROOT" -B "$BUILD_DIR" -DREKEY_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
   ! cmake --build "$BUILD_DIR" -j"$(nproc)" --target fuzz_token >"$BUILD_DIR/fuzz-build.log" 2>&1; then
  tail -n 30 "$BUILD_DIR/fuzz-build.log" >&2 || true
  echo "rekey: building the fuzz target failed" >&2
  exit 1
fi

SEEDS="$BUILD_DIR/fuzz-seeds"
CORPUS="$BUILD_DIR/fuzz-corpus"
ARTIFACTS="$BUILD_DIR/fuzz-artifacts"
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$CORPUS" "$ARTIFACTS"

# Seeds: tokens under the target's keys (bytes seed, seed+1, ...; new key seed
# 1, old keys 2 and 3), plain and wrapped, lenient spellings, embedded in other bytes, and non-tokens.
if "$PYTHON" -c 'import cryptography' 2>/dev/null; then
  "$PYTHON" - "$SEEDS" <<'PY'
import base64, os, sys
from cryptography.fernet import Fernet
out = sys.argv[1]
def key(seed):
    return Fernet(base64.urlsafe_b64encode(bytes((seed + i) % 256 for i in range(32))))
seeds = []
for seed in (1, 2, 3, 4):
    for n in (0, 12, 16, 64):
        tok = key(seed).encrypt_at_time(bytes(range(n)), 1700000000 + n)
        seeds += [tok, base64.urlsafe_b64encode(tok)]
tok = key(2).encrypt_at_time(b"hello fuzz", 1700000000)
seeds += [b"  " + tok + b"\n", tok.replace(b"-", b"+").replace(b"_", b"/"), tok.rstrip(b"="), tok + b"junk",
          tok[:40] + b"\n" + tok[40:], base64.urlsafe_b64encode(b"\n" + tok), base64.urlsafe_b64encode(tok) + b"=="]
seeds += [b"", b"hello world", b'{"a": 1}', b"gAAAAA", b"Z0FBQUFB", base64.urlsafe_b64encode(b"\x80" * 72)]
new = key(1).encrypt_at_time(b"fresh", 1700000001)
wrapped = base64.urlsafe_b64encode(tok)
seeds += [tok + b"," + new + b"," + wrapped, b'["' + tok + b'", "' + wrapped + b'"]', b'"' + new + b'"',
          b"acct: " + tok + b" (primary)", b"\xff" + tok + b"\x80\x00" + new, b"x" + tok]
for i, s in enumerate(seeds):
    with open(os.path.join(out, "seed%03d" % i), "wb") as f:
        f.write(s)
PY
else
  echo "rekey: $PYTHON has no cryptography module; using a minimal seed corpus" >&2
  printf '%s' 'gAAAAABlU_EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' \
    >"$SEEDS/seed000"
  printf '%s' 'hello world' >"$SEEDS/seed001"
fi

echo "rekey: fuzzing for ${FUZZ_SECONDS}s" >&2
status=0
"$BUILD_DIR/fuzz_token" -max_total_time="$FUZZ_SECONDS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$ARTIFACTS/" "$@" "$CORPUS" "$SEEDS" \
  >"$BUILD_DIR/fuzz.log" 2>&1 || status=$?
grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$BUILD_DIR/fuzz.log" >&2 || true
if [ "$status" -ne 0 ]; then
  tail -n 60 "$BUILD_DIR/fuzz.log" >&2
  echo "rekey: fuzz_token failed (exit $status); artifacts in $ARTIFACTS" >&2
  exit "$status"
fi
echo "rekey: fuzz_token ran ${FUZZ_SECONDS}s without a crash" >&2
