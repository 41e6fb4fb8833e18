// The library's engine worker (a module worker; "tinytune/worker", driven by client.mjs):
// owns the engine, the backbone, the image set and the classifier, so that decoding,
// embedding and training never block the page.
//
// Protocol. The page posts { id, type, args }; the worker answers each with
//   { id, ok: true, result }  or  { id, ok: false, error: { name, message, code } }
// and posts progress as { type: 'event', name, data } (no id). Requests:
//   init {simd?, threads?, wasmBase?}    -> { simd, build, threads, memory, wasm (the build's URL) }
//   loadModel {url, id}                  -> model info (card, layers, default cut, ...); events 'loadProgress' {loaded, total}
//   configure {cut, blocks ('auto' or 0-4), augment, views, seed}
//                                        -> the embedding config that background work and train() use
//   addImage {classId, bytes, id, name, trusted?}
//                                        -> { ok: true, width, height } | { ok: false, reason }   (bytes: Uint8Array, ArrayBuffer or Blob)
//   removeImage {id}, removeClass {classId}, reset
//   train {classes: [{id, name}], settings: {epochs, learningRate, batchSize, validationFraction, cut, blocks, augment, views, seed}}
//                                        -> the fit report (auto: what auto mode chose and why; refit: the final
//                                           training on every image); events 'prepare' {done, total}, 'batch' {...},
//                                           'epoch' {...} (each with its phase, 'validate' | 'refit' | 'train', and that phase's epochs)
//   cancel                               -> stops a train (its report says cancelled; the best weights so far are kept)
//   predict {bytes | pixels | bitmap, topk}
//                                        -> [{ label, index, probability }]   (a webcam frame: pixels {width, height, data: RGBA bytes}, or an ImageBitmap)
//   export {format: 'tfjs' | 'onnx'}     -> { format, labels, files: { name: Uint8Array } } (transferred): the whole model,
//                                           image to probabilities: model.json, weights.bin, metadata.json; or model.onnx
//   evaluate {items: [{label, name, bytes}]}
//                                        -> Classifier.evaluate's report on a labelled test set (a label the model lacks: its error)
//   save                                 -> { bytes: Uint8Array (transferred), labels, backbone }
//   load {bytes}                         -> { labels, report, meta }; a file made on another backbone is refused
//   status                               -> counts of images, pending; `computed`: features computed by the engine (not read
//                                           from the feature cache) since the worker started; the engine's wasm memory in bytes
// Other events: 'embedded' {id, pending} as features are computed, 'skipped'
// {id, name, reason} when a stored image turns out unreadable.
//
// Scheduling. addImage, removeImage, removeClass and cancel act at once (they only decode
// or touch bookkeeping; training uses a snapshot). Everything else runs one at a time from
// a queue. When the queue is empty, images not yet embedded under the current config are
// embedded one by one in the background, so Train usually starts on cached features.
// Training yields between small groups of batches (Classifier.fit), so 'cancel' arrives.
import { createEngine, EngineError } from './engine.mjs';
import { Classifier, trainableRange, checkTrainable } from './transfer.mjs';
import { FeatureCache } from './featurecache.mjs';
import { tfjsFiles } from './export-tfjs.mjs';

const S = {
  engine: null,
  model: null,
  modelId: null,
  cfg: null, // { key, cut, cutName, blocks, augment, views, seed, boundary, rng }
  images: new Map(), // id -> { id, classId, name, blob, data: Float32Array | null, key, bad }
  classifier: null,
  abort: null, // AbortController of the running train
  cache: FeatureCache.open(), // a promise: features kept in IndexedDB across reloads
  computed: 0, // embeddings the engine ran (cache misses)
  featureBudget: 512 * 1048576, // bytes of features the worker may hold (overBudget)
};

const post = (msg, transfer) => self.postMessage(msg, transfer ?? []);
const emit = (name, data) => post({ type: 'event', name, data });
const tick = () => new Promise((r) => setTimeout(r, 0));

class Cancelled extends Error {
  constructor() {
    super('training was stopped');
    this.name = 'AbortError';
  }
}

function needModel() {
  if (!S.model) throw new EngineError('no model is loaded yet');
  return S.model;
}

async function toBytes(b) {
  if (b instanceof Uint8Array) return b;
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (b instanceof Blob) return new Uint8Array(await b.arrayBuffer());
  throw new EngineError('image bytes must be a Uint8Array, an ArrayBuffer or a Blob');
}

/** A webcam frame sent as an ImageBitmap: its RGBA pixels, read here rather than on the page's main thread. */
let frameCanvas = null;
function bitmapPixels(bitmap) {
  try {
    const { width, height } = bitmap;
    if (!frameCanvas || frameCanvas.width !== width || frameCanvas.height !== height) frameCanvas = new OffscreenCanvas(width, height);
    const ctx = frameCanvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    return { width, height, data: ctx.getImageData(0, 0, width, height).data };
  } finally {
    bitmap.close();
  }
}

