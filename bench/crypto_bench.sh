#!/usr/bin/env bash
# Builds rekey_bench (Release) and measures single-core Keyring::rotate
# throughput against Python's MultiFernet.rotate on the same tokens, and
# against the 2 HMAC + 2 AES physical bound. Prints markdown tables.
#
#   bench/crypto_bench.sh [rekey_bench args...]     e.g. --seconds 2
# Environment: REKEY_BENCH_BUILD_DIR (default build-bench), REKEY_PYTHON (default /usr/bin/python3).
set -euo pipefail
REKEY_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${REKEY_BENCH_BUILD_DIR:-$REKEY_ROOT/build-bench}
PYTHON=${REKEY_PYTHON:-/usr/bin/python3}

cmake -S "$REKEY_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target rekey_bench >/dev/null
"$BUILD_DIR/rekey_bench" --python "$PYTHON" --peer "$REKEY_ROOT/bench/python_rotate_peer.py" "$@"
