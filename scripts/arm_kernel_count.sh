#!/bin/sh
# Executed instructions of onnxq's NEON conv / GEMM kernels on single layer shapes, counted under
# qemu-aarch64 by the plugin scripts/qemu_insn_count.c: seconds per shape, for tuning a kernel
# without running scripts/arm_check.sh. Counts, not time (see docs/arm.md).
#
# Usage: scripts/arm_kernel_count.sh [SHAPE...]
#   SHAPE: conv:IN_HW,IN_C,OUT_C,KERNEL,STRIDE,PAD[,BATCH] or gemm:M,K,N; default: ResNet-18's
#   layers and the digits CNN's (batch 60).
#   CPUS (default "max cortex-a53"): the qemu CPUs (max: NEON + dot product; cortex-a53: NEON).
#   ONNXQ_ISA (neon, neondot, scalar) forces an ISA instead of the CPU's best.
# Prints one line per shape and CPU: instructions, MACs and MACs per instruction.
# Needs gcc, gcc-aarch64-linux-gnu and qemu-user.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${ONNXQ_COUNT_DIR:-build/arm-count}
mkdir -p "$OUT/gen"
python3 native/gen_kernels.py native/kernels.list "$OUT/gen" >/dev/null
# shellcheck disable=SC2046
aarch64-linux-gnu-gcc -O2 -static -std=gnu11 -ffp-contract=off -fno-math-errno -Wall \
    -Wno-unused-function -Inative/include -Inative/src -I"$OUT/gen" \
    $(find native/src -name '*.c' | sort) "$OUT/gen/onnxq_kernels.c" scripts/arm_kernel_count.c \
    -o "$OUT/arm_kernel_count" -lm -lpthread
gcc -O2 -shared -fPIC scripts/qemu_insn_count.c -o "$OUT/qemu_insn_count.so"
if [ $# -eq 0 ]; then  # ResNet-18 at 224x224 (each distinct layer once), its classifier; digits
    set -- conv:224,3,64,7,2,3 conv:56,64,64,3,1,1 conv:56,64,128,3,2,1 conv:56,64,128,1,2,0 \
        conv:28,128,128,3,1,1 conv:28,128,256,3,2,1 conv:14,256,256,3,1,1 conv:14,256,512,3,2,1 \
        conv:7,512,512,3,1,1 gemm:1,512,1000 \
        conv:8,1,32,3,1,1,60 conv:8,32,32,3,1,1,60 conv:4,32,64,3,1,1,60
fi
for cpu in ${CPUS:-max cortex-a53}; do
    for shape in "$@"; do
        kind=${shape%%:*}
        # shellcheck disable=SC2086
        line=$(qemu-aarch64 -cpu "$cpu" -plugin "$OUT/qemu_insn_count.so,out=$OUT/counts.txt" \
            "$OUT/arm_kernel_count" "$kind" $(echo "${shape#*:}" | tr ',' ' '))
        macs=$(echo "$line" | sed 's/.*macs=\([0-9]*\).*/\1/')
        awk -v cpu="$cpu" -v line="$line" -v macs="$macs" '
            $1 == 1 { start = $2 } $1 == 2 { n = $2 - start }
            END { printf "%-11s %-62s %10.3f M insns %6.2f MAC/insn\n", cpu, line, n / 1e6, macs / n }' \
            "$OUT/counts.txt"
        rm -f "$OUT/counts.txt"
    done
done