function modelInfo() {
  const m = S.model;
  const blocks = new Set(
    m.layers
      .slice(0, m.cut + 1)
      .map((l) => l.block)
      .filter(Boolean),
  );
  return {
    id: m.id,
    card: m.card,
    labels: m.labels,
    inputShape: m.inputShape,
    cut: m.cut,
    cutName: m.layers[m.cut].name,
    layers: m.layers.map(({ index, name, type, shape, block, aliases }) => ({ index, name, type, shape, block, aliases })),
    blocks: blocks.size,
    memory: S.engine.memoryBytes(),
    weightHash: m.weightHash,
  };
}

/** Sets the config embeddings are made under; images embedded under another config are redone. */
function configure(s = {}) {
  const m = needModel();
  const cut = s.cut === undefined || s.cut === null || s.cut === '' ? m.parsed.defaultCut : m.layerIndex(s.cut);
  const blocks = s.blocks === 'auto' ? 'auto' : Number(s.blocks ?? 0);
  const augment = s.augment ?? true;
  const views = augment ? Math.max(1, Math.min(16, Math.round(Number(s.views ?? 4)))) : 1;
  const seed = Number(s.seed ?? 1);
  const { boundary } = trainableRange(m, blocks, cut);
  const key = [S.modelId, cut, blocks, augment ? 1 : 0, views, seed].join('|');
  if (Number(s.featureBudget) > 0) S.featureBudget = Number(s.featureBudget);
  if (S.cfg?.key === key) return S.cfg;
  if (S.cfg?.rng) m.freeRng(S.cfg.rng);
  const perImage = views * m.layers[boundary].shape.reduce((a, b) => a * b, 1) * 4;
  S.cfg = { key, cut, cutName: m.layers[cut].name, blocks, augment, views, seed, boundary, perImage, rng: m.newRng(seed) };
  return S.cfg;
}

async function embed(rec) {
  const cfg = S.cfg;
  try {
    const cache = await S.cache;
    const ckey = FeatureCache.key(rec.id, S.model.weightHash, cfg.key);
    const hit = await cache.get(ckey);
    if (S.cfg !== cfg || !S.images.has(rec.id)) return; // config changed or image removed meanwhile
    if (hit) {
      rec.data = hit;
    } else {
      const bytes = await toBytes(rec.blob);
      if (S.cfg !== cfg || !S.images.has(rec.id)) return;
      rec.data = S.model.embedViews(bytes, { views: cfg.views, augment: cfg.augment, rng: cfg.rng, upto: cfg.boundary });
      S.computed++;
      cache.put(ckey, rec.id, rec.data);
    }
    rec.key = cfg.key;
    emit('embedded', { id: rec.id, pending: pendingImages().length });
  } catch (e) {
    rec.bad = e.message;
    S.images.delete(rec.id);
    emit('skipped', { id: rec.id, name: rec.name, reason: e.message });
  }
}

const pendingImages = () => [...S.images.values()].filter((r) => r.key !== S.cfg?.key);

// The features of every image are held here and copied into the engine to train: at the
// settings' cut, views and trainable blocks they can outgrow a tab's memory (2,000 images,
// 4 views, the last 2 blocks of the default backbone: 344 MB; 4 blocks, 8 views: 1.7 GB).
// Training takes about 2.4 times their size in wasm memory besides ~225 MB
// (bench/bigproject.mjs: 266 MiB at 100 images, 472 MiB at 600), and the engine has 2 GiB.
// Beyond the budget (512 MiB by default, so training stays under ~1.5 GiB; the page may set
// it) nothing is computed and training is refused with what to change, before memory runs out.
const mb = (n) =>
  n < 1048576 ? `${Math.round(n / 1024)} KB` : n < 1073741824 ? `${Math.round(n / 1048576)} MB` : `${(n / 1073741824).toFixed(1)} GB`;
function overBudget(n) {
  const need = n * S.cfg.perImage;
  if (need <= S.featureBudget) return null;
  return (
    `${n} images at these settings need ${mb(need)} of memory for their features, more than the ${mb(S.featureBudget)} this page allows: ` +
    'train fewer final blocks (or Auto), use fewer augmented views, or fewer images'
  );
}

/** One background embedding step; false when there is nothing to do. */
async function embedOne() {
  if (!S.model || !S.cfg || overBudget(S.images.size)) return false;
  const rec = pendingImages()[0];
  if (!rec) return false;
  await embed(rec);
  return true;
}

// ---------------------------------------------------------------------------------------
// Requests

