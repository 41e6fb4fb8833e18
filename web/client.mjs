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
    this.worker.onerror = (e) => {
      // A worker that failed to start (say, a module that did not load) fails every request.
      const err = new WorkerError({ name: 'Error', message: `the engine worker failed: ${e.message || 'could not start'}` });
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this._emit('fatal', err);
    };
  }

  _onMessage(msg) {
    if (msg.type === 'event') { this._emit(msg.name, msg.data); return; }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
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
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, args }, transfer);
    });
  }

  terminate() { this.worker.terminate(); }
}
