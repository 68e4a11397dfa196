/* Instruction sets, run-time detection and the kernel table.
 *
 * Detection runs once, at the first call of any function here or of any kernel. The environment
 * variable ONNXQ_ISA (scalar|avx2|avxvnni|avx512vnni|amx|neon|neondot, or auto) is read at that
 * moment only; naming an ISA this CPU lacks makes every kernel fail with ONNXQ_E_ISA until
 * onnxq_isa_set() picks a valid one. onnxq_isa_set() changes the active ISA for the whole process.
 *
 * A kernel of ISA k may run when k is available and k ranks at most the active ISA within the same
 * architecture; ranks are scalar < avx2 < avxvnni < avx512vnni < amx and scalar < neon < neondot.
 * Each family uses its best kernel that may run (scalar always may).
 */
#ifndef ONNXQ_ISA_H
#define ONNXQ_ISA_H

#include <stddef.h>

typedef enum onnxq_isa {
    ONNXQ_ISA_SCALAR = 0,
    ONNXQ_ISA_AVX2 = 1,        /* AVX2 + FMA */
    ONNXQ_ISA_AVXVNNI = 2,     /* AVX2 + AVX-VNNI (vpdpbusd on ymm, VEX encoded) */
    ONNXQ_ISA_AVX512VNNI = 3,  /* AVX-512 F/BW/VL/DQ + AVX512-VNNI */
    ONNXQ_ISA_AMX = 4,         /* AMX-TILE + AMX-INT8 (with AVX-512 VNNI), XTILEDATA granted by OS */
    ONNXQ_ISA_NEON = 5,        /* aarch64 Advanced SIMD */
    ONNXQ_ISA_NEONDOT = 6,     /* aarch64 Advanced SIMD + dot product (sdot/udot) */
    ONNXQ_ISA_COUNT = 7
} onnxq_isa;

/* Bit (1u << isa) set for every ISA this CPU and OS provide (scalar always). */
unsigned onnxq_isa_mask(void);

/* 1 when every ISA whose bit is set in mask is available, else 0. */
int onnxq_isa_available(unsigned mask);

/* The active ISA (forced or the best available), or -1 when ONNXQ_ISA named an unusable ISA. */
int onnxq_isa_active(void);

/* ONNXQ_OK, or ONNXQ_E_ISA with the message set when ONNXQ_ISA named an unusable ISA. */
int onnxq_isa_status(void);

/* Forces the active ISA by name; NULL, "" or "auto" selects the best available.
 * Returns ONNXQ_E_ARG for an unknown name, ONNXQ_E_ISA for an ISA this CPU lacks. */
int onnxq_isa_set(const char* name);

/* Name of an ISA ("scalar", "avx2", ...), or "?" when out of range. */
const char* onnxq_isa_name(int isa);

/* 1 when a kernel of this ISA may run now (see above), else 0. */
int onnxq_isa_usable(int isa);

/* Detection notes (e.g. "amx: kernel refused XTILEDATA permission"); "" when nothing to say. */
const char* onnxq_isa_notes(void);

/* One row of the kernel table generated from native/kernels.list. */
typedef struct onnxq_kernel_info {
    const char* family;  /* "gemm" */
    const char* op;      /* "gemm_u8s8" */
    const char* name;    /* "onnxq_gemm_u8s8_ukernel_8x32c4__avx512vnni" */
    const char* tile;    /* "8x32c4" */
    int isa;             /* onnxq_isa */
} onnxq_kernel_info;

size_t onnxq_kernel_count(void);

/* Row i of the kernel table, or NULL when i >= onnxq_kernel_count(). */
const onnxq_kernel_info* onnxq_kernel_get(size_t i);

/* Name of the kernel that op would use now, or NULL for an unknown op / unusable active ISA. */
const char* onnxq_kernel_selected(const char* op);

#endif /* ONNXQ_ISA_H */
