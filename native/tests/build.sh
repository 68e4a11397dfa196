#!/bin/sh
# Build the C tests: native/tests/build.sh [OUT] [CC] [CFLAGS...]
#   OUT     the driver, default build/native-tests/onnxq_tests (relative to the repository root)
#   CC      default gcc
#   CFLAGS  default: -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Compiles every source of native/src plus the code generated from native/kernels.list into
# OUT's directory (lib/libonnxq.a), then links the driver with every native/tests/test_<f>.c that
# defines onnxq_test_<f>(). A test file with its own main() is linked as a separate program
# OUT-<f> (the CI script runs those too). With FAMILIES=quant,gemm in the environment, only the
# core and those families (and their tests) are built.
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
DIR=$(dirname "$OUT")
GEN=$DIR/gen
OBJ=$DIR/obj
rm -rf "$OBJ"
mkdir -p "$GEN" "$OBJ" "$DIR/lib"
if [ -n "${FAMILIES:-}" ]; then
    python3 native/gen_kernels.py native/kernels.list "$GEN" --families "$FAMILIES"
    SRCS=$(ls native/src/*.c)
    TESTS=""
    for f in $(echo "$FAMILIES" | tr ',' ' '); do
        SRCS="$SRCS $(find "native/src/$f" -name '*.c' | sort | tr '\n' ' ')"
        [ -f "native/tests/test_$f.c" ] && TESTS="$TESTS native/tests/test_$f.c"
    done
else
    python3 native/gen_kernels.py native/kernels.list "$GEN"
    SRCS=$(find native/src -name '*.c' | sort)
    TESTS=$(ls native/tests/test_*.c)
fi
FLAGS="-std=gnu11 -ffp-contract=off -fno-math-errno -Wall -Wno-unused-function $CFLAGS"
INC="-Inative/include -Inative/src -I$GEN -Inative/tests"
i=0
for src in $SRCS "$GEN/onnxq_kernels.c"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    "$CC" $FLAGS $INC -c "$src" -o "$OBJ/$i-$(basename "$src" .c).o"
done
rm -f "$DIR/lib/libonnxq.a"
ar rcs "$DIR/lib/libonnxq.a" "$OBJ"/*.o
DRIVER_TESTS=""
STANDALONE=","
rm -f "$OUT"-*
for t in $TESTS; do
    if grep -Eq '^[[:space:]]*int[[:space:]]+main[[:space:]]*\(' "$t"; then
        fam=$(basename "$t" .c | sed 's/^test_//')
        # shellcheck disable=SC2086
        "$CC" $FLAGS $INC "$t" "$DIR/lib/libonnxq.a" -o "$OUT-$fam" -lm -lpthread
        echo "built $OUT-$fam (own main)"
        STANDALONE="$STANDALONE$fam,"
    else
        DRIVER_TESTS="$DRIVER_TESTS $t"
    fi
done
# shellcheck disable=SC2086
"$CC" $FLAGS $INC -DONNXQ_TEST_STANDALONE="\"$STANDALONE\"" native/tests/driver.c $DRIVER_TESTS "$DIR/lib/libonnxq.a" -o "$OUT" -lm -lpthread
echo "built $OUT"
