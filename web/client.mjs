// The page's side of the engine worker's protocol (see wasm/worker.mjs): promises for
// requests, callbacks for events.
export class WorkerError extends Error {
  constructor({ name, message, code }) {
    super(message);
    this.name = name || 'Error';
    this.code = code;
  }
}

export class EngineClient {
  constructor(url = new URL('../wasm/worker.mjs', import.meta.url)) {
    this.worker = new Worker(url, { type: 'module' });
    this.next = 1;
    this.pending = new Map();
    this.listeners = new Map();
    this.worker.onmessage = (e) => this._onMessage(e.data);
    this.started = false; // true once the worker has answered anything
    this.crashed = null;
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      if (!this.started) {
        // A worker that failed to start (say, a module that did not load) fails every request.
        const err = new WorkerError({ name: 'Error', message: `the engine worker failed: ${e.message || 'could not start'}` });
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        this._emit('fatal', err);
        return;
      }
      this._crash(e.message || 'an uncaught error in the engine worker');
    };
  }

  // The engine trapped (a WebAssembly.RuntimeError: an engine bug, or memory exhausted
  // mid-call) or the worker died: its state can no longer be trusted, so every pending
  // request fails with an 'EngineCrash' error and 'crash' tells the page to start a new
  // worker. Nothing the page keeps (images, labels, the stored model) lives in the worker.
  _crash(reason) {
    if (this.crashed) return;
    this.crashed = reason;
    const err = new WorkerError({ name: 'EngineCrash', message: `the engine crashed (${reason})` });
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.worker.terminate();
    this._emit('crash', err);
  }

  _onMessage(msg) {
    this.started = true;
    if (msg.type === 'event') { this._emit(msg.name, msg.data); return; }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else if (msg.error?.name === 'RuntimeError') { // a trap inside a request
      p.reject(new WorkerError({ name: 'EngineCrash', message: `the engine crashed (${msg.error.message})` }));
      this._crash(msg.error.message);
    }
    else p.reject(new WorkerError(msg.error));
  }

  _emit(name, data) { for (const fn of this.listeners.get(name) ?? []) fn(data); }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }

  /** Sends a request; resolves with its result, rejects with the worker's error message. */
  call(type, args = {}, transfer = []) {
    const id = this.next++;
    if (this.crashed) return Promise.reject(new WorkerError({ name: 'EngineCrash', message: `the engine crashed (${this.crashed})` }));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, args }, transfer);
    });
  }

  terminate() { this.worker.terminate(); }
}
