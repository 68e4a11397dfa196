/* Persistent worker threads of the conv family: creating threads per call costs tens of
 * microseconds, as much as a small layer takes. Workers are created on first need and kept; after
 * a job they spin briefly for the next one (layers come back to back), then sleep on a condition
 * variable. One job runs at a time (callers queue on a mutex). */
#include <pthread.h>
#include <stdatomic.h>

#include "conv/conv_internal.h"

#define POOL_MAX 63u
#define POOL_SPIN 2000u /* pause iterations before sleeping (a few tens of microseconds) */

static struct {
    pthread_mutex_t run;       /* one job at a time */
    pthread_mutex_t mu;        /* protects sleeping / waking */
    pthread_cond_t wake;
    pthread_cond_t done;
    size_t workers;            /* threads created so far */
    atomic_ulong generation;   /* bumped for every job */
    atomic_size_t remaining;   /* workers that have not finished the current job */
    onnxq_conv_task_fn* fn;
    void* arg;
    size_t tasks;
    unsigned long start_generation[POOL_MAX + 1]; /* generation when worker i was created */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL, NULL, 0, {0}};

static inline void cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void* worker_main(void* arg) {
    const size_t index = (size_t)(uintptr_t)arg; /* task index: 1..workers */
    unsigned long seen = pool.start_generation[index]; /* written before the thread started */
    for (;;) {
        unsigned long g = seen;
        for (unsigned i = 0; i < POOL_SPIN && g == seen; i++) {
            cpu_relax();
            g = atomic_load_explicit(&pool.generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&pool.mu);
            while ((g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen) {
                pthread_cond_wait(&pool.wake, &pool.mu);
            }
            pthread_mutex_unlock(&pool.mu);
        }
        seen = g;
        if (index < pool.tasks) pool.fn(pool.arg, index);
        if (atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_broadcast(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

void onnxq_conv_parallel(size_t tasks, onnxq_conv_task_fn* fn, void* arg) {
    if (tasks <= 1) {
        if (tasks == 1) fn(arg, 0);
        return;
    }
    pthread_mutex_lock(&pool.run);
    while (pool.workers + 1 < tasks && pool.workers < POOL_MAX) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pool.start_generation[pool.workers + 1] = atomic_load(&pool.generation);
        const int failed = pthread_create(&tid, &attr, worker_main,
                                          (void*)(uintptr_t)(pool.workers + 1));
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool.workers++;
    }
    const size_t pooled = pool.workers + 1 < tasks ? pool.workers + 1 : tasks;
    pool.fn = fn;
    pool.arg = arg;
    pool.tasks = pooled;
    atomic_store_explicit(&pool.remaining, pool.workers, memory_order_relaxed);
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    fn(arg, 0);
    for (size_t t = pooled; t < tasks; t++) fn(arg, t); /* no thread for these: run them here */
    for (unsigned i = 0; i < POOL_SPIN && atomic_load(&pool.remaining) != 0; i++) cpu_relax();
    if (atomic_load(&pool.remaining) != 0) {
        pthread_mutex_lock(&pool.mu);
        while (atomic_load(&pool.remaining) != 0) pthread_cond_wait(&pool.done, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.run);
}
