// A lent thread (see threads.mjs): instantiates the engine's module on the shared memory
// it is sent, takes the stack it is given, and runs the engine's tasks until the engine
// lets it go. Runs as a Web Worker in browsers and a worker_threads Worker in Node.
import { threadedImports } from './threads.mjs';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;
const port = isNode ? (await import('node:worker_threads')).parentPort : self;
const onMessage = (fn) => (isNode ? port.once('message', fn) : (self.onmessage = (e) => fn(e.data)));

onMessage(async ({ module, memory, top, base, tb }) => {
  try {
    let x;
    const instance = await WebAssembly.instantiate(
      module,
      threadedImports(module, memory, () => x, false),
    );
    x = instance.exports;
    x._emscripten_thread_init(tb, 0, 0, 1, 0);
    x.emscripten_stack_set_limits(top, base);
    x.stackRestore(top);
    port.postMessage({ ready: true });
    let rc;
    try {
      rc = x.tt_threads_lend(); // returns when the engine lets the thread go
    } catch (e) {
      // A trap inside a task: leave the pool, so the engine's caller stops waiting for
      // the task and reports the crash instead of hanging.
      x.tt_threads_crashed();
      return;
    }
    port.postMessage({ done: rc });
  } catch (e) {
    port.postMessage({ error: `thread failed to start: ${e?.message ?? e}` });
  }
});
