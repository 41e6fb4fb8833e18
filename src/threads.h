/* Threads for data-parallel loops. The engine never creates a thread: the host lends
   them. In browsers and Node that is a Web Worker / worker_threads instance of the same
   module on the same shared memory (the threaded builds, wasm/module.mjs); natively, a
   pthread in the tests. Each calls tt_threads_lend, which runs tasks until
   tt_threads_stop.

   Without lent threads (single-threaded builds, or before the workers are up) every
   loop runs inline on the caller, so nothing ever waits for a thread that may not come.
   Kernels split their work so that what a task computes depends only on its index, and
   each output is computed with the same arithmetic whatever the split: results are bit
   for bit the same with any number of threads. */
#ifndef TT_THREADS_H
#define TT_THREADS_H

typedef void (*tt_task)(void *ctx, int i);

/* Runs fn(ctx, i) for i in [0, n) across the pool and returns when all have run. A call
   from inside a task runs its loop inline. Only one thread (the engine's caller) may
   start loops. */
void tt_parallel(int n, tt_task fn, void *ctx);

/* Threads a loop started now would run on: the caller plus the lent workers; 1 when
   there are none, or inside a task (its loops run inline), so kernels called there do
   not cut their work for threads they will not get. */
int tt_threads(void);

/* Whether this build can run tasks on other threads (WASM threads, or native). */
int tt_threads_supported(void);

/* A lent thread's life: returns TT_OK after tt_threads_stop, or an error when the build
   has no threads. */
int tt_threads_lend(void);
/* Asks the lent threads to return from tt_threads_lend (as soon as they are idle). */
void tt_threads_stop(void);

/* Called by the host on a lent thread whose tt_threads_lend trapped: the thread leaves
   the pool, and the loop it was in traps on its caller rather than wait forever.
   tt_threads_lost counts such threads. */
void tt_threads_crashed(void);
int tt_threads_lost(void);

#endif
