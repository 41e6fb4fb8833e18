/* The thread pool behind tt_parallel (see threads.h): not a step of the data path but
   under all of it, splitting the kernels' loops, the fused blocks' images and stripes
   (infer.c) and the optimiser's parameters across the threads the host lends.

   One job at a time, published through a single word: `gen` is the job's number, or
   CLOSED while the caller rewrites the job's fields. A worker that sees a new number
   registers in `refs` and re-reads `gen`: if it is still that number, the fields are
   stable until it leaves, because the caller closes the job and waits for refs to drain
   before rewriting them (with the registration before the re-read and the close before
   the drain check, one of the two always sees the other: all accesses are sequentially
   consistent). Tasks are counted in `done`; the caller runs tasks too, then waits for
   done == n.

   Task i < T (T = threads when the job starts) belongs to thread i (the caller is 0, each
   lent thread has a number): a loop's slices of rows, bands or parameters then run on the
   same core from one loop to the next, whose cache holds that slice (the weight-gradient
   rows a thread wrote are the ones its Adam slice updates; 2-core head training ran ~4%
   faster). A thread that is late (asleep, descheduled) has its task taken by the others,
   as are the tasks from T on, claimed from `next`.

   A lent thread that traps inside a task (a bug: kernels do not fail) never finishes
   it. Its host calls tt_threads_crashed, which takes it out of the pool; the caller,
   waiting for the job, then traps too, instead of waiting forever (wasm/module.mjs
   turns that into an error naming the cause), and later loops run on the threads left.

   Idle workers spin on `gen` for a while (a forward pass starts a job every few hundred
   microseconds, far less than a sleep/wake round trip costs), then sleep in
   memory.atomic.wait32; the caller wakes them only when some are asleep. */
#ifndef __wasm__
#define _POSIX_C_SOURCE 200809L /* sched_yield */
#endif
#include "threads.h"
#include "tt.h"

#if defined(__wasm__) && !defined(__wasm_atomics__)
#define THREADS 0 /* a build without shared memory: everything runs inline */
#else
#define THREADS 1
#endif

#if defined(__wasm__) && THREADS
/* Sleeps at most 50 ms at a time: a host ending a thread (Node at exit, a Worker's
   terminate) interrupts wasm only when it runs, not inside an endless wait. */
static void sleep_while(int *p, int v) { __builtin_wasm_memory_atomic_wait32(p, v, 50000000); }
static void wake_all(int *p) { __builtin_wasm_memory_atomic_notify(p, (unsigned)-1); }
#elif THREADS
#include <sched.h> /* natively only tests lend threads: yielding stands in for a futex */
static void sleep_while(int *p, int v) { (void)p, (void)v, sched_yield(); }
static void wake_all(int *p) { (void)p; }
#endif

#define LOAD(p)     __atomic_load_n(p, __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n(p, v, __ATOMIC_SEQ_CST)
#define ADD(p, v)   __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST)

enum { CLOSED = -1, SPINS = 1 << 16, OWNED = 64 };

static struct {
  int gen, refs, next, done, n, owned;
  int taken[OWNED]; /* task i < owned: claimed (by thread i, or taken over) */
  tt_task fn;
  void *ctx;
  int workers, sleepers, stop, lost;
  int busy; /* written by the caller only: a loop is running, nested ones run inline */
} pool;

int tt_threads_supported(void) { return THREADS; }
int tt_threads(void) { return 1 + (THREADS && !LOAD(&pool.busy) ? LOAD(&pool.workers) : 0); }

#if THREADS
static void run_task(int i) {
  pool.fn(pool.ctx, i);
  ADD(&pool.done, 1);
}

static int claim(int i) { return __atomic_exchange_n(&pool.taken[i], 1, __ATOMIC_SEQ_CST) == 0; }

/* Thread `self`'s share of the job: its own task, the unowned ones, then any owned task
   whose thread has not come for it. */
static void run_tasks(int self) {
  const int owned = pool.owned;
  if (self < owned && claim(self)) run_task(self);
  for (int i; (i = ADD(&pool.next, 1)) < pool.n;) run_task(i);
  for (int i = 0; i < owned; i++)
    if (claim(i)) run_task(i);
}
#endif

void tt_parallel(int n, tt_task fn, void *ctx) {
  if (n <= 0) return;
  if (!THREADS || n == 1 || LOAD(&pool.busy) || LOAD(&pool.workers) == 0) {
    for (int i = 0; i < n; i++) fn(ctx, i);
    return;
  }
#if THREADS
  STORE(&pool.busy, 1);
  const int lost = LOAD(&pool.lost); /* before the job is out: one of its tasks may trap */
  const int g = LOAD(&pool.gen);
  STORE(&pool.gen, CLOSED);
  while (LOAD(&pool.refs)) {} /* late workers leaving the previous job */
  pool.fn = fn, pool.ctx = ctx, pool.n = n;
  int owned = 1 + LOAD(&pool.workers);
  owned = owned < n ? owned : n;
  owned = owned < OWNED ? owned : OWNED;
  for (int i = 0; i < owned; i++) STORE(&pool.taken[i], 0);
  pool.owned = owned;
  STORE(&pool.next, owned);
  STORE(&pool.done, 0);
  STORE(&pool.gen, (g + 1) & 0x3fffffff);
  if (LOAD(&pool.sleepers)) wake_all(&pool.gen);
  run_tasks(0);
  while (LOAD(&pool.done) < n)
    if (LOAD(&pool.lost) != lost) { /* a task will never be done */
      STORE(&pool.busy, 0);
      __builtin_trap();
    }
  STORE(&pool.busy, 0);
#endif
}

void tt_threads_crashed(void) {
#if THREADS
  ADD(&pool.refs, -1); /* it trapped inside a job */
  ADD(&pool.workers, -1);
  ADD(&pool.lost, 1);
#endif
}

int tt_threads_lost(void) { return THREADS ? LOAD(&pool.lost) : 0; }

int tt_threads_lend(void) {
#if THREADS
  const int self = 1 + ADD(&pool.workers, 1);
  int seen = CLOSED;
  for (;;) {
    int g, spins = 0;
    while ((g = LOAD(&pool.gen)) == seen || g == CLOSED) {
      if (LOAD(&pool.stop)) {
        ADD(&pool.workers, -1);
        return TT_OK;
      }
      if (++spins < SPINS) continue;
      ADD(&pool.sleepers, 1);
      if (LOAD(&pool.gen) == g && !LOAD(&pool.stop)) sleep_while(&pool.gen, g);
      ADD(&pool.sleepers, -1);
    }
    ADD(&pool.refs, 1);
    if (LOAD(&pool.gen) == g) {
      seen = g;
      run_tasks(self);
    }
    ADD(&pool.refs, -1);
  }
#else
  return tt_fail(TT_EUNSUP, "this build of the engine has no threads");
#endif
}

void tt_threads_stop(void) {
#if THREADS
  STORE(&pool.stop, 1);
  while (LOAD(&pool.workers))
    wake_all(&pool.gen); /* again and again: one may be just
                                                      about to sleep */
  STORE(&pool.stop, 0);
#endif
}
