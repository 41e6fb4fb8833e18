// Transfer learning on a loaded backbone: cache the frozen part's output for each image
// (and augmented views of it), train the last K blocks plus a new head in the engine,
// predict, save and reload. The same code runs in Node, in the CLI and in the page's worker.
import { EngineError } from './module.mjs';

const OPTIMIZERS = { adam: 0, adamw: 1, sgd: 2 };
const DROPOUT = 9;
const FILE_FORMAT = 'tinytune-classifier';

export const TRAIN_DEFAULTS = {
  // learningRate null: 2e-3 for a head alone, 5e-4 once backbone blocks train (measured on
  // held-out digits; a cosine schedule wants a higher peak than a constant rate).
  epochs: 30, batchSize: 16, optimizer: 'adamw', learningRate: null, weightDecay: 1e-4, momentum: 0.9,
  warmup: 0.05, cosine: true, labelSmoothing: 0.1, balanced: true, validationFraction: 0.2, patience: 8, seed: 1,
};

const yieldNow = () => new Promise((r) => setTimeout(r, 0));

/** Floats as IEEE half precision (Uint16Array), rounded by the engine: how cached activations are kept. */
export function toHalf(m, floats) {
  return m.scoped((take) => {
    const x = take(m.put(floats)), y = take(m.alloc(floats.length * 2));
    m.x.tt_f16_pack(x, floats.length, y);
    return new Uint16Array(m.x.memory.buffer, y, floats.length).slice();
  });
}
const size = (shape) => shape.reduce((a, b) => a * b, 1);

/**
 * Where the trainable part starts for K trainable blocks: the first op of the K-th last
 * inverted-residual block before the cut (K = 0: nothing of the backbone trains).
 * Returns { first, boundary } with boundary = first - 1, the cached activation.
 */
export function trainableRange(model, blocks, cut = model.cut) {
  if (!Number.isInteger(blocks) || blocks < 0) throw new EngineError(`trainable blocks must be a whole number >= 0, got ${blocks}`);
  if (blocks === 0) return { first: cut + 1, boundary: cut };
  const ids = [];
  for (const l of model.layers.slice(0, cut + 1)) if (l.block && !ids.includes(l.block)) ids.push(l.block);
  if (blocks > ids.length) throw new EngineError(`the backbone has ${ids.length} blocks before the cut; cannot train ${blocks}`);
  const keep = new Set(ids.slice(ids.length - blocks));
  const first = model.layers.findIndex((l) => keep.has(l.block));
  return { first, boundary: first - 1 };
}

// Parses and checks a saved classifier: the engine validates the file and rebuilds its
// net; the metadata must be ours and of a version we read.
function openFile(m, bytes) {
  const { net, meta } = m.scoped((take) => {
    const dp = take(m.put(bytes)), out = take(m.alloc(12));
    m.check(m.x.tt_model_load(dp, bytes.length, out));
    const [net, off, len] = m.i32.slice(out >> 2, (out >> 2) + 3);
    return { net, meta: new TextDecoder().decode(m.u8.slice(dp + off, dp + off + len)) };
  });
  try {
    let info;
    try { info = JSON.parse(meta); } catch { throw new EngineError('saved model metadata is not valid JSON'); }
    if (info.format !== FILE_FORMAT) throw new EngineError(`not a tinytune classifier (format '${info.format}')`);
    if (info.version !== 1) throw new EngineError(`saved classifier has version ${info.version}; this engine reads version 1`);
    return { net, info };
  } catch (e) {
    m.x.tt_net_delete(net);
    throw e;
  }
}

/** A saved classifier's metadata (labels, backbone id and hash, settings, metrics), without loading it. */
export function readClassifierInfo(engine, bytes) {
  const { net, info } = openFile(engine.mod, bytes);
  engine.mod.x.tt_net_delete(net);
  return info;
}