const handlers = {
  async init({ simd, threads, wasmBase } = {}) {
    if (!S.engine) {
      const opts = Object.fromEntries(Object.entries({ simd, threads, wasmBase }).filter(([, v]) => v !== undefined && v !== null));
      S.engine = await createEngine(opts);
    }
    return {
      simd: S.engine.simd,
      build: S.engine.build,
      threads: S.engine.threads,
      memory: S.engine.memoryBytes(),
      wasm: S.engine.mod.url,
    };
  },

  async loadModel({ url, id }) {
    if (!S.engine) await handlers.init();
    if (S.model && S.modelId === id) return modelInfo();
    const model = await S.engine.loadModel(url, { id, onProgress: (loaded, total) => emit('loadProgress', { loaded, total }) });
    if (S.classifier) S.classifier.dispose();
    if (S.cfg?.rng) S.model.freeRng(S.cfg.rng);
    if (S.model) S.model.dispose();
    S.classifier = null;
    S.cfg = null;
    S.model = model;
    S.modelId = id ?? model.id;
    for (const r of S.images.values()) {
      r.data = null;
      r.key = null;
    }
    return modelInfo();
  },

  configure(s) {
    const c = configure(s);
    return { cut: c.cut, cutName: c.cutName, blocks: c.blocks, views: c.views, augment: c.augment, pending: pendingImages().length };
  },

  async train({ classes, settings = {} }) {
    needModel();
    if (!Array.isArray(classes)) classes = [];
    const counts = new Map(classes.map((c) => [c.id, 0]));
    for (const r of S.images.values()) if (counts.has(r.classId)) counts.set(r.classId, counts.get(r.classId) + 1);
    // fit()'s own checks, before the images are embedded rather than after
    checkTrainable(
      classes.map((c) => c.name),
      classes.map((c) => counts.get(c.id)),
    );
    const cfg = configure(settings);
    const tooBig = overBudget([...S.images.values()].filter((r) => counts.has(r.classId)).length);
    if (tooBig) throw new EngineError(tooBig);
    const ac = new AbortController();
    S.abort = ac;
    try {
      // Features for every image under this config (most are usually cached already).
      const todo = () => [...S.images.values()].filter((r) => counts.has(r.classId) && r.key !== cfg.key);
      const total = todo().length;
      let n = 0;
      emit('prepare', { done: 0, total });
      for (let r = todo()[0]; r; r = todo()[0]) {
        if (ac.signal.aborted) throw new Cancelled();
        await embed(r);
        emit('prepare', { done: ++n, total: Math.max(total, n) });
        await tick();
      }
      if (ac.signal.aborted) throw new Cancelled();
      const m = S.model;
      m.setCut(cfg.cut);
      const index = new Map(classes.map((c, k) => [c.id, k]));
      const c = new Classifier(m, {
        labels: classes.map((x) => x.name),
        blocks: cfg.blocks,
        augment: cfg.augment,
        views: cfg.views,
        seed: cfg.seed,
      });
      try {
        // The features computed (or cached) under this config: what its addImage would compute.
        for (const r of S.images.values())
          if (index.has(r.classId) && r.key === cfg.key) c.addFeatures(r.data, index.get(r.classId), r.name);
        const epochs = Math.max(1, Math.round(Number(settings.epochs ?? 30)));
        const report = await c.fit({
          epochs,
          learningRate: settings.learningRate == null ? undefined : Number(settings.learningRate),
          ...(settings.batchSize ? { batchSize: Number(settings.batchSize) } : {}),
          ...(settings.validationFraction !== undefined ? { validationFraction: Number(settings.validationFraction) } : {}),
          batchesPerTick: cfg.blocks === 0 ? 8 : 1, // 'auto' may train blocks
          signal: ac.signal,
          // the phase's own epoch count wins over the setting's (a refit runs its own schedule)
          onBatch: (p) => emit('batch', { epochs, ...p }),
          onEpoch: (e, p) => emit('epoch', { epochs, ...e, batchesPerEpoch: p.batchesPerEpoch, nTrain: p.nTrain, nVal: p.nVal }),
        });
        if (S.classifier) S.classifier.dispose();
        S.classifier = c;
        return plainReport(report);
      } catch (e) {
        c.dispose();
        throw e;
      }
    } finally {
      S.abort = null;
    }
  },

  async predict({ bytes, pixels, bitmap, topk }) {
    if (!S.classifier) {
      bitmap?.close();
      throw new EngineError('there is no trained model yet: train one, or load a .ttm file');
    }
    if (bitmap) pixels = bitmapPixels(bitmap);
    const image = pixels
      ? { width: pixels.width, height: pixels.height, channels: 4, data: new Uint8Array(pixels.data.buffer ?? pixels.data) }
      : await toBytes(bytes);
    return S.classifier.predict(image, topk ?? S.classifier.labels.length);
  },

  // The whole model, image to probabilities, as files; the page zips them (web/zip.mjs).
  export({ format = 'tfjs' } = {}) {
    if (!S.classifier) throw new EngineError('there is no trained model to export: train one, or load a .ttm file');
    let files;
    if (format === 'tfjs') files = tfjsFiles(S.classifier.exportTfjs({ whole: true }));
    else if (format === 'onnx') files = { 'model.onnx': S.classifier.exportOnnx({ whole: true }).bytes };
    else throw new EngineError(`unknown export format '${format}' (tfjs, onnx)`);
    for (const k of Object.keys(files)) if (!(files[k] instanceof Uint8Array)) files[k] = new Uint8Array(files[k]);
    return {
      result: { format, labels: [...S.classifier.labels], files },
      transfer: [...new Set(Object.values(files).map((b) => b.buffer))],
    };
  },

  async evaluate({ items = [] } = {}) {
    if (!S.classifier) throw new EngineError('there is no trained model to test: train one, or load a .ttm file');
    const list = [];
    for (const it of items) list.push({ label: it.label, name: it.name, image: await toBytes(it.bytes) });
    return S.classifier.evaluate(list);
  },

  save() {
    if (!S.classifier) throw new EngineError('nothing to save: no model has been trained or loaded');
    const bytes = S.classifier.save();
    return { result: { bytes, labels: [...S.classifier.labels], backbone: S.modelId }, transfer: [bytes.buffer] };
  },

  async load({ bytes }) {
    const m = needModel();
    const c = Classifier.load(m, await toBytes(bytes));
    if (S.classifier) S.classifier.dispose();
    S.classifier = c;
    return { labels: [...c.labels], report: c.report ? plainReport(c.report) : null, meta: c.meta, backbone: S.modelId };
  },

  reset() {
    S.images.clear();
    if (S.classifier) S.classifier.dispose();
    S.classifier = null;
    return true;
  },

  status() {
    return {
      images: S.images.size,
      pending: pendingImages().length,
      trained: !!S.classifier,
      model: S.modelId,
      computed: S.computed,
      memory: S.engine?.memoryBytes() ?? 0,
    };
  },
};

