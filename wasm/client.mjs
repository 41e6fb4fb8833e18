// The public Web Worker client: runs the engine in wasm/worker.mjs so decoding, embedding
// and training never block the page. EngineClient speaks the worker's raw protocol
// (requests as promises, progress as events; the protocol is described at the top of
// worker.mjs and in docs/API.md); TinytuneClient wraps it in one method per request,
// with class names as class ids. The page (web/client.mjs) uses EngineClient.
import { modelUrl, DEFAULT_MODEL } from './models.mjs';

/** An error the worker answered with (name, message and engine code kept). */
export class WorkerError extends Error {
  constructor({ name, message, code } = {}) {
    super(message);
    this.name = name || 'Error';
    this.code = code;
  }
}

export class EngineClient {
  /** Starts the worker: `url` of wasm/worker.mjs (or of a bundle of it). */
  constructor(url = new URL('./worker.mjs', import.meta.url)) {
    this.worker = new Worker(url, { type: 'module' });
    this.next = 1;
    this.pending = new Map();
    this.listeners = new Map();
    this.worker.onmessage = (e) => this._onMessage(e.data);
    this.started = false; // true once the worker has answered anything
    this.crashed = null;
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      if (this.started) {
        this._crash(e.message || 'an uncaught error in the engine worker');
        return;
      }
      // A worker that failed to start (say, a module that did not load) fails every request.
      const err = new WorkerError({ name: 'Error', message: `the engine worker ${url} failed: ${e.message || 'could not start'}` });
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.failed = err;
      this._emit('fatal', err);
    };
  }

  // The engine trapped (a WebAssembly.RuntimeError: an engine bug, or memory exhausted
  // mid-call) or the worker died: its state can no longer be trusted, so every pending
  // request fails with an 'EngineCrash' error and 'crash' tells the page to start a new
  // worker. Nothing the page keeps (images, labels, the stored model) lives in the worker.
  _crash(reason) {
    if (this.crashed) return;
    this.crashed = reason;
    this.failed = new WorkerError({ name: 'EngineCrash', message: `the engine crashed (${reason})` });
    for (const p of this.pending.values()) p.reject(this.failed);
    this.pending.clear();
    this.worker.terminate();
    this._emit('crash', this.failed);
  }

  _onMessage(msg) {
    this.started = true;
    if (msg.type === 'event') {
      this._emit(msg.name, msg.data);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else if (msg.error?.name === 'RuntimeError') {
      // a trap inside a request
      p.reject(new WorkerError({ name: 'EngineCrash', message: `the engine crashed (${msg.error.message})` }));
      this._crash(msg.error.message);
    } else p.reject(new WorkerError(msg.error));
  }

  _emit(name, data) {
    for (const fn of this.listeners.get(name) ?? []) fn(data);
  }

  /** Calls fn(data) on each event `name`; returns a function that stops it. */
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }

  /** Sends a request; resolves with its result, rejects with the worker's error. */
  call(type, args = {}, transfer = []) {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, args }, transfer);
    });
  }

  /** Stops the worker; pending requests never settle. */
  terminate() {
    this.worker.terminate();
  }
}

export class TinytuneClient extends EngineClient {
  /**
   * Starts the worker and its engine. opts.worker: the worker script's URL (default
   * worker.mjs beside this module; a bundle passes its own); opts.wasmBase: the folder
   * of the tinytune*.wasm files; opts.simd / opts.threads as for createEngine.
   */
  constructor(opts = {}) {
    super(opts.worker ?? new URL('./worker.mjs', import.meta.url));
    this.classes = []; // class names in the order images were first added
    const { worker, wasmBase, ...rest } = opts;
    this.ready = this.call('init', {
      ...rest,
      ...(wasmBase
        ? {
            wasmBase: String(
              wasmBase instanceof URL
                ? wasmBase.href
                : new URL(String(wasmBase), globalThis.document?.baseURI ?? globalThis.location?.href),
            ),
          }
        : {}),
    });
  }

  /** Loads model `id` from `baseUrl` (the folder holding <id>/model.json); resolves to its description. */
  async loadModel(baseUrl, id = DEFAULT_MODEL) {
    await this.ready;
    const url = modelUrl(baseUrl, id);
    try {
      return await this.call('loadModel', { url, id });
    } catch (e) {
      if (!/^cannot load model\.json/.test(e.message)) throw e;
      throw Object.assign(
        new WorkerError({
          name: 'EngineError',
          message:
            `cannot load model '${id}' from the base URL ${baseUrl}: ${e.message} ` +
            `(the base URL must be the folder that holds ${id}/model.json)`,
        }),
        { url },
      );
    }
  }

  /** Adds an image (file bytes or a Blob) to class `label`; an unreadable one resolves { ok: false, reason }. */
  async addImage(label, image, opts = {}) {
    await this.ready;
    const id = opts.id ?? `${label}/${this.next}`;
    const res = await this.call('addImage', { classId: label, bytes: image, id, name: opts.name ?? id });
    if (res.ok && !this.classes.includes(label)) this.classes.push(label);
    return { ...res, id };
  }

  /** Forgets one image. */
  removeImage(id) {
    return this.call('removeImage', { id });
  }

  /** Forgets a class and its images; resolves to how many images went. */
  async removeClass(label) {
    this.classes = this.classes.filter((c) => c !== label);
    return this.call('removeClass', { classId: label });
  }

  /** Trains on the classes given (default: every class with images); resolves to the fit report. */
  async train(settings = {}, classes = this.classes) {
    await this.ready;
    return this.call('train', { classes: classes.map((c) => ({ id: c, name: c })), settings });
  }

  /** Stops a running train (it resolves with `cancelled`, keeping the best weights so far). */
  cancel() {
    return this.call('cancel');
  }

  /** Class probabilities for an image, best first. */
  async predict(image, topk) {
    return this.call('predict', { bytes: image, topk });
  }

  /** The trained classifier as .ttm file bytes, with its labels and backbone id. */
  save() {
    return this.call('save');
  }

  /** Loads a saved classifier (made on the same backbone). */
  load(bytes) {
    return this.call('load', { bytes });
  }

  /** Drops every image and the classifier. */
  async reset() {
    this.classes = [];
    return this.call('reset');
  }

  /** Counts of images, pending embeddings, whether a classifier is trained. */
  status() {
    return this.call('status');
  }
}