export class Classifier {
  /**
   * opts: labels (class names), blocks (K, default 0), hidden (units of a hidden ReLU
   * layer, default 256; 0 for a linear head), dropout, views (cached views per image: 1 plain + the
   * rest augmented), augment (true, false or settings), seed.
   */
  constructor(model, opts = {}) {
    const labels = opts.labels ?? [];
    if (new Set(labels).size !== labels.length) throw new EngineError('class names must be unique');
    this.model = model;
    this.mod = model.mod;
    this.labels = [...labels];
    this.blocks = opts.blocks ?? 0;
    // A hidden layer with dropout and cached augmented views beat the Teachable Machine
    // recipe on held-out digits in our measurements (tests/transfer.test.mjs).
    this.hidden = opts.hidden ?? 256;
    this.dropout = opts.dropout ?? (this.hidden ? 0.2 : 0);
    this.augment = opts.augment ?? true;
    this.views = this.augment ? (opts.views ?? 4) : 1;
    this.seed = opts.seed ?? 1;
    // half: cache activations in half precision (half the memory; see src/kernels/half.c).
    // Opt-in until the accuracy benchmark shows it changes nothing beyond noise.
    this.half = opts.half ?? false;
    // The classifier keeps its own cut, so loading or training one never moves the model's.
    this.cut = model.layerIndex(opts.cut ?? model.cut);
    this.cutName = model.layers[this.cut].name;
    const { first, boundary } = trainableRange(model, this.blocks, this.cut);
    this.first = first;
    this.boundary = boundary;
    this.inputShape = model.layers[boundary].shape;
    this.images = []; // { label, name, data: Float32Array(views * size) }
    this.skipped = []; // { name, reason }
    this.report = null;
    this._rng = model.newRng(this.seed);
    this.net = opts._net ?? this._buildNet(labels.length);
  }