// Requests that act at once, between the steps of whatever is running.
const immediate = {
  async addImage({ classId, bytes, id, name, trusted }) {
    const rec = {
      id,
      classId,
      name: name ?? id,
      blob: bytes instanceof Blob ? bytes : new Blob([await toBytes(bytes)]),
      data: null,
      key: null,
    };
    if (trusted) {
      S.images.set(id, rec);
      kick();
      return { ok: true };
    }
    try {
      if (!S.engine) throw new EngineError('the engine is not ready yet');
      const { width, height } = S.engine.decodeImage(await toBytes(bytes));
      S.images.set(id, rec);
      kick();
      return { ok: true, width, height };
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      return { ok: false, reason: e.message };
    }
  },
  removeImage({ id }) {
    S.cache.then((c) => c.forget([id]));
    return S.images.delete(id);
  },
  removeClass({ classId }) {
    const gone = [];
    for (const [id, r] of S.images)
      if (r.classId === classId) {
        S.images.delete(id);
        gone.push(id);
      }
    S.cache.then((c) => c.forget(gone));
    return gone.length;
  },
  cancel() {
    S.abort?.abort();
    for (let i = queue.length - 1; i >= 0; i--) if (queue[i].msg.type === 'train') fail(queue.splice(i, 1)[0].msg.id, new Cancelled());
    return !!S.abort;
  },
};

function plainReport(r) {
  const { settings, ...rest } = r;
  return JSON.parse(JSON.stringify({ ...rest, settings: settings ?? null }));
}

function fail(id, e) {
  post({ id, ok: false, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e), code: e?.code } });
}

const queue = [];
let running = false;

async function run(msg, fn) {
  try {
    const out = await fn(msg.args ?? {});
    if (out && out.transfer) post({ id: msg.id, ok: true, result: out.result }, out.transfer);
    else post({ id: msg.id, ok: true, result: out });
  } catch (e) {
    fail(msg.id, e);
  }
}

async function loop() {
  if (running) return;
  running = true;
  try {
    for (;;) {
      const job = queue.shift();
      if (job) {
        await run(job.msg, handlers[job.msg.type]);
        continue;
      }
      if (!(await embedOne())) break;
      await tick(); // let new requests in before the next background step
    }
  } finally {
    running = false;
  }
}

function kick() {
  if (!running) loop();
}

self.onmessage = (e) => {
  const msg = e.data;
  if (immediate[msg.type]) {
    run(msg, immediate[msg.type]);
    return;
  }
  if (!handlers[msg.type]) {
    fail(msg.id, new Error(`unknown request '${msg.type}'`));
    return;
  }
  queue.push({ msg });
  kick();
};
