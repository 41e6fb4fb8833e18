// The threaded builds (tinytune-mt*.wasm): WASM threads without Emscripten's pthread
// runtime. The engine never creates a thread (src/threads.h); this file creates a shared
// memory, instantiates the module on it once for the engine, and once more per lent
// thread in a worker (thread-entry.mjs: Web Worker or worker_threads) that gives itself
// to the engine's pool by calling tt_threads_lend. Lent threads only run kernels on
// buffers the engine allocated; everything else stays on the caller's thread.
import { EngineError, cString } from './errors.mjs';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

// Must match the Makefile's MTFLAGS (-sINITIAL_MEMORY, -sMAXIMUM_MEMORY, -sTOTAL_STACK).
const PAGE = 65536,
  INITIAL = 32 << 20,
  MAXIMUM = 2 ** 31,
  STACK = 1 << 20;

/** The imports of a threaded build, for the engine's instance (main) or a lent thread's. */
export function threadedImports(module, memory, getExports, main) {
  const u8 = () => new Uint8Array(memory.buffer);
  const str = (p) => cString(memory, p);
  const known = {
    emscripten_resize_heap(size) {
      const want = Math.min(MAXIMUM, Math.max(size >>> 0, memory.buffer.byteLength * 1.25));
      try {
        memory.grow(Math.ceil((want - memory.buffer.byteLength) / PAGE));
        return 1;
      } catch {
        return 0;
      }
    },
    emscripten_memcpy_big(dst, src, n) {
      u8().copyWithin(dst, src, src + n);
    },
    emscripten_get_now: () => performance.now(),
    __clock_gettime(clock, tp) {
      const now = clock === 0 ? Date.now() : performance.now(),
        i32 = new Int32Array(memory.buffer);
      i32[tp >> 2] = (now / 1000) | 0;
      i32[(tp >> 2) + 1] = ((now % 1000) * 1e6) | 0;
      return 0;
    },
    __assert_fail(cond, file, line) {
      throw new EngineError(`engine assertion failed: ${str(cond)} (${str(file)}:${line})`);
    },
    exit(code) {
      throw new EngineError(`engine aborted (exit ${code})`);
    },
    proc_exit(code) {
      throw new EngineError(`engine aborted (exit ${code})`);
    },
    // Emscripten's libc starts its main thread through this; the engine has no other
    // pthreads, so the rest of the pthread imports are never called.
    __emscripten_init_main_thread_js(tb) {
      const browserMain = main && !isNode && typeof window !== 'undefined';
      getExports()._emscripten_thread_init(tb, browserMain ? 1 : 0, main ? 1 : 0, browserMain ? 0 : 1, 0);
    },
  };
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    const ns = (imports[imp.module] ??= {});
    if (imp.kind === 'memory') ns[imp.name] = memory;
    else ns[imp.name] = known[imp.name] ?? (() => (imp.module === 'env' ? 0 : 52)); // 52: ENOSYS for WASI
  }
  return imports;
}

/**
 * Starts n lent-thread workers now and hands them the module later (instantiateThreaded):
 * their scripts load while the module downloads and compiles, rather than after (a cold
 * page start waited ~0.3 s for them). Each is a promise of a worker.
 */
export function prespawn(n) {
  return Array.from({ length: Math.max(0, n) }, () => spawn());
}

/**
 * Instantiates a threaded build and lends it threads - 1 workers (or the ones prespawn
 * started): {exports, pool}.
 */
export async function instantiateThreaded(module, threads, spawned = prespawn(threads - 1)) {
  const memory = new WebAssembly.Memory({ initial: INITIAL / PAGE, maximum: MAXIMUM / PAGE, shared: true });
  let x;
  const instance = await WebAssembly.instantiate(
    module,
    threadedImports(module, memory, () => x, true),
  );
  x = { ...instance.exports, memory };
  x.__wasm_call_ctors();
  const pool = new Pool(module, memory, x);
  await pool.lend(spawned);
  return { exports: x, pool };
}

async function spawn() {
  const url = new URL('./thread-entry.mjs', import.meta.url);
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(url);
    // A lent thread sleeping in the engine must not keep Node alive; unref after adding
    // listeners, which ref the worker's port again.
    const on = (ev, fn) => {
      w.on(ev, fn);
      w.unref();
    };
    return { post: (m) => w.postMessage(m), on: (fn) => on('message', fn), onError: (fn) => on('error', fn), end: () => w.terminate() };
  }
  const w = new Worker(url, { type: 'module', name: 'tinytune thread' });
  return {
    post: (m) => w.postMessage(m),
    on: (fn) => w.addEventListener('message', (e) => fn(e.data)),
    onError: (fn) => w.addEventListener('error', fn),
    end: () => w.terminate(),
  };
}

class Pool {
  constructor(module, memory, x) {
    ((this.module = module), (this.memory = memory), (this.x = x));
    this.workers = [];
    this.blocks = [];
  }

  /** Lends the spawned workers; one that fails to start is left out (the engine runs on fewer threads). */
  async lend(spawned) {
    const x = this.x,
      errors = [],
      n = spawned.length;
    await Promise.all(
      spawned.map(async (spawning) => {
        // Each lent thread needs a stack of its own in the shared memory, and a zeroed
        // block for libc's thread pointer (errno lives there).
        const stack = x.tt_alloc(STACK + 16),
          tb = x.tt_alloc(1024);
        if (!stack || !tb) {
          errors.push('out of memory for a thread stack');
          (await spawning).end();
          return;
        }
        new Uint8Array(this.memory.buffer).fill(0, tb, tb + 1024);
        this.blocks.push(stack, tb);
        const top = (stack + STACK + 16) & ~15;
        const w = await spawning;
        this.workers.push(w);
        const started = await new Promise((resolve) => {
          const timer = setTimeout(() => resolve('no answer in 20 s'), 20000);
          w.on((m) => {
            if (m.ready || m.error) {
              clearTimeout(timer);
              resolve(m.error ?? true);
            }
          });
          w.onError((e) => {
            clearTimeout(timer);
            resolve(String(e?.message ?? e));
          });
          w.post({ module: this.module, memory: this.memory, top, base: stack, tb });
        });
        if (started !== true) {
          errors.push(started);
          w.end();
        }
      }),
    );
    // Started workers enter the pool right after saying so.
    const want = 1 + n - errors.length;
    for (let i = 0; i < 2000 && x.tt_threads() < want; i++) await new Promise((r) => setTimeout(r, 1));
    this.errors = errors;
  }

  async close() {
    this.x.tt_threads_stop();
    for (const w of this.workers) w.end();
    for (const p of this.blocks) this.x.tt_free(p);
    ((this.workers = []), (this.blocks = []));
  }
}
