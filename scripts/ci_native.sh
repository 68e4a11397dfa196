#!/bin/sh
# Native CI: the C test driver built with ASan + UBSan and run on this machine (every ISA it has),
# then cross-built for aarch64 and run under qemu twice: `-cpu max` (NEON + dot product) and
# `-cpu cortex-a53` (NEON only). Every run compares each ISA bit-exactly with the scalar kernels;
# the driver (one program for every family, see native/tests/build.sh) prints "N passed, N failed".
# Exit status: 0 when all runs pass.
#
# Usage: scripts/ci_native.sh            (FAMILIES=quant,gemm restricts to some families)
# Needs gcc; for the aarch64 part gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user,
# installed with apt-get when missing and running as root (skipped with a message otherwise).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=build/ci-native
status=0

run() {  # run NAME COMMAND...
    name=$1
    shift
    echo "== $name"
    if "$@"; then
        echo "== $name: ok"
    else
        echo "== $name: FAILED"
        status=1
    fi
}

rm -f "$OUT"/x86/onnxq_tests
run "build x86-64 (asan+ubsan)" native/tests/build.sh "$OUT/x86/onnxq_tests" gcc \
    -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined
[ -x "$OUT/x86/onnxq_tests" ] && run "test x86-64 (asan+ubsan)" \
    env ASAN_OPTIONS=detect_leaks=1 "$OUT/x86/onnxq_tests"

if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing the aarch64 cross toolchain and qemu"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
    fi
fi
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    rm -f "$OUT"/arm/onnxq_tests
    run "build aarch64" native/tests/build.sh "$OUT/arm/onnxq_tests" aarch64-linux-gnu-gcc -O2 -static
    if [ -x "$OUT/arm/onnxq_tests" ]; then
        run "test aarch64 -cpu max (neon + dotprod)" qemu-aarch64 -cpu max "$OUT/arm/onnxq_tests"
        run "test aarch64 -cpu cortex-a53 (neon only)" \
            qemu-aarch64 -cpu cortex-a53 "$OUT/arm/onnxq_tests"
    fi
else
    echo "== aarch64: SKIPPED (no aarch64-linux-gnu-gcc / qemu-aarch64 and cannot install them)"
    status=1
fi

[ $status -eq 0 ] && echo "native CI: all runs passed" || echo "native CI: FAILURES"
exit $status