  _buildNet(classes) {
    const m = this.mod;
    if (classes < 1) return 0;
    const net = m.ptr(m.x.tt_net_slice(this.model.net, this.first, this.cut));
    try {
      let last = m.x.tt_net_ops(net) - 1;
      m.scoped((take) => {
        if (this.hidden) {
          last = m.check(m.x.tt_net_add_dense(net, take(m.putString('head/hidden')), last, this.hidden, 1, this.seed));
          if (this.dropout > 0) {
            last = m.check(m.x.tt_net_add_op(net, take(m.putString('head/dropout')),
              take(m.putInts([DROPOUT, last, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), this.dropout, 0, 0, 0, 0, 0));
          }
        }
        m.check(m.x.tt_net_add_dense(net, take(m.putString('head/logits')), last, classes, 0, this.seed + 1));
      });
    } catch (e) {
      m.x.tt_net_delete(net);
      throw e;
    }
    return net;
  }

  /** Adds a class after construction (before training). */
  addClass(label) {
    if (this.labels.includes(label)) throw new EngineError(`class '${label}' exists already`);
    this.labels.push(label);
    if (this.net) this.mod.x.tt_net_delete(this.net);
    this.net = 0; // rebuilt for the new class count at fit()
  }

  /**
   * Runs the frozen part on an image (and its augmented views) and caches the result.
   * An unreadable image is skipped and recorded, not thrown: returns false with the reason
   * in `skipped`.
   */
  addImage(bytes, label, name = `image ${this.images.length + this.skipped.length + 1}`) {
    const k = typeof label === 'number' ? label : this.labels.indexOf(label);
    if (k < 0 || k >= this.labels.length) throw new EngineError(`unknown class '${label}'`);
    try {
      let data = this.model.embedViews(bytes, { views: this.views, augment: this.augment, rng: this._rng, upto: this.boundary });
      if (this.half) data = toHalf(this.mod, data);
      this.images.push({ label: k, name, data });
      return true;
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      this.skipped.push({ name, reason: e.message });
      return false;
    }
  }

  counts() {
    const c = this.labels.map(() => 0);
    for (const im of this.images) c[im.label]++;
    return c;
  }

  /**
   * Trains. opts: TRAIN_DEFAULTS fields, plus onEpoch(metrics), onBatch(progress),
   * signal (AbortSignal) and batchesPerTick (work between yields to the event loop).
   * Resolves to a report; a non-finite loss rejects with the engine's message and
   * `error.report` (the best weights so far are kept).
   */
  async fit(opts = {}) {
    const o = { ...TRAIN_DEFAULTS, ...opts };
    o.learningRate ??= this.blocks ? 5e-4 : 2e-3;
    const m = this.mod;
    const counts = this.counts();
    if (this.labels.length < 2) throw new EngineError(`training needs at least 2 classes; there ${this.labels.length === 1 ? 'is 1' : `are ${this.labels.length}`}`);
    const empty = this.labels.filter((_, k) => counts[k] === 0);
    if (empty.length) throw new EngineError(`class${empty.length > 1 ? 'es' : ''} ${empty.map((l) => `'${l}'`).join(', ')} ha${empty.length > 1 ? 've' : 's'} no images`);
    if (OPTIMIZERS[o.optimizer] === undefined) throw new EngineError(`unknown optimizer '${o.optimizer}' (adam, adamw, sgd)`);
    if (!this.net) this.net = this._buildNet(this.labels.length);
    const per = size(this.inputShape) * this.views;
    const n = this.images.length;
    const odd = this.images.find((im) => im.data?.length !== per);
    if (odd) throw new EngineError(`image '${odd.name}' holds ${odd.data?.length} floats, not the ${per} of ${this.views} view(s) at the cut`);
    const history = [];
    const started = performance.now();
    let cancelled = false, error = null, last = null;
    // All inputs in half precision if any image holds them so (float32 ones are rounded).
    const half = this.images.some((im) => im.data instanceof Uint16Array);
    const x = m.alloc(n * per * (half ? 2 : 4)), y = m.alloc(n * 4);
    const cfg = m.alloc(13 * 8), out = m.alloc(14 * 8);
    let tr = 0;
    try {
      if (!half) this.images.forEach((im, i) => m.f32.set(im.data, (x >> 2) + i * per));
      else {
        this.images.forEach((im, i) => {
          const h = im.data instanceof Uint16Array ? im.data : toHalf(m, im.data); // may grow memory: before the view
          new Uint16Array(m.x.memory.buffer, x + i * per * 2, per).set(h);
        });
      }
      m.i32.set(this.images.map((im) => im.label), y >> 2);
      new Float64Array(m.x.memory.buffer, cfg, 13).set([o.epochs, o.batchSize, OPTIMIZERS[o.optimizer], o.learningRate,
        o.weightDecay, o.momentum, o.warmup, o.cosine ? 1 : 0, o.labelSmoothing, o.balanced ? 1 : 0,
        o.validationFraction, o.patience, o.seed]);
      tr = m.ptr(m.x[half ? 'tt_trainer_create_half' : 'tt_trainer_create'](this.net, cfg, this.labels.length, x, n, this.views, y));
      let epochStart = performance.now();
      for (;;) {
        const rc = m.x.tt_trainer_step(tr, o.batchesPerTick ?? 8, out);
        const v = new Float64Array(m.x.memory.buffer, out, 14);
        const p = { epoch: v[0], batch: v[1], batchesPerEpoch: v[2], done: !!v[3], stoppedEarly: !!v[4], bestEpoch: v[5],
          trainLoss: v[6], trainAccuracy: v[7], valLoss: v[8], valAccuracy: v[9], bestValLoss: v[10], learningRate: v[11],
          nTrain: v[12], nVal: v[13] };
        last = p;
        if (rc < 0) { error = new EngineError(m.lastError(), rc); break; }
        if (rc >= 1) {
          const now = performance.now();
          const e = { epoch: p.epoch + 1, trainLoss: p.trainLoss, trainAccuracy: p.trainAccuracy, valLoss: p.valLoss,
            valAccuracy: p.valAccuracy, learningRate: p.learningRate, seconds: (now - epochStart) / 1000 };
          epochStart = now;
          history.push(e);
          opts.onEpoch?.(e, p);
        } else {
          opts.onBatch?.(p);
        }
        if (rc === 2) break;
        await yieldNow();
        if (opts.signal?.aborted) { m.x.tt_trainer_cancel(tr); cancelled = true; break; }
      }
      const C = this.labels.length;
      const cm = m.alloc(C * C * 4);
      const nVal = m.check(m.x.tt_trainer_matrix(tr, cm));
      const flat = [...m.i32.slice(cm >> 2, (cm >> 2) + C * C)];
      m.free(cm);
      const confusion = this.labels.map((_, r) => flat.slice(r * C, (r + 1) * C));
      const perClass = confusion.map((row, k) => { const t = row.reduce((a, b) => a + b, 0); return t ? row[k] / t : null; });
      const correct = confusion.reduce((a, row, k) => a + row[k], 0);
      this.report = {
        labels: [...this.labels], history, bestEpoch: last.bestEpoch + 1, stoppedEarly: last.stoppedEarly, cancelled,
        validationAccuracy: nVal ? correct / nVal : null, confusion, perClassAccuracy: perClass,
        nTrain: last.nTrain, nVal, views: this.views, blocks: this.blocks, skipped: [...this.skipped],
        seconds: (performance.now() - started) / 1000, settings: { ...o, onEpoch: undefined, onBatch: undefined, signal: undefined },
      };
      if (error) { error.report = this.report; throw error; }
      return this.report;
    } finally {
      if (tr) m.x.tt_trainer_delete(tr);
      for (const p of [x, y, cfg, out]) m.free(p);
    }
  }

  /** Class probabilities for an image, best first (top k). */
  predict(bytes, topk = this.labels.length) {
    if (!this.net) throw new EngineError('this classifier has not been trained');
    const m = this.mod;
    const feats = this.model.embedViews(bytes, { views: 1, upto: this.boundary });
    const C = this.labels.length;
    const probs = m.scoped((take) => {
      const x = take(m.put(feats)), p = take(m.alloc(C * 4));
      m.check(m.x.tt_net_predict(this.net, x, 1, p));
      return m.floats(p, C);
    });
    return [...probs].map((p, i) => ({ label: this.labels[i], index: i, probability: p }))
      .sort((a, b) => b.probability - a.probability).slice(0, topk);
  }

  /** Probabilities for an already computed boundary activation (for tests and exports). */
  predictActivation(act) {
    const m = this.mod;
    const C = this.labels.length;
    return m.scoped((take) => {
      const x = take(m.put(act)), p = take(m.alloc(C * 4));
      m.check(m.x.tt_net_predict(this.net, x, 1, p));
      return m.floats(p, C);
    });
  }

  /** Everything needed to use the result again, in one file. */
  save() {
    if (!this.net) throw new EngineError('nothing to save: this classifier has not been trained');
    const m = this.mod;
    const meta = {
      format: FILE_FORMAT, version: 1, labels: this.labels,
      backbone: { id: this.model.id, hash: this.model.weightHash, inputShape: this.model.inputShape },
      cut: this.cutName, boundary: this.model.layers[this.boundary].name, blocks: this.blocks,
      head: { hidden: this.hidden, dropout: this.dropout },
      preprocessing: { resize: 'bilinear, align corners', range: [0, 1], size: this.model.inputShape.slice(0, 2) },
      augment: this.augment, views: this.views, seed: this.seed,
      training: this.report?.settings ?? null,
      metrics: this.report ? { validationAccuracy: this.report.validationAccuracy, bestEpoch: this.report.bestEpoch,
        perClassAccuracy: this.report.perClassAccuracy, confusion: this.report.confusion, history: this.report.history } : null,
      created: new Date().toISOString(),
    };
    const bytes = new TextEncoder().encode(JSON.stringify(meta));
    return m.scoped((take) => {
      const mp = take(m.put(bytes)), out = take(m.alloc(8));
      m.check(m.x.tt_model_save(this.net, mp, bytes.length, out));
      const [p, n] = m.i32.slice(out >> 2, (out >> 2) + 2);
      take(p);
      return m.u8.slice(p, p + n);
    });
  }

  /** Reads a saved classifier onto a loaded backbone; refuses a file made on another. */
  static load(model, bytes) {
    const { net, info } = openFile(model.mod, bytes);
    try {
      if (info.backbone?.hash !== model.weightHash) {
        throw new EngineError(`this classifier was trained on backbone '${info.backbone?.id}' (weights ${info.backbone?.hash}); ` +
          `the loaded backbone is '${model.id}' (weights ${model.weightHash})`);
      }
      // The checksum only catches accidents; a crafted file can say anything, so the
      // metadata must agree with the net the engine rebuilt before anything runs.
      const labels = info.labels;
      if (!Array.isArray(labels) || labels.length < 1 || !labels.every((l) => typeof l === 'string')) {
        throw new EngineError('saved classifier: its labels are not a list of class names');
      }
      const last = model.mod.x.tt_net_ops(net) - 1;
      const outShape = model.shapeOf(net, last), inShape = model.shapeOf(net, 0);
      if (outShape.join() !== `1,1,${labels.length}`) {
        throw new EngineError(`saved classifier: ${labels.length} labels for a net with ${outShape.join('x')} outputs`);
      }
      const c = new Classifier(model, { labels, cut: info.cut, blocks: info.blocks, hidden: info.head?.hidden ?? 0,
        dropout: info.head?.dropout ?? 0, augment: info.augment, views: info.views, seed: info.seed, _net: net });
      if (model.layers[c.boundary].name !== info.boundary || c.inputShape.join() !== inShape.join()) {
        c.net = 0; // still owned by the catch below
        c.dispose();
        throw new EngineError(`saved classifier starts at '${info.boundary}' with a ${inShape.join('x')} input, ` +
          `which does not match this backbone cut at '${info.cut}' (${c.inputShape.join('x')})`);
      }
      c.report = info.metrics ? { ...info.metrics, settings: info.training } : null;
      c.meta = info;
      return c;
    } catch (e) {
      model.mod.x.tt_net_delete(net);
      throw e;
    }
  }

  /** Each op of the trainable net: its descriptor, output shape and a copy of its weights. */
  ops() {
    const m = this.mod;
    const n = m.x.tt_net_ops(this.net);
    return m.scoped((take) => {
      const info = take(m.alloc(21 * 4));
      return Array.from({ length: n }, (_, i) => {
        m.check(m.x.tt_net_op_info(this.net, i, info));
        const v = m.i32.slice(info >> 2, (info >> 2) + 21);
        return {
          name: m.string(m.x.tt_net_op_name(this.net, i)), type: v[0], in0: v[1], in1: v[2], kernel: [v[3], v[4]],
          strides: [v[5], v[6]], same: !!v[7], pads: [v[8], v[9], v[10], v[11]], act: v[13], shape: [v[14], v[15], v[16]],
          rate: m.x.tt_net_op_scale(this.net, i), weights: m.floats(v[17], v[18]), bias: m.floats(v[19], v[20]),
        };
      });
    });
  }

  /**
   * The trained part as a TensorFlow.js layers model that tf.loadLayersModel opens: its
   * input is the backbone's activation at the boundary (the pooled feature for K = 0),
   * its output the class probabilities. Returns { modelJson, weightData }.
   */
  exportTfjs() {
    return toKeras(this.ops(), this.labels);
  }

  dispose() {
    if (this.net) this.mod.x.tt_net_delete(this.net);
    this.model.freeRng(this._rng);
    this.net = 0;
    this._rng = 0;
  }
}

// ---- export to a Keras functional model, as tfjs's layers format describes it ----------

const TYPE = { input: 0, conv2d: 1, depthwise: 2, dense: 3, add: 4, avgpool: 5, act: 6, dropout: 9 };

function toKeras(ops, labels) {
  const layers = [], specs = [], chunks = [];
  const used = new Set();
  const uniq = (name) => {
    let base = name.replace(/[^A-Za-z0-9_]/g, '_').replace(/^_+/, '') || 'layer', n = base, k = 1;
    while (used.has(n)) n = `${base}_${k++}`;
    used.add(n);
    return n;
  };
  const layer = (cls, name, config, inputs) => {
    layers.push({ class_name: cls, name, config: { name, trainable: true, ...config },
      inbound_nodes: inputs.length ? [inputs.map((i) => [i, 0, 0, {}])] : [] });
    return name;
  };
  const weight = (name, shape, data) => { specs.push({ name, shape, dtype: 'float32' }); chunks.push(data); };
  const outName = [], flat = [];
  const flatInput = ops[0].shape[0] === 1 && ops[0].shape[1] === 1 && ops.slice(1).every((o) => o.type === TYPE.dense || o.type === TYPE.dropout || o.type === TYPE.act);
  ops.forEach((o, i) => {
    flat[i] = i === 0 ? flatInput : o.type === TYPE.dense || (flat[o.in0] && o.type !== TYPE.add);
    const [h, w, c] = o.shape;
    if (i === 0) {
      outName[0] = layer('InputLayer', 'input', { batch_input_shape: flatInput ? [null, c] : [null, h, w, c], dtype: 'float32', sparse: false }, []);
      return;
    }
    let x = outName[o.in0];
    const name = uniq(o.name);
    switch (o.type) {
      case TYPE.conv2d:
      case TYPE.depthwise: {
        const [t, b, l, r] = o.pads;
        if (t || b || l || r) x = layer('ZeroPadding2D', uniq(`${name}_pad`), { padding: [[t, b], [l, r]], data_format: 'channels_last' }, [x]);
        const common = { kernel_size: o.kernel, strides: o.strides, padding: o.same ? 'same' : 'valid', data_format: 'channels_last',
          dilation_rate: [1, 1], activation: 'linear', use_bias: true };
        const cin = ops[o.in0].shape[2];
        if (o.type === TYPE.conv2d) {
          x = layer('Conv2D', name, { ...common, filters: c }, [x]);
          weight(`${name}/kernel`, [...o.kernel, cin, c], o.weights);
        } else {
          x = layer('DepthwiseConv2D', name, { ...common, depth_multiplier: 1 }, [x]);
          weight(`${name}/depthwise_kernel`, [...o.kernel, cin, 1], o.weights);
        }
        weight(`${name}/bias`, [c], o.bias);
        break;
      }
      case TYPE.dense: {
        const [ih, iw, ic] = ops[o.in0].shape;
        if (!flat[o.in0]) x = layer('Flatten', uniq(`${name}_flatten`), { data_format: 'channels_last' }, [x]);
        x = layer('Dense', name, { units: c, activation: 'linear', use_bias: true }, [x]);
        weight(`${name}/kernel`, [ih * iw * ic, c], o.weights);
        weight(`${name}/bias`, [c], o.bias);
        break;
      }
      case TYPE.add: x = layer('Add', name, {}, [x, outName[o.in1]]); break;
      case TYPE.avgpool:
        x = layer('AveragePooling2D', name, { pool_size: o.kernel, strides: o.strides, padding: o.same ? 'same' : 'valid', data_format: 'channels_last' }, [x]);
        break;
      case TYPE.dropout: x = layer('Dropout', name, { rate: o.rate }, [x]); break;
      case TYPE.act: break;
      default: throw new EngineError(`cannot export op '${o.name}' to a tfjs layers model`);
    }
    if (o.act) x = layer('ReLU', uniq(`${name}_relu`), { max_value: o.act === 2 ? 6 : null, negative_slope: 0, threshold: 0 }, [x]);
    outName[i] = x;
  });
  const probs = layer('Activation', 'probabilities', { activation: 'softmax' }, [outName[ops.length - 1]]);
  const total = chunks.reduce((a, d) => a + d.length, 0);
  const weightData = new Float32Array(total);
  let at = 0;
  for (const d of chunks) weightData.set(d, at), (at += d.length);
  return {
    modelJson: {
      format: 'layers-model', generatedBy: 'tinytune', convertedBy: null,
      modelTopology: { class_name: 'Model', keras_version: '2.2.4', backend: 'tensorflow',
        config: { name: 'tinytune', layers, input_layers: [['input', 0, 0]], output_layers: [[probs, 0, 0]] } },
      weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
      userDefinedMetadata: { labels },
    },
    weightData: new Uint8Array(weightData.buffer),
  };
}
