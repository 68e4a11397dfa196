/* A qemu TCG plugin counting executed guest instructions, read by the guest program itself.
 *
 * Used by scripts/arm_check.sh to compare onnxq's NEON kernels with onnxruntime's ARM kernels
 * under qemu-user, where wall-clock time means nothing. Built for the host:
 *
 *     gcc -O2 -shared -fPIC -o build/arm/qemu_insn_count.so scripts/qemu_insn_count.c
 *     qemu-aarch64 -plugin build/arm/qemu_insn_count.so,out=counts.txt ./program
 *
 * Every translated block adds its instruction count to a total when it executes (an inline add,
 * cheap), and to the counter of an address region when the block starts inside one. The guest
 * talks to the plugin through lseek() on file descriptors no program holds (the call fails with
 * EBADF; the plugin sees it first):
 *
 *     lseek(-7301, code, 0)     append "code total region0 region1 region2 region3" to out, flushed
 *     lseek(-7302, start, r)    region r (0-3) begins at guest address start
 *     lseek(-7303, end, r)      region r ends at guest address end (exclusive)
 *
 * Set a region before the code in it first runs: a block is attributed when it is translated.
 * Counters are plain (not atomic): count single-threaded runs. The plugin API declarations below
 * are written here (qemu ships no header in Debian's packages): API version 1, qemu 7.x-8.x.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t; /* not read */
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*syscall_cb)(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                           uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                           uint64_t a7, uint64_t a8);
typedef void (*udata_cb)(qemu_plugin_id_t id, void* userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, syscall_cb cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb cb, void* userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb* tb, enum qemu_plugin_op op,
                                              void* ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb* tb);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

enum { REGIONS = 4, SYS_LSEEK_AARCH64 = 62 };
static const uint64_t FD_MARK = (uint64_t)-7301, FD_START = (uint64_t)-7302, FD_END = (uint64_t)-7303;

static uint64_t total;
static uint64_t region_count[REGIONS];
static uint64_t region_start[REGIONS], region_end[REGIONS];
static FILE* out;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
    (void)id;
    uint64_t n = qemu_plugin_tb_n_insns(tb), pc = qemu_plugin_tb_vaddr(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    for (int r = 0; r < REGIONS; r++) {
        if (pc >= region_start[r] && pc < region_end[r])
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                                     &region_count[r], n);
    }
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8) {
    (void)id, (void)vcpu, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8;
    if (num != SYS_LSEEK_AARCH64) return;
    if (a1 == FD_MARK) {
        fprintf(out, "%llu %llu %llu %llu %llu %llu\n", (unsigned long long)a2,
                (unsigned long long)total, (unsigned long long)region_count[0],
                (unsigned long long)region_count[1], (unsigned long long)region_count[2],
                (unsigned long long)region_count[3]);
        fflush(out);
    } else if ((a1 == FD_START || a1 == FD_END) && a3 < REGIONS) {
        (a1 == FD_START ? region_start : region_end)[a3] = a2;
    }
}

static void on_plugin_exit(qemu_plugin_id_t id, void* userdata) {
    (void)id, (void)userdata;
    fclose(out);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
    (void)info;
    const char* path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) path = argv[i] + 4;
    }
    if (path == NULL) {
        fprintf(stderr, "qemu_insn_count: give out=FILE\n");
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        perror(path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
