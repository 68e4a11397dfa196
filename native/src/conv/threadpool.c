/* Persistent worker threads of the conv family: creating threads per call costs tens of
 * microseconds, as much as a small layer takes. Workers are created on first need and kept; after
 * a job they spin briefly for the next one (layers come back to back), then sleep on a condition
 * variable. Tasks are claimed dynamically, the caller included, so a worker that the OS schedules
 * late (a busy machine) delays nothing: the others take its tasks. One job runs at a time.
 *
 * Bounds: at most ONNXQ_CONV_MAX_THREADS - 1 workers, and never more than the CPUs the process
 * may run on minus one (onnxq_conv_execute caps a call's threads there), so however large the
 * requested thread count, the pool holds at most that many threads; onnxq_conv_threads_release
 * stops and joins them all. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "conv/conv_internal.h"

#define POOL_MAX ((size_t)ONNXQ_CONV_MAX_THREADS - 1u)
#define POOL_SPIN 2000u /* pause iterations before sleeping (a few tens of microseconds) */

static struct {
    pthread_mutex_t run; /* one job at a time */
    pthread_mutex_t mu;  /* protects the job description and the sleeping */
    pthread_cond_t wake;
    pthread_cond_t done; /* the caller sleeps here when the last tasks take long */
    size_t workers;      /* threads alive (created and not yet joined) */
    pthread_t tids[POOL_MAX];
    int quit;            /* under mu: workers exit (onnxq_conv_threads_release) */
    uint32_t job;        /* id of the current job (under mu) */
    onnxq_conv_task_fn* fn;
    void* arg;
    size_t tasks;
    size_t participants;          /* workers 1..participants-1 may join */
    _Atomic uint64_t ticket;      /* (job id << 32) | next task index */
    atomic_size_t completed;      /* tasks of the current job finished */
} pool = {.run = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static inline void cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claims tasks of job `job` until none is left or another job has started. A task is claimed
 * by a compare-and-swap on the ticket, so a worker that wakes up late for a finished job claims
 * nothing and never touches that job's (caller-owned) argument. */
static void run_tasks(uint32_t job, onnxq_conv_task_fn* fn, void* arg, size_t tasks,
                      size_t participant) {
    uint64_t ticket = atomic_load(&pool.ticket);
    for (;;) {
        if ((uint32_t)(ticket >> 32) != job || (ticket & 0xFFFFFFFFu) >= tasks) return;
        if (!atomic_compare_exchange_weak(&pool.ticket, &ticket, ticket + 1)) continue;
        fn(arg, (size_t)(ticket & 0xFFFFFFFFu), participant);
        if (atomic_fetch_add(&pool.completed, 1) + 1 == tasks && participant != 0) {
            pthread_mutex_lock(&pool.mu); /* the caller may be asleep waiting for this */
            pthread_cond_broadcast(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
        ticket = atomic_load(&pool.ticket);
    }
}

static void* worker_main(void* arg) {
    const size_t id = (size_t)(uintptr_t)arg; /* participant id 1..workers */
    uint32_t seen = 0;
    for (;;) {
        for (unsigned i = 0; i < POOL_SPIN && (uint32_t)(atomic_load(&pool.ticket) >> 32) == seen;
             i++) {
            cpu_relax();
        }
        pthread_mutex_lock(&pool.mu);
        while (pool.job == seen && !pool.quit) pthread_cond_wait(&pool.wake, &pool.mu);
        if (pool.quit) {
            pthread_mutex_unlock(&pool.mu);
            return NULL;
        }
        seen = pool.job;
        const int join = id < pool.participants;
        onnxq_conv_task_fn* fn = pool.fn;
        void* job_arg = pool.arg;
        const size_t tasks = pool.tasks;
        pthread_mutex_unlock(&pool.mu);
        if (join) run_tasks(seen, fn, job_arg, tasks, id);
    }
    return NULL;
}

/* A forked child has none of the parent's workers: start again from an empty pool. */
static void pool_after_fork_in_child(void) {
    pthread_mutex_init(&pool.run, NULL);
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.workers = 0;
    pool.quit = 0;
}

static void pool_init_once(void) { pthread_atfork(NULL, NULL, pool_after_fork_in_child); }
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static size_t cpu_count;
static void cpu_count_once(void) {
    long n = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_count = n < 1 ? 1 : (size_t)n;
}

size_t onnxq_conv_cpu_count(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, cpu_count_once);
    return cpu_count;
}

size_t onnxq_conv_threads_alive(void) {
    pthread_once(&pool_once, pool_init_once);
    pthread_mutex_lock(&pool.run);
    const size_t n = pool.workers;
    pthread_mutex_unlock(&pool.run);
    return n;
}

size_t onnxq_conv_threads_release(void) {
    pthread_once(&pool_once, pool_init_once);
    pthread_mutex_lock(&pool.run); /* no job runs while we hold it */
    const size_t n = pool.workers;
    pthread_mutex_lock(&pool.mu);
    pool.quit = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (size_t i = 0; i < n; i++) pthread_join(pool.tids[i], NULL);
    pthread_mutex_lock(&pool.mu);
    pool.quit = 0;
    pool.workers = 0;
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.run);
    return n;
}

void onnxq_conv_parallel(size_t tasks, size_t participants, onnxq_conv_task_fn* fn, void* arg) {
    if (participants <= 1 || tasks <= 1) {
        for (size_t t = 0; t < tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_once(&pool_once, pool_init_once);
    pthread_mutex_lock(&pool.run);
    while (pool.workers + 1 < participants && pool.workers < POOL_MAX) {
        const int failed = pthread_create(&pool.tids[pool.workers], NULL, worker_main,
                                          (void*)(uintptr_t)(pool.workers + 1));
        if (failed) break; /* fewer workers: the caller claims more tasks */
        pool.workers++;
    }
    pthread_mutex_lock(&pool.mu);
    const uint32_t job = ++pool.job == 0 ? ++pool.job : pool.job; /* 0: "no job yet" */
    pool.fn = fn;
    pool.arg = arg;
    pool.tasks = tasks;
    pool.participants = participants;
    atomic_store(&pool.completed, 0);
    atomic_store(&pool.ticket, (uint64_t)job << 32);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_tasks(job, fn, arg, tasks, 0);
    /* Others' last tasks: spin briefly, then sleep (never sched_yield: on a busy machine the
     * caller would queue behind every other process). */
    for (unsigned i = 0; i < POOL_SPIN && atomic_load(&pool.completed) != tasks; i++) cpu_relax();
    if (atomic_load(&pool.completed) != tasks) {
        pthread_mutex_lock(&pool.mu);
        while (atomic_load(&pool.completed) != tasks) pthread_cond_wait(&pool.done, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.run);
}
