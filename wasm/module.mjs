// Loads the engine's .wasm in Node and browsers alike with WebAssembly.instantiate, and
// wraps its exports in small helpers for moving bytes and errors across the boundary.
// Emscripten's own JS glue is not used: the single-threaded builds are -sSTANDALONE_WASM,
// and threads.mjs instantiates the threaded ones.
import { EngineError, cString } from './errors.mjs';
import { Abi } from './abi.mjs';

export { EngineError, cString };

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

// The smallest module using a v128 instruction (as wasm-feature-detect does): valid only
// where the runtime has WASM SIMD.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

export function hasSimd() {
  try {
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

// () -> v128: f32x4.relaxed_madd (0xfd 0x85 0x02) of three v128.const zeros. Valid only
// where the runtime has the standard relaxed-SIMD opcodes (Chromium 114+, Firefox with
// the feature on; Node 20 only with --experimental-wasm-relaxed-simd).
const V128_ZERO = [253, 12, ...new Array(16).fill(0)];
const RELAXED_BODY = [0, ...V128_ZERO, ...V128_ZERO, ...V128_ZERO, 253, 133, 2, 11];
const RELAXED_PROBE = new Uint8Array([
  0,
  97,
  115,
  109,
  1,
  0,
  0,
  0,
  1,
  5,
  1,
  96,
  0,
  1,
  123,
  3,
  2,
  1,
  0,
  10,
  RELAXED_BODY.length + 2,
  1,
  RELAXED_BODY.length,
  ...RELAXED_BODY,
]);

export function hasRelaxedSimd() {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

async function readBytes(url) {
  if (isNode && url.protocol === 'file:') {
    const fs = await import('node:fs/promises');
    try {
      return await fs.readFile(url);
    } catch (e) {
      // In Node the builds sit beside this module (../build/): one missing is a broken
      // install, named rather than silently replaced by a slower build.
      const err = new EngineError(
        e.code === 'ENOENT'
          ? `the engine file ${decodeURIComponent(url.pathname)} is missing: the install is broken (reinstall tinytune, or run \`make wasm\` in a clone)`
          : `cannot load the engine from ${decodeURIComponent(url.pathname)}: ${e.message}`,
      );
      err.missing = e.code === 'ENOENT';
      throw err;
    }
  }
  return new Uint8Array(await (await fetchOk(url)).arrayBuffer());
}

async function fetchOk(url) {
  let r;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new EngineError(`cannot load the engine from ${url}: ${e.message}`);
  }
  if (!r.ok) throw new EngineError(`cannot load the engine from ${url}: ${r.status} ${r.statusText}`.trimEnd());
  return r;
}

// Over the network the build compiles while it downloads (compileStreaming, which needs
// the application/wasm type); from a file, or from a server sending another type, once
// it has all arrived.
async function compileUrl(url) {
  if ((isNode && url.protocol === 'file:') || typeof WebAssembly.compileStreaming !== 'function')
    return WebAssembly.compile(await readBytes(url));
  const r = await fetchOk(url);
  if (/^application\/wasm\b/.test(r.headers.get('content-type') ?? '')) return WebAssembly.compileStreaming(r);
  return WebAssembly.compile(new Uint8Array(await r.arrayBuffer()));
}

// The builds, fastest first: relaxed SIMD (FMA), plain SIMD, scalar. The -mt ones are
// built with WASM threads (shared memory) and run with opts.threads > 1.
const BUILDS = [
  { file: 'tinytune-relaxed.wasm', simd: true, relaxed: true },
  { file: 'tinytune.wasm', simd: true, relaxed: false },
  { file: 'tinytune-scalar.wasm', simd: false, relaxed: false },
];
const MT_BUILDS = [
  { file: 'tinytune-mt-relaxed.wasm', simd: true, relaxed: true },
  { file: 'tinytune-mt.wasm', simd: true, relaxed: false },
];

/**
 * Whether this runtime can run the threaded builds: shared WebAssembly memory, which
 * browsers grant only to cross-origin isolated pages (COOP + COEP headers).
 */
export function canThread() {
  if (typeof SharedArrayBuffer === 'undefined' || (!isNode && !globalThis.crossOriginIsolated)) return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/** Threads worth using here: the machine's cores, at most 8. */
export async function defaultThreads() {
  const n = isNode ? (await import('node:os')).availableParallelism() : globalThis.navigator?.hardwareConcurrency;
  return Math.max(1, Math.min(8, n || 1));
}

// Where the .wasm builds are: opts.wasmBase (a folder URL, for bundles that copy them
// elsewhere), else ../build/ beside this module, which holds in a clone and in the npm
// package alike.
function wasmFolder(base) {
  if (base === undefined || base === null) return new URL('../build/', import.meta.url);
  const href = String(base instanceof URL ? base.href : base);
  const dir = href.endsWith('/') ? href : `${href}/`;
  try {
    return new URL(dir, globalThis.document?.baseURI ?? globalThis.location?.href);
  } catch {
    throw new EngineError(`wasmBase ${JSON.stringify(href)} is not a URL`);
  }
}

async function compileFirst(candidates, folder) {
  const errors = [];
  for (const c of candidates) {
    try {
      const url = new URL(c.file, folder);
      return [await compileUrl(url), { ...c, url: url.href }];
    } catch (e) {
      if (e.missing) throw e;
      errors.push(e);
    }
  }
  // Every build failed: say what was tried (each message names its URL).
  throw errors.length === 1 ? errors[0] : new EngineError(`no engine build could be loaded: ${errors.map((e) => e.message).join('; ')}`);
}

/**
 * Instantiates the engine: the fastest build the runtime supports. opts.simd and
 * opts.relaxed force a choice (default: detect); opts.url / opts.bytes load given code
 * (then opts.simd / opts.relaxed only label it). If a build fails to load (a server
 * without the relaxed file, say), the next one is tried, so a user gets a slower engine
 * rather than an error. opts.threads (default: the machine's cores) > 1 loads a
 * threaded build where the runtime allows one (canThread) and SIMD is on, and lends it
 * that many threads in all; else, or if the threaded build cannot be had, the engine runs
 * on one. module.threads says which. opts.wasmBase: the folder holding the tinytune*.wasm
 * files (default: ../build/ beside this module). A build file missing from a Node install
 * is an error naming it.
 */
export async function loadModule(opts = {}) {
  const simd = opts.simd ?? hasSimd();
  const relaxed = simd && (opts.relaxed ?? hasRelaxedSimd());
  const threads = opts.url || opts.bytes || !simd || !canThread() ? 1 : Math.max(1, Math.floor(opts.threads ?? (await defaultThreads())));
  let module, build, spawned;
  if (opts.url || opts.bytes) {
    build = { simd, relaxed };
    module = await WebAssembly.compile(opts.bytes ?? (await readBytes(opts.url)));
  } else {
    const candidates = (threads > 1 ? MT_BUILDS : BUILDS).filter(
      (b) =>
        (b.simd ? simd : true) &&
        (b.relaxed ? relaxed : true) &&
        (opts.simd === undefined || b.simd === opts.simd) &&
        (opts.relaxed !== true || b.relaxed),
    );
    if (!candidates.length) throw new EngineError('this runtime does not support the requested build (relaxed SIMD)');
    // the lent threads' workers start while the build downloads and compiles
    spawned = threads > 1 ? import('./threads.mjs').then((t) => t.prespawn(threads - 1)) : null;
    try {
      [module, build] = await compileFirst(candidates, wasmFolder(opts.wasmBase));
    } catch (e) {
      dropWorkers(spawned);
      if (threads === 1 || e.missing) throw e;
      return loadModule({ ...opts, threads: 1 }); // no threaded build to be had
    }
  }
  if (threads > 1) {
    // Anything failing here (a 2 GiB shared memory refused on a small device, a server
    // without the threaded files or worker script) costs speed, never the engine.
    try {
      const { instantiateThreaded } = await import('./threads.mjs');
      const { exports, pool } = await instantiateThreaded(module, threads, await spawned);
      return Object.assign(new Module(exports, build.simd, build.relaxed, pool), { url: build.url });
    } catch {
      dropWorkers(spawned); // (ending a worker twice is harmless)
      return loadModule({ ...opts, threads: 1 });
    }
  }
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    const ns = (imports[imp.module] ??= {});
    if (imp.name === 'proc_exit')
      ns[imp.name] = (c) => {
        throw new EngineError(`engine aborted (exit ${c})`);
      };
    else ns[imp.name] = () => 52; // ENOSYS for WASI calls the engine never relies on
  }
  const { exports } = await WebAssembly.instantiate(module, imports);
  exports._initialize?.();
  return Object.assign(new Module(exports, build.simd, build.relaxed), { url: build.url });
}

// Ends the workers threads.mjs's prespawn started, when the threaded build is not used.
function dropWorkers(spawned) {
  spawned?.then(
    (ws) =>
      ws.forEach((w) =>
        w.then(
          (x) => x.end(),
          () => {},
        ),
      ),
    () => {},
  );
}

const utf8 = new TextEncoder();

/**
 * A threaded build's exports, each of which turns the trap the engine raises when one
 * of its lent threads crashed inside a task (see src/threads.c) into an EngineError
 * saying so; the engine goes on with the threads left. Other traps pass unchanged.
 */
function guardThreads(x) {
  if (typeof x.tt_threads_lost !== 'function') return x; // a build from before the guard
  let lost = x.tt_threads_lost();
  const guarded = { ...x };
  for (const [name, f] of Object.entries(x)) {
    if (typeof f !== 'function') continue;
    guarded[name] = (...args) => {
      try {
        return f(...args);
      } catch (e) {
        if (!(e instanceof WebAssembly.RuntimeError) || x.tt_threads_lost() === lost) throw e;
        lost = x.tt_threads_lost();
        throw new EngineError(
          `a worker thread crashed inside the engine (${e.message}); the call was abandoned, ` +
            `and the engine goes on with ${x.tt_threads()} thread(s)`,
        );
      }
    };
  }
  return guarded;
}

export class Module {
  constructor(exports, simd, relaxed = false, pool = null) {
    this.x = pool ? guardThreads(exports) : exports;
    this.simd = simd;
    this.relaxed = relaxed; // the relaxed-SIMD (FMA) build
    this.pool = pool; // the lent threads of a threaded build
    this.abi = Abi.read(this.x, this.x.memory); // enum values and struct layouts (src/abi.h)
  }

  /** Threads the engine's kernels run on (1: this thread only). */
  get threads() {
    return this.x.tt_threads();
  }

  /** Lets the engine's threads go (a threaded build then runs on one thread). */
  async close() {
    await this.pool?.close();
    this.pool = null;
  }

  // Views are recreated on every access: memory growth detaches the old buffer.
  get u8() {
    return new Uint8Array(this.x.memory.buffer);
  }
  get f32() {
    return new Float32Array(this.x.memory.buffer);
  }
  get i32() {
    return new Int32Array(this.x.memory.buffer);
  }

  memoryBytes() {
    return this.x.memory.buffer.byteLength;
  }

  /** The NUL-terminated UTF-8 string at p. */
  string(p) {
    return cString(this.x.memory, p);
  }

  lastError() {
    return this.string(this.x.tt_last_error());
  }

  /** Throws the engine's message when a call returned a negative code. */
  check(rc) {
    if (rc < 0) throw new EngineError(this.lastError(), rc);
    return rc;
  }

  /** Throws the engine's message (and its code) when a call returned a null pointer. */
  ptr(p) {
    if (!p) throw new EngineError(this.lastError(), this.x.tt_last_code());
    return p;
  }

  alloc(nbytes) {
    // The wasm side takes a 32-bit size: anything larger would wrap to a small block the
    // caller then overruns. Memory cannot grow past 2 GiB anyway.
    if (!Number.isSafeInteger(nbytes) || nbytes < 0 || nbytes > 0x7fffffff) {
      throw new EngineError(
        `out of memory allocating ${nbytes} bytes (the engine's memory is limited to 2 GiB)`,
        this.abi.value('error', 'nomem'),
      );
    }
    const p = this.x.tt_alloc(nbytes);
    if (!p) throw new EngineError(this.lastError(), this.abi.value('error', 'nomem'));
    return p;
  }

  free(p) {
    if (p) this.x.tt_free(p);
  }

  /** Copies bytes (Uint8Array or typed array) into fresh wasm memory. */
  put(data) {
    const src = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const p = this.alloc(src.length);
    this.u8.set(src, p);
    return p;
  }

  putString(s) {
    const b = utf8.encode(s + '\0');
    return this.put(b);
  }

  putInts(arr) {
    const p = this.alloc(arr.length * 4);
    this.i32.set(arr, p >> 2);
    return p;
  }

  floats(p, n) {
    return this.f32.slice(p >> 2, (p >> 2) + n);
  }

  /** A new zeroed C struct (src/abi.h's name for it) with the given members set; free it. */
  struct(name, values = {}) {
    const p = this.alloc(this.abi.size(name));
    this.u8.fill(0, p, p + this.abi.size(name));
    this.abi.write(this.x.memory, name, p, values);
    return p;
  }

  /** The C struct `name` at p, by member (see abi.mjs). */
  read(name, p) {
    return this.abi.read(this.x.memory, name, p);
  }

  /** Op i of a net as C holds it (tt_op: descriptor d, output h/w/c, weights, name). */
  op(net, i) {
    if (!Number.isInteger(i) || i < 0 || i >= this.x.tt_net_count(net))
      throw new EngineError(`op ${i} does not exist`, this.abi.value('error', 'invalid'));
    return this.read('op', this.x.tt_net_op(net, i));
  }

  /** Runs fn with temporary allocations that are freed afterwards, whatever happens. */
  scoped(fn) {
    const owned = [];
    const take = (p) => (owned.push(p), p);
    try {
      return fn(take);
    } finally {
      for (const p of owned) this.free(p);
    }
  }
}
