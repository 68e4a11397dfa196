#!/bin/sh
# ARM deployment check: onnxq's models on onnxruntime's aarch64 build under qemu, through onnxq's
# kernels (the custom-op library cross-built for aarch64) and through onnxruntime's own ARM
# kernels (the portable QDQ file), compared on x86 with onnxq's x86 kernels and the exact integers.
#
# 1. An arm64 Debian root (bookworm, minbase + python3), made once and cached in $DIR/root:
#    `debootstrap --foreign` fetches the packages, `dpkg-deb -x` unpacks them (no binfmt handler
#    is needed: qemu-aarch64 runs the root's python3 with QEMU_LD_PREFIX).
# 2. onnxruntime $ORT_VERSION and numpy $NUMPY_VERSION for aarch64 and for x86 (pip --target,
#    cached). onnxruntime 1.19.2 is pinned: it imports and runs under qemu 7.2 (Debian 12's
#    qemu-user); newer aarch64 wheels (1.32.0 tried) crash at import there. numpy 1.26 is the
#    last 1.x release with manylinux2014 aarch64 wheels for Python 3.11.
# 3. libonnxq_ort.so: every native/ source cross-built for aarch64 as one shared object exporting
#    RegisterCustomOps (NEON and NEON dot-product kernels, chosen at run time); and the qemu
#    instruction-counting plugin (scripts/qemu_insn_count.c) for the host.
# 4. scripts/arm_models.py prepare: the models (digits CNN, ResNet-18-style, the test zoo),
#    quantized and lowered by onnxq, their inputs, and the x86 results.
# 5. scripts/arm_runner.py under qemu -cpu max (NEON + dot product) and -cpu cortex-a53 (NEON only),
#    with the plugin counting instructions, and on x86 with the same onnxruntime release.
# 6. scripts/arm_models.py compare: lowered models byte for byte equal everywhere and equal the
#    exact integers; onnxruntime's ARM and x86 kernels against them; instruction counts.
# 7. Bad input: onnxruntime aarch64 refusing the x86 library (and onnxq.runtime naming the build).
#
# Usage: scripts/arm_check.sh (from the virtual environment where onnxq, torch and pytest are
# installed; .ci/run calls it after the test command). ONNXQ_ARM_DIR (default build/arm) holds the
# cache and the results ($DIR/work/summary.json). Exit status 0 when every check passes.
# Needs debootstrap, qemu-user, gcc-aarch64-linux-gnu, gcc and network access to the Debian
# mirror and PyPI the first time.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DIR=${ONNXQ_ARM_DIR:-build/arm}
MIRROR=${ONNXQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ORT_VERSION=1.19.2
NUMPY_VERSION=1.26.4
PYTHON=${PYTHON:-python}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

fail() {
    echo "arm_check: $*" >&2
    exit 1
}

for tool in debootstrap dpkg-deb qemu-aarch64 aarch64-linux-gnu-gcc gcc; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (apt-get install debootstrap qemu-user gcc-aarch64-linux-gnu gcc)"
done
"$PYTHON" -c 'import onnxq, torch' 2>/dev/null || fail "run from the environment where onnxq and torch are installed"

echo "== arm64 root ($DIR/root)"
if [ ! -f "$DIR/root/.onnxq-complete" ]; then
    rm -rf "$DIR/root.tmp"
    if ! debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm \
        "$DIR/root.tmp" "$MIRROR" >"$DIR/debootstrap.log" 2>&1; then
        tail -5 "$DIR/debootstrap.log" >&2
        fail "debootstrap could not fetch Debian's arm64 packages from $MIRROR (no network to the mirror? log: $DIR/debootstrap.log)"
    fi
    for deb in "$DIR"/root.tmp/var/cache/apt/archives/*.deb; do
        dpkg-deb -x "$deb" "$DIR/root.tmp" || fail "cannot unpack $deb"
    done
    rm -f "$DIR"/root.tmp/var/cache/apt/archives/*.deb
    touch "$DIR/root.tmp/.onnxq-complete"
    rm -rf "$DIR/root"
    mv "$DIR/root.tmp" "$DIR/root"
fi
arm_python() {  # arm_python CPU ARGS...: the root's python3 under qemu
    cpu=$1
    shift
    QEMU_LD_PREFIX="$DIR/root" PYTHONPATH="$DIR/site-arm64" qemu-aarch64 -cpu "$cpu" "$@"
}

echo "== onnxruntime $ORT_VERSION and numpy $NUMPY_VERSION (aarch64 and x86)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
install_site() {  # install_site TARGET PIP-PLATFORM-ARGS...
    target=$1
    shift
    [ -f "$target/.onnxq-complete" ] && return 0
    rm -rf "$target"
    "$PYTHON" -m pip install -q --no-deps --only-binary=:all: --target "$target" "$@" \
        "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION" ||
        fail "pip could not fetch onnxruntime $ORT_VERSION / numpy $NUMPY_VERSION for $target (no network to PyPI?)"
    touch "$target/.onnxq-complete"
}
install_site "$DIR/site-arm64" --python-version 3.11 \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64
install_site "$DIR/site-x86-$pyver"
arm_python max "$DIR/root/usr/bin/python3" -c 'import onnxruntime' ||
    fail "onnxruntime $ORT_VERSION does not import under qemu-aarch64"

echo "== libonnxq_ort.so for aarch64, the qemu plugin"
LIB=$DIR/lib/libonnxq_ort.so
mkdir -p "$DIR/lib"
python3 native/gen_kernels.py native/kernels.list "$DIR/lib/gen" >/dev/null || fail "gen_kernels.py failed"
# shellcheck disable=SC2046
aarch64-linux-gnu-gcc -O2 -std=gnu11 -ffp-contract=off -fno-math-errno -Wall -Wno-unused-function \
    -fPIC -shared -Inative/include -Inative/src -I"$DIR/lib/gen" \
    $(find native/src -name '*.c' | sort) "$DIR/lib/gen/onnxq_kernels.c" -o "$LIB.tmp" -lm -lpthread ||
    fail "cross-building the custom-op library failed"
mv "$LIB.tmp" "$LIB"
gcc -O2 -Wall -Wextra -shared -fPIC scripts/qemu_insn_count.c -o "$DIR/qemu_insn_count.so" ||
    fail "building the qemu plugin failed"
X86_LIB=$("$PYTHON" -c 'from onnxq.kernels.custom_ops import library_path; print(library_path())')

echo "== models (scripts/arm_models.py prepare)"
WORK=$DIR/work
rm -rf "$WORK"
"$PYTHON" scripts/arm_models.py prepare "$WORK" || fail "preparing the models failed"

echo "== runs: x86, qemu -cpu max and -cpu cortex-a53 (in parallel)"
PYTHONPATH="$DIR/site-x86-$pyver" "$PYTHON" -S scripts/arm_runner.py --work "$WORK" \
    --library "$X86_LIB" --out "$WORK/x86-ort$ORT_VERSION" || fail "the x86 run failed"
pids=""
for cpu in max cortex-a53; do
    run=arm-${cpu#cortex-}
    arm_python "$cpu" -plugin "$DIR/qemu_insn_count.so,out=$WORK/$run.counts" \
        "$DIR/root/usr/bin/python3" scripts/arm_runner.py --work "$WORK" --library "$LIB" \
        --out "$WORK/$run" --count 1 --counts-file "$WORK/$run.counts" >"$WORK/$run.log" 2>&1 &
    pids="$pids $!"
done
status=0
for pid in $pids; do
    wait "$pid" || status=1
done
for run in arm-max arm-a53; do
    [ -f "$WORK/$run/info.json" ] || {
        tail -20 "$WORK/$run.log" >&2
        fail "the $run run failed (log: $WORK/$run.log)"
    }
done

echo "== comparison (scripts/arm_models.py compare)"
"$PYTHON" scripts/arm_models.py compare "$WORK" arm-max arm-a53 "x86-ort$ORT_VERSION" || status=1

echo "== bad input: the x86 library on onnxruntime aarch64"
out=$(arm_python max "$DIR/root/usr/bin/python3" -c "
import onnxruntime as ort
ort.SessionOptions().register_custom_ops_library('$X86_LIB')" 2>&1)
if [ $? -eq 0 ]; then
    echo "arm_check: onnxruntime aarch64 accepted the x86 library" >&2
    status=1
else
    echo "$out" | tail -1
fi

[ $status -eq 0 ] && echo "arm_check: all checks passed" || echo "arm_check: FAILURES"
exit $status
