#!/bin/sh
# Build the C tests: native/tests/build.sh [OUT] [CC] [CFLAGS...]
#   OUT     the driver, default build/native-tests/onnxq_tests (relative to the repository root)
#   CC      default gcc
#   CFLAGS  default: -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Compiles every source of native/src plus the code generated from native/kernels.list into
# OUT's directory (lib/libonnxq.a), then links one driver with every native/tests/test_<f>.c (each
# defines onnxq_test_<f>(); a test file with its own main() is refused). With FAMILIES=quant,gemm
# in the environment, only the core and those families (and their tests) are built.
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
for t in $TESTS; do
    if grep -Eq '^[[:space:]]*int[[:space:]]+main[[:space:]]*\(' "$t"; then
        echo "$t: has its own main(); define onnxq_test_<family>(void) for the driver instead" >&2
        exit 1
    fi
done
rm -f "$OUT"
# shellcheck disable=SC2086
"$CC" $FLAGS $INC native/tests/driver.c $TESTS "$DIR/lib/libonnxq.a" -o "$OUT" -lm -lpthread
echo "built $OUT"
