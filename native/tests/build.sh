#!/bin/sh
# Build the C test driver: native/tests/build.sh [OUT] [CC] [CFLAGS...]
#   OUT     default build/native-tests/onnxq_tests (relative to the repository root)
#   CC      default gcc
#   CFLAGS  default: -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Every source of native/src, the code generated from native/kernels.list and native/tests/*.c;
# with FAMILIES=quant,gemm in the environment, only the core and those families (and their tests).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-build/native-tests/onnxq_tests}
CC=${2:-gcc}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then
    CFLAGS="$*"
else
    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined"
fi
cd "$ROOT"
GEN=$(dirname "$OUT")/gen
mkdir -p "$GEN"
if [ -n "${FAMILIES:-}" ]; then
    python3 native/gen_kernels.py native/kernels.list "$GEN" --families "$FAMILIES"
    SRCS="native/src/*.c"
    TESTS="native/tests/driver.c"
    for f in $(echo "$FAMILIES" | tr ',' ' '); do
        SRCS="$SRCS $(find "native/src/$f" -name '*.c' | sort | tr '\n' ' ')"
        [ -f "native/tests/test_$f.c" ] && TESTS="$TESTS native/tests/test_$f.c"
    done
else
    python3 native/gen_kernels.py native/kernels.list "$GEN"
    SRCS=$(find native/src -name '*.c' | sort)
    TESTS="native/tests/*.c"
fi
# shellcheck disable=SC2086
"$CC" -std=gnu11 -ffp-contract=off -fno-math-errno -Wall -Wno-unused-function $CFLAGS \
    -Inative/include -Inative/src -I"$GEN" -Inative/tests \
    $SRCS "$GEN/onnxq_kernels.c" $TESTS \
    -o "$OUT" -lm -lpthread
echo "built $OUT"
